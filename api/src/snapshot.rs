//! The graph at one data version, in memory: every group with its members (heaviest first and
//! by symbol) and every stock with its memberships (heaviest first), its name and its sector.
//!
//! The data is small and changes only through loads, so the server reads all of it once per
//! version, in one read transaction (the version number and the rows it holds come from the
//! same committed state), off the request path, and swaps the new snapshot in whole. A request
//! holds one `Arc<Snapshot>` from start to end: it sees one version, never a mix, and never
//! waits on the database for the graph.
//!
//! Symbols and names are interned (`Arc<str>`), members point at stocks and groups by index,
//! and of a membership's metadata only the fields the graph shows are kept (name; a sector
//! membership's source and industry), taken out of the JSON by the database as it reads; the
//! rest of the metadata is read from the database when a query asks for it.

use std::collections::HashMap;
use std::sync::Arc;

use entity::{GroupType, definition_group};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, Statement,
    TransactionTrait,
};

use crate::cache::Caches;

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    /// The stock, as an index into [`Snapshot::stocks`].
    pub stock: u32,
    /// Percent of the fund; `None` for sectors, themes and universes.
    pub weight: Option<f64>,
    /// The name the group's file gave the member.
    pub name: Option<Arc<str>>,
}

/// A group and its members.
#[derive(Debug)]
pub struct Group {
    pub model: Arc<definition_group::Model>,
    pub kind: GroupType,
    /// Heaviest first (no weight last), ties by symbol.
    pub members: Vec<Member>,
    /// Indexes into `members` in symbol order.
    pub by_symbol: Vec<u32>,
    /// The sum of the weights; `None` when no member has one.
    pub total_weight: Option<f64>,
}

/// Where a stock is a member: a group and the member's index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub group: u32,
    pub member: u32,
}

/// A stock: any symbol with a membership.
#[derive(Debug)]
pub struct Stock {
    pub symbol: Arc<str>,
    /// Every membership, heaviest first, ties by group name.
    pub memberships: Vec<At>,
    /// The shown name: its sector membership's, else the first file's.
    pub name: Option<Arc<str>>,
    /// Its sector group, when it has one.
    pub sector: Option<u32>,
    /// Where the sector came from (`provider`, `manual`, ...).
    pub sector_source: Option<Box<str>>,
    /// The industry a source gave.
    pub industry: Option<Box<str>>,
    /// Whether an ETF, universe or theme holds it (a stock in the API's lists).
    pub listed: bool,
}

/// Everything served at one data version.
pub struct Snapshot {
    /// The `data_versions` counter the rows were read at.
    pub version: i64,
    /// Ordered by type, then name.
    pub groups: Vec<Group>,
    /// Ordered by symbol.
    pub stocks: Vec<Stock>,
    by_id: HashMap<i32, u32>,
    by_key: HashMap<(GroupType, Box<str>), u32>,
    by_symbol: HashMap<Arc<str>, u32>,
    /// Symbols of listed stocks, sorted.
    pub listed: Vec<Arc<str>>,
    /// What is computed from this snapshot (responses, analytics, report, validation).
    pub caches: Caches,
    /// Memberships held, all groups together.
    pub memberships: usize,
}

/// One stored membership as the snapshot reads it: group id, symbol, weight, and the name,
/// source and industry fields of its metadata.
pub type Row = (
    i32,
    String,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A member as the database packs it: symbol, weight, name, source, industry.
type Packed = (
    String,
    Option<Weight>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A weight as JSON carries it: a number (PostgreSQL) or its text (SQLite).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Weight {
    Number(f64),
    Text(String),
}

impl Weight {
    fn value(self) -> Option<f64> {
        match self {
            Self::Number(w) => Some(w),
            Self::Text(t) => t.parse().ok(),
        }
    }
}

impl Snapshot {
    /// An empty snapshot (before the first read).
    pub fn empty(caches: Caches) -> Self {
        Self::from_rows(-1, Vec::new(), Vec::new(), caches)
    }

    /// Reads the environment's graph at its current data version, in one read transaction.
    pub async fn read(
        db: &DatabaseConnection,
        environment: &str,
        caches: Caches,
    ) -> Result<Self, DbErr> {
        let backend = db.get_database_backend();
        let txn = match backend {
            DbBackend::Postgres => {
                db.begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await?
            }
            // A deferred SQLite transaction reads one committed state (WAL) from its first
            // statement to its end.
            _ => db.begin().await?,
        };
        let version = loader::store::data_version(&txn, environment).await?;
        let groups = loader::graph::groups(&txn, environment, None).await?;
        // One row per group, its members as one JSON array: the drivers hand rows over one
        // at a time (sqlx's SQLite worker thread, a message each on PostgreSQL), which cost
        // more than the data when every membership was a row.
        let sql = match backend {
            DbBackend::Postgres => {
                "SELECT m.group_id, json_agg(json_build_array(m.symbol, m.weight, \
                 m.metadata ->> 'name', m.metadata ->> 'source', m.metadata ->> 'industry'))::text \
                 FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
                 WHERE g.environment = $1 GROUP BY m.group_id"
            }
            // Weights as text with 17 significant digits, which reads back as the same double.
            _ => {
                "SELECT m.group_id, json_group_array(json_array(m.symbol, \
                 CASE WHEN m.weight IS NULL THEN NULL ELSE printf('%!.17g', m.weight) END, \
                 json_extract(m.metadata, '$.name'), json_extract(m.metadata, '$.source'), \
                 json_extract(m.metadata, '$.industry'))) \
                 FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
                 WHERE g.environment = ? GROUP BY m.group_id"
            }
        };
        let mut rows: Vec<Row> = Vec::new();
        {
            let results = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [environment.into()],
                ))
                .await?;
            for result in results {
                let group_id: i32 = result.try_get_by_index(0)?;
                let members: String = result.try_get_by_index(1)?;
                let members: Vec<Packed> = serde_json::from_str(&members)
                    .map_err(|e| DbErr::Custom(format!("group {group_id}'s members: {e}")))?;
                rows.extend(
                    members
                        .into_iter()
                        .map(|(symbol, weight, name, source, industry)| {
                            (
                                group_id,
                                symbol,
                                weight.and_then(|w| w.value()),
                                name,
                                source,
                                industry,
                            )
                        }),
                );
            }
        }
        txn.commit().await?;
        Ok(Self::from_rows(version, groups, rows, caches))
    }

    /// Builds the indexes from the rows of one version.
    pub fn from_rows(
        version: i64,
        mut groups: Vec<definition_group::Model>,
        rows: Vec<Row>,
        caches: Caches,
    ) -> Self {
        groups.sort_by(|a, b| (&a.group_type, &a.name).cmp(&(&b.group_type, &b.name)));
        let mut out = Self {
            version,
            groups: Vec::with_capacity(groups.len()),
            stocks: Vec::new(),
            by_id: HashMap::with_capacity(groups.len()),
            by_key: HashMap::with_capacity(groups.len()),
            by_symbol: HashMap::new(),
            listed: Vec::new(),
            caches,
            memberships: rows.len(),
        };
        for model in groups {
            let Ok(kind) = model.group_type.parse::<GroupType>() else {
                continue;
            };
            let index = index_of(out.groups.len());
            out.by_id.insert(model.id, index);
            out.by_key.insert((kind, model.name.clone().into()), index);
            out.groups.push(Group {
                model: Arc::new(model),
                kind,
                members: Vec::new(),
                by_symbol: Vec::new(),
                total_weight: None,
            });
        }

        // Stocks in symbol order, so a stock's index is its rank.
        // Distinct first (a symbol is in many groups), then sorted.
        let mut symbols: Vec<&str> = rows
            .iter()
            .map(|r| r.1.as_str())
            .collect::<std::collections::HashSet<&str>>()
            .into_iter()
            .collect();
        symbols.sort_unstable();
        out.stocks.reserve(symbols.len());
        for symbol in symbols {
            let symbol: Arc<str> = Arc::from(symbol);
            out.by_symbol
                .insert(symbol.clone(), index_of(out.stocks.len()));
            out.stocks.push(Stock {
                symbol,
                memberships: Vec::new(),
                name: None,
                sector: None,
                sector_source: None,
                industry: None,
                listed: false,
            });
        }

        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        for (group_id, symbol, weight, name, source, industry) in rows {
            let (Some(&g), Some(&s)) =
                (out.by_id.get(&group_id), out.by_symbol.get(symbol.as_str()))
            else {
                continue;
            };
            let name = name.map(|n| {
                names
                    .entry(n)
                    .or_insert_with_key(|k| Arc::from(k.as_str()))
                    .clone()
            });
            let group = &mut out.groups[g as usize];
            let stock = &mut out.stocks[s as usize];
            match group.kind {
                GroupType::Sector => {
                    stock.sector = Some(g);
                    stock.sector_source = source.map(Into::into);
                    stock.industry = industry.map(Into::into);
                    if name.is_some() {
                        stock.name = name.clone();
                    }
                }
                _ => {
                    stock.listed = true;
                    if stock.name.is_none() && stock.sector.is_none() {
                        stock.name = name.clone();
                    }
                }
            }
            group.members.push(Member {
                stock: s,
                weight,
                name,
            });
        }

        let stocks = &out.stocks;
        for group in &mut out.groups {
            group.members.sort_by(|a, b| {
                loader::graph::heavier_first(a.weight, b.weight).then_with(|| {
                    stocks[a.stock as usize]
                        .symbol
                        .cmp(&stocks[b.stock as usize].symbol)
                })
            });
            group.by_symbol = (0..index_of(group.members.len())).collect();
            group
                .by_symbol
                .sort_by_key(|&i| group.members[i as usize].stock);
            group.total_weight = group
                .members
                .iter()
                .filter_map(|m| m.weight)
                .reduce(|a, b| a + b);
        }
        for (g, group) in out.groups.iter().enumerate() {
            for (m, member) in group.members.iter().enumerate() {
                out.stocks[member.stock as usize].memberships.push(At {
                    group: index_of(g),
                    member: index_of(m),
                });
            }
        }
        let groups = &out.groups;
        for stock in &mut out.stocks {
            stock.memberships.sort_by(|a, b| {
                let (ga, gb) = (&groups[a.group as usize], &groups[b.group as usize]);
                loader::graph::heavier_first(
                    ga.members[a.member as usize].weight,
                    gb.members[b.member as usize].weight,
                )
                .then_with(|| ga.model.name.cmp(&gb.model.name))
            });
            stock.memberships.shrink_to_fit();
        }
        out.listed = out
            .stocks
            .iter()
            .filter(|s| s.listed)
            .map(|s| s.symbol.clone())
            .collect();
        out
    }

    /// A group by type and (any-case) name.
    pub fn find(&self, kind: GroupType, name: &str) -> Option<u32> {
        let name = loader::graph::normalise_group_name(kind, name);
        self.by_key.get(&(kind, name.into_boxed_str())).copied()
    }

    /// A group by id.
    pub fn group_by_id(&self, id: i32) -> Option<u32> {
        self.by_id.get(&id).copied()
    }

    /// The groups of one type (or all), ordered by type and name.
    pub fn list(&self, kind: Option<GroupType>) -> impl Iterator<Item = u32> + '_ {
        self.groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| kind.is_none_or(|k| g.kind == k))
            .map(|(i, _)| index_of(i))
    }

    /// A stock by normalised symbol.
    pub fn stock(&self, symbol: &str) -> Option<u32> {
        self.by_symbol.get(symbol).copied()
    }

    /// The group at an index.
    pub fn group(&self, index: u32) -> &Group {
        &self.groups[index as usize]
    }

    /// The stock at an index.
    pub fn stock_at(&self, index: u32) -> &Stock {
        &self.stocks[index as usize]
    }

    /// The member a membership points at.
    pub fn member(&self, at: At) -> &Member {
        &self.groups[at.group as usize].members[at.member as usize]
    }

    /// The symbol of a group's member.
    pub fn symbol_of(&self, member: &Member) -> &Arc<str> {
        &self.stocks[member.stock as usize].symbol
    }

    /// Groups of a type: how many.
    pub fn count(&self, kind: GroupType) -> usize {
        self.groups.iter().filter(|g| g.kind == kind).count()
    }
}

/// An index that fits the snapshot's `u32` indexes (a graph of four billion rows does not fit
/// in memory anyway).
fn index_of(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheCounters;

    fn group(id: i32, kind: &str, name: &str) -> definition_group::Model {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        definition_group::Model {
            id,
            name: name.into(),
            group_type: kind.into(),
            description: None,
            metadata: None,
            environment: "DEFAULT".into(),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn both_directions_are_indexed_and_ordered() {
        let some = |t: &str| Some(t.to_owned());
        let rows: Vec<Row> = vec![
            (1, "AAPL".into(), Some(6.0), some("APPLE INC"), None, None),
            (1, "NVDA".into(), Some(7.5), None, None, None),
            (2, "AAPL".into(), Some(14.0), None, None, None),
            (
                3,
                "AAPL".into(),
                None,
                some("Apple Inc."),
                some("provider"),
                some("Hardware"),
            ),
            (1, "MSFT".into(), Some(6.0), None, None, None),
        ];
        let s = Snapshot::from_rows(
            7,
            vec![
                group(1, "ETF", "SPY"),
                group(2, "ETF", "XLK"),
                group(3, "SECTOR", "information_technology"),
            ],
            rows,
            Caches::new(10, &CacheCounters::default()),
        );
        let spy = s.group(s.find(GroupType::Etf, "spy").expect("SPY"));
        let order: Vec<&str> = spy.members.iter().map(|m| &**s.symbol_of(m)).collect();
        assert_eq!(
            order,
            ["NVDA", "AAPL", "MSFT"],
            "heaviest first, ties by symbol"
        );
        let by_symbol: Vec<&str> = spy
            .by_symbol
            .iter()
            .map(|&i| &*s.stocks[spy.members[i as usize].stock as usize].symbol)
            .collect();
        assert_eq!(by_symbol, ["AAPL", "MSFT", "NVDA"]);
        assert_eq!(spy.total_weight, Some(19.5));

        let aapl = s.stock_at(s.stock("AAPL").expect("AAPL"));
        let groups: Vec<&str> = aapl
            .memberships
            .iter()
            .map(|at| s.group(at.group).model.name.as_str())
            .collect();
        assert_eq!(groups, ["XLK", "SPY", "information_technology"]);
        assert_eq!(
            aapl.name.as_deref(),
            Some("Apple Inc."),
            "the sector's name wins"
        );
        assert_eq!(aapl.sector_source.as_deref(), Some("provider"));
        assert_eq!(aapl.industry.as_deref(), Some("Hardware"));
        assert!(aapl.listed);
        assert_eq!(s.listed.len(), 3);
        assert_eq!(s.version, 7);
    }
}
