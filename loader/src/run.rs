//! A load run: which files, which mode, the diff, one transaction, the report.
//!
//! Files are read and diffed before the transaction opens, so a rejected file never touches
//! the database and a dry run writes nothing at all. Everything a run writes (memberships,
//! groups, the run record, its file records and membership changes, the data version) is
//! committed together or not at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::{GroupType, definition_group, load_run, load_run_file};
use md5::{Digest, Md5};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, TransactionTrait,
};

use crate::apply::{self, GroupSpec};
use crate::diff::{Desired, GroupDiff, diff};
use crate::error::LoadError;
use crate::members;
use crate::read::{self, Expect, ParsedFile};
use crate::report::{Counts, FileReport, FileStatus, LoadReport, Mode, RemovedGroup, Totals};
use crate::source::{self, SourceFile};
use crate::store;
use crate::symbol::{ShareClasses, Symbol};

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// `Etf` or `Universe`.
    pub group_type: GroupType,
    pub mode: Mode,
    /// Touch this one group only (`SPY`, `sp500`).
    pub only: Option<String>,
    /// The holdings folder.
    pub dir: PathBuf,
    pub environment: String,
    /// A list of dotted share classes (`symbol,name`) that resolves compact spellings such as
    /// iShares' `BRKB` even when no other file names `BRK.B`. Optional.
    pub share_classes: Option<PathBuf>,
}

/// Told about progress through the files; the CLI draws a bar, tests stay quiet.
pub trait Progress: Send + Sync {
    /// The number of files about to be read.
    fn begin(&self, _files: usize) {}
    /// One file is being read.
    fn file(&self, _file_name: &str) {}
    /// Reading is over; what remains is the database work.
    fn end(&self) {}
}

/// Progress that says nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// One file after reading.
struct Pending {
    source: SourceFile,
    md5: String,
    read: Read,
}

enum Read {
    Parsed {
        parsed: ParsedFile,
        desired: BTreeMap<Symbol, Desired>,
    },
    Unchanged,
    Rejected(String),
}

/// Runs a load and returns its report. Rejected files are in the report (and make
/// [`LoadReport::failed`] true); an `Err` means nothing was changed at all.
pub async fn load(
    db: &DatabaseConnection,
    req: &LoadRequest,
    progress: &dyn Progress,
) -> Result<LoadReport, LoadError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let env = req.environment.as_str();
    let files = select_files(req)?;
    let stored_groups = store::groups(db, env, req.group_type).await?;
    let last_md5 = if req.mode == Mode::Incremental {
        store::last_loaded_md5(db, env, req.group_type).await?
    } else {
        HashMap::new()
    };

    progress.begin(files.len());
    let mut pending = Vec::with_capacity(files.len());
    for source in files {
        progress.file(&source.file_name);
        pending.push(read_one(source, req, &last_md5, &stored_groups));
    }
    progress.end();

    let book = share_classes(db, req, &pending).await?;
    for p in &mut pending {
        if let Read::Parsed { parsed, desired } = &mut p.read {
            *desired = members::desired(parsed, &book);
        }
    }

    let present: HashSet<&str> = pending
        .iter()
        .map(|p| p.source.group_name.as_str())
        .collect();
    let gone: Vec<&definition_group::Model> = if req.only.is_none() {
        stored_groups
            .values()
            .filter(|g| !present.contains(g.name.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let remove_gone = req.mode != Mode::Incremental;
    let mut ids: Vec<i32> = pending
        .iter()
        .filter(|p| matches!(p.read, Read::Parsed { .. }))
        .filter_map(|p| stored_groups.get(&p.source.group_name).map(|g| g.id))
        .collect();
    if remove_gone {
        ids.extend(gone.iter().map(|g| g.id));
    }
    let mut stored_members = store::memberships(db, &ids).await?;

    let mut plans = Vec::new();
    let mut reports = Vec::new();
    for p in pending {
        let (report, plan) = plan_file(p, &stored_groups, &mut stored_members, req.group_type);
        reports.push(report);
        if let Some(plan) = plan {
            plans.push(plan);
        }
    }
    let removed: Vec<(i32, RemovedGroup, GroupDiff)> = if remove_gone {
        gone.iter()
            .map(|g| {
                let members = stored_members.remove(&g.id).unwrap_or_default();
                let diff = diff(&BTreeMap::new(), &members);
                let removed = RemovedGroup {
                    group_name: g.name.clone(),
                    members: diff.removed.len(),
                };
                (g.id, removed, diff)
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut report = LoadReport {
        group_type: req.group_type,
        mode: req.mode,
        environment: env.to_owned(),
        source: req.dir.display().to_string(),
        scope: req.only.clone(),
        run_id: None,
        data_version: None,
        files: reports,
        removed_groups: removed.iter().map(|(_, r, _)| r.clone()).collect(),
        missing_files: if remove_gone {
            Vec::new()
        } else {
            gone.iter().map(|g| g.name.clone()).collect()
        },
        totals: Totals::default(),
        elapsed_ms: 0.0,
    };
    report.total();
    if req.mode == Mode::DryRun {
        report.elapsed_ms = clock.elapsed().as_secs_f64() * 1e3;
        return Ok(report);
    }

    let txn = db.begin().await?;
    match write(&txn, req, &plans, &removed, &mut report, started_at).await {
        Ok(()) => txn.commit().await?,
        Err(e) => {
            drop(txn);
            record_failure(db, req, started_at, &e).await;
            return Err(e.into());
        }
    }
    report.elapsed_ms = clock.elapsed().as_secs_f64() * 1e3;
    tracing::info!(
        load.kind = %req.group_type,
        load.mode = req.mode.as_str(),
        load.files = report.totals.files,
        load.rows_skipped = report.totals.skipped,
        duration_ms = report.elapsed_ms,
        "load committed"
    );
    Ok(report)
}

/// The group files this request covers.
fn select_files(req: &LoadRequest) -> Result<Vec<SourceFile>, LoadError> {
    let (kind, expected) = match req.group_type {
        GroupType::Etf => (
            "ETF holdings",
            "{ticker}_holdings.csv or holdings-daily-us-en-{ticker}.csv",
        ),
        _ => (
            "universe",
            "nasdaq100.csv, sp500.csv, dow30.csv, russell3000.csv or {key}_universe.csv",
        ),
    };
    let mut files = source::discover(&req.dir, req.group_type)?;
    if let Some(only) = &req.only {
        let wanted = match req.group_type {
            GroupType::Etf => only.trim().to_ascii_uppercase(),
            _ => only.trim().to_ascii_lowercase(),
        };
        files.retain(|f| f.group_name == wanted);
        if files.is_empty() {
            return Err(LoadError::NotFound {
                kind,
                name: wanted,
                dir: req.dir.clone(),
            });
        }
    } else if files.is_empty() {
        return Err(LoadError::NoFiles {
            kind,
            dir: req.dir.clone(),
            expected,
        });
    }
    Ok(files)
}

fn read_one(
    source: SourceFile,
    req: &LoadRequest,
    last_md5: &HashMap<String, String>,
    stored_groups: &BTreeMap<String, definition_group::Model>,
) -> Pending {
    let bytes = match std::fs::read(&source.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let why = format!("{}: cannot read the file: {e}", source.file_name);
            return Pending {
                source,
                md5: String::new(),
                read: Read::Rejected(why),
            };
        }
    };
    let md5 = hex(&Md5::digest(&bytes));
    let unchanged = req.mode == Mode::Incremental
        && last_md5.get(&source.group_name) == Some(&md5)
        && stored_groups.contains_key(&source.group_name);
    let expect = match req.group_type {
        GroupType::Etf => Expect::Holdings,
        _ => Expect::Universe,
    };
    let read = if unchanged {
        Read::Unchanged
    } else {
        match read::read(expect, &bytes) {
            Ok(parsed) => Read::Parsed {
                parsed,
                desired: BTreeMap::new(),
            },
            Err(rejection) => Read::Rejected(format!("{}: {rejection}", source.file_name)),
        }
    };
    Pending { source, md5, read }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every dotted share class this load knows: the shipped list, the database, the files.
async fn share_classes(
    db: &impl ConnectionTrait,
    req: &LoadRequest,
    pending: &[Pending],
) -> Result<ShareClasses, DbErr> {
    let mut known = store::dotted_symbols(db, &req.environment).await?;
    if let Some(path) = &req.share_classes
        && let Ok(bytes) = std::fs::read(path)
    {
        match read::read(Expect::Universe, &bytes) {
            Ok(list) => known.extend(list.holdings.into_iter().map(|h| h.symbol)),
            Err(e) => tracing::warn!(file = %path.display(), "share class list ignored: {e}"),
        }
    }
    for p in pending {
        if let Read::Parsed { parsed, .. } = &p.read {
            known.extend(crate::symbol::dotted(
                parsed.holdings.iter().map(|h| &h.symbol),
            ));
        }
    }
    Ok(ShareClasses::new(&known))
}

/// What the transaction will do for one file's group.
struct Plan {
    group_name: String,
    existing: Option<definition_group::Model>,
    description: Option<String>,
    metadata: serde_json::Value,
    diff: GroupDiff,
}

fn plan_file(
    p: Pending,
    stored_groups: &BTreeMap<String, definition_group::Model>,
    stored_members: &mut HashMap<i32, BTreeMap<Symbol, crate::diff::Stored>>,
    group_type: GroupType,
) -> (FileReport, Option<Plan>) {
    let mut report = FileReport {
        file_name: p.source.file_name.clone(),
        group_type,
        group_name: p.source.group_name.clone(),
        status: FileStatus::Loaded,
        md5: p.md5,
        shape: None,
        description: None,
        rows_read: 0,
        holdings: 0,
        counts: Counts::default(),
        skipped_by_reason: BTreeMap::new(),
        skipped: Vec::new(),
        error: None,
    };
    match p.read {
        Read::Unchanged => {
            report.status = FileStatus::Unchanged;
            (report, None)
        }
        Read::Rejected(why) => {
            report.status = FileStatus::Rejected;
            report.error = Some(why);
            (report, None)
        }
        Read::Parsed { parsed, desired } => {
            let existing = stored_groups.get(&p.source.group_name).cloned();
            let stored = existing
                .as_ref()
                .and_then(|g| stored_members.remove(&g.id))
                .unwrap_or_default();
            let diff = diff(&desired, &stored);
            let description = Some(describe(group_type, &p.source.group_name, &parsed));
            report.shape = Some(parsed.shape.as_str());
            report.description = description.clone();
            report.rows_read = parsed.rows_read;
            report.holdings = desired.len();
            report.counts = Counts {
                created: diff.added.len(),
                updated: diff.updated.len(),
                reweighted: diff.reweighted(),
                deleted: diff.removed.len(),
                unchanged: diff.unchanged,
            };
            for s in &parsed.skipped {
                *report.skipped_by_reason.entry(s.reason).or_default() += 1;
            }
            report.skipped = parsed.skipped;
            let metadata = serde_json::json!({
                "source_file": p.source.file_name,
                "shape": parsed.shape.as_str(),
            });
            let plan = Plan {
                group_name: p.source.group_name,
                existing,
                description,
                metadata,
                diff,
            };
            (report, Some(plan))
        }
    }
}

/// A group's description: the fund name a provider file gives, a universe's index name, else
/// the group's own name.
fn describe(group_type: GroupType, name: &str, parsed: &ParsedFile) -> String {
    if let Some(title) = &parsed.title {
        return title.clone();
    }
    match (group_type, name) {
        (GroupType::Universe, "nasdaq100") => "Nasdaq-100".to_owned(),
        (GroupType::Universe, "sp500") => "S&P 500".to_owned(),
        (GroupType::Universe, "dow30") => "Dow Jones Industrial Average".to_owned(),
        (GroupType::Universe, "russell3000") => "Russell 3000".to_owned(),
        _ => name.to_owned(),
    }
}

async fn write(
    txn: &impl ConnectionTrait,
    req: &LoadRequest,
    plans: &[Plan],
    removed: &[(i32, RemovedGroup, GroupDiff)],
    report: &mut LoadReport,
    started_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let env = req.environment.as_str();
    let run = load_run::Entity::insert(run_model(req, started_at, "running", None))
        .exec(txn)
        .await?;
    let run_id = run.last_insert_id;

    let mut changed = !removed.is_empty();
    for plan in plans {
        let group_changed = plan.existing.as_ref().is_none_or(|g| {
            g.description != plan.description || g.metadata.as_ref() != Some(&plan.metadata)
        });
        let group_id = apply::upsert_group(
            txn,
            plan.existing.as_ref(),
            GroupSpec {
                environment: env,
                group_type: req.group_type,
                name: &plan.group_name,
                description: plan.description.clone(),
                metadata: Some(plan.metadata.clone()),
            },
            now,
        )
        .await?;
        apply::apply_diff(txn, group_id, &plan.diff, now).await?;
        changed |= group_changed || !plan.diff.is_empty();
    }
    let changes = plans
        .iter()
        .flat_map(|p| apply::change_rows(req.group_type, &p.group_name, &p.diff))
        .chain(
            removed
                .iter()
                .flat_map(|(_, r, d)| apply::change_rows(req.group_type, &r.group_name, d)),
        );
    apply::record_changes(txn, run_id, changes).await?;
    for (group_id, _, _) in removed {
        apply::delete_group(txn, *group_id).await?;
    }
    if changed {
        report.data_version = Some(apply::bump_data_version(txn, env, now).await?);
    }

    let file_rows = report.files.iter().map(|f| load_run_file::ActiveModel {
        id: NotSet,
        run_id: Set(run_id),
        file_name: Set(f.file_name.clone()),
        group_type: Set(req.group_type.as_str().to_owned()),
        group_name: Set(f.group_name.clone()),
        shape: Set(f.shape.map(str::to_owned)),
        md5: Set(Some(f.md5.clone())),
        status: Set(f.status.as_str().to_owned()),
        rows_read: Set(count(f.rows_read)),
        rows_loaded: Set(count(f.holdings)),
        rows_skipped: Set(count(f.skipped_total())),
        created: Set(count(f.counts.created)),
        updated: Set(count(f.counts.updated)),
        deleted: Set(count(f.counts.deleted)),
        unchanged: Set(count(f.counts.unchanged)),
        error: Set(f.error.clone()),
    });
    load_run_file::Entity::insert_many(file_rows)
        .exec_without_returning(txn)
        .await?;

    report.run_id = Some(run_id);
    let t = &report.totals;
    let outcome = if t.files_rejected == 0 {
        "success"
    } else if t.files_rejected == t.files {
        "failed"
    } else {
        "partial"
    };
    let mut model = run_model(req, started_at, outcome, None);
    model.id = Set(run_id);
    model.finished_at = Set(Some(Utc::now()));
    model.files_total = Set(count(t.files));
    model.files_loaded = Set(count(t.files_loaded));
    model.files_unchanged = Set(count(t.files_unchanged));
    model.files_rejected = Set(count(t.files_rejected));
    model.rows_read = Set(count(t.rows_read));
    model.created = Set(count(t.counts.created));
    model.updated = Set(count(t.counts.updated));
    model.deleted = Set(count(t.counts.deleted));
    model.unchanged = Set(count(t.counts.unchanged));
    model.skipped = Set(count(t.skipped));
    model.groups_removed = Set(count(t.groups_removed));
    model.data_version = Set(report.data_version);
    let errors: Vec<&str> = report
        .files
        .iter()
        .filter_map(|f| f.error.as_deref())
        .collect();
    model.error = Set((!errors.is_empty()).then(|| errors.join("\n")));
    model.report = Set(serde_json::to_value(&*report).ok());
    load_run::Entity::update(model).exec(txn).await?;
    Ok(())
}

fn run_model(
    req: &LoadRequest,
    started_at: DateTime<Utc>,
    outcome: &str,
    error: Option<String>,
) -> load_run::ActiveModel {
    load_run::ActiveModel {
        id: NotSet,
        environment: Set(req.environment.clone()),
        kind: Set(kind_key(req.group_type).to_owned()),
        mode: Set(req.mode.as_str().to_owned()),
        scope: Set(req.only.clone()),
        source: Set(req.dir.display().to_string()),
        started_at: Set(started_at),
        finished_at: Set(None),
        outcome: Set(outcome.to_owned()),
        files_total: Set(0),
        files_loaded: Set(0),
        files_unchanged: Set(0),
        files_rejected: Set(0),
        rows_read: Set(0),
        created: Set(0),
        updated: Set(0),
        deleted: Set(0),
        unchanged: Set(0),
        skipped: Set(0),
        groups_removed: Set(0),
        data_version: Set(None),
        error: Set(error),
        report: Set(None),
    }
}

/// The `load_runs.kind` of a group type.
pub fn kind_key(group_type: GroupType) -> &'static str {
    match group_type {
        GroupType::Etf => "etf",
        GroupType::Universe => "universe",
        GroupType::Sector => "sector",
        GroupType::Theme => "theme",
    }
}

/// After a rolled-back load, leaves a record that it failed (best effort: the error that
/// caused the rollback is what the caller reports).
async fn record_failure(
    db: &DatabaseConnection,
    req: &LoadRequest,
    started_at: DateTime<Utc>,
    error: &DbErr,
) {
    let mut model = run_model(req, started_at, "failed", Some(error.to_string()));
    model.finished_at = Set(Some(Utc::now()));
    if let Err(e) = load_run::Entity::insert(model).exec(db).await {
        tracing::warn!("could not record the failed run: {e}");
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The path of the shipped share-class list inside a definitions folder.
pub fn share_class_list(definitions: &Path) -> PathBuf {
    definitions.join("share_classes.csv")
}
