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

    /// Everything kept about the membership (name, provider sector, spelling, source).
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        let text = self.data().metadata.as_deref()?;
        serde_json::from_str(text).ok().map(Json)
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
