//! `definition_groups`: an ETF, sector, theme or universe in one environment.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "definition_groups")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub name: String,
    /// `ETF`, `SECTOR`, `THEME` or `UNIVERSE` (see [`crate::GroupType`]).
    #[sea_orm(column_name = "type")]
    pub group_type: String,
    pub description: Option<String>,
    pub metadata: Option<Json>,
    pub environment: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::group_membership::Entity")]
    Membership,
}

impl Related<super::group_membership::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Membership.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
