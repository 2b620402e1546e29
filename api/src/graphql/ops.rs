//! Typed results of the admin mutations: the structs the operations return
//! ([`crate::ops`]), as GraphQL objects. The CLI renders the same structs, so a mutation's
//! numbers are the CLI's `--json` numbers.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Enum, SimpleObject};
use loader::LoadReport;
use loader::enrich::EnrichReport;
use loader::report::{Counts, FileReport, FileStatus, Totals};

use super::analytics::LoadRun;
use super::dataloader::{RunById, RunLoader};
use super::error::internal;
use super::group::GroupKind;

/// What happened to one input file.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FileOutcome {
    /// Read and applied (possibly with no change).
    Loaded,
    /// Skipped by an incremental load: its MD5 matches the last load of its group.
    Unchanged,
    /// Not applied: unreadable, not holdings, or mostly invalid rows (`reason` says which,
    /// `line` where). Its group kept its data.
    Rejected,
    /// Read, but a guard held it back (it would replace most of the group or move its total
    /// weight; `reason` gives the numbers). Its group kept its data; `force: true` applies it.
    HeldBack,
}

impl From<FileStatus> for FileOutcome {
    fn from(s: FileStatus) -> Self {
        match s {
            FileStatus::Loaded => Self::Loaded,
            FileStatus::Unchanged => Self::Unchanged,
            FileStatus::Rejected => Self::Rejected,
            FileStatus::HeldBack => Self::HeldBack,
        }
    }
}

/// Rows skipped for one reason.
#[derive(SimpleObject, Clone, Debug, PartialEq, Eq)]
pub struct SkipCount {
    /// `title`, `blank`, `cash`, `derivative`, `footer`, `invalid_symbol`, `invalid_weight`,
    /// `duplicate` or `collision`.
    pub reason: String,
    /// How many rows.
    pub count: usize,
}

/// Membership changes, counted.
#[derive(SimpleObject, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeCounts {
    /// Memberships added.
    pub created: usize,
    /// Memberships whose metadata changed (reweighted ones included).
    pub updated: usize,
    /// Memberships whose weight changed.
    pub reweighted: usize,
    /// Memberships removed.
    pub deleted: usize,
    /// Memberships left as they were.
    pub unchanged: usize,
}

impl From<&Counts> for ChangeCounts {
    fn from(c: &Counts) -> Self {
        Self {
            created: c.created,
            updated: c.updated,
            reweighted: c.reweighted,
            deleted: c.deleted,
            unchanged: c.unchanged,
        }
    }
}

fn skip_counts<'a>(
    by_reason: impl IntoIterator<Item = (&'a loader::read::SkipReason, &'a usize)>,
) -> Vec<SkipCount> {
    by_reason
        .into_iter()
        .map(|(reason, count)| SkipCount {
            reason: reason.as_str().to_owned(),
            count: *count,
        })
        .collect()
}

/// One input file's part of a run.
#[derive(SimpleObject, Clone, Debug)]
pub struct FileResult {
    /// The file's name (`spy_holdings.csv`).
    pub file_name: String,
    /// The kind of group it feeds.
    pub group_type: GroupKind,
    /// The group it feeds (`SPY`).
    pub group: String,
    /// The layout recognised (`canonical`, `ishares`, `spdr`, `vanguard`, `universe`), when
    /// the file was read.
    pub shape: Option<String>,
    /// The file's MD5, as recorded in `load_run_files.md5`.
    pub md5: String,
    /// The group's description from the file (the fund's name), when read.
    pub description: Option<String>,
    /// What happened to it.
    pub outcome: FileOutcome,
    /// Why it was rejected or held back, naming the file, the line where there is one, and
    /// the guard's numbers.
    pub reason: Option<String>,
    /// The line the rejection points at, when it points at one.
    pub line: Option<u64>,
    /// The guard that rejected or held the file back, with its figures.
    pub guard: Option<GuardResult>,
    /// Rows after the header (and title lines before it), each a holding or a skip.
    pub rows_read: usize,
    /// Distinct memberships the file asks for.
    pub holdings: usize,
    /// Rows skipped, all reasons together.
    pub skipped: usize,
    /// Rows skipped, per reason.
    pub skipped_by_reason: Vec<SkipCount>,
    /// What applying it changed (or, in a dry run, would change).
    pub changes: ChangeCounts,
}

impl From<&FileReport> for FileResult {
    fn from(f: &FileReport) -> Self {
        Self {
            file_name: f.file_name.clone(),
            group_type: f.group_type.into(),
            group: f.group_name.clone(),
            shape: f.shape.map(str::to_owned),
            md5: f.md5.clone(),
            description: f.description.clone(),
            outcome: f.status.into(),
            line: f.line,
            guard: f.guard.as_ref().map(GuardResult::from),
            reason: f.error.clone(),
            rows_read: f.rows_read,
            holdings: f.holdings,
            skipped: f.skipped_total(),
            skipped_by_reason: skip_counts(&f.skipped_by_reason),
            changes: (&f.counts).into(),
        }
    }
}

/// A guard a file tripped (`--force`, `force: true`, lets it through).
#[derive(SimpleObject, Clone, Debug)]
pub struct GuardResult {
    /// The limit's flag: `max-skipped-percent`, `max-replaced-percent` or `max-weight-shift`.
    pub guard: String,
    /// What the file would do, in the limit's unit: percent of data rows invalid, percent of
    /// the group's members removed, or points of total weight moved (signed).
    pub value: f64,
    /// The limit it passed.
    pub limit: f64,
    /// Invalid rows, or members removed.
    pub count: Option<usize>,
    /// Data rows, or the group's stored members.
    pub of: Option<usize>,
    /// Members the file would add (the replacement guard).
    pub added: Option<usize>,
    /// The group's total weight before (the weight guard).
    pub before: Option<f64>,
    /// The group's total weight after (the weight guard).
    pub after: Option<f64>,
}

impl From<&loader::guard::Tripped> for GuardResult {
    fn from(t: &loader::guard::Tripped) -> Self {
        Self {
            guard: t.guard.to_owned(),
            value: t.value,
            limit: t.limit,
            count: t.count,
            of: t.of,
            added: t.added,
            before: t.before,
            after: t.after,
        }
    }
}

/// A group a full run removed because its input is gone.
#[derive(SimpleObject, Clone, Debug)]
pub struct RemovedGroupResult {
    /// The group's name.
    pub group: String,
    /// The members it had.
    pub members: usize,
}

/// A run's totals over its files.
#[derive(SimpleObject, Clone, Debug)]
pub struct RunTotals {
    /// Input files considered.
    pub files: usize,
    /// Files read and applied.
    pub files_loaded: usize,
    /// Files skipped as unchanged.
    pub files_unchanged: usize,
    /// Files rejected.
    pub files_rejected: usize,
    /// Files held back by a guard.
    pub files_held_back: usize,
    /// Rows read, all files together.
    pub rows_read: usize,
    /// Memberships the files ask for.
    pub holdings: usize,
    /// Rows skipped, all reasons together.
    pub skipped: usize,
    /// Rows skipped, per reason.
    pub skipped_by_reason: Vec<SkipCount>,
    /// What the run changed (or would change).
    pub changes: ChangeCounts,
    /// Groups a full run removed.
    pub groups_removed: usize,
}

impl From<&Totals> for RunTotals {
    fn from(t: &Totals) -> Self {
        Self {
            files: t.files,
            files_loaded: t.files_loaded,
            files_unchanged: t.files_unchanged,
            files_rejected: t.files_rejected,
            files_held_back: t.files_held_back,
            rows_read: t.rows_read,
            holdings: t.holdings,
            skipped: t.skipped,
            skipped_by_reason: skip_counts(&t.skipped_by_reason),
            changes: (&t.counts).into(),
            groups_removed: t.groups_removed,
        }
    }
}

/// What a load, organize or rollback run did: the run, each file, the totals.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct LoadResult {
    /// No file was rejected or held back.
    pub ok: bool,
    /// The recorded run's id (`loadRun(id:)`); null for a dry run, which records nothing.
    pub run_id: Option<i32>,
    /// The kind of groups it wrote.
    pub group_type: GroupKind,
    /// `full` or `incremental`.
    pub mode: String,
    /// Nothing was written: this is what the run in `mode` would do.
    pub dry_run: bool,
    /// `succeeded`, `partial` (some files rejected or held back, the rest applied) or
    /// `rejected` (nothing applied).
    pub state: String,
    /// The data version the run committed; null when it changed nothing.
    pub data_version: Option<i64>,
    /// The folder or file the inputs came from.
    pub source: String,
    /// The one group the run was limited to, if any.
    pub scope: Option<String>,
    /// Each input file, in the order read.
    pub files: Vec<FileResult>,
    /// Groups a full run removed because their input is gone.
    pub removed_groups: Vec<RemovedGroupResult>,
    /// Expected inputs that were not there.
    pub missing_files: Vec<String>,
    /// Totals over the files.
    pub totals: RunTotals,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: f64,
    /// The report as the CLI prints it.
    pub text: String,
}

#[ComplexObject]
impl LoadResult {
    /// The recorded run (started, finished, state, holder); null for a dry run.
    async fn run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LoadRun>> {
        let Some(id) = self.run_id else {
            return Ok(None);
        };
        let loader = ctx.data::<DataLoader<RunLoader>>()?;
        Ok(loader
            .load_one(RunById(id))
            .await
            .map_err(internal)?
            .map(LoadRun::from))
    }
}

impl From<&LoadReport> for LoadResult {
    fn from(r: &LoadReport) -> Self {
        Self {
            ok: !r.failed(),
            run_id: r.run_id,
            group_type: r.group_type.into(),
            mode: r.mode.as_str().to_owned(),
            dry_run: r.dry_run,
            state: r.state().to_owned(),
            data_version: r.data_version,
            source: r.source.clone(),
            scope: r.scope.clone(),
            files: r.files.iter().map(FileResult::from).collect(),
            removed_groups: r
                .removed_groups
                .iter()
                .map(|g| RemovedGroupResult {
                    group: g.group_name.clone(),
                    members: g.members,
                })
                .collect(),
            missing_files: r.missing_files.clone(),
            totals: (&r.totals).into(),
            elapsed_ms: r.elapsed_ms,
            text: r.render(false),
        }
    }
}

/// How many stocks took their sector from one source.
#[derive(SimpleObject, Clone, Debug)]
pub struct SourceCount {
    /// `manual`, `provider`, `sector_etf`, `classification` or `none`.
    pub source: String,
    /// Stocks.
    pub count: usize,
}

/// One stock's sector by one source.
#[derive(SimpleObject, Clone, Debug)]
pub struct SectorCandidate {
    /// The source.
    pub source: String,
    /// The sector key it gives.
    pub sector: String,
    /// Where it says so (a file, a group).
    pub detail: String,
}

/// A lower source that disagrees with the one that decided.
#[derive(SimpleObject, Clone, Debug)]
pub struct SectorDisagreement {
    /// The stock.
    pub symbol: String,
    /// The source that decided.
    pub chosen: SectorCandidate,
    /// The one that disagrees.
    pub other: SectorCandidate,
}

fn candidate(c: &loader::enrich::Candidate) -> SectorCandidate {
    SectorCandidate {
        source: c.source.as_str().to_owned(),
        sector: c.sector.clone(),
        detail: c.detail.clone(),
    }
}

/// What `enrichSectors` did.
#[derive(SimpleObject, Clone, Debug)]
pub struct EnrichResult {
    /// The run that wrote the sector memberships.
    pub run: LoadResult,
    /// Stocks given a sector.
    pub stocks: usize,
    /// Stocks per source that decided.
    pub by_source: Vec<SourceCount>,
    /// Stocks whose sector came from a classification file.
    pub classified: usize,
    /// Sector coverage in percent (stocks not `unknown`).
    pub coverage_percent: f64,
    /// Stocks two sources both classify.
    pub compared: usize,
    /// Of those, how many agree.
    pub agreeing: usize,
    /// Where lower sources disagree with the decision.
    pub disagreements: Vec<SectorDisagreement>,
    /// The report as the CLI prints it.
    pub text: String,
}

impl From<&EnrichReport> for EnrichResult {
    fn from(r: &EnrichReport) -> Self {
        Self {
            run: (&r.sync).into(),
            stocks: r.stocks,
            by_source: r
                .by_source
                .iter()
                .map(|(source, count)| SourceCount {
                    source: source.as_str().to_owned(),
                    count: *count,
                })
                .collect(),
            classified: r.classified,
            coverage_percent: super::round_sum(r.coverage_pct()),
            compared: r.agreement.compared,
            agreeing: r.agreement.agreeing,
            disagreements: r
                .disagreements
                .iter()
                .map(|d| SectorDisagreement {
                    symbol: d.symbol.clone(),
                    chosen: candidate(&d.chosen),
                    other: candidate(&d.other),
                })
                .collect(),
            text: r.render(false),
        }
    }
}

/// What `buildStockMetadata` did.
#[derive(SimpleObject, Clone, Debug)]
pub struct MetadataResult {
    /// The run that wrote the metadata.
    pub run: LoadResult,
    /// Stocks with no sector membership to hold their metadata (run `enrichSectors`).
    pub stocks_without_sector: usize,
}

impl From<&crate::ops::MetadataReport> for MetadataResult {
    fn from(r: &crate::ops::MetadataReport) -> Self {
        Self {
            run: (&r.report).into(),
            stocks_without_sector: r.stocks_without_sector,
        }
    }
}

/// What `setStockSector` stored: the operation's own report, with its enrichment as a typed
/// result.
pub type SetSectorResult = crate::ops::SetSectorReport;

#[ComplexObject]
impl SetSectorResult {
    /// The enrichment that applied it.
    async fn enrichment(&self) -> EnrichResult {
        (&self.enrichment).into()
    }
}
