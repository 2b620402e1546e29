//! `load_runs`: one row per load that wrote anything (dry runs write nothing), with its
//! outcome and counts, so history is a query.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoadRuns::Table)
                    .if_not_exists()
                    .col(pk_auto(LoadRuns::Id))
                    .col(string(LoadRuns::Environment))
                    .col(string(LoadRuns::Kind))
                    .col(string(LoadRuns::Mode))
                    .col(string_null(LoadRuns::Scope))
                    .col(string(LoadRuns::Source))
                    .col(timestamp_with_time_zone(LoadRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(LoadRuns::FinishedAt))
                    .col(string(LoadRuns::Outcome))
                    .col(integer(LoadRuns::FilesTotal).default(0))
                    .col(integer(LoadRuns::FilesLoaded).default(0))
                    .col(integer(LoadRuns::FilesUnchanged).default(0))
                    .col(integer(LoadRuns::FilesRejected).default(0))
                    .col(integer(LoadRuns::RowsRead).default(0))
                    .col(integer(LoadRuns::Created).default(0))
                    .col(integer(LoadRuns::Updated).default(0))
                    .col(integer(LoadRuns::Deleted).default(0))
                    .col(integer(LoadRuns::Unchanged).default(0))
                    .col(integer(LoadRuns::Skipped).default(0))
                    .col(integer(LoadRuns::GroupsRemoved).default(0))
                    .col(big_integer_null(LoadRuns::DataVersion))
                    .col(text_null(LoadRuns::Error))
                    .col(json_null(LoadRuns::Report))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_load_runs_environment_kind")
                    .table(LoadRuns::Table)
                    .col(LoadRuns::Environment)
                    .col(LoadRuns::Kind)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoadRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum LoadRuns {
    Table,
    Id,
    Environment,
    Kind,
    Mode,
    Scope,
    Source,
    StartedAt,
    FinishedAt,
    Outcome,
    FilesTotal,
    FilesLoaded,
    FilesUnchanged,
    FilesRejected,
    RowsRead,
    Created,
    Updated,
    Deleted,
    Unchanged,
    Skipped,
    GroupsRemoved,
    DataVersion,
    Error,
    Report,
}
