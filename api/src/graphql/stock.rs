//! `Stock`: a symbol that appears in any membership, with its sector, ETFs, themes and
//! universes.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use entity::GroupType;
use loader::symbol::Symbol;

use super::group::{Group, GroupKind};
use super::membership::Membership;
use super::{Cursors, PageInfo, page_size, snapshot};
use crate::snapshot::Snapshot;

/// A stock: any symbol held by an ETF or listed in a universe or theme.
#[derive(Clone)]
pub struct Stock {
    snap: Arc<Snapshot>,
    index: u32,
}

impl Stock {
    /// The stock at an index of a snapshot.
    pub fn new(snap: Arc<Snapshot>, index: u32) -> Self {
        Self { snap, index }
    }

    fn data(&self) -> &crate::snapshot::Stock {
        self.snap.stock_at(self.index)
    }

    fn of(&self, kind: Option<GroupType>) -> impl Iterator<Item = Membership> + '_ {
        self.data()
            .memberships
            .iter()
            .filter(move |at| kind.is_none_or(|k| self.snap.group(at.group).kind == k))
            .map(|&at| Membership::new(self.snap.clone(), at))
    }
}

/// A stock: any symbol held by an ETF or listed in a universe or theme. Its sector, name and
/// industry come from its one `SECTOR` membership.
#[Object]
impl Stock {
    /// The normalised symbol (`BRK.B`).
    async fn symbol(&self) -> &str {
        &self.data().symbol
    }

    /// The name shown for the stock (see `build-stock-metadata`); null when no file names it.
    async fn name(&self) -> Option<&str> {
        self.data().name.as_deref()
    }

    /// The sector key (`information_technology`), `unknown` when the stock has none.
    async fn sector(&self) -> &str {
        self.data()
            .sector
            .map_or("unknown", |g| self.snap.group(g).model.name.as_str())
    }

    /// Where the sector came from: `manual`, `provider`, `sector_etf`, `classification` or
    /// `none`; null before enrichment.
    async fn sector_source(&self) -> Option<&str> {
        self.data().sector_source.as_deref()
    }

    /// The industry a source gave; null when none did.
    async fn industry(&self) -> Option<&str> {
        self.data().industry.as_deref()
    }

    /// The ETFs holding the stock, heaviest weight first.
    async fn etfs(&self) -> Vec<Membership> {
        self.of(Some(GroupType::Etf)).collect()
    }

    /// The themes the stock belongs to.
    async fn themes(&self) -> Vec<Group> {
        self.of(Some(GroupType::Theme)).map(|m| m.group()).collect()
    }

    /// The universes listing the stock.
    async fn universes(&self) -> Vec<Group> {
        self.of(Some(GroupType::Universe))
            .map(|m| m.group())
            .collect()
    }

    /// Every membership of the stock, or those of one group type.
    async fn groups(
        &self,
        #[graphql(name = "type", desc = "Only groups of this type (default every type).")]
        kind: Option<GroupKind>,
    ) -> Vec<Membership> {
        self.of(kind.map(GroupType::from)).collect()
    }

    /// How many ETFs hold the stock.
    async fn etf_count(&self) -> usize {
        self.of(Some(GroupType::Etf)).count()
    }

    /// How many groups of any type the stock belongs to.
    async fn group_count(&self) -> usize {
        self.data().memberships.len()
    }
}

/// Which stocks `stocks` lists.
#[derive(InputObject, Default)]
pub struct StockFilter {
    /// Symbols starting with this text (any case).
    pub symbol_prefix: Option<String>,
    /// Members of this group, written like `symbols` takes them (`SPY`, `nasdaq100`).
    pub group: Option<String>,
}

/// A page of stocks.
#[derive(SimpleObject)]
pub struct StockConnection {
    /// Stocks matching the filter, all pages together.
    pub total_count: usize,
    /// Whether more pages follow, and the cursor to ask for the next.
    pub page_info: PageInfo,
    /// This page's stocks.
    pub edges: Vec<StockEdge>,
}

/// A stock and its cursor.
#[derive(SimpleObject)]
pub struct StockEdge {
    /// Pass as `after` to continue after this stock.
    pub cursor: String,
    /// The stock.
    pub node: Stock,
}

/// Stock look-ups.
#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// A stock by symbol, normalised like the loaders do (`brk-b` finds `BRK.B`); null when no
    /// group has it.
    async fn stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any spelling: trimmed, upper-cased, share classes as `BRK.B`.")]
        symbol: String,
    ) -> async_graphql::Result<Option<Stock>> {
        let Ok(symbol) = Symbol::parse(&symbol) else {
            return Ok(None);
        };
        let snap = snapshot(ctx)?;
        Ok(snap
            .stock(symbol.as_str())
            .map(|index| Stock::new(snap.clone(), index)))
    }

    /// Stocks in symbol order, paged.
    #[graphql(complexity = "first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn stocks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which stocks (default all).")] filter: Option<StockFilter>,
        #[graphql(desc = "Page size (default 25).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<StockConnection> {
        let size = page_size(ctx, first, 25)?;
        let cursors = Cursors::of(ctx)?;
        let offset = cursors.after(after.as_deref())?;
        let snap = snapshot(ctx)?;
        let filter = filter.unwrap_or_default();
        let mut symbols: Vec<Arc<str>> = match &filter.group {
            Some(reference) => super::group::members_of_reference(ctx, reference)?
                .into_iter()
                .collect(),
            None => snap.listed.clone(),
        };
        if let Some(prefix) = &filter.symbol_prefix {
            let prefix = prefix.trim().to_ascii_uppercase();
            symbols.retain(|s| s.starts_with(&prefix));
        }
        let (range, page_info) = cursors.page(symbols.len(), offset, size);
        let edges = symbols[range.clone()]
            .iter()
            .zip(range)
            .filter_map(|(s, i)| {
                Some(StockEdge {
                    cursor: cursors.at(i),
                    node: Stock::new(snap.clone(), snap.stock(s)?),
                })
            })
            .collect();
        Ok(StockConnection {
            total_count: symbols.len(),
            page_info,
            edges,
        })
    }
}
