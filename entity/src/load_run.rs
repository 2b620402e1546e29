//! `load_runs`: one row per load that wrote to the database.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "load_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub environment: String,
    /// What was loaded: `etf`, `universe`, ...
    pub kind: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// The one group a run was limited to (`--etf SPY`), if any.
    pub scope: Option<String>,
    /// The folder the files came from.
    pub source: String,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// `running` (recorded at the start, committed before the data), then `succeeded`,
    /// `partial` (some inputs rejected or held back), `rejected` (no input applied), `failed`
    /// (a database error: nothing changed) or `abandoned` (its process died while it ran).
    pub state: String,
    pub files_total: i32,
    pub files_loaded: i32,
    pub files_unchanged: i32,
    pub files_rejected: i32,
    pub rows_read: i32,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub skipped: i32,
    pub groups_removed: i32,
    /// The data version this run committed, when it changed anything.
    pub data_version: Option<i64>,
    pub error: Option<String>,
    /// The full report as JSON (skip counts per reason, per-file details).
    pub report: Option<Json>,
    /// Who ran it: `pid 1234 on host`.
    pub holder: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::load_run_file::Entity")]
    File,
    #[sea_orm(has_many = "super::membership_change::Entity")]
    Change,
}

impl Related<super::load_run_file::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::File.def()
    }
}

impl Related<super::membership_change::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Change.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
