//! `membership_changes`: one membership a run added, removed, reweighted or updated, with what
//! it was before and after, so the change can be undone.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "membership_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub run_id: i32,
    pub group_type: String,
    pub group_name: String,
    pub symbol: String,
    /// `added`, `removed`, `reweighted` or `updated` (see [`crate::ChangeKind`]).
    pub change: String,
    pub old_weight: Option<f64>,
    pub new_weight: Option<f64>,
    /// The membership's metadata before the change (`removed`, `reweighted`, `updated`);
    /// null for `added`, and for every change recorded before undo was possible.
    pub old_metadata: Option<Json>,
    /// Its metadata after the change (`added`, `reweighted`, `updated`); null for `removed`.
    pub new_metadata: Option<Json>,
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
