//! `membership_changes`: one membership a run added, removed or reweighted.

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
    /// `added`, `removed` or `reweighted` (see [`crate::ChangeKind`]).
    pub change: String,
    pub old_weight: Option<f64>,
    pub new_weight: Option<f64>,
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
