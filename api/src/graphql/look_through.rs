//! Look-through: a portfolio of ETF positions seen as the stocks, sectors or countries it
//! holds through them, with each ETF's contribution.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use entity::GroupType;

use super::error::bad_input;
use super::group::{Group, resolve_reference};
use super::stock::Stock;
use super::{round_sum as round, snapshot};
use crate::snapshot::Snapshot;

/// Most positions a portfolio may have.
const MAX_POSITIONS: usize = 50;

/// One position of a portfolio: an amount held in a weighted group (an ETF).
#[derive(InputObject, Clone)]
pub struct PositionInput {
    /// A group reference (`SPY`, `ETF:VXUS`).
    pub group: String,
    /// The amount held, in any currency unit; the answer's amounts are in the same unit.
    pub amount: f64,
}

/// What a look-through sums by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LookThroughBy {
    /// Each underlying stock (listing).
    Stock,
    /// Each stock's sector (`unknown` when it has none).
    Sector,
    /// Each stock's country (`unknown` when no file names it).
    Country,
}

/// What one position contributes to an entry.
#[derive(SimpleObject, Clone)]
pub struct Contribution {
    /// The position's group.
    pub group: Group,
    /// The amount of the position that is in this entry.
    pub amount: f64,
}

/// One stock, sector or country the portfolio holds through its positions.
#[derive(Clone)]
pub struct LookThroughEntry {
    key: String,
    display_name: Option<String>,
    stock: Option<Stock>,
    sector: Option<Group>,
    amount: f64,
    total: f64,
    contributions: Vec<(Group, f64)>,
}

/// One stock, sector or country the portfolio holds through its positions.
#[Object]
impl LookThroughEntry {
    /// The stock's symbol, the sector's key or the country's ISO code (`unknown` when none).
    async fn key(&self) -> &str {
        &self.key
    }

    /// The stock's, sector's or country's name.
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The stock, when the look-through is by stock.
    async fn stock(&self) -> Option<&Stock> {
        self.stock.as_ref()
    }

    /// The sector group, when the look-through is by sector and the sector is known.
    async fn sector(&self) -> Option<&Group> {
        self.sector.as_ref()
    }

    /// The amount held in it, all positions together.
    async fn amount(&self) -> f64 {
        round(self.amount)
    }

    /// That amount in percent of the portfolio's total.
    async fn percent(&self) -> f64 {
        if self.total > 0.0 {
            round(self.amount / self.total * 100.0)
        } else {
            0.0
        }
    }

    /// Each position's part of the amount, largest first.
    async fn contributions(&self) -> Vec<Contribution> {
        self.contributions
            .iter()
            .map(|(group, amount)| Contribution {
                group: group.clone(),
                amount: round(*amount),
            })
            .collect()
    }
}

/// A portfolio seen through its ETFs.
#[derive(SimpleObject)]
pub struct LookThrough {
    /// The positions' amounts summed.
    pub total: f64,
    /// What the funds' listed weights do not cover (cash, derivatives, rounding): the total
    /// less every entry.
    pub unallocated: f64,
    /// Entries in the answer, all pages together.
    pub total_count: usize,
    /// The largest entries first.
    pub entries: Vec<LookThroughEntry>,
}

#[derive(Default)]
pub struct LookThroughQuery;

#[Object]
impl LookThroughQuery {
    /// A portfolio of ETF positions seen through to what the ETFs hold: each underlying stock,
    /// sector or country with the amount held in it and every position's contribution.
    #[graphql(
        complexity = "200 * holdings.len() + first.unwrap_or(50).max(0) as usize * child_complexity"
    )]
    async fn look_through(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The positions: a weighted group (an ETF) and an amount each.")]
        holdings: Vec<PositionInput>,
        #[graphql(desc = "Sum by stock, sector or country.")] by: LookThroughBy,
        #[graphql(desc = "At most this many entries, largest first (default 50).")] first: Option<
            i32,
        >,
    ) -> async_graphql::Result<LookThrough> {
        if holdings.is_empty() || holdings.len() > MAX_POSITIONS {
            return Err(bad_input(format!(
                "holdings: give between 1 and {MAX_POSITIONS} positions"
            )));
        }
        let snap = snapshot(ctx)?;
        let mut positions = Vec::with_capacity(holdings.len());
        for position in &holdings {
            if !position.amount.is_finite() || position.amount < 0.0 {
                return Err(bad_input(format!(
                    "holdings: the amount of {} must be a number of zero or more",
                    position.group
                )));
            }
            let group = resolve_reference(ctx, &position.group)?;
            let (_, data) = group.snapshot_group();
            if data.kind != GroupType::Etf || data.members.iter().all(|m| m.weight.is_none()) {
                return Err(bad_input(format!(
                    "holdings: {} has no weights to look through (an ETF is needed)",
                    position.group
                )));
            }
            positions.push((group, position.amount));
        }
        let first = usize::try_from(first.unwrap_or(50)).unwrap_or(0);
        Ok(compute(&snap, &positions, by, first))
    }
}

/// Sums every position's members by the key `by` asks for.
fn compute(
    snap: &Arc<Snapshot>,
    positions: &[(Group, f64)],
    by: LookThroughBy,
    first: usize,
) -> LookThrough {
    let total: f64 = positions.iter().map(|(_, amount)| amount).sum();
    // Key → (amount, contribution per position).
    let mut sums: HashMap<EntryKey, (f64, Vec<f64>)> = HashMap::new();
    for (p, (group, amount)) in positions.iter().enumerate() {
        let (_, data) = group.snapshot_group();
        for member in &data.members {
            let Some(weight) = member.weight else {
                continue;
            };
            let part = amount * weight / 100.0;
            let stock = snap.stock_at(member.stock);
            let key = match by {
                LookThroughBy::Stock => EntryKey::Stock(member.stock),
                LookThroughBy::Sector => EntryKey::Sector(stock.sector),
                LookThroughBy::Country => EntryKey::Country(stock.country),
            };
            let entry = sums
                .entry(key)
                .or_insert_with(|| (0.0, vec![0.0; positions.len()]));
            entry.0 += part;
            entry.1[p] += part;
        }
    }
    let allocated: f64 = sums.values().map(|(amount, _)| amount).sum();
    let mut entries: Vec<(EntryKey, f64, Vec<f64>)> =
        sums.into_iter().map(|(k, (a, c))| (k, a, c)).collect();
    entries.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| a.0.label(snap).cmp(&b.0.label(snap)))
    });
    let total_count = entries.len();
    let entries = entries
        .into_iter()
        .take(first)
        .map(|(key, amount, parts)| {
            let mut contributions: Vec<(Group, f64)> = positions
                .iter()
                .zip(parts)
                .filter(|(_, part)| *part > 0.0)
                .map(|((group, _), part)| (group.clone(), part))
                .collect();
            contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
            key.entry(snap, amount, total, contributions)
        })
        .collect();
    LookThrough {
        total: round(total),
        unallocated: round(total - allocated),
        total_count,
        entries,
    }
}

/// What one entry is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum EntryKey {
    Stock(u32),
    Sector(Option<u32>),
    Country(Option<&'static str>),
}

impl EntryKey {
    /// The entry's key as the API shows it.
    fn label(&self, snap: &Snapshot) -> String {
        match *self {
            Self::Stock(s) => snap.stock_at(s).symbol.to_string(),
            Self::Sector(Some(g)) => snap.group(g).model.name.clone(),
            Self::Country(Some(code)) => code.to_owned(),
            Self::Sector(None) | Self::Country(None) => "unknown".to_owned(),
        }
    }

    fn entry(
        self,
        snap: &Arc<Snapshot>,
        amount: f64,
        total: f64,
        contributions: Vec<(Group, f64)>,
    ) -> LookThroughEntry {
        let key = self.label(snap);
        let (display_name, stock, sector) = match self {
            Self::Stock(s) => (
                snap.stock_at(s).name.as_deref().map(str::to_owned),
                Some(Stock::new(Arc::clone(snap), s)),
                None,
            ),
            Self::Sector(Some(g)) => (
                snap.group(g)
                    .model
                    .metadata
                    .as_ref()
                    .and_then(|m| m["display_name"].as_str())
                    .map(str::to_owned),
                None,
                Some(Group::new(Arc::clone(snap), g)),
            ),
            Self::Country(Some(code)) => (
                loader::market::country_name(code).map(str::to_owned),
                None,
                None,
            ),
            Self::Sector(None) | Self::Country(None) => (None, None, None),
        };
        LookThroughEntry {
            key,
            display_name,
            stock,
            sector,
            amount,
            total,
            contributions,
        }
    }
}
