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
//!
//! A stock's name is its current one: the name the most recently loaded file gives it (see
//! [`current_names`]), not the one most files ever gave. What only some requests need (the
//! search index, each group's content fingerprint for cursors) is built on first use and kept
//! with the snapshot.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use entity::{GroupType, definition_group};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::cache::Caches;

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    /// The stock, as an index into [`Snapshot::stocks`].
    pub stock: u32,
    /// The country the member's file gives its market, as a [`loader::market::country_id`]
    /// (it fits beside `stock`: a member takes no more memory for it).
    pub country: Option<u16>,
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
    /// The load run that last applied a file to the group (0 when none is recorded): what
    /// orders the files by recency when a stock's current name is chosen.
    pub loaded_run: i64,
    /// A hash of the members and weights, computed on first use (see
    /// [`Snapshot::fingerprint`]).
    fingerprint: OnceLock<u64>,
}

/// Where a stock is a member: a group and the member's index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub group: u32,
    pub member: u32,
}

/// A stock: any symbol with a membership.
#[derive(Clone, Debug)]
pub struct Stock {
    pub symbol: Arc<str>,
    /// Every membership, heaviest first, ties by group name. Shared: a snapshot built from
    /// the previous one copies its stocks without copying their lists.
    pub memberships: Arc<[At]>,
    /// The shown name: the one the most recently loaded file gives it (see
    /// [`current_names`]), else its sector membership's.
    pub name: Option<Arc<str>>,
    /// Its sector group, when it has one (of two, the one with the higher id).
    pub sector: Option<u32>,
    /// Where the sector came from (`provider`, `manual`, ...).
    pub sector_source: Option<Arc<str>>,
    /// The industry a source gave.
    pub industry: Option<Arc<str>>,
    /// Whether an ETF, universe or theme holds it (a stock in the API's lists).
    pub listed: bool,
    /// The ISO code of the country its market is in, when a file or its fund names it (of
    /// two, the one the group with the lower id gives).
    pub country: Option<&'static str>,
}

/// Everything served at one data version.
///
/// A snapshot built after another one shares with it what a load left as it was: the groups
/// whose members did not change, and the indexes of groups and stocks when no group and no
/// stock came or went (see [`Snapshot::read`]).
pub struct Snapshot {
    /// The `data_versions` counter the rows were read at.
    pub version: i64,
    /// Ordered by type, then name.
    pub groups: Vec<Arc<Group>>,
    /// Ordered by symbol.
    pub stocks: Vec<Stock>,
    by_id: Arc<Map<i32, u32>>,
    by_key: Arc<Map<(GroupType, Box<str>), u32>>,
    by_symbol: Arc<Map<Arc<str>, u32>>,
    /// Ticker → the stocks whose listing key adds a market or a name to it (`SAN` →
    /// `SAN:ES`, `SAN:FR`).
    by_ticker: Arc<Map<Box<str>, Vec<u32>>>,
    /// Symbols of listed stocks, sorted.
    pub listed: Vec<Arc<str>>,
    /// What is computed from this snapshot (responses, analytics, report, validation).
    pub caches: Caches,
    /// Memberships held, all groups together.
    pub memberships: usize,
    /// The groups whose members this snapshot read from the database (all of them, unless it
    /// was built from the previous one).
    pub groups_read: usize,
    /// How long the build's read transaction took, from start to commit (the members are
    /// unpacked as they come, within it; the rest of the build is indexing). Zero for a
    /// snapshot built from rows.
    pub read_time: std::time::Duration,
    /// Each group's row as the database wrote it out as text, by group id: the next build
    /// reads in full only the groups whose row differs (empty for a snapshot built from
    /// rows).
    group_rows: Arc<Map<i32, Box<str>>>,
    /// The search index, built on first use.
    search: OnceLock<crate::search::Index>,
}

/// One stored membership as the snapshot reads it: group id, symbol, weight, and the name,
/// source, industry and country fields of its metadata.
pub type Row = (
    i32,
    String,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The hasher of the snapshot's maps: their keys are symbols, names and ids the database
/// holds, hashed a few million times a build at 100×, and by every request that names a stock.
type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;

/// A member as the database packs it: `[symbol, weight, metadata]`, its texts borrowed from
/// the group's JSON when they hold no escapes.
#[derive(serde::Deserialize)]
struct Packed<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    weight: Option<Weight>,
    #[serde(borrow)]
    metadata: Option<Meta<'a>>,
}

/// What the snapshot keeps of a membership's metadata (the rest is skipped unread).
#[derive(serde::Deserialize, Default)]
struct Meta<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    source: Text<'a>,
    #[serde(default, borrow)]
    industry: Text<'a>,
    #[serde(default, borrow)]
    country: Text<'a>,
}

/// A metadata field as text: a string as it is, a number or flag as JSON writes it, null as
/// nothing (a hand-edited row never stops the server from reading the graph).
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a metadata field")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(
                    serde_json::Value::from(v).to_string(),
                ))))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Text<'de>, A::Error> {
                use serde::Deserialize as _;
                let value = serde_json::Value::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(Text(Some(Cow::Owned(value.to_string()))))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Text<'de>, A::Error> {
                use serde::Deserialize as _;
                let value = serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Text(Some(Cow::Owned(value.to_string()))))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl Text<'_> {
    fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// A weight as JSON carries it: its text (PostgreSQL, and SQLite for a weight that is not a
/// whole number of hundred-millionths), parsed exactly, or a number (SQLite's `n e-8`, which
/// serde_json reads exactly: `n` and `1e8` are exact doubles and are divided once), read
/// without buffering (an untagged enum would copy every value to try each form in turn).
struct Weight(Option<f64>);

impl<'de> serde::Deserialize<'de> for Weight {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Weight;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a weight: a number or its text")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Weight, E> {
                Ok(Weight(Some(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Weight, E> {
                Ok(Weight(Some(v as f64)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Weight, E> {
                Ok(Weight(Some(v as f64)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Weight, E> {
                Ok(Weight(v.parse().ok()))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// Memberships as they are read, their texts interned as they come (while the database
/// writes the next groups): symbols numbered in the order they first appear, names, sources
/// and industries shared. A build then sorts and looks up numbers, not texts.
#[derive(Default)]
pub struct Read {
    /// Symbol → its number.
    numbers: Map<Arc<str>, u32>,
    /// Number → symbol.
    symbols: Vec<Arc<str>>,
    names: HashSet<Arc<str>, Hasher>,
    /// Sources and industries.
    fields: HashSet<Arc<str>, Hasher>,
    entries: Vec<Entry>,
}

/// One membership as read.
struct Entry {
    group: i32,
    /// The symbol's number in [`Read::symbols`].
    symbol: u32,
    country: Option<u16>,
    weight: Option<f64>,
    name: Option<Arc<str>>,
    source: Option<Arc<str>>,
    industry: Option<Arc<str>>,
}

impl Read {
    /// Memberships given as rows.
    pub fn of_rows(rows: Vec<Row>) -> Self {
        let mut read = Self::default();
        for (group, symbol, weight, name, source, industry, country) in rows {
            read.push(
                group,
                &symbol,
                weight,
                [name.as_deref(), source.as_deref(), industry.as_deref()],
                country.as_deref(),
            );
        }
        read
    }

    /// Adds a membership of the group with id `group`; `texts` are its name, source and
    /// industry.
    fn push(
        &mut self,
        group: i32,
        symbol: &str,
        weight: Option<f64>,
        [name, source, industry]: [Option<&str>; 3],
        country: Option<&str>,
    ) {
        let symbol = match self.numbers.get(symbol) {
            Some(&number) => number,
            None => {
                let number = index_of(self.symbols.len());
                let symbol: Arc<str> = Arc::from(symbol);
                self.symbols.push(symbol.clone());
                self.numbers.insert(symbol, number);
                number
            }
        };
        self.entries.push(Entry {
            group,
            symbol,
            country: country.and_then(loader::market::country_id),
            weight,
            name: name.map(|n| intern(&mut self.names, n)),
            source: source.map(|s| intern(&mut self.fields, s)),
            industry: industry.map(|i| intern(&mut self.fields, i)),
        });
    }

    /// Memberships held.
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The shared copy of a text.
fn intern(texts: &mut HashSet<Arc<str>, Hasher>, text: &str) -> Arc<str> {
    if let Some(shared) = texts.get(text) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(text);
    texts.insert(shared.clone());
    shared
}

impl Snapshot {
    /// An empty snapshot (before the first read).
    pub fn empty(caches: Caches) -> Self {
        Self::from_rows(-1, Vec::new(), Vec::new(), caches)
    }

    /// Reads the environment's graph at its current data version, in one read transaction.
    ///
    /// Given the snapshot served until now, it reads only the members of the groups that
    /// changed since its version, and shares the others with it. The groups that changed are
    /// the ones the load runs of the versions in between recorded changes for, and those whose
    /// description, metadata or last load run differ. It reads everything when that cannot be
    /// told (a version no run recorded) or saves nothing: a group or a stock came or went,
    /// which moves the indexes, half the groups' own rows changed, or the changed groups hold
    /// half the memberships.
    pub async fn read(
        db: &DatabaseConnection,
        environment: &str,
        caches: Caches,
        previous: Option<Arc<Snapshot>>,
    ) -> Result<Self, DbErr> {
        let caches = match previous {
            Some(old) => match Self::read_changes(db, environment, caches, old).await? {
                Ok(snapshot) => return Ok(snapshot),
                Err(caches) => *caches,
            },
            None => caches,
        };
        let backend = db.get_database_backend();
        let clock = std::time::Instant::now();
        let txn = loader::store::begin_read(db).await?;
        let version = loader::store::data_version(&txn, environment).await?;
        let groups = loader::graph::groups(&txn, environment, None).await?;
        let rows = group_rows(&txn, backend, environment).await?;
        let members = read_members(&txn, backend, environment, None).await?;
        let loaded = loaded_runs(&txn, backend, environment).await?;
        txn.commit().await?;
        let read_time = clock.elapsed();
        // Building the indexes, too, is CPU work.
        off_the_runtime(move || Self {
            read_time,
            group_rows: Arc::new(rows),
            ..Self::assemble(version, groups, members, &loaded, caches)
        })
        .await
    }

    /// The snapshot at the current version built from `old` and the groups that changed since,
    /// or the caches back when it cannot be (see [`Snapshot::read`]).
    async fn read_changes(
        db: &DatabaseConnection,
        environment: &str,
        caches: Caches,
        old: Arc<Snapshot>,
    ) -> Result<Result<Self, Box<Caches>>, DbErr> {
        let backend = db.get_database_backend();
        let clock = std::time::Instant::now();
        let txn = loader::store::begin_read(db).await?;
        let version = loader::store::data_version(&txn, environment).await?;
        // The groups whose row is as the old snapshot read it are taken from it; the others
        // are read in full. When half or more differ (or the old snapshot kept no rows, as the
        // placeholder before the first read), everything is read again, without reading the
        // groups twice.
        let rows = group_rows(&txn, backend, environment).await?;
        let mut groups = Vec::with_capacity(rows.len());
        let mut differ = Vec::new();
        for (id, row) in rows.iter() {
            match (old.group_rows.get(id), old.by_id.get(id)) {
                (Some(before), Some(&g)) if before == row => {
                    groups.push(definition_group::Model::clone(
                        &old.groups[g as usize].model,
                    ));
                }
                _ => differ.push(*id),
            }
        }
        if differ.len() * 2 >= rows.len().max(1) {
            return Ok(Err(Box::new(caches)));
        }
        if !differ.is_empty() {
            use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
            groups.extend(
                definition_group::Entity::find()
                    .filter(definition_group::Column::Id.is_in(differ))
                    .all(&txn)
                    .await?,
            );
        }
        // In the snapshot's order, to pair them with its groups.
        sort_groups(&mut groups);
        let loaded = loaded_runs(&txn, backend, environment).await?;
        let changed =
            changed_groups(&txn, backend, environment, &old, version, &groups, &loaded).await?;
        let Some(changed) = changed else {
            return Ok(Err(Box::new(caches)));
        };
        let members = read_members(&txn, backend, environment, Some(&changed)).await?;
        txn.commit().await?;
        let read_time = clock.elapsed();
        off_the_runtime(move || {
            Self::update(&old, version, groups, members, &changed, &loaded, caches).map(|built| {
                Self {
                    read_time,
                    group_rows: Arc::new(rows),
                    ..built
                }
            })
        })
        .await
    }

    /// Builds the indexes from the rows of one version (no load run recorded for any group).
    pub fn from_rows(
        version: i64,
        groups: Vec<definition_group::Model>,
        rows: Vec<Row>,
        caches: Caches,
    ) -> Self {
        Self::build(version, groups, rows, &HashMap::new(), caches)
    }

    /// Builds the indexes from the rows of one version and the run that last loaded each
    /// group (by group id).
    pub fn build(
        version: i64,
        groups: Vec<definition_group::Model>,
        rows: Vec<Row>,
        loaded: &HashMap<i32, i64>,
        caches: Caches,
    ) -> Self {
        Self::assemble(version, groups, Read::of_rows(rows), loaded, caches)
    }

    /// Builds the indexes from the memberships of one version as read and the run that last
    /// loaded each group (by group id).
    fn assemble(
        version: i64,
        mut groups: Vec<definition_group::Model>,
        read: Read,
        loaded: &HashMap<i32, i64>,
        caches: Caches,
    ) -> Self {
        sort_groups(&mut groups);
        let mut list: Vec<Group> = Vec::with_capacity(groups.len());
        let mut by_id = Map::with_capacity_and_hasher(groups.len(), Hasher::default());
        let mut by_key = Map::with_capacity_and_hasher(groups.len(), Hasher::default());
        for model in groups {
            let Ok(kind) = model.group_type.parse::<GroupType>() else {
                continue;
            };
            let index = index_of(list.len());
            by_id.insert(model.id, index);
            by_key.insert((kind, model.name.clone().into()), index);
            list.push(Group::new(model, kind, loaded));
        }

        // Stocks in symbol order, so a stock's index is its rank: the read's numbers sorted by
        // their symbols, and its map of numbers turned into the map of ranks.
        let Read {
            numbers: mut by_symbol,
            symbols,
            names,
            entries,
            ..
        } = read;
        let mut order: Vec<u32> = (0..index_of(symbols.len())).collect();
        order.sort_unstable_by(|&a, &b| symbols[a as usize].cmp(&symbols[b as usize]));
        let mut rank = vec![0; symbols.len()];
        for (r, &number) in order.iter().enumerate() {
            rank[number as usize] = index_of(r);
        }
        for index in by_symbol.values_mut() {
            *index = rank[*index as usize];
        }
        let mut stocks = Vec::with_capacity(symbols.len());
        let mut by_ticker: Map<Box<str>, Vec<u32>> = Map::default();
        for number in order {
            let symbol = symbols[number as usize].clone();
            if !loader::listing::is_plain(&symbol) {
                by_ticker
                    .entry(loader::listing::ticker(&symbol).into())
                    .or_default()
                    .push(index_of(stocks.len()));
            }
            stocks.push(Stock {
                symbol,
                memberships: Arc::from([]),
                name: None,
                sector: None,
                sector_source: None,
                industry: None,
                listed: false,
                country: None,
            });
        }

        let memberships = entries.len();
        let mut placed = Placed::default();
        for entry in entries {
            let Some(&g) = by_id.get(&entry.group) else {
                continue;
            };
            let s = rank[entry.symbol as usize];
            placed.add(entry, s, g, &mut list[g as usize]);
        }
        in_parallel(
            &mut list,
            |group| group.members.len(),
            |_, groups| groups.iter_mut().for_each(Group::finish),
        );
        let groups: Vec<Arc<Group>> = list.into_iter().map(Arc::new).collect();
        let groups_read = groups.len();
        let mut count = vec![0u32; stocks.len()];
        for group in &groups {
            for member in &group.members {
                count[member.stock as usize] += 1;
            }
        }
        let mut held: Vec<Vec<At>> = count
            .into_iter()
            .map(|n| Vec::with_capacity(n as usize))
            .collect();
        for (g, group) in groups.iter().enumerate() {
            for (m, member) in group.members.iter().enumerate() {
                held[member.stock as usize].push(At {
                    group: index_of(g),
                    member: index_of(m),
                });
            }
        }
        let ranks = name_ranks(&groups);
        let spellings = Spellings::new(names.iter());
        // Each stock is settled and named from its own memberships and the groups alone.
        let mut settling: Vec<(&mut Stock, Vec<At>)> = stocks.iter_mut().zip(held).collect();
        in_parallel(
            &mut settling,
            |(_, memberships)| memberships.len(),
            |first, run| {
                let mut namer = Namer::default();
                for (i, (stock, memberships)) in run.iter_mut().enumerate() {
                    stock.settle(std::mem::take(memberships), &groups, &ranks);
                    (stock.sector_source, stock.industry) =
                        placed.sector_fields(index_of(first + i), stock.sector);
                    namer.name(stock, &groups, &spellings);
                }
            },
        );
        drop(settling);
        let mut out = Self {
            version,
            groups,
            stocks,
            by_id: Arc::new(by_id),
            by_key: Arc::new(by_key),
            by_symbol: Arc::new(by_symbol),
            by_ticker: Arc::new(by_ticker),
            listed: Vec::new(),
            caches,
            memberships,
            groups_read,
            read_time: std::time::Duration::ZERO,
            group_rows: Arc::default(),
            search: OnceLock::new(),
        };
        out.list_stocks();
        out
    }

    /// The snapshot `old` becomes when the groups `changed` (ids, sorted) hold `rows`: the other
    /// groups and the indexes are shared with `old`, and only the stocks in the changed groups,
    /// before or after, are settled and named again. Gives the caches back when the change
    /// adds or removes a group or a stock, which only a full build can index.
    fn update(
        old: &Snapshot,
        version: i64,
        mut groups: Vec<definition_group::Model>,
        read: Read,
        changed: &[i32],
        loaded: &HashMap<i32, i64>,
        caches: Caches,
    ) -> Result<Self, Box<Caches>> {
        if groups.len() != old.groups.len() {
            return Err(Box::new(caches));
        }
        sort_groups(&mut groups);
        let mut list = old.groups.clone();
        let mut fresh: Vec<(u32, Group)> = Vec::with_capacity(changed.len());
        // Group index → its place in `fresh`.
        let mut slot = vec![usize::MAX; old.groups.len()];
        for (g, model) in groups.into_iter().enumerate() {
            let before = &old.groups[g];
            if before.model.id != model.id {
                return Err(Box::new(caches));
            }
            if changed.binary_search(&model.id).is_ok() {
                slot[g] = fresh.len();
                fresh.push((index_of(g), Group::new(model, before.kind, loaded)));
            }
        }
        let changed_at = |g: u32| slot[g as usize] != usize::MAX;
        // The stocks whose memberships change: the changed groups' members, before and after.
        let mut affected: Vec<u32> = Vec::new();
        let mut memberships = old.memberships + read.len();
        for (g, _) in &fresh {
            let before = &old.groups[*g as usize].members;
            affected.extend(before.iter().map(|m| m.stock));
            memberships -= before.len();
        }
        // Each symbol read, as the index of its stock.
        let mut stock_of = Vec::with_capacity(read.symbols.len());
        for symbol in &read.symbols {
            let Some(&s) = old.by_symbol.get(symbol) else {
                // A new stock: its index is its rank, every stock after it moves.
                return Err(Box::new(caches));
            };
            stock_of.push(s);
        }
        let mut placed = Placed::default();
        for entry in read.entries {
            let Some(&g) = old.by_id.get(&entry.group) else {
                continue;
            };
            let s = stock_of[entry.symbol as usize];
            let Some(group) = slot
                .get(g as usize)
                .and_then(|&i| fresh.get_mut(i))
                .map(|(_, group)| group)
            else {
                continue;
            };
            placed.add(entry, s, g, group);
            affected.push(s);
        }
        for (g, mut group) in fresh {
            group.finish();
            list[g as usize] = Arc::new(group);
        }
        affected.sort_unstable();
        affected.dedup();

        // Every stock is copied (its lists shared); the affected ones get new lists.
        let mut stocks = old.stocks.clone();
        let mut held: HashMap<u32, Vec<At>> = affected
            .iter()
            .map(|&s| {
                let kept = stocks[s as usize]
                    .memberships
                    .iter()
                    .filter(|at| !changed_at(at.group))
                    .copied()
                    .collect();
                (s, kept)
            })
            .collect();
        for (g, group) in list.iter().enumerate() {
            if !changed_at(index_of(g)) {
                continue;
            }
            for (m, member) in group.members.iter().enumerate() {
                held.entry(member.stock).or_default().push(At {
                    group: index_of(g),
                    member: index_of(m),
                });
            }
        }
        let ranks = name_ranks(&list);
        for &s in &affected {
            let memberships = held.remove(&s).unwrap_or_default();
            if memberships.is_empty() {
                // A stock gone: the same as a new one.
                return Err(Box::new(caches));
            }
            let stock = &mut stocks[s as usize];
            stock.settle(memberships, &list, &ranks);
            match stock.sector {
                None => (stock.sector_source, stock.industry) = (None, None),
                Some(g) if changed_at(g) => {
                    (stock.sector_source, stock.industry) = placed.sector_fields(s, Some(g));
                }
                // Its sector's members are as they were, and so its source and industry.
                Some(g) if old.stocks[s as usize].sector == Some(g) => {}
                Some(_) => return Err(Box::new(caches)),
            }
        }
        let names = affected.iter().flat_map(|&s| {
            stocks[s as usize].memberships.iter().filter_map(|at| {
                list[at.group as usize].members[at.member as usize]
                    .name
                    .as_ref()
            })
        });
        let spellings = Spellings::new(names);
        current_names(&mut stocks, &list, &spellings, &affected);
        let mut out = Self {
            version,
            groups: list,
            stocks,
            by_id: old.by_id.clone(),
            by_key: old.by_key.clone(),
            by_symbol: old.by_symbol.clone(),
            by_ticker: old.by_ticker.clone(),
            listed: Vec::new(),
            caches,
            memberships,
            groups_read: changed.len(),
            read_time: std::time::Duration::ZERO,
            group_rows: Arc::default(),
            search: OnceLock::new(),
        };
        out.list_stocks();
        Ok(out)
    }

    /// Fills [`Snapshot::listed`] from the stocks.
    fn list_stocks(&mut self) {
        self.listed = self
            .stocks
            .iter()
            .filter(|s| s.listed)
            .map(|s| s.symbol.clone())
            .collect();
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

    /// Every listing of a ticker: the plain key and those that add a market or a name
    /// (`SAN` → `SAN:ES`, `SAN:FR`), in symbol order.
    pub fn listings(&self, ticker: &str) -> Vec<u32> {
        let mut out: Vec<u32> = self.stock(ticker).into_iter().collect();
        out.extend(self.by_ticker.get(ticker).into_iter().flatten());
        out.sort_unstable();
        out
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

    /// A hash of a group's members and weights (FNV-1a over symbol and weight, heaviest
    /// first): equal in two snapshots exactly when the group's content is (barring a 64-bit
    /// collision), whatever other groups did in between. Computed on first use, O(members).
    pub fn fingerprint(&self, index: u32) -> u64 {
        let group = self.group(index);
        *group.fingerprint.get_or_init(|| {
            let mut hash = Fnv::default();
            for m in &group.members {
                hash.write(self.symbol_of(m).as_bytes());
                hash.write(&[0xff]);
                match m.weight {
                    Some(w) => hash.write(&w.to_bits().to_le_bytes()),
                    None => hash.write(&[0]),
                }
            }
            hash.0
        })
    }

    /// The search index over stocks' and groups' symbols, names and descriptions, built on
    /// first use and kept with the snapshot.
    pub fn search(&self) -> &crate::search::Index {
        self.search
            .get_or_init(|| crate::search::Index::build(self))
    }
}

impl Group {
    /// A group with no members yet.
    fn new(model: definition_group::Model, kind: GroupType, loaded: &HashMap<i32, i64>) -> Self {
        let loaded_run = loaded.get(&model.id).copied().unwrap_or(0);
        Self {
            model: Arc::new(model),
            kind,
            members: Vec::new(),
            by_symbol: Vec::new(),
            total_weight: None,
            loaded_run,
            fingerprint: OnceLock::new(),
        }
    }

    /// Orders the members (heaviest first, ties by symbol), indexes them by symbol and sums
    /// their weights, once all are in.
    /// A stock's index is its rank by symbol, so ties are ordered by index.
    fn finish(&mut self) {
        // In symbol order first: SQLite reads a group's members in that order (its index is
        // on group and symbol), so this is a check, not a sort, when the rows came from it.
        if !self.members.is_sorted_by_key(|m| m.stock) {
            self.members.sort_unstable_by_key(|m| m.stock);
        }
        // Then one sort of (weight key, place in symbol order): a stock is a member once, so
        // ties on weight fall to the symbol order and the order is total. The places it
        // gives each member make the by-symbol index, and the members are moved to theirs.
        let mut order: Vec<(std::cmp::Reverse<i64>, u32)> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (loader::graph::heaviest_first_key(m.weight), index_of(i)))
            .collect();
        order.sort_unstable();
        let mut place = vec![0u32; order.len()];
        for (to, &(_, from)) in order.iter().enumerate() {
            place[from as usize] = index_of(to);
        }
        self.by_symbol = place.clone();
        // Each member to its place, by cycles of swaps.
        for i in 0..place.len() {
            while place[i] as usize != i {
                let to = place[i] as usize;
                self.members.swap(i, to);
                place.swap(i, to);
            }
        }
        self.total_weight = self
            .members
            .iter()
            .filter_map(|m| m.weight)
            .reduce(|a, b| a + b);
    }
}

impl Stock {
    /// Orders the memberships (heaviest first, ties by group name, then by kind: `ranks`
    /// from [`name_ranks`]) and derives what they tell: whether it is listed, its sector (of
    /// two, the group with the higher id) and its country (of two, the one the group with the
    /// lower id gives). The same rules whatever order the rows came in, so a snapshot built
    /// from the previous one equals a full build.
    fn settle(&mut self, mut memberships: Vec<At>, groups: &[Arc<Group>], ranks: &[u32]) {
        memberships.sort_unstable_by_key(|at| {
            let weight = groups[at.group as usize].members[at.member as usize].weight;
            (
                loader::graph::heaviest_first_key(weight),
                ranks[at.group as usize],
            )
        });
        self.memberships = memberships.into();
        let of = |at: &At| (&groups[at.group as usize], *at);
        self.listed = self
            .memberships
            .iter()
            .any(|at| groups[at.group as usize].kind != GroupType::Sector);
        self.sector = self
            .memberships
            .iter()
            .map(of)
            .filter(|(g, _)| g.kind == GroupType::Sector)
            .max_by_key(|(g, _)| g.model.id)
            .map(|(_, at)| at.group);
        self.country = self
            .memberships
            .iter()
            .map(of)
            .filter_map(|(g, at)| Some((g.model.id, g.members[at.member as usize].country?)))
            .min_by_key(|&(id, _)| id)
            .and_then(|(_, country)| loader::market::country_at(country));
    }
}

/// What placing memberships gathers beyond the members: the source and industry of each
/// sector membership.
#[derive(Default)]
struct Placed {
    /// (Stock, sector group) → the membership's source and industry.
    sectors: Map<(u32, u32), SectorFields>,
}

/// A sector membership's source and industry.
type SectorFields = (Option<Arc<str>>, Option<Arc<str>>);

impl Placed {
    /// Adds a membership as a member of `group` (at index `g`) for the stock at index `s`.
    fn add(&mut self, entry: Entry, s: u32, g: u32, group: &mut Group) {
        if group.kind == GroupType::Sector {
            self.sectors.insert((s, g), (entry.source, entry.industry));
        }
        group.members.push(Member {
            stock: s,
            country: entry.country,
            weight: entry.weight,
            name: entry.name,
        });
    }

    /// The source and industry of a stock's membership in its sector (the one
    /// [`Stock::settle`] chose).
    fn sector_fields(&self, s: u32, sector: Option<u32>) -> SectorFields {
        sector
            .and_then(|g| self.sectors.get(&(s, g)).cloned())
            .unwrap_or_default()
    }
}

/// Groups in the snapshot's order: by type, then name.
fn sort_groups(groups: &mut [definition_group::Model]) {
    groups.sort_by(|a, b| (&a.group_type, &a.name).cmp(&(&b.group_type, &b.name)));
}

/// Each group's rank by name, groups of one name by kind (their order in the snapshot), by
/// group index: a total order of a stock's groups that [`Stock::settle`] compares as numbers.
fn name_ranks(groups: &[Arc<Group>]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..index_of(groups.len())).collect();
    order.sort_by(|&a, &b| {
        groups[a as usize]
            .model
            .name
            .cmp(&groups[b as usize].model.name)
    });
    let mut ranks = vec![0; groups.len()];
    for (rank, &g) in order.iter().enumerate() {
        ranks[g as usize] = index_of(rank);
    }
    ranks
}

/// Runs CPU work of a build on the blocking pool, so the runtime's workers keep answering.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DbErr> {
    tokio::task::spawn_blocking(work).await.map_err(stopped)
}

thread_local! {
    /// Work of a full build below which it runs on one thread: 200,000 memberships, ten
    /// times the real data, whose build takes milliseconds, less than starting threads
    /// would save. Per thread, so a test can build a small snapshot either way.
    static PARALLEL_FROM: std::cell::Cell<usize> = const { std::cell::Cell::new(200_000) };
}

/// Runs `work` over `items` in contiguous runs of about the same `cost`, one per core (on
/// scoped threads, this one among them), or over all of them on this thread when their cost
/// is under `PARALLEL_FROM`. `work` gets the index of its run's first item and the run.
fn in_parallel<T: Send>(
    items: &mut [T],
    cost: impl Fn(&T) -> usize,
    work: impl Fn(usize, &mut [T]) + Sync,
) {
    let total: usize = items.iter().map(&cost).sum();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || total < PARALLEL_FROM.get() {
        work(0, items);
        return;
    }
    let share = total.div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let mut rest = items;
        let mut first = 0;
        while !rest.is_empty() {
            // The shortest run from the start whose cost reaches a share (the last takes
            // what is left).
            let mut taken = 0;
            let mut end = 0;
            while end < rest.len() && taken < share {
                taken += cost(&rest[end]);
                end += 1;
            }
            let (run, after) = std::mem::take(&mut rest).split_at_mut(end);
            if after.is_empty() {
                work(first, run);
            } else {
                let at = first;
                scope.spawn(move || work(at, run));
            }
            first += end;
            rest = after;
        }
    });
}

/// A build's blocking task that panicked or was cancelled, as an error.
fn stopped(e: tokio::task::JoinError) -> DbErr {
    DbErr::Custom(format!("the snapshot build stopped: {e}"))
}

/// The members of the environment's groups (of the groups `only` names, when given), as rows.
async fn read_members(
    txn: &sea_orm::DatabaseTransaction,
    backend: DbBackend,
    environment: &str,
    only: Option<&[i32]>,
) -> Result<Read, DbErr> {
    // Group ids are numbers the database gave: written into the statement as they are.
    let ids = only.map(|ids| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
    if ids.as_deref() == Some("") {
        return Ok(Read::default());
    }
    // One row per group, its members as one JSON array: the drivers hand rows over one
    // at a time (sqlx's SQLite worker thread, a message each on PostgreSQL), which cost
    // more than the data when every membership was a row.
    let sql = match (backend, ids) {
        (DbBackend::Postgres, ids) => format!(
            "SELECT m.group_id, json_agg(json_build_array(m.symbol, m.weight::text, m.metadata))::text \
             FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
             WHERE g.environment = $1{} GROUP BY m.group_id",
            ids.map(|ids| format!(" AND m.group_id IN ({ids})"))
                .unwrap_or_default()
        ),
        // The JSON is written by concatenation: the metadata is stored as JSON text and goes
        // in as it is, unparsed (four json_extract calls a row were a third of the read).
        // A weight that is a whole number of hundred-millionths (every weight a file gives
        // with up to eight decimals) is written as that number and `e-8`: integer printing
        // and a division, where SQLite's exact printing of a double was a fifth of the read.
        // Any other weight is written with 17 significant digits, as text (Rust reads text
        // back as the same double; serde_json's numbers may be a unit in the last place
        // off). Groups by `IN`, so the rows come in the (group_id, symbol) index's order and
        // the GROUP BY needs no sort.
        (_, ids) => format!(
            "SELECT m.group_id, '[' || group_concat('[' || json_quote(m.symbol) || ',' || \
             CASE WHEN m.weight IS NULL THEN 'null' \
             WHEN abs(m.weight) < 1e7 AND CAST(round(m.weight * 1e8) AS INTEGER) / 1e8 = m.weight \
             THEN CAST(round(m.weight * 1e8) AS INTEGER) || 'e-8' \
             ELSE '\"' || printf('%!.17g', m.weight) || '\"' END \
             || ',' || ifnull(m.metadata, 'null') || ']', ',') || ']' \
             FROM group_memberships m \
             WHERE m.group_id IN (SELECT id FROM definition_groups WHERE environment = ?{}) \
             GROUP BY m.group_id",
            ids.map(|ids| format!(" AND id IN ({ids})"))
                .unwrap_or_default()
        ),
    };
    // Reading the members' JSON is CPU work (a second at 100×): on the blocking pool, so
    // the runtime's workers keep answering requests, and group by group as the rows come,
    // while the database writes the next ones.
    let (send, receive) = std::sync::mpsc::channel::<(i32, String)>();
    let unpacking = tokio::task::spawn_blocking(move || unpack(receive));
    let streamed = async {
        use futures_util::TryStreamExt as _;
        use sea_orm::StreamTrait as _;
        let statement = Statement::from_sql_and_values(backend, sql, [environment.into()]);
        let mut stream = txn.stream_raw(statement).await?;
        while let Some(result) = stream.try_next().await? {
            let group_id: i32 = result.try_get_by_index(0)?;
            let members: String = result.try_get_by_index(1)?;
            if send.send((group_id, members)).is_err() {
                // The unpacking stopped at an error, which it returns.
                break;
            }
        }
        Ok::<_, DbErr>(())
    }
    .await;
    drop(send);
    let rows = unpacking.await.map_err(stopped)?;
    streamed?;
    rows
}

/// The groups (by id) whose members, metadata or last load run changed between the snapshot
/// `old` and `version`, when that can be told and a build from `old` is worth it: `None` when
/// a group came or went, when a version in between has no load run on record (its changes
/// are unknown), or when the runs wrote, or the changed groups hold, half the memberships or
/// more. A load run records every membership it adds, removes or changes in the transaction
/// that commits its version, so the runs of the versions in between name every group whose
/// members changed.
async fn changed_groups(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    environment: &str,
    old: &Snapshot,
    version: i64,
    groups: &[definition_group::Model],
    loaded: &HashMap<i32, i64>,
) -> Result<Option<Vec<i32>>, DbErr> {
    if version <= old.version || groups.len() != old.groups.len() {
        return Ok(None);
    }
    let mut changed = Vec::new();
    let mut by_name: HashMap<(&str, &str), i32> = HashMap::with_capacity(groups.len());
    for (model, before) in groups.iter().zip(&old.groups) {
        if model.id != before.model.id {
            return Ok(None);
        }
        if *model != *before.model
            || loaded.get(&model.id).copied().unwrap_or(0) != before.loaded_run
        {
            changed.push(model.id);
        }
        by_name.insert((&model.group_type, &model.name), model.id);
    }
    let runs = txn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "SELECT id, data_version, CAST(created + updated + deleted AS BIGINT) \
                     FROM load_runs \
                     WHERE environment = $1 AND data_version > $2 AND data_version <= $3"
                }
                _ => {
                    "SELECT id, data_version, CAST(created + updated + deleted AS BIGINT) \
                     FROM load_runs \
                     WHERE environment = ? AND data_version > ? AND data_version <= ?"
                }
            },
            [environment.into(), old.version.into(), version.into()],
        ))
        .await?;
    let mut versions = Vec::with_capacity(runs.len());
    let mut ids = Vec::with_capacity(runs.len());
    let mut written: i64 = 0;
    for row in runs {
        ids.push(row.try_get_by_index::<i32>(0)?.to_string());
        versions.push(row.try_get_by_index::<i64>(1)?);
        written = written.saturating_add(row.try_get_by_index::<Option<i64>>(2)?.unwrap_or(0));
    }
    versions.sort_unstable();
    if !versions.iter().copied().eq(old.version + 1..=version) {
        return Ok(None);
    }
    // Runs that wrote half as many memberships as there are: no need to list their changes
    // (a million records at 100×) to know that reading everything costs no more.
    let held = i64::try_from(old.memberships).unwrap_or(i64::MAX);
    if written.saturating_mul(2) >= held.max(1) {
        return Ok(None);
    }
    // Run ids are numbers the database gave: written into the statement as they are.
    let recorded = txn
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT DISTINCT group_type, group_name FROM membership_changes \
                 WHERE run_id IN ({})",
                ids.join(",")
            ),
        ))
        .await?;
    for row in recorded {
        let kind: String = row.try_get_by_index(0)?;
        let name: String = row.try_get_by_index(1)?;
        if let Some(&id) = by_name.get(&(kind.as_str(), name.as_str())) {
            changed.push(id);
        }
    }
    changed.sort_unstable();
    changed.dedup();
    let members: usize = old
        .groups
        .iter()
        .filter(|g| changed.binary_search(&g.model.id).is_ok())
        .map(|g| g.members.len())
        .sum();
    if members * 2 >= old.memberships.max(1) {
        return Ok(None);
    }
    Ok(Some(changed))
}

/// Everything the snapshot serves, in order: its version, each group with its members, each
/// stock with its memberships and what they tell, and the listed symbols. Two snapshots of one
/// version print the same whichever way they were built.
impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "version {}, {} memberships",
            self.version, self.memberships
        )?;
        for group in &self.groups {
            let m = &group.model;
            writeln!(
                f,
                "{} {} (id {}, run {}, total {:?}): {:?} {:?}",
                m.group_type,
                m.name,
                m.id,
                group.loaded_run,
                group.total_weight,
                m.description,
                m.metadata
            )?;
            for member in &group.members {
                writeln!(
                    f,
                    "  {} {:?} {:?} {:?}",
                    self.symbol_of(member),
                    member.weight,
                    member.name,
                    member.country
                )?;
            }
            let by_symbol: Vec<&str> = group
                .by_symbol
                .iter()
                .map(|&i| &**self.symbol_of(&group.members[i as usize]))
                .collect();
            writeln!(f, "  by symbol {by_symbol:?}")?;
        }
        for stock in &self.stocks {
            let sector = stock.sector.map(|g| &self.group(g).model.name);
            writeln!(
                f,
                "{} {:?} listed {} sector {:?} {:?} {:?} country {:?}",
                stock.symbol,
                stock.name,
                stock.listed,
                sector,
                stock.sector_source,
                stock.industry,
                stock.country
            )?;
            for &at in stock.memberships.iter() {
                let member = self.member(at);
                writeln!(
                    f,
                    "  in {} as {}",
                    self.group(at.group).model.name,
                    self.symbol_of(member)
                )?;
            }
        }
        writeln!(f, "listed {:?}", self.listed)
    }
}

/// FNV-1a, 64 bits: a hash whose value is fixed by its definition, so fingerprints agree across
/// processes and releases (std's `DefaultHasher` promises neither).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Each group of the environment's row written out as text (every column, as JSON), by group
/// id, read as one text: a driver hands rows over one at a time, which at 100× (3,700 groups)
/// cost more than the statement. Compared with the texts a snapshot kept, it tells which
/// groups' rows changed without decoding any.
async fn group_rows(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    environment: &str,
) -> Result<Map<i32, Box<str>>, DbErr> {
    // A JSON text holds no raw tab or newline: they separate the id, and the groups.
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT string_agg(id || chr(9) || json_build_array(name, type, description, \
             metadata, environment, created_at, updated_at)::text, chr(10)) \
             FROM definition_groups WHERE environment = $1"
        }
        _ => {
            "SELECT group_concat(id || char(9) || json_array(name, type, description, \
             metadata, environment, created_at, updated_at), char(10)) \
             FROM definition_groups WHERE environment = ?"
        }
    };
    let packed = packed_text(txn, backend, sql, environment).await?;
    let mut out = Map::default();
    for line in packed.split('\n').filter(|l| !l.is_empty()) {
        let Some((id, row)) = line
            .split_once('\t')
            .and_then(|(id, row)| Some((id.parse::<i32>().ok()?, row)))
        else {
            return Err(DbErr::Custom(format!("a group's row reads {line:?}")));
        };
        out.insert(id, row.into());
    }
    Ok(out)
}

/// The one text a statement that packs rows gives (one row of one column, whose parameter is
/// the environment); empty when it packed none (SQL's aggregates give NULL then).
async fn packed_text(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    sql: &str,
    environment: &str,
) -> Result<String, DbErr> {
    let rows = of_environment(txn, backend, sql, environment).await?;
    Ok(match rows.first() {
        Some(row) => row
            .try_get_by_index::<Option<String>>(0)?
            .unwrap_or_default(),
        None => String::new(),
    })
}

/// The rows of a statement whose one parameter is the environment.
async fn of_environment(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    sql: &str,
    environment: &str,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    txn.query_all_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [environment.into()],
    ))
    .await
}

/// The memberships of each group's JSON array, as the groups come.
fn unpack(groups: std::sync::mpsc::Receiver<(i32, String)>) -> Result<Read, DbErr> {
    let mut read = Read::default();
    for (group_id, members) in groups {
        let members: Vec<Packed> = serde_json::from_str(&members)
            .map_err(|e| DbErr::Custom(format!("group {group_id}'s members: {e}")))?;
        for member in members {
            let meta = member.metadata.unwrap_or_default();
            read.push(
                group_id,
                &member.symbol,
                member.weight.and_then(|w| w.0),
                [
                    meta.name.as_deref(),
                    meta.source.as_deref(),
                    meta.industry.as_deref(),
                ],
                meta.country.as_deref(),
            );
        }
    }
    Ok(read)
}

/// The run that last applied a file to each group (by group id), read with the snapshot so it
/// belongs to the same committed state. Only committed runs leave file records (a failed run's
/// are rolled back with its data), and `loaded` is the status of a file that was applied.
async fn loaded_runs(
    txn: &impl ConnectionTrait,
    backend: DbBackend,
    environment: &str,
) -> Result<HashMap<i32, i64>, DbErr> {
    // As one text, `id:run` pairs separated by commas: a driver hands rows over one at a
    // time, which at 100× (3,700 groups) cost more than the statement.
    let runs = "SELECT g.id AS id, MAX(f.run_id) AS run FROM load_run_files f \
                JOIN load_runs r ON r.id = f.run_id \
                JOIN definition_groups g ON g.type = f.group_type AND g.name = f.group_name \
                AND g.environment = r.environment \
                WHERE r.environment = {env} AND f.status = 'loaded' GROUP BY g.id";
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT string_agg(id || ':' || run, ',') FROM ({}) runs",
            runs.replace("{env}", "$1")
        ),
        _ => format!(
            "SELECT group_concat(id || ':' || run, ',') FROM ({}) runs",
            runs.replace("{env}", "?")
        ),
    };
    let packed = packed_text(txn, backend, &sql, environment).await?;
    let mut out = HashMap::new();
    for pair in packed.split(',').filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once(':')
            .and_then(|(id, run)| Some((id.parse::<i32>().ok()?, run.parse::<i64>().ok()?)));
        let Some((id, run)) = parsed else {
            return Err(DbErr::Custom(format!("a group's last run reads {pair:?}")));
        };
        out.insert(id, run);
    }
    Ok(out)
}

/// Gives every stock its current name: the name the most recently loaded files give it.
///
/// Files are ordered by the load run that last applied them (files of one run were loaded
/// together). Among the names the latest run's files give, the one most of them give wins,
/// then one that some file writes in mixed case (providers that shout write `APPLE INC` for
/// `Apple Inc.`), then the first alphabetically. It is shown in its best spelling: names equal
/// but for case, spaces, punctuation and `and`/`&` are one name, and a mixed-case spelling from
/// any file is preferred, then the most recent. Providers that write capitals also abbreviate,
/// so a name in capitals is shown in the mixed-case spelling of a name that extends it or
/// starts with the same word, if a file has one (`NAVITAS SEMICONDUCTOR CORP` as `Navitas
/// Semiconductor Corp. Class A`, `ORMAT TECH INC` as `Ormat Technologies Inc.`; never
/// `META PLATFORMS INC CLASS A` as `Facebook Inc. Class A`). Sector memberships hold a name derived from the files (`build-stock-metadata`),
/// used only when no file names the stock.
///
/// One pass over a stock's memberships gathers its distinct names (interned, so a few texts
/// however many files give them); the rules then compare those: O(memberships + distinct
/// names²) with reused buffers.
fn current_names(stocks: &mut [Stock], groups: &[Arc<Group>], spellings: &Spellings, only: &[u32]) {
    let mut namer = Namer::default();
    for &s in only {
        if let Some(stock) = stocks.get_mut(s as usize) {
            namer.name(stock, groups, spellings);
        }
    }
}

/// Names stocks one at a time (see [`current_names`]), its buffers reused from one to the
/// next.
#[derive(Default)]
struct Namer {
    named: Vec<Named>,
    /// (Index into `named` of the name that stands for its spelling, files of the latest run
    /// that give it.)
    tally: Vec<(usize, usize)>,
}

impl Namer {
    /// Sets the stock's current name from its memberships.
    fn name(&mut self, stock: &mut Stock, groups: &[Arc<Group>], spellings: &Spellings) {
        let Self { named, tally } = self;
        named.clear();
        for (position, at) in stock.memberships.iter().enumerate() {
            let group = &groups[at.group as usize];
            let member = &group.members[at.member as usize];
            let (false, Some(name)) = (group.kind == GroupType::Sector, &member.name) else {
                continue;
            };
            let run = group.loaded_run;
            match named.iter_mut().find(|n| Arc::ptr_eq(&n.name, name)) {
                Some(n) if run > n.run => (n.run, n.files, n.first) = (run, 1, position),
                Some(n) if run == n.run => n.files += 1,
                Some(_) => {}
                None => named.push(Named {
                    name: Arc::clone(name),
                    run,
                    files: 1,
                    first: position,
                }),
            }
        }
        let Some(latest) = named.iter().map(|n| n.run).max() else {
            // No file names it: the sector membership's name, if any.
            stock.name = stock.memberships.iter().find_map(|at| {
                let group = &groups[at.group as usize];
                (group.kind == GroupType::Sector)
                    .then(|| group.members[at.member as usize].name.clone())
                    .flatten()
            });
            return;
        };
        // The latest run's names, each spelling counted once, in the order the memberships
        // first give them (the first stands for its spelling).
        let mut latest_named: Vec<usize> = (0..named.len())
            .filter(|&i| named[i].run == latest)
            .collect();
        latest_named.sort_unstable_by_key(|&i| named[i].first);
        tally.clear();
        for i in latest_named {
            let n = &named[i];
            match tally
                .iter_mut()
                .find(|(t, _)| spellings.same(&named[*t].name, &n.name))
            {
                Some(entry) => entry.1 += n.files,
                None => tally.push((i, n.files)),
            }
        }
        let has_mixed = |chosen: &Arc<str>| {
            named
                .iter()
                .any(|n| spellings.mixed(&n.name) && spellings.same(&n.name, chosen))
        };
        let Some(chosen) = tally
            .iter()
            .map(|&(i, files)| (&named[i].name, files))
            .max_by(|(a, ca), (b, cb)| {
                ca.cmp(cb)
                    .then_with(|| has_mixed(a).cmp(&has_mixed(b)))
                    .then_with(|| b.cmp(a))
            })
            .map(|(n, _)| Arc::clone(n))
        else {
            return;
        };
        // How close a spelling is to the chosen name: the same name, a longer form of it, or
        // (for a name in capitals, which providers abbreviate) one with its first word.
        let capitals = !mixed_case(&chosen);
        let closeness = |name: &Arc<str>| {
            if spellings.same(name, &chosen) {
                Some(2)
            } else if capitals && extends(name, &chosen) {
                Some(1)
            } else if capitals && same_first_word(name, &chosen) {
                Some(0)
            } else {
                None
            }
        };
        stock.name = named
            .iter()
            .filter_map(|n| {
                Some((
                    spellings.mixed(&n.name),
                    closeness(&n.name)?,
                    n.run,
                    &n.name,
                ))
            })
            .max_by(|a, b| {
                (a.0, a.1, a.2)
                    .cmp(&(b.0, b.1, b.2))
                    .then_with(|| b.3.cmp(a.3))
            })
            .map(|(_, _, _, n)| Arc::clone(n));
    }
}

/// A distinct name of a stock, as [`current_names`] gathers it.
struct Named {
    name: Arc<str>,
    /// The latest run whose files give it.
    run: i64,
    /// Files of that run that give it.
    files: usize,
    /// Where among the stock's memberships that run's files first give it.
    first: usize,
}

/// What naming compares of each interned name, computed once per distinct text rather than
/// once per comparison (at 100× a stock is named by hundreds of memberships): which names are
/// the same name ([`same_name`], as one id per folded form) and which are in mixed case. Keyed
/// by the address of the interned text.
struct Spellings(Map<usize, (u32, bool)>);

impl Spellings {
    fn new<'a>(names: impl Iterator<Item = &'a Arc<str>>) -> Self {
        let mut ids: Map<String, u32> = Map::default();
        let mut out = Map::default();
        for name in names {
            // Interned: a stock's memberships name it with a few texts, many times each.
            if out.contains_key(&address(name)) {
                continue;
            }
            let next = index_of(ids.len());
            let id = *ids.entry(folded(name).collect()).or_insert(next);
            out.insert(address(name), (id, mixed_case(name)));
        }
        Self(out)
    }

    /// [`same_name`], by id for interned names.
    fn same(&self, a: &Arc<str>, b: &Arc<str>) -> bool {
        Arc::ptr_eq(a, b)
            || match (self.0.get(&address(a)), self.0.get(&address(b))) {
                (Some(x), Some(y)) => x.0 == y.0,
                _ => same_name(a, b),
            }
    }

    /// [`mixed_case`], looked up for interned names.
    fn mixed(&self, name: &Arc<str>) -> bool {
        self.0
            .get(&address(name))
            .map_or_else(|| mixed_case(name), |&(_, mixed)| mixed)
    }
}

fn address(name: &Arc<str>) -> usize {
    Arc::as_ptr(name).cast::<u8>().addr()
}

/// A name's letters and digits, lower-cased, without the word `and` (files write `&` too).
fn folded(name: &str) -> impl Iterator<Item = char> + '_ {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.eq_ignore_ascii_case("and"))
        .flat_map(|word| word.chars().flat_map(char::to_lowercase))
}

/// Whether two names are the same but for case, spaces, punctuation and `and`/`&` (`APPLE
/// INC` and `Apple Inc.`; `ALPHA AND OMEGA` and `Alpha & Omega`).
fn same_name(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b || folded(a).eq(folded(b))
}

/// Whether two names start with the same word, any case, a leading `The` and punctuation
/// aside, one possibly abbreviating the other (`ORMAT TECH INC` and `Ormat Technologies Inc.`,
/// `DICKS SPORTING INC` and `Dick's Sporting Goods Inc.`, `AMER VANGUARD CORP` and `American
/// Vanguard Corp.`; not `META PLATFORMS INC` and `Facebook Inc.`).
fn same_first_word(a: &str, b: &str) -> bool {
    let first = |s: &str| -> String {
        s.split_whitespace()
            .find(|w| !w.eq_ignore_ascii_case("the"))
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (x, y) = (first(a), first(b));
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    !short.is_empty() && long.starts_with(&short) && (short.len() >= 3 || short == long)
}

/// Whether one name, folded like [`same_name`] does, starts with the other (`Navitas
/// Semiconductor Corp. Class A` and `NAVITAS SEMICONDUCTOR CORP`).
fn extends(a: &str, b: &str) -> bool {
    folded(a).zip(folded(b)).all(|(x, y)| x == y)
}

/// Whether a name is written in mixed case (companies write their names so; files that shout
/// write them in capitals).
fn mixed_case(name: &str) -> bool {
    name.chars().any(char::is_lowercase)
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
    fn members_are_unpacked_whatever_form_their_fields_take_and_their_texts_are_shared() {
        let (send, receive) = std::sync::mpsc::channel();
        // SQLite writes weights as text, PostgreSQL as numbers; a hand-edited row may hold a
        // number, a flag or an object where text belongs, and escapes anywhere.
        let first = r#"[["AAPL","7.5",{"name":"Apple Inc.","country":"US","extra":[1,2]}],
            ["CAF\u00c9",null,{"name":"Caf\u00e9 \"Noir\"","source":12,"industry":true}],
            ["MSFT",6,null]]"#;
        let second = r#"[["AAPL",2.25,{"name":"Apple Inc.","source":{"by":"hand"}}],
            ["MSFT",1e1,{"name":null,"country":"XX"}]]"#;
        send.send((1, first.to_owned())).expect("sent");
        send.send((2, second.to_owned())).expect("sent");
        drop(send);
        let read = unpack(receive).expect("unpacked");
        assert_eq!(
            &*read.symbols,
            [Arc::from("AAPL"), "CAFÉ".into(), "MSFT".into()]
        );
        assert_eq!(read.numbers.get("MSFT"), Some(&2));
        let entries: Vec<_> = read
            .entries
            .iter()
            .map(|e| {
                (
                    e.group,
                    &*read.symbols[e.symbol as usize],
                    e.weight,
                    e.name.as_deref(),
                    e.source.as_deref(),
                    e.industry.as_deref(),
                    e.country.and_then(loader::market::country_at),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (
                    1,
                    "AAPL",
                    Some(7.5),
                    Some("Apple Inc."),
                    None,
                    None,
                    Some("US")
                ),
                (
                    1,
                    "CAFÉ",
                    None,
                    Some("Café \"Noir\""),
                    Some("12"),
                    Some("true"),
                    None
                ),
                (1, "MSFT", Some(6.0), None, None, None, None),
                (
                    2,
                    "AAPL",
                    Some(2.25),
                    Some("Apple Inc."),
                    Some(r#"{"by":"hand"}"#),
                    None,
                    None
                ),
                (2, "MSFT", Some(10.0), None, None, None, None),
            ]
        );
        // One copy of a name however many members give it.
        let (a, b) = (&read.entries[0].name, &read.entries[3].name);
        assert!(Arc::ptr_eq(
            a.as_ref().expect("a name"),
            b.as_ref().expect("a name")
        ));

        let (send, receive) = std::sync::mpsc::channel();
        send.send((7, r#"[["AAPL","1",{"name":"x"}"#.to_owned()))
            .expect("sent");
        drop(send);
        let Err(error) = unpack(receive) else {
            panic!("a truncated array was read");
        };
        assert!(error.to_string().contains("group 7's members"), "{error}");
    }

    #[test]
    fn both_directions_are_indexed_and_ordered() {
        let some = |t: &str| Some(t.to_owned());
        let rows: Vec<Row> = vec![
            (
                1,
                "AAPL".into(),
                Some(6.0),
                some("APPLE INC"),
                None,
                None,
                None,
            ),
            (1, "NVDA".into(), Some(7.5), None, None, None, None),
            (2, "AAPL".into(), Some(14.0), None, None, None, None),
            (
                3,
                "AAPL".into(),
                None,
                some("Apple Inc."),
                some("provider"),
                some("Hardware"),
                None,
            ),
            (1, "MSFT".into(), Some(6.0), None, None, None, None),
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
            Some("APPLE INC"),
            "a file's name over the sector's"
        );
        assert_eq!(aapl.sector_source.as_deref(), Some("provider"));
        assert_eq!(aapl.industry.as_deref(), Some("Hardware"));
        assert!(aapl.listed);
        assert_eq!(s.listed.len(), 3);
        assert_eq!(s.version, 7);
    }

    #[test]
    fn a_stock_is_named_by_the_latest_files_in_their_best_spelling() {
        let some = |t: &str| Some(t.to_owned());
        let row = |g: i32, s: &str, name: &str| -> Row {
            (g, s.into(), None, some(name), None, None, None)
        };
        let rows: Vec<Row> = vec![
            // META: Vanguard's files still say Facebook; the universes, loaded last, do not.
            row(1, "META", "Facebook Inc. Class A"),
            row(2, "META", "Facebook Inc. Class A"),
            row(3, "META", "META PLATFORMS INC CLASS A"),
            row(4, "META", "Meta Platforms"),
            row(5, "META", "META PLATFORMS INC CLASS A"),
            row(6, "META", "Meta Platforms Inc."),
            row(7, "META", "Facebook Inc. Class A"),
            // AAPL: the latest file shouts; an older one spells the same name better.
            row(1, "AAPL", "Apple Inc."),
            row(5, "AAPL", "APPLE INC"),
            // XYZ: renamed in the latest file of its ETF, which another ETF has not caught up.
            row(1, "XYZ", "Old Name Corp."),
            row(8, "XYZ", "New Name Corp."),
            // Capitals in the latest file, a fuller mixed-case spelling in an older one.
            row(1, "NVTS", "Navitas Semiconductor Corp. Class A"),
            row(5, "NVTS", "NAVITAS SEMICONDUCTOR CORP"),
            row(1, "AOSL", "Alpha & Omega Semiconductor Ltd."),
            row(5, "AOSL", "ALPHA AND OMEGA SEMICONDUCTOR LTD"),
            row(1, "ORA", "Ormat Technologies Inc."),
            row(5, "ORA", "ORMAT TECH INC"),
            row(1, "HNST", "Honest Co. Inc."),
            row(5, "HNST", "THE HONEST COMPANY INC"),
            // Renamed: the latest file's name in capitals, not an older mixed-case one.
            row(1, "GE", "General Electric Co."),
            row(5, "GE", "GE AEROSPACE"),
            // A stock no file names keeps its sector's name.
            row(7, "QQQQ", "Sector Name Inc."),
        ];
        let loaded: HashMap<i32, i64> = [
            (1, 3),
            (2, 3),
            (3, 3),
            (4, 4),
            (5, 4),
            (6, 2),
            (7, 6),
            (8, 9),
        ]
        .into();
        let s = Snapshot::build(
            1,
            vec![
                group(1, "ETF", "VTI"),
                group(2, "ETF", "VUG"),
                group(3, "ETF", "SPY"),
                group(4, "UNIVERSE", "nasdaq100"),
                group(5, "UNIVERSE", "russell3000"),
                group(6, "THEME", "ai"),
                group(7, "SECTOR", "communication_services"),
                group(8, "ETF", "XLC"),
            ],
            rows,
            &loaded,
            Caches::new(10, &CacheCounters::default()),
        );
        let name = |symbol: &str| {
            s.stock(symbol)
                .and_then(|i| s.stock_at(i).name.as_deref().map(str::to_owned))
        };
        assert_eq!(name("META").as_deref(), Some("Meta Platforms"));
        assert_eq!(name("AAPL").as_deref(), Some("Apple Inc."));
        assert_eq!(name("XYZ").as_deref(), Some("New Name Corp."));
        assert_eq!(name("QQQQ").as_deref(), Some("Sector Name Inc."));
        assert_eq!(name("ORA").as_deref(), Some("Ormat Technologies Inc."));
        assert_eq!(name("HNST").as_deref(), Some("Honest Co. Inc."));
        assert_eq!(name("GE").as_deref(), Some("GE AEROSPACE"));
        assert_eq!(
            name("NVTS").as_deref(),
            Some("Navitas Semiconductor Corp. Class A")
        );
        assert_eq!(
            name("AOSL").as_deref(),
            Some("Alpha & Omega Semiconductor Ltd.")
        );
        assert_eq!(
            s.group(s.find(GroupType::Etf, "XLC").expect("XLC"))
                .loaded_run,
            9
        );
    }

    #[test]
    fn a_groups_fingerprint_follows_its_own_members_only() {
        let rows = |spy_weight: f64, qqq_weight: f64| -> Vec<Row> {
            vec![
                (1, "AAPL".into(), Some(spy_weight), None, None, None, None),
                (2, "AAPL".into(), Some(qqq_weight), None, None, None, None),
            ]
        };
        let build = |rows| {
            Snapshot::from_rows(
                1,
                vec![group(1, "ETF", "SPY"), group(2, "ETF", "QQQ")],
                rows,
                Caches::new(10, &CacheCounters::default()),
            )
        };
        let (a, b, c) = (
            build(rows(6.0, 8.0)),
            build(rows(6.0, 9.0)),
            build(rows(6.5, 9.0)),
        );
        let spy = |s: &Snapshot| s.fingerprint(s.find(GroupType::Etf, "SPY").expect("SPY"));
        assert_eq!(spy(&a), spy(&b), "QQQ's load leaves SPY's fingerprint");
        assert_ne!(spy(&b), spy(&c), "SPY's own reweight changes it");
    }

    #[test]
    fn a_snapshot_built_from_the_previous_one_equals_a_full_build() {
        let caches = || Caches::new(10, &CacheCounters::default());
        let groups = || {
            vec![
                group(1, "ETF", "SPY"),
                group(2, "ETF", "XLK"),
                group(3, "SECTOR", "information_technology"),
                group(4, "SECTOR", "energy"),
            ]
        };
        let text = |t: &str| Some(t.to_owned());
        let row = |g: i32, s: &str, w: f64, name: Option<String>| -> Row {
            (g, s.into(), Some(w), name, None, None, None)
        };
        let sector = |g: i32, s: &str, industry: &str, country: Option<String>| -> Row {
            (
                g,
                s.into(),
                None,
                None,
                text("provider"),
                text(industry),
                country,
            )
        };
        let spy = vec![
            row(1, "AAPL", 6.0, text("APPLE INC")),
            row(1, "XOM", 2.0, text("EXXON MOBIL CORP")),
            row(1, "ZZZ", 0.5, None),
        ];
        let xlk = vec![
            row(2, "AAPL", 14.0, text("Apple Inc.")),
            row(2, "MSFT", 12.0, None),
        ];
        let sectors = vec![
            sector(3, "AAPL", "Hardware", None),
            sector(3, "MSFT", "Software", None),
            sector(4, "XOM", "Oil", text("United States")),
        ];
        let before: Vec<Row> = [spy.clone(), xlk, sectors.clone()].concat();
        let loaded: HashMap<i32, i64> = [(1, 1), (2, 2), (3, 1), (4, 1)].into();
        let old = Snapshot::build(1, groups(), before, &loaded, caches());

        // XLK reweights and renames Apple, drops Microsoft (still in its sector, no longer
        // listed) and takes Exxon, whose file gives another country; the energy sector
        // changes Exxon's industry.
        let xlk = vec![
            row(2, "AAPL", 15.0, text("Apple Incorporated")),
            (2, "XOM".into(), Some(1.0), None, None, None, text("Canada")),
        ];
        let energy = vec![sector(4, "XOM", "Integrated Oil", text("United States"))];
        let loaded: HashMap<i32, i64> = [(1, 1), (2, 3), (3, 1), (4, 3)].into();
        let after: Vec<Row> = [
            spy.clone(),
            xlk.clone(),
            sectors[..2].to_vec(),
            energy.clone(),
        ]
        .concat();
        let full = Snapshot::build(2, groups(), after, &loaded, caches());
        let changed: Vec<Row> = [xlk.clone(), energy].concat();
        let Ok(built) = Snapshot::update(
            &old,
            2,
            groups(),
            Read::of_rows(changed),
            &[2, 4],
            &loaded,
            caches(),
        ) else {
            panic!("no group or stock came or went: built from the previous snapshot");
        };
        assert_eq!(format!("{built:?}"), format!("{full:?}"));
        assert_ne!(format!("{built:?}"), format!("{old:?}"));
        assert_eq!(built.groups_read, 2);
        let spy_of =
            |s: &Snapshot| s.groups[s.find(GroupType::Etf, "SPY").expect("SPY") as usize].clone();
        assert!(Arc::ptr_eq(&spy_of(&built), &spy_of(&old)), "SPY is shared");
        let stock = |s: &Snapshot, symbol: &str| s.stock_at(s.stock(symbol).expect(symbol)).clone();
        assert_eq!(
            stock(&built, "AAPL").name.as_deref(),
            Some("Apple Incorporated")
        );
        assert!(!stock(&built, "MSFT").listed);
        assert_eq!(
            stock(&built, "XOM").country,
            Some("CA"),
            "the lower group id's"
        );
        assert_eq!(
            stock(&built, "XOM").industry.as_deref(),
            Some("Integrated Oil")
        );

        // A new stock, or a stock gone, moves every index after it: not built from the
        // previous snapshot.
        let new_stock = [xlk.clone(), vec![row(2, "NVDA", 9.0, None)]].concat();
        assert!(
            Snapshot::update(
                &old,
                2,
                groups(),
                Read::of_rows(new_stock),
                &[2],
                &loaded,
                caches()
            )
            .is_err()
        );
        let gone = spy[..2].to_vec();
        assert!(
            Snapshot::update(
                &old,
                2,
                groups(),
                Read::of_rows(gone),
                &[1],
                &loaded,
                caches()
            )
            .is_err()
        );
        let fewer_groups = groups()[..3].to_vec();
        assert!(
            Snapshot::update(
                &old,
                2,
                fewer_groups,
                Read::default(),
                &[],
                &loaded,
                caches()
            )
            .is_err()
        );
    }

    /// Runs `build` with builds going parallel from `from` memberships on this thread.
    fn parallel_from<T>(from: usize, build: impl FnOnce() -> T) -> T {
        let before = PARALLEL_FROM.replace(from);
        let out = build();
        PARALLEL_FROM.set(before);
        out
    }

    #[test]
    fn work_split_over_threads_visits_every_item_once_in_runs_of_about_equal_cost() {
        // (Own index, cost, times visited, index the run said it had.)
        let mut items: Vec<(usize, usize, usize, usize)> =
            (0..1_000).map(|i| (i, 1 + i % 7, 0, usize::MAX)).collect();
        let runs = std::sync::Mutex::new(Vec::new());
        parallel_from(0, || {
            in_parallel(
                &mut items,
                |item| item.1,
                |first, run| {
                    for (i, item) in run.iter_mut().enumerate() {
                        item.2 += 1;
                        item.3 = first + i;
                    }
                    let cost: usize = run.iter().map(|item| item.1).sum();
                    runs.lock().expect("runs").push(cost);
                },
            );
        });
        assert!(items.iter().all(|item| item.2 == 1), "each item once");
        assert!(items.iter().all(|item| item.3 == item.0), "at its index");
        let runs = runs.into_inner().expect("runs");
        let total: usize = items.iter().map(|item| item.1).sum();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(runs.iter().sum::<usize>(), total);
        assert!(
            (threads.min(2)..=threads).contains(&runs.len()),
            "a run per core: {runs:?}"
        );
        assert!(
            runs.iter().all(|&cost| cost <= total.div_ceil(threads) + 7),
            "runs of about equal cost: {runs:?}"
        );
    }

    #[test]
    fn a_build_on_several_threads_equals_one_on_one_thread_whatever_the_rows_order() {
        // Funds and sectors over 300 stocks: weights with ties and gaps, names that differ
        // between files and runs, sector fields and countries, so that ordering, naming and
        // the sector rules all have something to decide.
        let mut groups = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut loaded = HashMap::new();
        for g in 0..40 {
            let id = g + 1;
            let sector = g % 5 == 0;
            groups.push(group(
                id,
                if sector { "SECTOR" } else { "ETF" },
                &format!("g{:02}", (g * 17) % 40),
            ));
            loaded.insert(id, i64::from(g % 3));
            for s in (0..300).filter(|s| (s + g) % 3 != 0) {
                let symbol = format!("S{:03}", (s * 7) % 300);
                let name = match (s + g) % 4 {
                    0 => None,
                    1 => Some(format!("COMPANY {s} INC")),
                    2 => Some(format!("Company {s} Inc.")),
                    _ => Some(format!("COMPANY {s}")),
                };
                rows.push(if sector {
                    (
                        id,
                        symbol,
                        None,
                        name,
                        Some(format!("source {g}")),
                        Some(format!("industry {}", s % 11)),
                        (s % 2 == 0).then(|| "United States".to_owned()),
                    )
                } else {
                    (
                        id,
                        symbol,
                        (s % 13 != 0).then(|| f64::from((s * g) % 17) / 4.0),
                        name,
                        None,
                        None,
                        (s % 5 == 0).then(|| "Canada".to_owned()),
                    )
                });
            }
        }
        let build = |from: usize, rows: Vec<Row>| {
            let snapshot = parallel_from(from, || {
                Snapshot::build(
                    3,
                    groups.clone(),
                    rows,
                    &loaded,
                    Caches::new(10, &CacheCounters::default()),
                )
            });
            format!("{snapshot:?}")
        };
        let one = build(usize::MAX, rows.clone());
        assert!(one.contains("listed true"), "some stocks are listed");
        assert!(one.contains("\"Company"), "some stocks are named");
        assert_eq!(build(0, rows.clone()), one, "several threads");
        // Rows in (group, symbol) order, as SQLite gives them: the same snapshot.
        let mut ordered = rows.clone();
        ordered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(build(0, ordered), one, "rows in (group, symbol) order");
        // Rows in another order (as PostgreSQL may give them): the same snapshot.
        let mut shuffled = rows;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for i in (1..shuffled.len()).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let j = usize::try_from(state >> 33).expect("fits") % (i + 1);
            shuffled.swap(i, j);
        }
        assert_eq!(
            build(0, shuffled.clone()),
            one,
            "rows shuffled, several threads"
        );
        assert_eq!(
            build(usize::MAX, shuffled),
            one,
            "rows shuffled, one thread"
        );
    }
}
