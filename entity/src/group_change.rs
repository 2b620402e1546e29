//! `group_changes`: one group a run created, updated (description or metadata) or removed,
//! with its description and metadata before and after. Groups are named rather than
//! referenced, like in `membership_changes`, so the record outlives a removed group.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "group_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    /// `ETF`, `SECTOR`, `THEME` or `UNIVERSE` (see [`crate::GroupType`]).
    pub group_type: String,
    pub group_name: String,
    /// `created`, `updated` or `removed` (see [`crate::GroupChangeKind`]).
    pub change: String,
    /// Null for `created`.
    pub old_description: Option<String>,
    /// Null for `created`.
    pub old_metadata: Option<Json>,
    /// Null for `removed`.
    pub new_description: Option<String>,
    /// Null for `removed`.
    pub new_metadata: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::load_run::Entity",
        from = "Column::RunId",
        to = "super::load_run::Column::Id"
    )]
    Run,
}

impl Related<super::load_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Run.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
