//! `Stock`: a symbol that appears in any membership, with its sector, ETFs, themes and
//! universes; the `stock` and `stocks` look-ups.

use std::cmp::Reverse;
use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, ID, InputObject, Object};
use entity::GroupType;
use loader::symbol::Symbol;

use super::connection::{Cursor, connection, page};
use super::error::{code, coded};
use super::group::{Group, GroupKind};
use super::membership::Membership;
use super::node::GlobalId;
use super::{page_size, snapshot};
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

/// A stock: any symbol held by an ETF or listed in a universe or theme. Its sector and
/// industry come from its one `SECTOR` membership.
#[Object]
impl Stock {
    /// The global id (`Node`): opaque, the same across loads; `node(id:)` finds the stock
    /// again.
    pub async fn id(&self) -> ID {
        GlobalId::Stock(self.data().symbol.to_string()).encode()
    }

    /// The normalised symbol (`BRK.B`).
    async fn symbol(&self) -> &str {
        &self.data().symbol
    }

    /// The ticker, without the market or name a listing key may add (`SAN` for `SAN:ES`).
    async fn ticker(&self) -> &str {
        loader::listing::ticker(&self.data().symbol)
    }

    /// The ISO 3166 code of the country the listing trades in (`US`, `JP`), when a file or
    /// its fund names it; null when none does.
    async fn country(&self) -> Option<&str> {
        self.data().country
    }

    /// The country's name (`Japan`); null when the country is unknown.
    async fn country_name(&self) -> Option<&str> {
        loader::market::country_name(self.data().country?)
    }

    /// Every listing of this stock's ticker, this one included (`SAN:ES` and `SAN:FR`), in
    /// symbol order: another company, or the same ticker on another market.
    async fn listings(&self) -> Vec<Stock> {
        self.snap
            .listings(loader::listing::ticker(&self.data().symbol))
            .into_iter()
            .map(|index| Stock::new(self.snap.clone(), index))
            .collect()
    }

    /// The stock's current name: the one the most recently loaded files give it (a company
    /// renamed in the latest files shows its new name), in its best spelling (mixed case over
    /// capitals); null when no file names it.
    async fn name(&self) -> Option<&str> {
        self.data().name.as_deref()
    }

    /// The stock's sector, with its display name; null before enrichment gave it one.
    async fn sector(&self) -> Option<Group> {
        self.data().sector.map(|g| Group::new(self.snap.clone(), g))
    }

    /// The sector's key (`information_technology`), `unknown` when the stock has none (what
    /// `sector` answered before it led to the sector group).
    async fn sector_key(&self) -> &str {
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

/// Which stocks `stocks` lists (every condition given must hold).
#[derive(InputObject, Default)]
pub struct StockFilter {
    /// Symbols starting with this text (any case).
    pub symbol_prefix: Option<String>,
    /// Members of this group, written like `symbols` takes them (`SPY`, `nasdaq100`).
    pub group: Option<String>,
    /// Names containing this text (any case): `apple` finds Apple Inc. and Apple Hospitality.
    pub name: Option<String>,
    /// Stocks of this sector, by key or display name in any case (`information_technology`,
    /// `Information Technology`).
    pub sector: Option<String>,
}

/// How `stocks` are ordered.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum StockOrder {
    /// By symbol.
    #[default]
    Symbol,
    /// By name (any case), stocks without a name last, then by symbol.
    Name,
    /// Held by the most ETFs first, then by symbol.
    EtfCount,
}

impl StockOrder {
    fn as_str(self) -> &'static str {
        match self {
            Self::Symbol => "SYMBOL",
            Self::Name => "NAME",
            Self::EtfCount => "ETF_COUNT",
        }
    }
}

connection!(
    StockConnection,
    StockEdge,
    Stock,
    "A page of stocks.",
    "A stock and its cursor.",
    "Stocks matching the filter, all pages together."
);

/// A sector named by key or display name, any case.
fn sector_of(snap: &Snapshot, text: &str) -> Option<u32> {
    snap.find(GroupType::Sector, text).or_else(|| {
        let text = text.trim();
        snap.list(Some(GroupType::Sector)).find(|&g| {
            snap.group(g)
                .model
                .metadata
                .as_ref()
                .and_then(|m| m["display_name"].as_str())
                .is_some_and(|d| d.eq_ignore_ascii_case(text))
        })
    })
}

/// Stock look-ups.
#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// A stock by symbol, normalised like the loaders do (`brk-b` finds `BRK.B`), or by
    /// listing key (`SAN:ES`, `2330~TAIWAN-SEMICONDUCTOR`). A ticker answers its US listing,
    /// or its only listing; a ticker with several listings and no US one (`SAN`, `7203`) is
    /// the error `AMBIGUOUS_SYMBOL`, whose `candidates` extension lists them (`listings` gives
    /// them all). Null when no group has it.
    async fn stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Any spelling: trimmed, upper-cased, share classes as `BRK.B`; or                           a listing key."
        )]
        symbol: String,
    ) -> async_graphql::Result<Option<Stock>> {
        let snap = snapshot(ctx)?;
        let found = match find(&snap, &symbol) {
            Found::One(index) => Some(index),
            Found::None => None,
            Found::Many(candidates) => {
                let listed: Vec<serde_json::Value> = candidates
                    .iter()
                    .map(|&i| {
                        let stock = snap.stock_at(i);
                        serde_json::json!({
                            "symbol": &*stock.symbol,
                            "name": stock.name.as_deref(),
                            "country": stock.country,
                        })
                    })
                    .collect();
                let keys: Vec<&str> = candidates
                    .iter()
                    .map(|&i| &*snap.stock_at(i).symbol)
                    .collect();
                return Err(coded(
                    code::AMBIGUOUS_SYMBOL,
                    format!(
                        "{} names {} listings ({}): ask for one by its key, or use `listings`",
                        symbol.trim(),
                        candidates.len(),
                        keys.join(", ")
                    ),
                )
                .extend_with(|_, e| {
                    if let Ok(value) = async_graphql::Value::from_json(listed.into()) {
                        e.set("candidates", value);
                    }
                }));
            }
        };
        Ok(found.map(|index| Stock::new(snap.clone(), index)))
    }

    /// Every listing a ticker names: the US or market-less one and those on other markets or
    /// of other companies (`SAN` → `SAN:ES`, `SAN:FR`), in symbol order; a listing key gives
    /// its own ticker's listings.
    async fn listings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A ticker in any spelling, or a listing key.")] symbol: String,
    ) -> async_graphql::Result<Vec<Stock>> {
        let snap = snapshot(ctx)?;
        let Some(ticker) = ticker_of(&symbol) else {
            return Ok(Vec::new());
        };
        Ok(snap
            .listings(&ticker)
            .into_iter()
            .map(|index| Stock::new(snap.clone(), index))
            .collect())
    }

    /// Stocks, filtered by symbol prefix, name, sector or group, in symbol, name or ETF-count
    /// order, paged.
    #[graphql(complexity = "5 + first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn stocks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which stocks (default all).")] filter: Option<StockFilter>,
        #[graphql(desc = "Order of the stocks.", default)] order_by: StockOrder,
        #[graphql(desc = "Page size (default 25).")] first: Option<i32>,
        #[graphql(
            desc = "The `endCursor` of the previous page: the last stock's key (its symbol, \
                    with its name or ETF count in those orders), valid across loads (the next \
                    page starts after it in the data served then)."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<StockConnection> {
        let size = page_size(ctx, first, 25)?;
        let cursor = Cursor::decode(after.as_deref(), "stocks", order_by.as_str())?;
        let snap = snapshot(ctx)?;
        let filter = filter.unwrap_or_default();
        // The search index is built on first use: only names need it.
        let index = || snap.search();
        let sector = match &filter.sector {
            None => None,
            Some(text) => Some(
                sector_of(&snap, text)
                    .ok_or_else(|| coded(code::NOT_FOUND, format!("no sector named {text:?}")))?,
            ),
        };
        // Candidates from the most selective source, in symbol (index) order.
        let mut stocks: Vec<u32> = match (&filter.group, &filter.name) {
            (Some(reference), _) => {
                let group = super::group::resolve_reference(ctx, reference)?;
                let (_, data) = group.snapshot_group();
                let mut members: Vec<u32> = data.members.iter().map(|m| m.stock).collect();
                members.sort_unstable();
                members
            }
            (None, Some(name)) => index()
                .stocks_named(name)
                .into_iter()
                .filter(|&s| snap.stock_at(s).listed)
                .collect(),
            (None, None) => {
                let all = 0..u32::try_from(snap.stocks.len()).unwrap_or(u32::MAX);
                all.filter(|&s| snap.stock_at(s).listed).collect()
            }
        };
        let prefix = filter
            .symbol_prefix
            .as_deref()
            .map(|p| p.trim().to_ascii_uppercase());
        let named = match (&filter.group, &filter.name) {
            (Some(_), Some(name)) => Some(index().stocks_named(name)),
            _ => None,
        };
        stocks.retain(|&s| {
            let stock = snap.stock_at(s);
            prefix
                .as_deref()
                .is_none_or(|p| stock.symbol.starts_with(p))
                && sector.is_none_or(|g| stock.sector == Some(g))
                && named.as_ref().is_none_or(|n| n.binary_search(&s).is_ok())
        });
        let symbol = |s: u32| &*snap.stock_at(s).symbol;
        match order_by {
            StockOrder::Symbol => {}
            StockOrder::Name => stocks.sort_unstable_by_key(|&s| index().name_rank(s)),
            StockOrder::EtfCount => stocks.sort_by_key(|&s| Reverse(index().etf_count(s))),
        }
        let start = match &cursor {
            None => 0,
            Some(c) => {
                let key = c.key.as_str();
                match order_by {
                    StockOrder::Symbol => stocks.partition_point(|&s| symbol(s) <= key),
                    StockOrder::Name => {
                        let at = match c.text.as_deref() {
                            Some(name) => (false, name),
                            None => (true, ""),
                        };
                        stocks.partition_point(|&s| (index().name_key(s), symbol(s)) <= (at, key))
                    }
                    StockOrder::EtfCount => {
                        let n = Reverse(c.number.unwrap_or(0));
                        stocks.partition_point(|&s| {
                            (Reverse(u64::from(index().etf_count(s))), symbol(s)) <= (n, key)
                        })
                    }
                }
            }
        };
        let cursor_at = |at: usize| {
            let s = stocks[at];
            Cursor {
                list: "stocks".to_owned(),
                order: order_by.as_str().to_owned(),
                fingerprint: None,
                number: (order_by == StockOrder::EtfCount).then(|| u64::from(index().etf_count(s))),
                text: match order_by {
                    StockOrder::Name => index().lower_name(s).map(str::to_owned),
                    _ => None,
                },
                key: symbol(s).to_owned(),
            }
            .encode()
        };
        let (range, page_info) = page(stocks.len(), start, size, cursor_at);
        Ok(StockConnection {
            total_count: stocks.len(),
            page_info,
            edges: range
                .map(|at| StockEdge {
                    cursor: cursor_at(at),
                    node: Stock::new(snap.clone(), stocks[at]),
                })
                .collect(),
        })
    }
}

/// What a symbol asked for finds.
enum Found {
    None,
    One(u32),
    Many(Vec<u32>),
}

/// The ticker a symbol argument names: a listing key's ticker, or the normalised spelling.
fn ticker_of(symbol: &str) -> Option<String> {
    let trimmed = symbol.trim();
    if trimmed.contains([
        loader::listing::MARKET_SEPARATOR,
        loader::listing::NAME_SEPARATOR,
    ]) {
        return Symbol::parse(loader::listing::ticker(trimmed))
            .ok()
            .map(|s| s.as_str().to_owned());
    }
    Symbol::parse(trimmed).ok().map(|s| s.as_str().to_owned())
}

/// Finds the stock a symbol argument means: a listing key exactly; a ticker's US listing, or
/// its only one; several candidates otherwise.
fn find(snap: &Snapshot, symbol: &str) -> Found {
    let trimmed = symbol.trim();
    if trimmed.contains([
        loader::listing::MARKET_SEPARATOR,
        loader::listing::NAME_SEPARATOR,
    ]) {
        let key = trimmed.to_uppercase();
        return snap.stock(&key).map_or(Found::None, Found::One);
    }
    let Some(ticker) = ticker_of(trimmed) else {
        return Found::None;
    };
    let listings = snap.listings(&ticker);
    match listings.as_slice() {
        [] => Found::None,
        [only] => Found::One(*only),
        _ => {
            // The plain key is the US listing when its market is the US, or when nothing says
            // otherwise and no other listing claims the ticker... which several do here.
            match snap.stock(&ticker) {
                Some(plain) if snap.stock_at(plain).country == Some("US") => Found::One(plain),
                _ => Found::Many(listings),
            }
        }
    }
}
