//! `Membership`: a symbol in a group, leading to both its stock and its group.

use std::sync::Arc;

use async_graphql::{Json, Object};
use entity::{definition_group, group_membership};

use super::group::Group;
use super::stock::Stock;

/// A symbol's membership in a group (an ETF holding, a sector, theme or universe member).
#[derive(Clone)]
pub struct Membership {
    pub membership: Arc<group_membership::Model>,
    pub group: Arc<definition_group::Model>,
}

/// A symbol's membership in a group: an ETF holding with its weight, or a sector, theme or
/// universe member.
#[Object]
impl Membership {
    /// The member's symbol.
    async fn symbol(&self) -> &str {
        &self.membership.symbol
    }

    /// Percent of the fund (0–100); null for sectors, themes and universes.
    async fn weight(&self) -> Option<f64> {
        self.membership.weight
    }

    /// The name the group's file gave the member; null when it gave none.
    async fn name(&self) -> Option<&str> {
        self.membership
            .metadata
            .as_ref()
            .and_then(|m| m["name"].as_str())
    }

    /// Everything kept about the membership (name, provider sector, spelling, source).
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        self.membership.metadata.clone().map(Json)
    }

    /// The group this membership is in.
    async fn group(&self) -> Group {
        Group(self.group.clone())
    }

    /// The stock this membership is of.
    async fn stock(&self) -> Stock {
        Stock::new(self.membership.symbol.clone())
    }
}
