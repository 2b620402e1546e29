//! Making the stored groups of one type what a set of inputs says: fetch what is stored, diff,
//! and (unless it is a dry run) apply everything in one transaction with its run record. The
//! file loaders, the theme organiser and sector enrichment all go through here, so every one
//! of them records its runs and changes the same way.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::{GroupChangeKind, GroupType, definition_group, load_run, load_run_file};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    TransactionTrait,
};

use crate::apply::{self, GroupChangeRow, GroupSpec};
use crate::diff::{Desired, GroupDiff, Stored, diff, patch};
use crate::error::LoadError;
use crate::guard::{self, Guards};
use crate::lock::{self, WriteLock};
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
    /// Whether a full run removes stored groups that no input names.
    pub remove_gone: bool,
    /// Compute and report everything, write nothing (with `mode` saying which run to show).
    pub dry_run: bool,
    /// The guards against wrong files (`None`: not checked, as for definitions or `--force`).
    pub guards: Option<Guards>,
}

impl SyncRequest {
    /// Whether nothing is written (`dry_run`, or the `DryRun` shorthand mode).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run || self.mode == Mode::DryRun
    }

    /// The mode whose run is made or shown: `DryRun` alone shows an incremental run.
    pub fn effective_mode(&self) -> Mode {
        match self.mode {
            Mode::DryRun => Mode::Incremental,
            mode => mode,
        }
    }

    fn mode_name(&self) -> &'static str {
        self.effective_mode().as_str()
    }
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
    /// Could not be read; the group keeps what it has. Why, and the line it names when the
    /// reader names one.
    Rejected(String, Option<u64>),
    /// Read when its turn comes, inside the run: only one group's rows are in memory at once.
    Deferred(Box<dyn FnOnce() -> Outcome + Send>),
    /// A rollback's: the group as it was before the run rolled back.
    Restore(Restore),
}

/// What a rollback puts back in one group: computed from the change records it undoes, so it
/// names only what they touched.
#[derive(Clone, Debug, PartialEq)]
pub struct Restore {
    /// The group's description and metadata, or `None` when the group must not exist (its
    /// members then go too).
    pub group: Option<RestoredGroup>,
    /// Members to put back as they were; `None` removes the symbol. Members not named stay.
    pub members: BTreeMap<Symbol, Option<Desired>>,
}

/// A group's own fields as a rollback restores them, exactly (a `None` is written as null).
#[derive(Clone, Debug, PartialEq)]
pub struct RestoredGroup {
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// `load_runs.kind` of a rollback. Its file records say `rolled_back`, with the MD5 of the
/// group's input before the run it rolled back (incremental loads compare files with it).
pub const ROLLBACK_KIND: &str = "rollback";

/// An input whose deferred read may be under way on a blocking thread.
struct ReadAhead {
    input: Input,
    reading: Option<tokio::task::JoinHandle<Outcome>>,
}

/// Starts an input's deferred read, if it has one, on a blocking thread.
fn read_ahead(mut input: Input) -> ReadAhead {
    let reading = match std::mem::replace(&mut input.outcome, Outcome::Unchanged) {
        Outcome::Deferred(read) => Some(tokio::task::spawn_blocking(read)),
        other => {
            input.outcome = other;
            None
        }
    };
    ReadAhead { input, reading }
}

impl ReadAhead {
    /// The input with its read done.
    async fn finish(self) -> Input {
        let Self { mut input, reading } = self;
        if let Some(reading) = reading {
            input.outcome = match reading.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    Outcome::Rejected(format!("{}: could not be read: {e}", input.file_name), None)
                }
            };
        }
        input
    }
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

/// A run that holds the write lock: its `running` record is committed, and it finishes inside
/// the transaction that applies its data (or is marked `failed` after a rollback). A dry run
/// has none: it writes nothing, not even a run record.
pub struct Writer {
    lock: WriteLock,
    run_id: i32,
    started_at: DateTime<Utc>,
}

impl Writer {
    /// Takes the write lock, marks runs left `running` by dead processes `abandoned`, and
    /// records this run as `running`. `None` for a dry run.
    pub async fn begin(
        db: &DatabaseConnection,
        req: &SyncRequest,
        started_at: DateTime<Utc>,
    ) -> Result<Option<Self>, LoadError> {
        if req.is_dry_run() {
            return Ok(None);
        }
        let lock = WriteLock::acquire(db, lock::timeout()).await?;
        let now = Utc::now();
        let recorded = async {
            lock::abandon_orphans(db, now).await?;
            let mut model = run_model(req, started_at, "running", None);
            model.holder = Set(Some(lock::this_process()));
            load_run::Entity::insert(model).exec(db).await
        }
        .await;
        match recorded {
            Ok(run) => Ok(Some(Self {
                lock,
                run_id: run.last_insert_id,
                started_at,
            })),
            Err(e) => {
                lock.release().await;
                Err(e.into())
            }
        }
    }

    /// The run's id.
    pub fn run_id(&self) -> i32 {
        self.run_id
    }

    /// Ends a run that could not go on: records it `failed` with the error, releases the lock.
    pub async fn fail(
        self,
        db: &DatabaseConnection,
        req: &SyncRequest,
        error: &(dyn std::fmt::Display + Sync),
    ) {
        let mut model = run_model(req, self.started_at, "failed", Some(error.to_string()));
        model.id = Set(self.run_id);
        model.holder = NotSet;
        model.finished_at = Set(Some(Utc::now()));
        if let Err(e) = load_run::Entity::update(model).exec(db).await {
            tracing::warn!(run.id = self.run_id, "could not record the failed run: {e}");
        }
        self.lock.release().await;
    }
}

/// Takes the write lock (none for a dry run), then runs `read`, the reads of stored state a
/// run computes its inputs from, under it; a read that fails ends the run `failed`.
pub async fn begin_and_read<T>(
    db: &DatabaseConnection,
    req: &SyncRequest,
    started_at: DateTime<Utc>,
    read: impl Future<Output = Result<T, DbErr>>,
) -> Result<(Option<Writer>, T), LoadError> {
    let writer = Writer::begin(db, req, started_at).await?;
    match read.await {
        Ok(state) => Ok((writer, state)),
        Err(e) => {
            if let Some(writer) = writer {
                writer.fail(db, req, &e).await;
            }
            Err(e.into())
        }
    }
}

/// Diffs the inputs against the stored groups of the request's type and applies the result,
/// holding the write lock throughout (taken here).
pub async fn sync(
    db: &DatabaseConnection,
    req: &SyncRequest,
    inputs: Vec<Input>,
    clock: Instant,
    started_at: DateTime<Utc>,
) -> Result<LoadReport, LoadError> {
    let writer = Writer::begin(db, req, started_at).await?;
    sync_with(db, req, writer, inputs, clock).await
}

/// [`sync`] for a caller that took the lock itself (it read state of its own under it).
#[tracing::instrument(skip_all, fields(load.kind = req.kind, load.mode = req.mode_name()))]
pub async fn sync_with(
    db: &DatabaseConnection,
    req: &SyncRequest,
    writer: Option<Writer>,
    inputs: Vec<Input>,
    clock: Instant,
) -> Result<LoadReport, LoadError> {
    let Some(writer) = writer else {
        return match apply_all(db, req, None, inputs).await {
            Ok(mut report) => {
                report.elapsed_ms = clock.elapsed().as_secs_f64() * 1e3;
                Ok(report)
            }
            Err(e) => Err(e.into()),
        };
    };
    let mut writer = writer;
    let outcome = async {
        // SQLite: take the database's write lock when the transaction begins (waiting for
        // any other writer's commit), rather than on its first write after reads, which
        // SQLite refuses at once when another connection wrote in between.
        let txn = db
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        let sqlite = db.get_database_backend() == DbBackend::Sqlite;
        if sqlite {
            // A load touches index pages all over the file: with SQLite's default 2 MB page
            // cache most of them are read from and written back to the OS again and again.
            txn.execute_unprepared(&format!("PRAGMA cache_size = -{SQLITE_LOAD_CACHE_KIB}"))
                .await?;
        }
        let applied = apply_all(
            db,
            req,
            Some((&txn, writer.run_id, writer.started_at)),
            inputs,
        )
        .await;
        if sqlite {
            // The connection goes back to the pool: it keeps no more than the default.
            txn.execute_unprepared("PRAGMA cache_size = -2000").await?;
        }
        let report = applied?;
        // Never commit beside another writer: the lock must still be ours.
        writer.lock.verify().await?;
        txn.commit().await?;
        Ok::<_, DbErr>(report)
    }
    .await;
    match outcome {
        Ok(mut report) => {
            writer.lock.release().await;
            report.elapsed_ms = clock.elapsed().as_secs_f64() * 1e3;
            tracing::info!(
                run.id = report.run_id,
                load.files = report.totals.files,
                load.rows_skipped = report.totals.skipped,
                duration_ms = report.elapsed_ms,
                "load committed"
            );
            Ok(report)
        }
        Err(e) => {
            writer.fail(db, req, &e).await;
            Err(e.into())
        }
    }
}

/// SQLite's page cache, in KiB, for the connection a load writes on (the default is 2,000).
const SQLITE_LOAD_CACHE_KIB: u32 = 262_144;

/// The transaction a run writes in, its run id and start.
type Txn<'a> = (&'a DatabaseTransaction, i32, DateTime<Utc>);

/// Reads, guards, diffs and (with a transaction) applies every input, one group at a time, so
/// memory holds one group's rows at once; then removes gone groups and finishes the run.
async fn apply_all(
    db: &DatabaseConnection,
    req: &SyncRequest,
    txn: Option<Txn<'_>>,
    inputs: Vec<Input>,
) -> Result<LoadReport, DbErr> {
    let env = req.environment.as_str();
    let stored_groups = match txn {
        Some((t, _, _)) => store::groups(t, env, req.group_type).await?,
        None => store::groups(db, env, req.group_type).await?,
    };
    let present: HashSet<&str> = inputs.iter().map(|p| p.group_name.as_str()).collect();
    let gone: Vec<definition_group::Model> = if req.scope.is_none() && req.remove_gone {
        stored_groups
            .values()
            .filter(|g| !present.contains(g.name.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let remove_gone = req.effective_mode() == Mode::Full;
    let now = Utc::now();
    let mut changed = false;
    let mut group_changes = Vec::new();
    let mut files = Vec::with_capacity(inputs.len());
    // One input is read ahead, on a blocking thread, while the database applies the one
    // before it: reading and applying overlap, and at most two groups' rows are held at once.
    let mut inputs = inputs.into_iter();
    let mut next = inputs.next().map(read_ahead);
    while let Some(pending) = next.take() {
        next = inputs.next().map(read_ahead);
        let input = pending.finish().await;
        let existing = stored_groups.get(&input.group_name);
        // Only an input that will be diffed needs its group's stored members.
        let to_diff = matches!(
            input.outcome,
            Outcome::Parsed(_) | Outcome::Deferred(_) | Outcome::Restore(_)
        );
        let stored = match (existing, &txn) {
            (Some(g), Some((t, _, _))) if to_diff => store::group_memberships(*t, g.id).await?,
            (Some(g), None) if to_diff => store::group_memberships(db, g.id).await?,
            _ => BTreeMap::new(),
        };
        let (report, plan) = plan(input, existing, stored, req);
        if let (Some(plan), Some((t, run_id, _))) = (plan, &txn) {
            let (applied, group_change) = apply_plan(*t, req, *run_id, &plan, now).await?;
            changed |= applied;
            group_changes.extend(group_change);
        }
        files.push(report);
    }

    let mut removed_groups = Vec::new();
    let mut missing_files = Vec::new();
    for g in &gone {
        if !remove_gone {
            missing_files.push(g.name.clone());
            continue;
        }
        let members = match &txn {
            Some((t, _, _)) => store::group_memberships(*t, g.id).await?,
            None => store::group_memberships(db, g.id).await?,
        };
        let diff = diff(&BTreeMap::new(), &members);
        removed_groups.push(RemovedGroup {
            group_name: g.name.clone(),
            members: diff.removed.len(),
        });
        if let Some((t, run_id, _)) = &txn {
            group_changes.push(remove_group(*t, req.group_type, *run_id, g, &diff).await?);
            changed = true;
        }
    }

    let mut report = LoadReport {
        group_type: req.group_type,
        mode: req.effective_mode(),
        dry_run: req.is_dry_run(),
        environment: env.to_owned(),
        source: req.source.clone(),
        scope: req.scope.clone(),
        run_id: None,
        data_version: None,
        files,
        removed_groups,
        missing_files,
        totals: Totals::default(),
        elapsed_ms: 0.0,
    };
    report.total();
    if let Some((t, run_id, started_at)) = txn {
        apply::record_group_changes(t, run_id, group_changes).await?;
        if changed {
            report.data_version = Some(apply::bump_data_version(t, env, now).await?);
        }
        finish(t, req, run_id, started_at, &mut report).await?;
    }
    Ok(report)
}

/// What the transaction will do for one input's group.
struct Plan {
    group_name: String,
    existing: Option<definition_group::Model>,
    description: Option<String>,
    metadata: Option<serde_json::Value>,
    diff: GroupDiff,
    /// Remove the group (a rollback of the run that made it); `diff` removes its members.
    remove: bool,
}

fn plan(
    input: Input,
    existing: Option<&definition_group::Model>,
    stored: BTreeMap<Symbol, Stored>,
    req: &SyncRequest,
) -> (FileReport, Option<Plan>) {
    let mut report = FileReport {
        file_name: input.file_name,
        group_type: req.group_type,
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
        line: None,
        guard: None,
    };
    let outcome = match input.outcome {
        Outcome::Deferred(read) => read(),
        other => other,
    };
    let parsed = match outcome {
        Outcome::Unchanged => {
            report.status = FileStatus::Unchanged;
            return (report, None);
        }
        Outcome::Rejected(why, line) => {
            report.status = FileStatus::Rejected;
            report.error = Some(why);
            report.line = line;
            return (report, None);
        }
        Outcome::Deferred(_) => {
            report.status = FileStatus::Rejected;
            report.error = Some(format!("{}: could not be read", report.file_name));
            return (report, None);
        }
        Outcome::Restore(restore) => {
            return plan_restore(report, input.group_name, restore, existing, &stored);
        }
        Outcome::Parsed(parsed) => parsed,
    };
    report.shape = Some(parsed.shape);
    report.rows_read = parsed.rows_read;
    for s in &parsed.skipped {
        *report.skipped_by_reason.entry(s.reason).or_default() += 1;
    }
    if let Some(guards) = &req.guards
        && let Some(tripped) = guard::skipped_rows(guards, parsed.rows_read, &parsed.skipped)
    {
        report.status = FileStatus::Rejected;
        report.error = Some(format!("{}: {}", report.file_name, tripped.message));
        report.guard = Some(tripped);
        report.skipped = parsed.skipped;
        return (report, None);
    }
    let diff = match &parsed.members {
        Members::Exactly(members) => diff(members, &stored),
        Members::Keep => GroupDiff {
            unchanged: stored.len(),
            ..GroupDiff::default()
        },
    };
    report.holdings = match &parsed.members {
        Members::Exactly(members) => members.len(),
        Members::Keep => stored.len(),
    };
    report.counts = Counts::of(&diff);
    report.skipped = parsed.skipped;
    if let (Some(guards), Members::Exactly(members)) = (&req.guards, &parsed.members)
        && let Some(tripped) = guard::replacement(guards, &stored, members, &diff)
    {
        report.status = FileStatus::HeldBack;
        report.error = Some(format!(
            "{} held back for {} {}: {}",
            report.file_name,
            req.group_type.as_str(),
            report.group_name,
            tripped.message
        ));
        report.guard = Some(tripped);
        return (report, None);
    }
    let description = parsed
        .description
        .or_else(|| existing.and_then(|g| g.description.clone()));
    let metadata = parsed
        .metadata
        .or_else(|| existing.and_then(|g| g.metadata.clone()));
    report.description = description.clone();
    let plan = Plan {
        group_name: input.group_name,
        existing: existing.cloned(),
        description,
        metadata,
        diff,
        remove: false,
    };
    (report, Some(plan))
}

/// A rollback's plan for one group: `Unchanged` when the group is already as it was.
fn plan_restore(
    mut report: FileReport,
    group_name: String,
    restore: Restore,
    existing: Option<&definition_group::Model>,
    stored: &BTreeMap<Symbol, Stored>,
) -> (FileReport, Option<Plan>) {
    let Some(target) = restore.group else {
        let Some(group) = existing else {
            report.status = FileStatus::Unchanged;
            return (report, None);
        };
        let diff = diff(&BTreeMap::new(), stored);
        report.counts = Counts {
            deleted: diff.removed.len(),
            ..Counts::default()
        };
        let plan = Plan {
            group_name,
            existing: Some(group.clone()),
            description: None,
            metadata: None,
            diff,
            remove: true,
        };
        return (report, Some(plan));
    };
    let diff = patch(&restore.members, stored);
    let group_changed = existing
        .is_none_or(|g| g.description != target.description || g.metadata != target.metadata);
    report.holdings = diff.unchanged + diff.updated.len() + diff.added.len();
    report.rows_read = report.holdings;
    report.counts = Counts::of(&diff);
    report.description = target.description.clone();
    if diff.is_empty() && !group_changed {
        report.status = FileStatus::Unchanged;
        return (report, None);
    }
    let plan = Plan {
        group_name,
        existing: existing.cloned(),
        description: target.description,
        metadata: target.metadata,
        diff,
        remove: false,
    };
    (report, Some(plan))
}

/// Applies one group's plan and records its membership changes; returns whether anything
/// changed and the group's own change, recorded with the others at the end of the run.
async fn apply_plan(
    txn: &impl ConnectionTrait,
    req: &SyncRequest,
    run_id: i32,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<(bool, Option<GroupChangeRow>), DbErr> {
    if plan.remove
        && let Some(group) = &plan.existing
    {
        let change = remove_group(txn, req.group_type, run_id, group, &plan.diff).await?;
        return Ok((true, Some(change)));
    }
    let group_change = match &plan.existing {
        None => Some(GroupChangeRow {
            group_type: req.group_type,
            group_name: plan.group_name.clone(),
            change: GroupChangeKind::Created,
            old_description: None,
            old_metadata: None,
            new_description: plan.description.clone(),
            new_metadata: plan.metadata.clone(),
        }),
        Some(g) if g.description != plan.description || g.metadata != plan.metadata => {
            Some(GroupChangeRow {
                group_type: req.group_type,
                group_name: plan.group_name.clone(),
                change: GroupChangeKind::Updated,
                old_description: g.description.clone(),
                old_metadata: g.metadata.clone(),
                new_description: plan.description.clone(),
                new_metadata: plan.metadata.clone(),
            })
        }
        Some(_) => None,
    };
    let group_id = apply::upsert_group(
        txn,
        plan.existing.as_ref(),
        GroupSpec {
            environment: req.environment.as_str(),
            group_type: req.group_type,
            name: &plan.group_name,
            description: plan.description.clone(),
            metadata: plan.metadata.clone(),
        },
        now,
    )
    .await?;
    apply::apply_diff(txn, group_id, &plan.diff, now).await?;
    // Collected before the await: a lazy iterator of closures held across it would make the
    // future's Send-ness depend on higher-ranked lifetimes the compiler cannot prove.
    let changes: Vec<_> =
        apply::change_rows(req.group_type, &plan.group_name, &plan.diff).collect();
    apply::record_changes(txn, run_id, changes).await?;
    Ok((
        group_change.is_some() || !plan.diff.is_empty(),
        group_change,
    ))
}

/// Removes a group and its members (`diff` removes them all), recording the members as
/// `removed` changes; returns the group's own change record, to be written with the others.
async fn remove_group(
    txn: &impl ConnectionTrait,
    group_type: GroupType,
    run_id: i32,
    group: &definition_group::Model,
    diff: &GroupDiff,
) -> Result<GroupChangeRow, DbErr> {
    let changes: Vec<_> = apply::change_rows(group_type, &group.name, diff).collect();
    apply::record_changes(txn, run_id, changes).await?;
    apply::delete_group(txn, group.id).await?;
    Ok(GroupChangeRow {
        group_type,
        group_name: group.name.clone(),
        change: GroupChangeKind::Removed,
        old_description: group.description.clone(),
        old_metadata: group.metadata.clone(),
        new_description: None,
        new_metadata: None,
    })
}

/// Records the run's files and finishes its record, inside the run's transaction.
async fn finish(
    txn: &impl ConnectionTrait,
    req: &SyncRequest,
    run_id: i32,
    started_at: DateTime<Utc>,
    report: &mut LoadReport,
) -> Result<(), DbErr> {
    let rollback = req.kind == ROLLBACK_KIND;
    let file_rows = report.files.iter().map(|f| load_run_file::ActiveModel {
        id: NotSet,
        run_id: Set(run_id),
        file_name: Set(f.file_name.clone()),
        group_type: Set(req.group_type.as_str().to_owned()),
        group_name: Set(f.group_name.clone()),
        shape: Set(f.shape.map(str::to_owned)),
        // A rollback's row stands for the input its group is back to: the one loaded before
        // the run rolled back (none when there was none), so an incremental load compares
        // the file on disk with that and reloads a file that was rolled back.
        md5: Set(if rollback {
            Some(f.md5.clone()).filter(|m| !m.is_empty())
        } else {
            Some(f.md5.clone())
        }),
        status: Set(if rollback {
            "rolled_back".to_owned()
        } else {
            f.status.as_str().to_owned()
        }),
        rows_read: Set(count(f.rows_read)),
        rows_loaded: Set(count(f.holdings)),
        rows_skipped: Set(count(f.skipped_total())),
        created: Set(count(f.counts.created)),
        updated: Set(count(f.counts.updated)),
        deleted: Set(count(f.counts.deleted)),
        unchanged: Set(count(f.counts.unchanged)),
        error: Set(f.error.clone()),
    });
    for chunk in file_rows.collect::<Vec<_>>().chunks(200) {
        load_run_file::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }

    report.run_id = Some(run_id);
    let t = &report.totals;
    let mut model = run_model(req, started_at, report.state(), None);
    model.id = Set(run_id);
    model.holder = NotSet;
    model.finished_at = Set(Some(Utc::now()));
    model.files_total = Set(count(t.files));
    model.files_loaded = Set(count(t.files_loaded));
    model.files_unchanged = Set(count(t.files_unchanged));
    model.files_rejected = Set(count(t.files_rejected + t.files_held_back));
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
    state: &str,
    error: Option<String>,
) -> load_run::ActiveModel {
    load_run::ActiveModel {
        id: NotSet,
        environment: Set(req.environment.clone()),
        kind: Set(req.kind.to_owned()),
        mode: Set(req.mode_name().to_owned()),
        scope: Set(req.scope.clone()),
        source: Set(req.source.clone()),
        started_at: Set(started_at),
        finished_at: Set(None),
        state: Set(state.to_owned()),
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
        holder: Set(None),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
