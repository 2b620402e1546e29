//! `definition_groups`: one row per ETF, sector, theme or universe, scoped to an environment.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DefinitionGroups::Table)
                    .if_not_exists()
                    .col(pk_auto(DefinitionGroups::Id))
                    .col(string(DefinitionGroups::Name))
                    .col(string(DefinitionGroups::Type))
                    .col(text_null(DefinitionGroups::Description))
                    .col(json_null(DefinitionGroups::Metadata))
                    .col(string(DefinitionGroups::Environment).default("DEFAULT"))
                    .col(
                        timestamp_with_time_zone(DefinitionGroups::CreatedAt)
                            .default(Expr::current_timestamp()),
                    )
                    .col(
                        timestamp_with_time_zone(DefinitionGroups::UpdatedAt)
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_definition_groups_name_type_environment")
                    .table(DefinitionGroups::Table)
                    .col(DefinitionGroups::Name)
                    .col(DefinitionGroups::Type)
                    .col(DefinitionGroups::Environment)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_definition_groups_environment_type")
                    .table(DefinitionGroups::Table)
                    .col(DefinitionGroups::Environment)
                    .col(DefinitionGroups::Type)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DefinitionGroups::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum DefinitionGroups {
    Table,
    Id,
    Name,
    Type,
    Description,
    Metadata,
    Environment,
    CreatedAt,
    UpdatedAt,
}
