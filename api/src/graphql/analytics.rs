//! Analytics and operations read-outs: holders, overlap, exposure, changes, load runs, stats,
//! the report, validation and cache statistics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::GroupType;
use loader::symbol::Symbol;

use super::error::{bad_input, internal};
use super::group::{Group, resolve_reference};
use super::membership::Membership;
use super::stock::Stock;
use super::{page_size, round_sum, snapshot, state};
use crate::cache::{Analytics, CacheStat};

/// Two groups' common holdings.
#[derive(SimpleObject, Clone)]
pub struct Overlap {
    /// The first group asked for.
    pub a: Group,
    /// The second group asked for.
    pub b: Group,
    /// Symbols in both.
    pub common: usize,
    /// Σ min(weight in a, weight in b) over common symbols: the share of a portfolio that is
    /// held by both (percent, rounded to six decimals); null for unweighted groups.
    pub overlap_weight: Option<f64>,
    /// Share of a's weight (or members) that b also holds, percent (six decimals).
    pub a_coverage: f64,
    /// Share of b's weight (or members) that a also holds, percent (six decimals).
    pub b_coverage: f64,
    /// The common holdings, heaviest overlap first.
    pub holdings: Vec<OverlapHolding>,
}

/// One holding two groups share.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct OverlapHolding {
    /// The holding's symbol.
    pub symbol: String,
    /// The stock, by index in the snapshot the overlap was computed from (the request's).
    #[graphql(skip)]
    pub stock: u32,
    /// Its weight in `a` (percent); null when `a` gives none.
    pub weight_a: Option<f64>,
    /// Its weight in `b` (percent); null when `b` gives none.
    pub weight_b: Option<f64>,
}

/// What `exposure` groups by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExposureBy {
    /// The members' sectors.
    Sector,
    /// The themes the members belong to.
    Theme,
    /// The countries of the members' markets (ISO codes; `unknown` when no file names one).
    Country,
}

#[ComplexObject]
impl OverlapHolding {
    /// The stock held, with its name and sector.
    async fn stock(&self, ctx: &Context<'_>) -> async_graphql::Result<Stock> {
        Ok(Stock::new(snapshot(ctx)?, self.stock))
    }
}

/// A group's exposure to one sector or theme.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Exposure {
    /// The sector or theme key, or the country's ISO code.
    pub key: String,
    /// The sector's or theme's display name (`Information Technology`), or the country's name
    /// (`Japan`); the key when it has none.
    pub display_name: String,
    /// Members in it.
    pub members: usize,
    /// Their summed weight (percent, rounded to the providers' precision: six decimals); null
    /// for unweighted groups.
    pub weight: Option<f64>,
    /// The sector or theme group, by index in the request's snapshot; `None` for `unknown`
    /// when no such sector is stored.
    #[graphql(skip)]
    pub group: Option<u32>,
}

#[ComplexObject]
impl Exposure {
    /// The sector or theme itself; null for countries, and for `unknown` when no such sector
    /// is stored.
    async fn group(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Group>> {
        let snap = snapshot(ctx)?;
        Ok(self.group.map(|g| Group::new(snap, g)))
    }
}

/// One recorded run: a load, an organize, an enrichment, a rollback.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct LoadRun {
    /// The run's id (`membership_changes.run_id`).
    pub id: i32,
    /// `etf`, `universe`, `theme`, `sector`, `enrichment`, `stock_metadata`.
    pub kind: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// The one group it was limited to, if any.
    pub scope: Option<String>,
    /// The folder its files came from.
    pub source: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished; null while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, then `succeeded`, `partial` (some inputs rejected or held back, the rest
    /// applied), `rejected` (no input applied), `failed` (a database error: nothing changed) or
    /// `abandoned` (its process died while it ran; marked so by the next writer).
    pub state: String,
    /// Who ran it (`pid 1234 on host`); null for runs recorded before this was kept.
    pub holder: Option<String>,
    /// Input files it considered.
    pub files_total: i32,
    /// Files it read and applied.
    pub files_loaded: i32,
    /// Files skipped because their MD5 matched the last successful load.
    pub files_unchanged: i32,
    /// Files rejected (empty, unreadable, no valid row); their groups kept their data.
    pub files_rejected: i32,
    /// Memberships added.
    pub created: i32,
    /// Memberships whose weight or metadata changed.
    pub updated: i32,
    /// Memberships removed.
    pub deleted: i32,
    /// Input rows skipped with a reason (title, cash, derivative, ...).
    pub skipped: i32,
    /// The data version it committed; null when it changed nothing.
    pub data_version: Option<i64>,
    /// Why it failed; null unless it did.
    pub error: Option<String>,
}

/// Counts of the served data.
#[derive(SimpleObject)]
pub struct Stats {
    /// The environment served (`--environment`).
    pub environment: String,
    /// The data version served.
    pub data_version: i64,
    /// ETF groups.
    pub etfs: usize,
    /// Sector groups (the 11 GICS sectors and `unknown` once organised).
    pub sectors: usize,
    /// Theme groups.
    pub themes: usize,
    /// Universe groups.
    pub universes: usize,
    /// Symbols in an ETF, universe or theme.
    pub stocks: usize,
}

/// Cache statistics.
#[derive(SimpleObject)]
pub struct CacheStats {
    /// The data version the caches hold.
    pub data_version: i64,
    /// One entry per cache: `stock`, `group`, `response`.
    pub caches: Vec<CacheStat>,
    /// SQL statements the read paths issued since the server started.
    pub db_queries: u64,
}

/// One validation check.
#[derive(SimpleObject, Clone)]
pub struct ValidationCheck {
    /// The check's key (`etfs_have_holdings`).
    pub name: String,
    /// What it checks, in a sentence.
    pub description: String,
    /// `PASS`, `WARN` or `FAIL`.
    pub status: String,
    /// How many groups, stocks or memberships offend it.
    pub count: usize,
    /// How many it examined.
    pub examined: usize,
    /// The offending groups or symbols.
    pub items: Vec<String>,
}

/// The validation result.
#[derive(SimpleObject, Clone)]
pub struct ValidationResult {
    /// No check failed.
    pub ok: bool,
    /// Every check, in the order `holdgraph validate` prints them.
    pub checks: Vec<ValidationCheck>,
    /// The console rendering, as `holdgraph validate` prints it.
    pub text: String,
}

/// The data-quality report.
#[derive(SimpleObject, Clone)]
pub struct ReportResult {
    /// The report as JSON, the same numbers as `holdgraph report --format json`.
    pub data: Json<serde_json::Value>,
    /// The console rendering.
    pub text: String,
    /// The Markdown rendering.
    pub markdown: String,
}

/// Analytics root fields.
#[derive(Default)]
pub struct AnalyticsQuery;

impl From<loader::graph::RunSummary> for LoadRun {
    fn from(r: loader::graph::RunSummary) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            mode: r.mode,
            scope: r.scope,
            source: r.source,
            started_at: r.started_at,
            finished_at: r.finished_at,
            state: r.state,
            holder: r.holder,
            files_total: r.files_total,
            files_loaded: r.files_loaded,
            files_unchanged: r.files_unchanged,
            files_rejected: r.files_rejected,
            created: r.created,
            updated: r.updated,
            deleted: r.deleted,
            skipped: r.skipped,
            data_version: r.data_version,
            error: r.error,
        }
    }
}

/// The cached value of an analytics question at this request's snapshot, computed once per
/// version however many ask.
async fn memo<T, F>(
    cache: &crate::cache::Counted<String, Analytics>,
    key: String,
    compute: F,
) -> async_graphql::Result<Arc<T>>
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = async_graphql::Result<T>>,
{
    let value = cache
        .get_or_try(key, async {
            compute
                .await
                .map(|v| Arc::new(v) as Analytics)
                .map_err(|e| e.message)
        })
        .await
        .map_err(|e| internal(e.as_str()))?;
    value
        .downcast::<T>()
        .map_err(|_| internal("an analytics cache entry has another type"))
}

#[Object]
impl AnalyticsQuery {
    /// The ETFs holding a stock, heaviest first; empty when none does.
    async fn holders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The stock, normalised like `stock` does (`brk-b` is `BRK.B`).")]
        symbol: String,
        #[graphql(desc = "At most this many (default all).")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Membership>> {
        let Ok(symbol) = Symbol::parse(&symbol) else {
            return Err(bad_input(format!("{symbol:?} is not a symbol")));
        };
        let limit = page_size(ctx, first, usize::MAX)?;
        let snap = snapshot(ctx)?;
        let Some(stock) = snap.stock(symbol.as_str()) else {
            return Ok(Vec::new());
        };
        Ok(snap
            .stock_at(stock)
            .memberships
            .iter()
            .filter(|at| snap.group(at.group).kind == GroupType::Etf)
            .take(limit)
            .map(|&at| Membership::new(snap.clone(), at))
            .collect())
    }

    /// How much two groups overlap (`overlap(a: "SPY", b: "QQQ")`); computed once per data
    /// version.
    #[graphql(complexity = "200 + first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn overlap(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A group reference (`SPY`, `nasdaq100`, `ETF:SPY`).")] a: String,
        #[graphql(desc = "Another group reference.")] b: String,
        #[graphql(desc = "How many common holdings to list (default 25).")] first: Option<i32>,
    ) -> async_graphql::Result<Overlap> {
        let limit = page_size(ctx, first, 25)?;
        let (ga, gb) = (resolve_reference(ctx, &a)?, resolve_reference(ctx, &b)?);
        let snap = snapshot(ctx)?;
        let key = format!("overlap:{}:{}", ga.index(), gb.index());
        let full = memo(&snap.caches.analytics, key, async {
            Ok(compute_overlap(&ga, &gb))
        })
        .await?;
        let mut out: Overlap = (*full).clone();
        out.holdings.truncate(limit);
        Ok(out)
    }

    /// A group's exposure by sector or theme, heaviest first; computed once per data version.
    #[graphql(complexity = "200 * child_complexity")]
    async fn exposure(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A group reference (`VTI`, `sp500`).")] group: String,
        #[graphql(desc = "Group its members by sector, theme or country.")] by: ExposureBy,
    ) -> async_graphql::Result<Vec<Exposure>> {
        let g = resolve_reference(ctx, &group)?;
        let snap = snapshot(ctx)?;
        let key = format!("exposure:{}:{by:?}", g.index());
        let rows = memo(&snap.caches.analytics, key, async {
            Ok(compute_exposure(&g, by))
        })
        .await?;
        Ok((*rows).clone())
    }

    /// Counts of the served data.
    async fn stats(&self, ctx: &Context<'_>) -> async_graphql::Result<Stats> {
        let state = state(ctx)?;
        let snap = snapshot(ctx)?;
        Ok(Stats {
            environment: state.environment().to_owned(),
            data_version: snap.version,
            etfs: snap.count(GroupType::Etf),
            sectors: snap.count(GroupType::Sector),
            themes: snap.count(GroupType::Theme),
            universes: snap.count(GroupType::Universe),
            stocks: snap.listed.len(),
        })
    }

    /// The data-quality report (`holdgraph report`), with the top 10 holdings of every ETF when
    /// `detail` is true; computed once per data version.
    #[graphql(complexity = 5_000)]
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default,
            desc = "Add each ETF's top 10 holdings and each universe's size."
        )]
        detail: bool,
    ) -> async_graphql::Result<ReportResult> {
        let state = state(ctx)?;
        let snap = snapshot(ctx)?;
        let report = memo(&snap.caches.checks, format!("report:{detail}"), async {
            let sectors = crate::ops::sectors(&state.config).map_err(internal)?;
            state.count_query();
            let (report, _) =
                loader::quality::report(&state.db, state.environment(), &sectors, detail)
                    .await
                    .map_err(internal)?;
            Ok(ReportResult {
                data: Json(serde_json::to_value(&report).map_err(internal)?),
                text: report.render(loader::quality::Format::Console),
                markdown: report.render(loader::quality::Format::Markdown),
            })
        })
        .await?;
        Ok((*report).clone())
    }

    /// The validation checks (`holdgraph validate`); computed once per data version.
    #[graphql(complexity = 5_000)]
    async fn validation(&self, ctx: &Context<'_>) -> async_graphql::Result<ValidationResult> {
        let snap = snapshot(ctx)?;
        let result = memo(
            &snap.caches.checks,
            "validation".to_owned(),
            run_validation(ctx),
        )
        .await?;
        Ok((*result).clone())
    }

    /// Cache hits, misses, hit rate, sizes and loads.
    #[graphql(cache_control(no_cache))]
    async fn cache_stats(&self, ctx: &Context<'_>) -> async_graphql::Result<CacheStats> {
        let state = state(ctx)?;
        let snap = snapshot(ctx)?;
        Ok(CacheStats {
            data_version: snap.version,
            caches: snap.caches.stats(),
            db_queries: state.queries(),
        })
    }
}

/// Two groups' overlap, every common holding listed.
fn compute_overlap(ga: &Group, gb: &Group) -> Overlap {
    let (snap, a) = ga.snapshot_group();
    let (_, b) = gb.snapshot_group();
    let wb: HashMap<u32, Option<f64>> = b.members.iter().map(|m| (m.stock, m.weight)).collect();
    let mut holdings: Vec<OverlapHolding> = a
        .members
        .iter()
        .filter_map(|m| {
            Some(OverlapHolding {
                symbol: snap.symbol_of(m).to_string(),
                stock: m.stock,
                weight_a: m.weight,
                weight_b: *wb.get(&m.stock)?,
            })
        })
        .collect();
    let min = |h: &OverlapHolding| h.weight_a.unwrap_or(0.0).min(h.weight_b.unwrap_or(0.0));
    holdings.sort_by(|x, y| {
        min(y)
            .total_cmp(&min(x))
            .then_with(|| x.symbol.cmp(&y.symbol))
    });
    let weighted = a.total_weight.is_some() && b.total_weight.is_some();
    let coverage =
        |group: &crate::snapshot::Group, common: f64, count: usize| match group.total_weight {
            Some(total) if weighted && total > 0.0 => common * 100.0 / total,
            _ if group.members.is_empty() => 0.0,
            _ => count as f64 * 100.0 / group.members.len() as f64,
        };
    let common_a: f64 = holdings.iter().filter_map(|h| h.weight_a).sum();
    let common_b: f64 = holdings.iter().filter_map(|h| h.weight_b).sum();
    let common = holdings.len();
    Overlap {
        overlap_weight: weighted.then(|| round_sum(holdings.iter().map(min).sum())),
        a_coverage: round_sum(coverage(a, common_a, common)),
        b_coverage: round_sum(coverage(b, common_b, common)),
        common,
        holdings,
        a: ga.clone(),
        b: gb.clone(),
    }
}

/// A group's members summed by their sector or theme, heaviest first.
fn compute_exposure(g: &Group, by: ExposureBy) -> Vec<Exposure> {
    let (snap, group) = g.snapshot_group();
    let want = match by {
        ExposureBy::Sector => GroupType::Sector,
        ExposureBy::Theme => GroupType::Theme,
        ExposureBy::Country => return compute_country_exposure(snap, group),
    };
    // By key: (group index, members, summed weight).
    let mut rows: BTreeMap<&str, (Option<u32>, usize, Option<f64>)> = BTreeMap::new();
    for m in &group.members {
        let stock = snap.stock_at(m.stock);
        let mut keys: Vec<(&str, Option<u32>)> = stock
            .memberships
            .iter()
            .filter(|at| snap.group(at.group).kind == want)
            .map(|at| (snap.group(at.group).model.name.as_str(), Some(at.group)))
            .collect();
        if keys.is_empty() && want == GroupType::Sector {
            keys.push(("unknown", snap.find(GroupType::Sector, "unknown")));
        }
        for (key, index) in keys {
            let row = rows.entry(key).or_insert((index, 0, None));
            row.1 += 1;
            if let Some(w) = m.weight {
                row.2 = Some(row.2.unwrap_or(0.0) + w);
            }
        }
    }
    let mut out: Vec<Exposure> = rows
        .into_iter()
        .map(|(key, (index, members, weight))| Exposure {
            key: key.to_owned(),
            display_name: index
                .and_then(|g| {
                    snap.group(g).model.metadata.as_ref()?["display_name"]
                        .as_str()
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| key.to_owned()),
            members,
            weight: weight.map(round_sum),
            group: index,
        })
        .collect();
    out.sort_by(|x, y| {
        y.weight
            .unwrap_or(0.0)
            .total_cmp(&x.weight.unwrap_or(0.0))
            .then(y.members.cmp(&x.members))
    });
    out
}

/// A group's members summed by the country of their market, heaviest first.
fn compute_country_exposure(
    snap: &crate::snapshot::Snapshot,
    group: &crate::snapshot::Group,
) -> Vec<Exposure> {
    let mut rows: BTreeMap<&str, (usize, Option<f64>)> = BTreeMap::new();
    for m in &group.members {
        let key = snap.stock_at(m.stock).country.unwrap_or("unknown");
        let row = rows.entry(key).or_insert((0, None));
        row.0 += 1;
        if let Some(w) = m.weight {
            row.1 = Some(row.1.unwrap_or(0.0) + w);
        }
    }
    let mut out: Vec<Exposure> = rows
        .into_iter()
        .map(|(key, (members, weight))| Exposure {
            key: key.to_owned(),
            display_name: loader::market::country_name(key).unwrap_or(key).to_owned(),
            members,
            weight: weight.map(round_sum),
            group: None,
        })
        .collect();
    out.sort_by(|x, y| {
        y.weight
            .unwrap_or(0.0)
            .total_cmp(&x.weight.unwrap_or(0.0))
            .then(y.members.cmp(&x.members))
    });
    out
}

/// Runs the validation checks on the served environment.
pub async fn run_validation(ctx: &Context<'_>) -> async_graphql::Result<ValidationResult> {
    let state = state(ctx)?;
    let sectors = crate::ops::sectors(&state.config).map_err(internal)?;
    let v = loader::validate::validate(&state.db, state.environment(), &sectors)
        .await
        .map_err(internal)?;
    Ok(validation_result(&v))
}

/// The GraphQL form of a validation.
fn validation_result(v: &loader::validate::Validation) -> ValidationResult {
    ValidationResult {
        ok: !v.failed(),
        checks: v
            .checks
            .iter()
            .map(|c| ValidationCheck {
                name: c.name.to_owned(),
                description: c.description.to_owned(),
                status: c.status.as_str().to_owned(),
                count: c.count,
                examined: c.examined,
                items: c.items.clone(),
            })
            .collect(),
        text: v.render(true),
    }
}
