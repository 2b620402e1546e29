//! Making the stored groups of one type what a set of inputs says: fetch what is stored, diff,
//! and (unless it is a dry run) apply everything in one transaction with its run record. The
//! file loaders, the theme organiser and sector enrichment all go through here, so every one
//! of them records its runs and changes the same way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::{GroupType, definition_group, load_run, load_run_file};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, TransactionTrait,
};

use crate::apply::{self, GroupSpec};
use crate::diff::{Desired, GroupDiff, Stored, diff};
use crate::error::LoadError;
use crate::read::Skipped;
use crate::report::{Counts, FileReport, FileStatus, LoadReport, Mode, RemovedGroup, Totals};
use crate::store;
use crate::symbol::Symbol;

/// What a sync is and where its inputs came from.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub group_type: GroupType,
    pub mode: Mode,
    pub environment: String,
    /// `load_runs.kind`: `etf`, `universe`, `theme`, `sector`, ...
    pub kind: &'static str,
    /// The folder or file the inputs came from.
    pub source: String,
    /// The one group a run is limited to, if any (no group is then removed).
    pub scope: Option<String>,
    /// Whether a full (or dry) run removes stored groups that no input names.
    pub remove_gone: bool,
}

/// One group's input: a file, a theme definition, a sector's computed members.
pub struct Input {
    /// What the report calls it (a file name, `themes.json#clean_energy`).
    pub file_name: String,
    pub group_name: String,
    /// Fingerprint of the input; incremental runs skip an input whose fingerprint is the
    /// one of its last successful load.
    pub md5: String,
    pub outcome: Outcome,
}

/// An input after reading.
pub enum Outcome {
    Parsed(Parsed),
    /// Incremental: the fingerprint matches the last successful load.
    Unchanged,
    /// Could not be read; the group keeps what it has.
    Rejected(String),
}

/// What an input wants its group to be.
pub struct Parsed {
    pub shape: &'static str,
    /// `None` keeps the stored description (or leaves a new group without one).
    pub description: Option<String>,
    /// `None` keeps the stored metadata.
    pub metadata: Option<serde_json::Value>,
    pub rows_read: usize,
    pub skipped: Vec<Skipped>,
    pub members: Members,
}

/// What an input says about its group's members.
pub enum Members {
    /// Exactly these.
    Exactly(BTreeMap<Symbol, Desired>),
    /// Leave the stored members alone (sector definitions: enrichment fills them).
    Keep,
}

/// Inputs that set the members of existing groups (sectors after enrichment), keeping their
/// descriptions and metadata; `label` names them in reports (`enrichment#energy`).
pub fn member_inputs(
    label: &str,
    shape: &'static str,
    groups: BTreeMap<String, BTreeMap<Symbol, Desired>>,
) -> Vec<Input> {
    groups
        .into_iter()
        .map(|(group_name, members)| Input {
            file_name: format!("{label}#{group_name}"),
            group_name,
            md5: String::new(),
            outcome: Outcome::Parsed(Parsed {
                shape,
                description: None,
                metadata: None,
                rows_read: members.len(),
                skipped: Vec::new(),
                members: Members::Exactly(members),
            }),
        })
        .collect()
}

/// Diffs the inputs against the stored groups of the request's type and applies the result.
pub async fn sync(
    db: &DatabaseConnection,
    req: &SyncRequest,
    inputs: Vec<Input>,
    clock: Instant,
    started_at: DateTime<Utc>,
) -> Result<LoadReport, LoadError> {
    let env = req.environment.as_str();
    let stored_groups = store::groups(db, env, req.group_type).await?;
    let present: HashSet<&str> = inputs.iter().map(|p| p.group_name.as_str()).collect();
    let gone: Vec<&definition_group::Model> = if req.scope.is_none() && req.remove_gone {
        stored_groups
            .values()
            .filter(|g| !present.contains(g.name.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let remove_gone = req.mode != Mode::Incremental;
    let mut ids: Vec<i32> = inputs
        .iter()
        .filter(|p| matches!(p.outcome, Outcome::Parsed(_)))
        .filter_map(|p| stored_groups.get(&p.group_name).map(|g| g.id))
        .collect();
    if remove_gone {
        ids.extend(gone.iter().map(|g| g.id));
    }
    let mut stored_members = store::memberships(db, &ids).await?;

    let mut plans = Vec::new();
    let mut reports = Vec::new();
    for input in inputs {
        let (report, plan) = plan(input, &stored_groups, &mut stored_members, req.group_type);
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
        source: req.source.clone(),
        scope: req.scope.clone(),
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
        load.kind = req.kind,
        load.mode = req.mode.as_str(),
        load.files = report.totals.files,
        load.rows_skipped = report.totals.skipped,
        duration_ms = report.elapsed_ms,
        "load committed"
    );
    Ok(report)
}

/// What the transaction will do for one file's group.
struct Plan {
    group_name: String,
    existing: Option<definition_group::Model>,
    description: Option<String>,
    metadata: Option<serde_json::Value>,
    diff: GroupDiff,
}

fn plan(
    input: Input,
    stored_groups: &BTreeMap<String, definition_group::Model>,
    stored_members: &mut HashMap<i32, BTreeMap<Symbol, Stored>>,
    group_type: GroupType,
) -> (FileReport, Option<Plan>) {
    let mut report = FileReport {
        file_name: input.file_name,
        group_type,
        group_name: input.group_name.clone(),
        status: FileStatus::Loaded,
        md5: input.md5,
        shape: None,
        description: None,
        rows_read: 0,
        holdings: 0,
        counts: Counts::default(),
        skipped_by_reason: BTreeMap::new(),
        skipped: Vec::new(),
        error: None,
    };
    match input.outcome {
        Outcome::Unchanged => {
            report.status = FileStatus::Unchanged;
            (report, None)
        }
        Outcome::Rejected(why) => {
            report.status = FileStatus::Rejected;
            report.error = Some(why);
            (report, None)
        }
        Outcome::Parsed(parsed) => {
            let existing = stored_groups.get(&input.group_name).cloned();
            let stored = existing
                .as_ref()
                .and_then(|g| stored_members.remove(&g.id))
                .unwrap_or_default();
            let diff = match &parsed.members {
                Members::Exactly(members) => diff(members, &stored),
                Members::Keep => GroupDiff {
                    unchanged: stored.len(),
                    ..GroupDiff::default()
                },
            };
            let description = parsed
                .description
                .or_else(|| existing.as_ref().and_then(|g| g.description.clone()));
            let metadata = parsed
                .metadata
                .or_else(|| existing.as_ref().and_then(|g| g.metadata.clone()));
            report.shape = Some(parsed.shape);
            report.description = description.clone();
            report.rows_read = parsed.rows_read;
            report.holdings = match &parsed.members {
                Members::Exactly(members) => members.len(),
                Members::Keep => stored.len(),
            };
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
            let plan = Plan {
                group_name: input.group_name,
                existing,
                description,
                metadata,
                diff,
            };
            (report, Some(plan))
        }
    }
}

async fn write(
    txn: &impl ConnectionTrait,
    req: &SyncRequest,
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
        let group_changed = plan
            .existing
            .as_ref()
            .is_none_or(|g| g.description != plan.description || g.metadata != plan.metadata);
        let group_id = apply::upsert_group(
            txn,
            plan.existing.as_ref(),
            GroupSpec {
                environment: env,
                group_type: req.group_type,
                name: &plan.group_name,
                description: plan.description.clone(),
                metadata: plan.metadata.clone(),
            },
            now,
        )
        .await?;
        apply::apply_diff(txn, group_id, &plan.diff, now).await?;
        changed |= group_changed || !plan.diff.is_empty();
    }
    // Collected before the await: a lazy iterator of closures held across it would make the
    // future's Send-ness depend on higher-ranked lifetimes the compiler cannot prove.
    let mut changes = Vec::new();
    for p in plans {
        changes.extend(apply::change_rows(req.group_type, &p.group_name, &p.diff));
    }
    for (_, r, d) in removed {
        changes.extend(apply::change_rows(req.group_type, &r.group_name, d));
    }
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
    req: &SyncRequest,
    started_at: DateTime<Utc>,
    outcome: &str,
    error: Option<String>,
) -> load_run::ActiveModel {
    load_run::ActiveModel {
        id: NotSet,
        environment: Set(req.environment.clone()),
        kind: Set(req.kind.to_owned()),
        mode: Set(req.mode.as_str().to_owned()),
        scope: Set(req.scope.clone()),
        source: Set(req.source.clone()),
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

/// After a rolled-back load, leaves a record that it failed (best effort: the error that
/// caused the rollback is what the caller reports).
async fn record_failure(
    db: &DatabaseConnection,
    req: &SyncRequest,
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
