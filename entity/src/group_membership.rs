//! `group_memberships`: a symbol in a group, with its weight in percent (null for universes,
//! sectors and themes).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "group_memberships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub group_id: i32,
    pub symbol: String,
    pub weight: Option<f64>,
    pub metadata: Option<Json>,
    pub added_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::definition_group::Entity",
        from = "Column::GroupId",
        to = "super::definition_group::Column::Id",
        on_delete = "Cascade"
    )]
    Group,
}

impl Related<super::definition_group::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
