//! `load_runs.outcome` becomes `state`, and a run says who ran it (`holder`).
//!
//! A run is now recorded when it starts (`running`) and finished when it ends, so the column
//! holds a life-cycle state, not only an outcome: `running`, `succeeded`, `partial`,
//! `rejected`, `failed` or `abandoned` (left `running` by a process that died). Existing rows
//! map `success` → `succeeded`; `partial` and `failed` keep their names.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(LoadRuns::Table)
                    .rename_column(LoadRuns::Outcome, LoadRuns::State)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoadRuns::Table)
                    .add_column(ColumnDef::new(LoadRuns::Holder).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(LoadRuns::Table)
                    .value(LoadRuns::State, "succeeded")
                    .and_where(Expr::col(LoadRuns::State).eq("success"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_load_runs_state")
                    .table(LoadRuns::Table)
                    .col(LoadRuns::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_load_runs_state")
                    .table(LoadRuns::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(LoadRuns::Table)
                    .value(LoadRuns::State, "success")
                    .and_where(Expr::col(LoadRuns::State).eq("succeeded"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoadRuns::Table)
                    .drop_column(LoadRuns::Holder)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoadRuns::Table)
                    .rename_column(LoadRuns::State, LoadRuns::Outcome)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum LoadRuns {
    Table,
    Outcome,
    State,
    Holder,
}
