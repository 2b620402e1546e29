//! Search over one snapshot: stocks by symbol and name, groups by key, display name and
//! description, case-insensitive, by prefix and by substring.
//!
//! The index is built once per snapshot, on first use (see [`crate::snapshot::Snapshot::search`]):
//! every searchable field lower-cased into one text, and three sorted arrays of positions in
//! it (suffix arrays): the symbols and group keys, the starts of words of names, and every
//! position of every field. A query is a binary search in each array it needs, so it costs
//! O(|query| · log N + k log k) for the k matches of the tiers it reads, and never looks at a
//! name that does not match.
//!
//! Ranking, best first:
//! 1. `EXACT`: a stock's symbol or a group's key equals the text (`aapl`, `spy`, `energy`);
//! 2. `SYMBOL_PREFIX`: a symbol or key starts with it;
//! 3. `NAME_WORD`: a word of a name starts with it (a stock's name; a group's display name, or
//!    an ETF's or universe's fund or index name);
//! 4. `SUBSTRING`: a symbol, key or name contains it anywhere else;
//! 5. `DESCRIPTION`: a sector's or theme's description contains it.
//!
//! An item is ranked by its best match. Within a tier groups come first (most members first),
//! then stocks by their total weight across ETFs (the most held first), then by how many
//! groups hold them, then alphabetically.

use std::collections::HashSet;

use entity::GroupType;

use crate::snapshot::Snapshot;

/// What a hit is: a group or a stock, by index in the snapshot. Groups order before stocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    Group(u32),
    Stock(u32),
}

/// Which field of an item matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A stock's symbol or a group's key.
    Symbol,
    /// A stock's name, a group's display name, an ETF's or universe's fund or index name.
    Name,
    /// A sector's or theme's description.
    Description,
}

/// How well a hit matched, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Exact,
    SymbolPrefix,
    NameWord,
    Substring,
    Description,
}

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub item: Item,
    pub tier: Tier,
    pub field: FieldKind,
}

#[derive(Debug)]
struct Field {
    item: Item,
    kind: FieldKind,
    start: u32,
    end: u32,
}

/// The search index of one snapshot.
#[derive(Debug, Default)]
pub struct Index {
    /// Every field lower-cased, each followed by `\0` (which no query holds).
    text: String,
    /// The fields, in text order.
    fields: Vec<Field>,
    /// Symbol and key fields (by field id), sorted by their text.
    keys: Vec<u32>,
    /// Word starts of name fields, sorted by the text from there.
    words: Vec<u32>,
    /// Every position of symbol, key and name fields, sorted by the text from there.
    anywhere: Vec<u32>,
    /// Every position of descriptions, sorted by the text from there.
    described: Vec<u32>,
    /// Each group's fields, as a range of field ids.
    group_fields: Vec<(u32, u32)>,
    /// Each stock's name field id (`u32::MAX` when it has no name).
    stock_name: Vec<u32>,
    /// Each stock's total weight across the ETFs holding it.
    stock_weight: Vec<f64>,
    /// How many ETFs hold each stock.
    etf_count: Vec<u32>,
    /// Each stock's place in name order (lower-cased name, nameless last, then symbol).
    name_rank: Vec<u32>,
}

impl Index {
    /// Builds the index of a snapshot: O(T log T) for T characters of text.
    pub fn build(snap: &Snapshot) -> Self {
        let mut index = Self::default();
        for (g, group) in snap.groups.iter().enumerate() {
            let item = Item::Group(to_u32(g));
            let first = to_u32(index.fields.len());
            index.push(item, FieldKind::Symbol, &group.model.name);
            let display = group
                .model
                .metadata
                .as_ref()
                .and_then(|m| m["display_name"].as_str());
            if let Some(display) = display {
                index.push(item, FieldKind::Name, display);
            }
            if let Some(description) = &group.model.description {
                let kind = match group.kind {
                    GroupType::Etf | GroupType::Universe => FieldKind::Name,
                    GroupType::Sector | GroupType::Theme => FieldKind::Description,
                };
                index.push(item, kind, description);
            }
            index
                .group_fields
                .push((first, to_u32(index.fields.len()) - first));
        }
        index.stock_name = vec![u32::MAX; snap.stocks.len()];
        index.stock_weight = vec![0.0; snap.stocks.len()];
        index.etf_count = vec![0; snap.stocks.len()];
        for (s, stock) in snap.stocks.iter().enumerate() {
            let item = Item::Stock(to_u32(s));
            index.push(item, FieldKind::Symbol, &stock.symbol);
            if let Some(name) = &stock.name {
                index.stock_name[s] = to_u32(index.fields.len());
                index.push(item, FieldKind::Name, name);
            }
            for &at in stock.memberships.iter() {
                if snap.group(at.group).kind == GroupType::Etf {
                    index.etf_count[s] += 1;
                    index.stock_weight[s] += snap.member(at).weight.unwrap_or(0.0);
                }
            }
        }

        let text = index.text.as_bytes();
        index.keys = (0..to_u32(index.fields.len()))
            .filter(|&f| index.fields[f as usize].kind == FieldKind::Symbol)
            .collect();
        index.keys.sort_unstable_by(|&a, &b| {
            let (a, b) = (&index.fields[a as usize], &index.fields[b as usize]);
            text[a.start as usize..a.end as usize].cmp(&text[b.start as usize..b.end as usize])
        });
        for field in &index.fields {
            for (offset, c) in index.text[field.start as usize..field.end as usize].char_indices() {
                let at = field.start + to_u32(offset);
                match field.kind {
                    FieldKind::Description => index.described.push(at),
                    FieldKind::Symbol => index.anywhere.push(at),
                    FieldKind::Name => {
                        index.anywhere.push(at);
                        let word_start = index.text[field.start as usize..at as usize]
                            .chars()
                            .next_back()
                            .is_none_or(|before| !before.is_alphanumeric());
                        if word_start && c.is_alphanumeric() {
                            index.words.push(at);
                        }
                    }
                }
            }
        }
        for positions in [&mut index.words, &mut index.anywhere, &mut index.described] {
            positions.sort_unstable_by(|&a, &b| text[a as usize..].cmp(&text[b as usize..]));
        }

        let mut by_name: Vec<u32> = (0..to_u32(snap.stocks.len())).collect();
        by_name.sort_by(|&a, &b| index.name_key(a).cmp(&index.name_key(b)).then(a.cmp(&b)));
        index.name_rank = vec![0; by_name.len()];
        for (rank, &s) in by_name.iter().enumerate() {
            index.name_rank[s as usize] = to_u32(rank);
        }
        index
    }

    fn push(&mut self, item: Item, kind: FieldKind, value: &str) {
        let start = to_u32(self.text.len());
        self.text.extend(
            value
                .chars()
                .filter(|&c| c != '\0')
                .flat_map(char::to_lowercase),
        );
        let end = to_u32(self.text.len());
        self.text.push('\0');
        self.fields.push(Field {
            item,
            kind,
            start,
            end,
        });
    }

    fn field_text(&self, field: &Field) -> &str {
        &self.text[field.start as usize..field.end as usize]
    }

    /// The field a text position belongs to.
    fn field_at(&self, position: u32) -> &Field {
        let i = self.fields.partition_point(|f| f.start <= position);
        &self.fields[i.saturating_sub(1)]
    }

    /// The run of `sorted` (positions or, with `of_field`, field ids) whose text starts with
    /// `needle`: two binary searches.
    fn range<'a>(&self, sorted: &'a [u32], needle: &str, of_field: bool) -> &'a [u32] {
        let text = self.text.as_bytes();
        let needle = needle.as_bytes();
        let from = |x: u32| {
            let start = if of_field {
                self.fields[x as usize].start
            } else {
                x
            };
            &text[start as usize..]
        };
        let lo = sorted.partition_point(|&x| from(x) < needle);
        let hi = sorted.partition_point(|&x| {
            let suffix = from(x);
            &suffix[..suffix.len().min(needle.len())] <= needle
        });
        &sorted[lo..hi.max(lo)]
    }

    /// The items matching `query`, best first (see the module's ranking), at most `limit`, of
    /// those `want` keeps. An empty query matches nothing.
    pub fn search(
        &self,
        snap: &Snapshot,
        query: &str,
        want: impl Fn(Item) -> bool,
        limit: usize,
    ) -> Vec<Hit> {
        let needle = normalise(query);
        let mut out: Vec<Hit> = Vec::new();
        if needle.is_empty() || limit == 0 {
            return out;
        }
        let mut taken: HashSet<Item> = HashSet::new();
        let mut tier = |candidates: &mut Vec<Hit>, out: &mut Vec<Hit>| {
            candidates.retain(|h| want(h.item) && !taken.contains(&h.item));
            candidates.sort_by(|a, b| {
                self.importance(snap, a.item, b.item)
                    .then(a.tier.cmp(&b.tier))
            });
            candidates.dedup_by_key(|h| h.item);
            for hit in candidates.drain(..) {
                if out.len() == limit {
                    break;
                }
                taken.insert(hit.item);
                out.push(hit);
            }
        };

        // Exact, then prefix, of symbols and keys.
        let keys = self.range(&self.keys, &needle, true);
        let mut candidates: Vec<Hit> = keys
            .iter()
            .map(|&f| &self.fields[f as usize])
            .filter(|f| (f.end - f.start) as usize == needle.len())
            .map(|f| hit(f, Tier::Exact))
            .collect();
        if let Ok(symbol) = loader::symbol::Symbol::parse(query)
            && let Some(s) = snap.stock(symbol.as_str())
        {
            // Another spelling of a symbol (`brk-b`) is exact too.
            candidates.push(Hit {
                item: Item::Stock(s),
                tier: Tier::Exact,
                field: FieldKind::Symbol,
            });
        }
        tier(&mut candidates, &mut out);
        if out.len() < limit {
            candidates.extend(
                keys.iter()
                    .map(|&f| hit(&self.fields[f as usize], Tier::SymbolPrefix)),
            );
            tier(&mut candidates, &mut out);
        }
        if out.len() < limit {
            let words = self.range(&self.words, &needle, false);
            candidates.extend(words.iter().map(|&p| hit(self.field_at(p), Tier::NameWord)));
            tier(&mut candidates, &mut out);
        }
        if out.len() < limit {
            let anywhere = self.range(&self.anywhere, &needle, false);
            candidates.extend(
                anywhere
                    .iter()
                    .map(|&p| hit(self.field_at(p), Tier::Substring)),
            );
            tier(&mut candidates, &mut out);
        }
        if out.len() < limit {
            let described = self.range(&self.described, &needle, false);
            candidates.extend(
                described
                    .iter()
                    .map(|&p| hit(self.field_at(p), Tier::Description)),
            );
            tier(&mut candidates, &mut out);
        }
        out
    }

    /// Orders two items of one tier: groups first, most members first; stocks by total ETF
    /// weight, then by how many groups hold them; then by key or symbol.
    fn importance(&self, snap: &Snapshot, a: Item, b: Item) -> std::cmp::Ordering {
        match (a, b) {
            (Item::Group(x), Item::Group(y)) => {
                let (gx, gy) = (snap.group(x), snap.group(y));
                gy.members
                    .len()
                    .cmp(&gx.members.len())
                    .then_with(|| gx.model.name.cmp(&gy.model.name))
                    .then(x.cmp(&y))
            }
            (Item::Stock(x), Item::Stock(y)) => {
                let (wx, wy) = (self.stock_weight[x as usize], self.stock_weight[y as usize]);
                wy.total_cmp(&wx)
                    .then_with(|| {
                        let count = |s: u32| snap.stock_at(s).memberships.len();
                        count(y).cmp(&count(x))
                    })
                    .then(x.cmp(&y))
            }
            _ => a.cmp(&b),
        }
    }

    /// The stocks whose name contains `needle` (any case), in symbol order: one binary search
    /// and the k matches.
    pub fn stocks_named(&self, needle: &str) -> Vec<u32> {
        let needle = normalise(needle);
        let mut out: Vec<u32> = self
            .range(&self.anywhere, &needle, false)
            .iter()
            .map(|&p| self.field_at(p))
            .filter(|f| f.kind == FieldKind::Name)
            .filter_map(|f| match f.item {
                Item::Stock(s) => Some(s),
                Item::Group(_) => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether a group's key, display name or fund name (`names`), or its description
    /// (`description`), contains a text (any case). Either may be `None` (not asked).
    pub fn group_matches(
        &self,
        group: u32,
        names: Option<&str>,
        description: Option<&str>,
    ) -> bool {
        let (first, count) = self.group_fields[group as usize];
        let fields = &self.fields[first as usize..(first + count) as usize];
        let has = |needle: &str, kinds: &[FieldKind]| {
            let needle = normalise(needle);
            fields
                .iter()
                .filter(|f| kinds.contains(&f.kind))
                .any(|f| self.field_text(f).contains(needle.as_str()))
        };
        names.is_none_or(|n| has(n, &[FieldKind::Symbol, FieldKind::Name]))
            && description.is_none_or(|d| has(d, &[FieldKind::Name, FieldKind::Description]))
    }

    /// A stock's lower-cased name, `None` when it has none.
    pub fn lower_name(&self, stock: u32) -> Option<&str> {
        let f = *self.stock_name.get(stock as usize)?;
        (f != u32::MAX).then(|| self.field_text(&self.fields[f as usize]))
    }

    /// The key stocks are ordered by in name order: named first, by lower-cased name.
    pub fn name_key(&self, stock: u32) -> (bool, &str) {
        match self.lower_name(stock) {
            Some(name) => (false, name),
            None => (true, ""),
        }
    }

    /// A stock's place in name order.
    pub fn name_rank(&self, stock: u32) -> u32 {
        self.name_rank
            .get(stock as usize)
            .copied()
            .unwrap_or(u32::MAX)
    }

    /// How many ETFs hold a stock.
    pub fn etf_count(&self, stock: u32) -> u32 {
        self.etf_count.get(stock as usize).copied().unwrap_or(0)
    }
}

fn hit(field: &Field, tier: Tier) -> Hit {
    Hit {
        item: field.item,
        tier,
        field: field.kind,
    }
}

/// A query as the index holds text: trimmed and lower-cased, without `\0`.
fn normalise(query: &str) -> String {
    query
        .trim()
        .chars()
        .filter(|&c| c != '\0')
        .flat_map(char::to_lowercase)
        .collect()
}

fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheCounters, Caches};
    use crate::snapshot::Row;

    fn group(
        id: i32,
        kind: &str,
        name: &str,
        description: Option<&str>,
        display: Option<&str>,
    ) -> entity::definition_group::Model {
        let at = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
        entity::definition_group::Model {
            id,
            name: name.into(),
            group_type: kind.into(),
            description: description.map(Into::into),
            metadata: display.map(|d| serde_json::json!({ "display_name": d })),
            environment: "DEFAULT".into(),
            created_at: at,
            updated_at: at,
        }
    }

    fn snapshot() -> Snapshot {
        let row = |g: i32, s: &str, w: Option<f64>, name: &str| -> Row {
            (g, s.into(), w, Some(name.into()), None, None, None)
        };
        Snapshot::from_rows(
            1,
            vec![
                group(1, "ETF", "SPY", Some("SPDR S&P 500 ETF Trust"), None),
                group(2, "ETF", "SOXX", Some("iShares Semiconductor ETF"), None),
                group(
                    3,
                    "SECTOR",
                    "information_technology",
                    Some("Software, services and semiconductors."),
                    Some("Information Technology"),
                ),
            ],
            vec![
                row(1, "AAPL", Some(7.0), "Apple Inc."),
                row(1, "APLE", Some(0.01), "Apple Hospitality REIT Inc."),
                row(1, "PINEAPPLE", Some(0.02), "Pineapple Energy"),
                row(1, "ON", Some(0.1), "ON Semiconductor Corp."),
                row(2, "ON", Some(3.0), "ON Semiconductor Corp."),
                row(2, "NVDA", Some(9.0), "NVIDIA Corp."),
                row(1, "AP", Some(0.03), "Air Products"),
            ],
            Caches::new(10, &CacheCounters::default()),
        )
    }

    fn found(snap: &Snapshot, query: &str) -> Vec<(String, Tier)> {
        snap.search()
            .search(snap, query, |_| true, 10)
            .into_iter()
            .map(|h| {
                let name = match h.item {
                    Item::Stock(s) => snap.stock_at(s).symbol.to_string(),
                    Item::Group(g) => snap.group(g).model.name.clone(),
                };
                (name, h.tier)
            })
            .collect()
    }

    #[test]
    fn an_exact_symbol_then_symbol_prefixes_then_name_words_then_substrings() {
        let snap = snapshot();
        let got = found(&snap, "Apple");
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        // AAPL before APLE: both names start with the word, AAPL weighs more.
        assert_eq!(names, ["AAPL", "APLE", "PINEAPPLE"], "{got:?}");
        assert_eq!(got[0].1, Tier::NameWord);
        assert_eq!(got[2].1, Tier::Substring);

        let got = found(&snap, "ap");
        assert_eq!(got[0], ("AP".to_owned(), Tier::Exact), "{got:?}");
        assert_eq!(got[1], ("APLE".to_owned(), Tier::SymbolPrefix), "{got:?}");
    }

    #[test]
    fn semicon_finds_the_stocks_the_etf_and_the_sector_that_describes_it() {
        let snap = snapshot();
        let got = found(&snap, "semicon");
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        // The ETF (a group, by its fund name) first in its tier, then the stock; the sector's
        // description last.
        assert_eq!(names, ["SOXX", "ON", "information_technology"], "{got:?}");
        assert_eq!(got[2].1, Tier::Description);
    }

    #[test]
    fn name_filters_and_group_filters_read_the_index() {
        let snap = snapshot();
        let index = snap.search();
        let named: Vec<&str> = index
            .stocks_named("APPLE")
            .into_iter()
            .map(|s| &*snap.stock_at(s).symbol)
            .collect();
        assert_eq!(named, ["AAPL", "APLE", "PINEAPPLE"]);
        let it = snap
            .find(GroupType::Sector, "information_technology")
            .expect("sector");
        assert!(index.group_matches(it, Some("technology"), None));
        assert!(index.group_matches(it, None, Some("SEMICON")));
        assert!(!index.group_matches(it, Some("semicon"), None));
        assert!(found(&snap, "  ").is_empty());
    }
}
