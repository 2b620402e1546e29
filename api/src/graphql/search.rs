//! `search`: stocks and groups by symbol, name or description, for search-as-you-type. The
//! ranking and the index are [`crate::search`]'s.

use async_graphql::{Context, Enum, Object, SimpleObject, Union};
use entity::GroupType;

use super::group::Group;
use super::stock::Stock;
use super::{page_size, snapshot};
use crate::search::{FieldKind, Item, Tier};

/// What `search` may return.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SearchType {
    /// Stocks.
    Stock,
    /// ETFs.
    Etf,
    /// Sectors.
    Sector,
    /// Themes.
    Theme,
    /// Index universes.
    Universe,
}

/// A search result: a stock or a group (both are `Node`s).
#[derive(Union, Clone)]
pub enum SearchResult {
    Stock(Stock),
    Group(Group),
}

/// How a result matched, best first: results come in this order.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SearchMatch {
    /// The symbol (or a group's key, such as `SPY` or `energy`) is the text.
    Exact,
    /// The symbol or key starts with the text.
    SymbolPrefix,
    /// A word of the name starts with the text (a stock's name; a group's display name, or an
    /// ETF's or universe's fund or index name).
    NameWord,
    /// The symbol, key or name contains the text elsewhere.
    Substring,
    /// A sector's or theme's description contains the text.
    Description,
}

/// Which field of a result matched.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SearchField {
    /// A stock's symbol or a group's key.
    Symbol,
    /// A stock's name, a group's display name, an ETF's or universe's fund or index name.
    Name,
    /// A sector's or theme's description.
    Description,
}

/// One search result and why it matched.
#[derive(SimpleObject, Clone)]
pub struct SearchHit {
    /// The stock or group found.
    pub node: SearchResult,
    /// How it matched (results are ordered by this first).
    pub matched: SearchMatch,
    /// Which of its fields matched.
    pub field: SearchField,
}

/// The `search` root field.
#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Stocks and groups whose symbol, key, name, display name or description contains the
    /// text, any case, best first: the exact symbol or key, then symbols starting with it,
    /// then names with a word starting with it, then names containing it, then sector and
    /// theme descriptions containing it. Within each, groups first (most members first), then
    /// stocks by their total weight across ETFs, then by how many groups hold them, then
    /// alphabetically. Served from an index built once per data version: a keystroke costs
    /// a few binary searches, never a scan of every name. An empty text finds nothing.
    #[graphql(complexity = "20 + first.max(0) as usize * child_complexity")]
    async fn search(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to look for (`apple`, `semicon`, `aapl`).")] text: String,
        #[graphql(desc = "Only results of these kinds (default every kind).")] types: Option<
            Vec<SearchType>,
        >,
        #[graphql(desc = "At most this many results.", default = 10)] first: i32,
    ) -> async_graphql::Result<Vec<SearchHit>> {
        let limit = page_size(ctx, Some(first), 10)?;
        let snap = snapshot(ctx)?;
        let allowed = |t: SearchType| types.as_ref().is_none_or(|types| types.contains(&t));
        let want = |item: Item| match item {
            Item::Stock(s) => allowed(SearchType::Stock) && snap.stock_at(s).listed,
            Item::Group(g) => allowed(match snap.group(g).kind {
                GroupType::Etf => SearchType::Etf,
                GroupType::Sector => SearchType::Sector,
                GroupType::Theme => SearchType::Theme,
                GroupType::Universe => SearchType::Universe,
            }),
        };
        let hits = snap.search().search(&snap, &text, want, limit);
        Ok(hits
            .into_iter()
            .map(|hit| SearchHit {
                node: match hit.item {
                    Item::Stock(s) => SearchResult::Stock(Stock::new(snap.clone(), s)),
                    Item::Group(g) => SearchResult::Group(Group::new(snap.clone(), g)),
                },
                matched: match hit.tier {
                    Tier::Exact => SearchMatch::Exact,
                    Tier::SymbolPrefix => SearchMatch::SymbolPrefix,
                    Tier::NameWord => SearchMatch::NameWord,
                    Tier::Substring => SearchMatch::Substring,
                    Tier::Description => SearchMatch::Description,
                },
                field: match hit.field {
                    FieldKind::Symbol => SearchField::Symbol,
                    FieldKind::Name => SearchField::Name,
                    FieldKind::Description => SearchField::Description,
                },
            })
            .collect())
    }
}
