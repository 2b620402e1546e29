//! `Group`: an ETF, sector, theme or universe, with its members as a paged connection.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_graphql::{Context, Enum, Json, Object, SimpleObject};
use entity::{GroupType, definition_group};

use super::error::{bad_input, code, coded};
use super::membership::Membership;
use super::{
    Cursors, PageInfo, group_members, page_size, prefetch_stocks, selects_stock_data, snapshot,
};

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

impl GroupKind {
    fn of(group_type: &str) -> Self {
        match group_type.parse() {
            Ok(GroupType::Etf) => Self::Etf,
            Ok(GroupType::Sector) => Self::Sector,
            Ok(GroupType::Theme) => Self::Theme,
            _ => Self::Universe,
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

/// An ETF, sector, theme or universe.
#[derive(Clone)]
pub struct Group(pub Arc<definition_group::Model>);

/// A page of members.
#[derive(SimpleObject)]
pub struct MembershipConnection {
    /// Members matching `minWeight`, all pages together.
    pub total_count: usize,
    /// Whether more pages follow, and the cursor to ask for the next.
    pub page_info: PageInfo,
    /// This page's members.
    pub edges: Vec<MembershipEdge>,
}

/// A membership and its cursor.
#[derive(SimpleObject)]
pub struct MembershipEdge {
    /// Pass as `after` to continue after this member (in the same order and filter).
    pub cursor: String,
    /// The membership.
    pub node: Membership,
}

/// An ETF, sector, theme or universe, with its members.
#[Object]
impl Group {
    /// The group's id.
    async fn id(&self) -> i32 {
        self.0.id
    }

    /// `SPY` for an ETF, a key such as `information_technology` or `sp500` otherwise.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The group's kind.
    #[graphql(name = "type")]
    async fn kind(&self) -> GroupKind {
        GroupKind::of(&self.0.group_type)
    }

    /// The fund's or index's name, or the definition's description; null when none is known.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The display name of a sector or theme; null for ETFs and universes.
    async fn display_name(&self) -> Option<&str> {
        self.0.metadata.as_ref()?["display_name"].as_str()
    }

    /// Everything kept about the group (source file and shape; industries, aliases; criteria).
    async fn metadata(&self) -> Option<Json<serde_json::Value>> {
        self.0.metadata.clone().map(Json)
    }

    /// How many members the group has.
    async fn member_count(&self, ctx: &Context<'_>) -> async_graphql::Result<usize> {
        Ok(group_members(ctx, self.0.id).await?.len())
    }

    /// The sum of the members' weights; null when no member has a weight.
    async fn total_weight(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<f64>> {
        let members = group_members(ctx, self.0.id).await?;
        let weights: Vec<f64> = members.iter().filter_map(|m| m.weight).collect();
        Ok((!weights.is_empty()).then(|| weights.iter().sum()))
    }

    /// The members, paged: ordered by weight (heaviest first) or by symbol, optionally only
    /// those weighing at least `minWeight`.
    #[graphql(complexity = "first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (default 25).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        #[graphql(desc = "Order of the members.", default)] order_by: MemberOrder,
        #[graphql(desc = "Only members weighing at least this (percent).")] min_weight: Option<f64>,
    ) -> async_graphql::Result<MembershipConnection> {
        let size = page_size(ctx, first, 25)?;
        let cursors = Cursors::of(ctx)?;
        let offset = cursors.after(after.as_deref())?;
        let all = group_members(ctx, self.0.id).await?;
        let mut members: Vec<_> = all
            .iter()
            .filter(|m| min_weight.is_none_or(|min| m.weight.is_some_and(|w| w >= min)))
            .collect();
        if order_by == MemberOrder::Symbol {
            members.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        }
        let (range, page_info) = cursors.page(members.len(), offset, size);
        let stocks = ctx.look_ahead().field("edges").field("node").field("stock");
        if selects_stock_data(&stocks) {
            let symbols: Vec<String> = members[range.clone()]
                .iter()
                .map(|m| m.symbol.clone())
                .collect();
            prefetch_stocks(ctx, &symbols).await?;
        }
        let edges = members[range.clone()]
            .iter()
            .zip(range)
            .map(|(m, i)| MembershipEdge {
                cursor: cursors.at(i),
                node: Membership {
                    membership: (*m).clone(),
                    group: self.0.clone(),
                },
            })
            .collect();
        Ok(MembershipConnection {
            total_count: members.len(),
            page_info,
            edges,
        })
    }

    /// When the group was created.
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }

    /// When the group's description or metadata last changed.
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.updated_at
    }
}

/// A group named the way dashboards write it: `SPY` (an ETF), `nasdaq100` (a universe),
/// `clean_energy` (a theme), `energy` (a sector), or with its type, `ETF:SPY`.
pub(crate) fn resolve_reference(
    ctx: &Context<'_>,
    reference: &str,
) -> async_graphql::Result<Arc<definition_group::Model>> {
    let snapshot = snapshot(ctx)?;
    let index = &snapshot.index;
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
    types
        .into_iter()
        .find_map(|t| index.find(t, name))
        .ok_or_else(|| coded(code::NOT_FOUND, format!("no group named {reference:?}")))
}

/// The symbols of a group reference.
pub(crate) async fn members_of_reference(
    ctx: &Context<'_>,
    reference: &str,
) -> async_graphql::Result<BTreeSet<String>> {
    let group = resolve_reference(ctx, reference)?;
    Ok(group_members(ctx, group.id)
        .await?
        .iter()
        .map(|m| m.symbol.clone())
        .collect())
}

/// A page of groups.
#[derive(SimpleObject)]
pub struct GroupConnection {
    /// Groups of the type, all pages together.
    pub total_count: usize,
    /// Whether more pages follow, and the cursor to ask for the next.
    pub page_info: PageInfo,
    /// This page's groups.
    pub nodes: Vec<Group>,
}

/// Group look-ups.
#[derive(Default)]
pub struct GroupQuery;

fn one(ctx: &Context<'_>, kind: GroupType, name: &str) -> async_graphql::Result<Option<Group>> {
    Ok(snapshot(ctx)?.index.find(kind, name).map(Group))
}

fn all(ctx: &Context<'_>, kind: GroupType) -> async_graphql::Result<Vec<Group>> {
    Ok(snapshot(ctx)?
        .index
        .list(Some(kind))
        .into_iter()
        .map(Group)
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

    /// Groups of one type (or all), ordered by type and name, paged.
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", desc = "Only groups of this type (default every type).")]
        kind: Option<GroupKind>,
        #[graphql(desc = "Page size (default 100).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<GroupConnection> {
        let size = page_size(ctx, first, 100)?;
        let cursors = Cursors::of(ctx)?;
        let offset = cursors.after(after.as_deref())?;
        let list = snapshot(ctx)?.index.list(kind.map(GroupType::from));
        let (range, page_info) = cursors.page(list.len(), offset, size);
        Ok(GroupConnection {
            total_count: list.len(),
            page_info,
            nodes: list[range].iter().cloned().map(Group).collect(),
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
            out.extend(members_of_reference(ctx, reference).await?);
        }
        Ok(out.into_iter().collect())
    }
}
