//! `membership_changes`: every membership a run added, removed or reweighted. Groups are
//! named rather than referenced so the history outlives a removed group.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261124_000003_create_load_runs::LoadRuns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MembershipChanges::Table)
                    .if_not_exists()
                    .col(pk_auto(MembershipChanges::Id))
                    .col(integer(MembershipChanges::RunId))
                    .col(string(MembershipChanges::GroupType))
                    .col(string(MembershipChanges::GroupName))
                    .col(string(MembershipChanges::Symbol))
                    .col(string(MembershipChanges::Change))
                    .col(double_null(MembershipChanges::OldWeight))
                    .col(double_null(MembershipChanges::NewWeight))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_membership_changes_run")
                            .from(MembershipChanges::Table, MembershipChanges::RunId)
                            .to(LoadRuns::Table, LoadRuns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_membership_changes_run")
                    .table(MembershipChanges::Table)
                    .col(MembershipChanges::RunId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_membership_changes_group")
                    .table(MembershipChanges::Table)
                    .col(MembershipChanges::GroupType)
                    .col(MembershipChanges::GroupName)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_membership_changes_symbol")
                    .table(MembershipChanges::Table)
                    .col(MembershipChanges::Symbol)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MembershipChanges::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum MembershipChanges {
    Table,
    Id,
    RunId,
    GroupType,
    GroupName,
    Symbol,
    Change,
    OldWeight,
    NewWeight,
}
