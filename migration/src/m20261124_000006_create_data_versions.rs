//! `data_versions`: one counter per environment, bumped in the same transaction as every load
//! that changed data, so a server can tell with one cheap read that its caches are stale.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DataVersions::Table)
                    .if_not_exists()
                    .col(string(DataVersions::Environment).primary_key())
                    .col(big_integer(DataVersions::Version).default(0))
                    .col(
                        timestamp_with_time_zone(DataVersions::UpdatedAt)
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DataVersions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DataVersions {
    Table,
    Environment,
    Version,
    UpdatedAt,
}
