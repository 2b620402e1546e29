//! `load_run_files`: one file a run looked at.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "load_run_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    pub file_name: String,
    pub group_type: String,
    pub group_name: String,
    /// The input shape recognised: `canonical`, `ishares`, `spdr`, `vanguard`, `universe`.
    pub shape: Option<String>,
    pub md5: Option<String>,
    /// `loaded`, `unchanged`, `rejected` or `removed`.
    pub status: String,
    pub rows_read: i32,
    pub rows_loaded: i32,
    pub rows_skipped: i32,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub unchanged: i32,
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::load_run::Entity",
        from = "Column::RunId",
        to = "super::load_run::Column::Id",
        on_delete = "Cascade"
    )]
    Run,
}

impl Related<super::load_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Run.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
