//! `Membership`: a symbol in a group, leading to both its stock and its group.

use std::sync::Arc;

use async_graphql::{Json, Object};

use super::group::Group;
use super::stock::Stock;
use crate::snapshot::{At, Member, Snapshot};

/// A symbol's membership in a group (an ETF holding, a sector, theme or universe member).
#[derive(Clone)]
pub struct Membership {
    snap: Arc<Snapshot>,
    at: At,
}

impl Membership {
    /// The membership at a place of a snapshot.
    pub fn new(snap: Arc<Snapshot>, at: At) -> Self {
        Self { snap, at }
    }

    fn data(&self) -> &Member {
        self.snap.member(self.at)
    }

    /// The member's weight.
    pub fn weight_value(&self) -> Option<f64> {
        self.data().weight
    }

    /// The group this membership is in.
    pub fn group(&self) -> Group {
        Group::new(self.snap.clone(), self.at.group)
    }
}

/// A symbol's membership in a group: an ETF holding with its weight, or a sector, theme or
/// universe member.
#[Object]
impl Membership {
    /// The member's symbol.
    async fn symbol(&self) -> &str {
        self.snap.symbol_of(self.data())
    }

    /// Percent of the fund (0–100); null for sectors, themes and universes.
    async fn weight(&self) -> Option<f64> {
        self.data().weight
    }

    /// The name the group's file gave the member; null when it gave none.
    async fn name(&self) -> Option<&str> {
        self.data().name.as_deref()
    }

    /// Everything kept about the membership (name, provider sector, spelling, source): read
    /// from the database (the snapshot keeps only the fields the graph shows); null when none
    /// is stored.
    async fn metadata(
        &self,
        ctx: &async_graphql::Context<'_>,
    ) -> async_graphql::Result<Option<Json<serde_json::Value>>> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
        let state = super::state(ctx)?;
        state.count_query();
        let group = self.snap.group(self.at.group);
        let stored: Option<Option<serde_json::Value>> = entity::group_membership::Entity::find()
            .select_only()
            .column(entity::group_membership::Column::Metadata)
            .filter(entity::group_membership::Column::GroupId.eq(group.model.id))
            .filter(
                entity::group_membership::Column::Symbol.eq(&**self.snap.symbol_of(self.data())),
            )
            .into_tuple()
            .one(&state.db)
            .await
            .map_err(super::error::internal)?;
        Ok(stored.flatten().map(Json))
    }

    /// The group this membership is in.
    #[graphql(name = "group")]
    async fn group_field(&self) -> Group {
        self.group()
    }

    /// The stock this membership is of.
    async fn stock(&self) -> Stock {
        Stock::new(self.snap.clone(), self.data().stock)
    }
}
