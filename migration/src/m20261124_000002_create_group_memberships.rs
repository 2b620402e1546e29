//! `group_memberships`: a symbol in a group, with its weight in percent of the fund (0–100).
//! The weight is a double so that provider precision (XLK's NVDA at 14.59997) round-trips
//! exactly: every decimal of up to 15 significant digits survives f64 unchanged.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000001_create_definition_groups::DefinitionGroups;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GroupMemberships::Table)
                    .if_not_exists()
                    .col(pk_auto(GroupMemberships::Id))
                    .col(integer(GroupMemberships::GroupId))
                    .col(string(GroupMemberships::Symbol))
                    .col(double_null(GroupMemberships::Weight))
                    .col(json_null(GroupMemberships::Metadata))
                    .col(
                        timestamp_with_time_zone(GroupMemberships::AddedAt)
                            .default(Expr::current_timestamp()),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_group_memberships_group")
                            .from(GroupMemberships::Table, GroupMemberships::GroupId)
                            .to(DefinitionGroups::Table, DefinitionGroups::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_group_memberships_group_symbol")
                    .table(GroupMemberships::Table)
                    .col(GroupMemberships::GroupId)
                    .col(GroupMemberships::Symbol)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_group_memberships_symbol")
                    .table(GroupMemberships::Table)
                    .col(GroupMemberships::Symbol)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GroupMemberships::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum GroupMemberships {
    Table,
    Id,
    GroupId,
    Symbol,
    Weight,
    Metadata,
    AddedAt,
}
