//! `load_run_files`: each file a run looked at, with its MD5 (incremental loads skip a file
//! whose MD5 matches its last successful load), status and row counts.

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
                    .table(LoadRunFiles::Table)
                    .if_not_exists()
                    .col(pk_auto(LoadRunFiles::Id))
                    .col(integer(LoadRunFiles::RunId))
                    .col(string(LoadRunFiles::FileName))
                    .col(string(LoadRunFiles::GroupType))
                    .col(string(LoadRunFiles::GroupName))
                    .col(string_null(LoadRunFiles::Shape))
                    .col(string_null(LoadRunFiles::Md5))
                    .col(string(LoadRunFiles::Status))
                    .col(integer(LoadRunFiles::RowsRead).default(0))
                    .col(integer(LoadRunFiles::RowsLoaded).default(0))
                    .col(integer(LoadRunFiles::RowsSkipped).default(0))
                    .col(integer(LoadRunFiles::Created).default(0))
                    .col(integer(LoadRunFiles::Updated).default(0))
                    .col(integer(LoadRunFiles::Deleted).default(0))
                    .col(integer(LoadRunFiles::Unchanged).default(0))
                    .col(text_null(LoadRunFiles::Error))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_load_run_files_run")
                            .from(LoadRunFiles::Table, LoadRunFiles::RunId)
                            .to(LoadRuns::Table, LoadRuns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_load_run_files_group")
                    .table(LoadRunFiles::Table)
                    .col(LoadRunFiles::GroupType)
                    .col(LoadRunFiles::GroupName)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_load_run_files_run")
                    .table(LoadRunFiles::Table)
                    .col(LoadRunFiles::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoadRunFiles::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoadRunFiles {
    Table,
    Id,
    RunId,
    FileName,
    GroupType,
    GroupName,
    Shape,
    Md5,
    Status,
    RowsRead,
    RowsLoaded,
    RowsSkipped,
    Created,
    Updated,
    Deleted,
    Unchanged,
    Error,
}
