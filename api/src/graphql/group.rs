//! `Group`: an ETF, sector, theme or universe, with its members as a paged connection; the
//! `group`, `groups` and per-type look-ups.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;
use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Json, Object};
use entity::GroupType;

use super::connection::{Cursor, connection, page, stale};
use super::error::{bad_input, code, coded};
use super::membership::Membership;
use super::node::GlobalId;
use super::{page_size, snapshot};
use crate::snapshot::{At, Snapshot};

/// The kind of a group.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "GroupType")]
pub enum GroupKind {
    /// An exchange-traded fund; its members have weights.
    Etf,
    /// A GICS sector or `unknown`; every stock is in exactly one.
    Sector,
    /// An investment theme.
    Theme,
    /// An index universe such as `sp500`.
    Universe,
}

impl From<GroupKind> for GroupType {
    fn from(k: GroupKind) -> Self {
        match k {
            GroupKind::Etf => Self::Etf,
            GroupKind::Sector => Self::Sector,
            GroupKind::Theme => Self::Theme,
            GroupKind::Universe => Self::Universe,
        }
    }
}

impl From<GroupType> for GroupKind {
    fn from(t: GroupType) -> Self {
        match t {
            GroupType::Etf => Self::Etf,
            GroupType::Sector => Self::Sector,
            GroupType::Theme => Self::Theme,
            GroupType::Universe => Self::Universe,
        }
    }
}

/// How members are ordered.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum MemberOrder {
    /// Heaviest first, then by symbol (members without weight last).
    #[default]
    Weight,
    /// By symbol.
    Symbol,
}

/// How `groups` are ordered.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum GroupOrder {
    /// By type (ETF, SECTOR, THEME, UNIVERSE), then by name (key).
    #[default]
    Name,
    /// Most members first, then by type and name.
    MemberCount,
}

impl GroupOrder {
    fn as_str(self) -> &'static str {
        match self {
            Self::Name => "NAME",
            Self::MemberCount => "MEMBER_COUNT",
        }
    }
}

/// Which groups `groups` lists (every condition given must hold).
#[derive(InputObject, Default)]
pub struct GroupFilter {
    /// Groups whose name (key), display name or fund name contains this text, any case
    /// (`tech` finds `information_technology` and XLK's "Technology Select Sector SPDR").
    pub name: Option<String>,
    /// Groups whose description or fund name contains this text, any case.
    pub description: Option<String>,
}

/// An ETF, sector, theme or universe.
#[derive(Clone)]
pub struct Group {
    snap: Arc<Snapshot>,
    index: u32,
}

impl Group {
    /// The group at an index of a snapshot.
    pub fn new(snap: Arc<Snapshot>, index: u32) -> Self {
        Self { snap, index }
    }

    fn data(&self) -> &crate::snapshot::Group {
        self.snap.group(self.index)
    }
}

connection!(
    MembershipConnection,
    MembershipEdge,
    Membership,
    "A page of a group's members.",
    "A membership and its cursor.",
    "Members matching `minWeight`, all pages together."
);

connection!(
    GroupConnection,
    GroupEdge,
    Group,
    "A page of groups.",
    "A group and its cursor.",
    "Groups matching the type and filter, all pages together."
);

/// An ETF, sector, theme or universe, with its members.
#[Object]
impl Group {
    /// The global id (`Node`): opaque, the same across loads; `node(id:)` finds the group
    /// again. (The database row id, which this field gave before, is `databaseId`.)
    pub async fn id(&self) -> ID {
        let data = self.data();
        GlobalId::Group(data.kind, data.model.name.clone()).encode()
    }

    /// The group's row id in the database (`definition_groups.id`).
    async fn database_id(&self) -> i32 {
        self.data().model.id
    }

    /// `SPY` for an ETF, a key such as `information_technology` or `sp500` otherwise.
    async fn name(&self) -> &str {
        &self.data().model.name
    }

    /// The group's kind.
    #[graphql(name = "type")]
    async fn kind(&self) -> GroupKind {
        self.data().kind.into()
    }

    /// The fund's or index's name, or the definition's description; null when none is known.
    async fn description(&self) -> Option<&str> {
        self.data().model.description.as_deref()
    }

    /// The display name of a sector or theme; null for ETFs and universes.
    async fn display_name(&self) -> Option<&str> {
        self.data().model.metadata.as_ref()?["display_name"].as_str()
    }

    /// Everything kept about the group (source file and shape; industries, aliases; criteria).
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        self.data().model.metadata.clone().map(Json)
    }

    /// How many members the group has.
    async fn member_count(&self) -> usize {
        self.data().members.len()
    }

    /// The sum of the members' weights (percent), rounded to the providers' precision (six
    /// decimals); null when no member has a weight.
    async fn total_weight(&self) -> Option<f64> {
        self.data().total_weight.map(super::round_sum)
    }

    /// The members, paged: ordered by weight (heaviest first) or by symbol, optionally only
    /// those weighing at least `minWeight`.
    #[graphql(complexity = "first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (default 25).")] first: Option<i32>,
        #[graphql(
            desc = "The `endCursor` of the previous page. It stays valid while this group's own \
                    members and weights are unchanged, whatever loads of other groups do; \
                    once a load changed this group it is refused with STALE_CURSOR."
        )]
        after: Option<String>,
        #[graphql(desc = "Order of the members.", default)] order_by: MemberOrder,
        #[graphql(desc = "Only members weighing at least this (percent).")] min_weight: Option<f64>,
    ) -> async_graphql::Result<MembershipConnection> {
        let size = page_size(ctx, first, 25)?;
        let group = self.data();
        let list = format!("members:{}:{}", group.kind, group.model.name);
        let order_name = match order_by {
            MemberOrder::Weight => "WEIGHT",
            MemberOrder::Symbol => "SYMBOL",
        };
        let cursor = Cursor::decode(after.as_deref(), &list, order_name)?;
        let fingerprint = self.snap.fingerprint(self.index);
        if cursor
            .as_ref()
            .is_some_and(|c| c.fingerprint != Some(fingerprint))
        {
            return Err(stale(&format!("{} {}", group.kind, group.model.name)));
        }
        let keep = |i: &u32| {
            min_weight.is_none_or(|min| group.members[*i as usize].weight.is_some_and(|w| w >= min))
        };
        let order: Vec<u32> = match order_by {
            MemberOrder::Weight => (0..group.members.len())
                .filter_map(|i| u32::try_from(i).ok())
                .filter(keep)
                .collect(),
            MemberOrder::Symbol => group.by_symbol.iter().copied().filter(keep).collect(),
        };
        let member = |i: u32| &group.members[i as usize];
        let symbol = |i: u32| &**self.snap.symbol_of(member(i));
        // The members are sorted by their key, and the group is as the cursor saw it: the
        // next page starts after the cursor's key.
        let start = cursor.map_or(0, |c| match order_by {
            MemberOrder::Weight => {
                let weight = c.number.map(f64::from_bits);
                order.partition_point(|&i| {
                    loader::graph::heavier_first(member(i).weight, weight)
                        .then_with(|| symbol(i).cmp(c.key.as_str()))
                        != Ordering::Greater
                })
            }
            MemberOrder::Symbol => order.partition_point(|&i| symbol(i) <= c.key.as_str()),
        });
        let cursor_at = |at: usize| {
            let i = order[at];
            Cursor {
                list: list.clone(),
                order: order_name.to_owned(),
                fingerprint: Some(fingerprint),
                number: match order_by {
                    MemberOrder::Weight => member(i).weight.map(f64::to_bits),
                    MemberOrder::Symbol => None,
                },
                text: None,
                key: symbol(i).to_owned(),
            }
            .encode()
        };
        let (range, page_info) = page(order.len(), start, size, cursor_at);
        let edges = range
            .map(|at| MembershipEdge {
                cursor: cursor_at(at),
                node: Membership::new(
                    self.snap.clone(),
                    At {
                        group: self.index,
                        member: order[at],
                    },
                ),
            })
            .collect();
        Ok(MembershipConnection {
            total_count: order.len(),
            page_info,
            edges,
        })
    }

    /// When the group was created.
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.data().model.created_at
    }

    /// When the group's description or metadata last changed.
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.data().model.updated_at
    }
}

/// A group named the way dashboards write it: `SPY` (an ETF), `nasdaq100` (a universe),
/// `clean_energy` (a theme), `energy` (a sector), or with its type, `ETF:SPY`.
pub(crate) fn resolve_reference(
    ctx: &Context<'_>,
    reference: &str,
) -> async_graphql::Result<Group> {
    let snap = snapshot(ctx)?;
    let (types, name): (Vec<GroupType>, &str) = match reference.split_once(':') {
        Some((t, name)) => (
            vec![
                t.parse()
                    .map_err(|e: entity::UnknownGroupType| bad_input(e.to_string()))?,
            ],
            name,
        ),
        None => (
            vec![
                GroupType::Etf,
                GroupType::Universe,
                GroupType::Theme,
                GroupType::Sector,
            ],
            reference,
        ),
    };
    let index = types
        .into_iter()
        .find_map(|t| snap.find(t, name))
        .ok_or_else(|| coded(code::NOT_FOUND, format!("no group named {reference:?}")))?;
    Ok(Group::new(snap, index))
}

impl Group {
    /// The snapshot data of the group (for analytics).
    pub(crate) fn snapshot_group(&self) -> (&Arc<Snapshot>, &crate::snapshot::Group) {
        (&self.snap, self.data())
    }

    /// The group's place in its snapshot.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }
}

/// The symbols of a group reference.
pub(crate) fn members_of_reference(
    ctx: &Context<'_>,
    reference: &str,
) -> async_graphql::Result<BTreeSet<Arc<str>>> {
    let group = resolve_reference(ctx, reference)?;
    let (snap, data) = group.snapshot_group();
    Ok(data
        .members
        .iter()
        .map(|m| snap.symbol_of(m).clone())
        .collect())
}

/// Group look-ups.
#[derive(Default)]
pub struct GroupQuery;

fn one(ctx: &Context<'_>, kind: GroupType, name: &str) -> async_graphql::Result<Option<Group>> {
    let snap = snapshot(ctx)?;
    Ok(snap.find(kind, name).map(|i| Group::new(snap.clone(), i)))
}

fn all(ctx: &Context<'_>, kind: GroupType) -> async_graphql::Result<Vec<Group>> {
    let snap = snapshot(ctx)?;
    Ok(snap
        .list(Some(kind))
        .map(|i| Group::new(snap.clone(), i))
        .collect())
}

#[Object]
impl GroupQuery {
    /// A group by type and name (any case); null when there is none.
    async fn group(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", desc = "The group's type.")] kind: GroupKind,
        #[graphql(desc = "Its name in any case (`spy`, `Health_Care`).")] name: String,
    ) -> async_graphql::Result<Option<Group>> {
        one(ctx, kind.into(), &name)
    }

    /// Groups of one type (or all), filtered by name or description, ordered by name or by
    /// member count, paged.
    #[graphql(complexity = "first.unwrap_or(100).max(0) as usize * child_complexity")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", desc = "Only groups of this type (default every type).")]
        kind: Option<GroupKind>,
        #[graphql(desc = "Which groups (default all).")] filter: Option<GroupFilter>,
        #[graphql(desc = "Order of the groups.", default)] order_by: GroupOrder,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(
            desc = "The `endCursor` of the previous page: the last group's key, valid across \
                    loads (the next page starts after it in the data served then)."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<GroupConnection> {
        let size = page_size(ctx, first, 100)?;
        let snap = snapshot(ctx)?;
        let cursor = Cursor::decode(after.as_deref(), "groups", order_by.as_str())?;
        let filter = filter.unwrap_or_default();
        let index = (filter.name.is_some() || filter.description.is_some()).then(|| snap.search());
        // In (type, name) order, as the snapshot keeps them.
        let mut list: Vec<u32> = snap
            .list(kind.map(GroupType::from))
            .filter(|&g| {
                index.is_none_or(|ix| {
                    ix.group_matches(g, filter.name.as_deref(), filter.description.as_deref())
                })
            })
            .collect();
        let count = |g: u32| snap.group(g).members.len() as u64;
        let named = |g: u32| {
            let data = snap.group(g);
            (data.kind, data.model.name.as_str())
        };
        if order_by == GroupOrder::MemberCount {
            // Stable: ties stay in (type, name) order.
            list.sort_by_key(|&g| Reverse(count(g)));
        }
        let start = match cursor {
            None => 0,
            Some(c) => {
                let kind: GroupType = c
                    .text
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| bad_input("this cursor names no group type"))?;
                let at = (kind, c.key.as_str());
                match order_by {
                    GroupOrder::Name => list.partition_point(|&g| named(g) <= at),
                    GroupOrder::MemberCount => {
                        let n = Reverse(c.number.unwrap_or(0));
                        list.partition_point(|&g| (Reverse(count(g)), named(g)) <= (n, at))
                    }
                }
            }
        };
        let cursor_at = |at: usize| {
            let g = list[at];
            let (kind, name) = named(g);
            Cursor {
                list: "groups".to_owned(),
                order: order_by.as_str().to_owned(),
                fingerprint: None,
                number: (order_by == GroupOrder::MemberCount).then(|| count(g)),
                text: Some(kind.as_str().to_owned()),
                key: name.to_owned(),
            }
            .encode()
        };
        let (range, page_info) = page(list.len(), start, size, cursor_at);
        Ok(GroupConnection {
            total_count: list.len(),
            page_info,
            edges: range
                .map(|at| GroupEdge {
                    cursor: cursor_at(at),
                    node: Group::new(snap.clone(), list[at]),
                })
                .collect(),
        })
    }

    /// An ETF by ticker; null when unknown.
    async fn etf(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The ticker in any case.")] name: String,
    ) -> async_graphql::Result<Option<Group>> {
        one(ctx, GroupType::Etf, &name)
    }

    /// Every ETF.
    async fn etfs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        all(ctx, GroupType::Etf)
    }

    /// A sector by key (`health_care`); null when unknown.
    async fn sector(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The sector key in any case.")] name: String,
    ) -> async_graphql::Result<Option<Group>> {
        one(ctx, GroupType::Sector, &name)
    }

    /// Every sector.
    async fn sectors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        all(ctx, GroupType::Sector)
    }

    /// A theme by key (`clean_energy`); null when unknown.
    async fn theme(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The theme key in any case.")] name: String,
    ) -> async_graphql::Result<Option<Group>> {
        one(ctx, GroupType::Theme, &name)
    }

    /// Every theme.
    async fn themes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        all(ctx, GroupType::Theme)
    }

    /// A universe by key (`sp500`); null when unknown.
    async fn universe(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The universe key in any case.")] name: String,
    ) -> async_graphql::Result<Option<Group>> {
        one(ctx, GroupType::Universe, &name)
    }

    /// Every universe.
    async fn universes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        all(ctx, GroupType::Universe)
    }

    /// The sorted union of several groups' members (`["SPY", "nasdaq100"]`); an unknown group
    /// is a NOT_FOUND error.
    async fn symbols(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Group references: `SPY`, `nasdaq100`, `clean_energy`, `ETF:SPY`.")]
        groups: Vec<String>,
    ) -> async_graphql::Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for reference in &groups {
            out.extend(members_of_reference(ctx, reference)?);
        }
        Ok(out.into_iter().map(|s| s.to_string()).collect())
    }
}
