//! The past of the stored graph, read from the run and change records: runs page by page, a
//! run's files, a feed of membership changes, a group's holdings as they were after a run or
//! at a time, the difference between two runs, and rollback of a run.
//!
//! Every change a run commits is recorded with both its sides (a member's weight and metadata,
//! a group's existence, description and metadata), so a group's past is rebuilt from its
//! present by undoing the changes recorded since. Only runs that committed data have change
//! records: `succeeded` and `partial` ones (a rollback is such a run too); `failed`,
//! `rejected`, `abandoned` and `running` runs have none, and dry runs are never recorded.
//!
//! Reads that combine the present with the records check that no run committed in between
//! (the environment's data version did not move) and read again if one did, so they need no
//! transaction of their own on either database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use entity::{
    ChangeKind, GroupChangeKind, GroupType, group_change, load_run, load_run_file,
    membership_change,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::diff::Desired;
use crate::error::LoadError;
use crate::graph::{self, RunSummary, normalise_group_name};
use crate::report::{LoadReport, Mode};
use crate::store;
use crate::symbol::Symbol;
use crate::sync::{
    Input, Outcome, ROLLBACK_KIND, Restore, RestoredGroup, SyncRequest, Writer, sync_with,
};

/// The run states whose changes are committed (and so recorded).
const COMMITTED: [&str; 2] = ["succeeded", "partial"];

/// Which runs [`runs_page`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this kind (`etf`, `universe`, `theme`, `sector`, `enrichment`,
    /// `stock_metadata`, `rollback`).
    pub kind: Option<String>,
    /// Only runs in this state (`running`, `succeeded`, `partial`, `rejected`, `failed`,
    /// `abandoned`).
    pub state: Option<String>,
}

/// The runs of an environment that match `filter`, newest first: at most `limit` of those
/// whose id is below `before_id` (all when `None`), and how many match the filter in all
/// (whatever `before_id`).
///
/// Paging is by id, so a page never repeats or skips a run when new runs are recorded
/// between two pages: pass the last id of a page as the next page's `before_id`.
pub async fn runs_page(
    db: &impl ConnectionTrait,
    environment: &str,
    filter: RunFilter,
    before_id: Option<i32>,
    limit: u64,
) -> Result<(Vec<RunSummary>, u64), DbErr> {
    let mut query = load_run::Entity::find().filter(load_run::Column::Environment.eq(environment));
    if let Some(kind) = filter.kind {
        query = query.filter(load_run::Column::Kind.eq(kind));
    }
    if let Some(state) = filter.state {
        query = query.filter(load_run::Column::State.eq(state));
    }
    let total = query.clone().count(db).await?;
    if let Some(before) = before_id {
        query = query.filter(load_run::Column::Id.lt(before));
    }
    let runs = query
        .order_by_desc(load_run::Column::Id)
        .limit(limit)
        .into_partial_model::<RunSummary>()
        .all(db)
        .await?;
    Ok((runs, total))
}

/// The files (or groups, for runs without files) a run of this environment looked at, in the
/// order it looked at them; empty for an unknown run or a run of another environment. The
/// run's full report, as JSON, is in `load_runs.report`.
pub async fn run_files(
    db: &impl ConnectionTrait,
    environment: &str,
    run_id: i32,
) -> Result<Vec<load_run_file::Model>, DbErr> {
    load_run_file::Entity::find()
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run_file::Column::RunId.eq(run_id))
        .order_by_asc(load_run_file::Column::Id)
        .all(db)
        .await
}

/// Which membership changes [`changes_feed`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only changes of runs that finished at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only changes of this run.
    pub run_id: Option<i32>,
    /// Only changes to this group (its name in any case, as [`graph::group`] takes it).
    pub group: Option<(GroupType, String)>,
}

/// One membership change a committed run made.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FeedChange {
    /// The change record's id: the feed's order and cursor.
    pub id: i32,
    pub run_id: i32,
    /// When the run finished (committed).
    pub finished_at: Option<DateTime<Utc>>,
    pub group_type: GroupType,
    pub group_name: String,
    pub symbol: String,
    pub change: ChangeKind,
    /// The weight before (`None` for `added`, and for members without weights).
    pub old_weight: Option<f64>,
    /// The weight after (`None` for `removed`, and for members without weights).
    pub new_weight: Option<f64>,
}

#[derive(FromQueryResult)]
struct FeedRow {
    id: i32,
    run_id: i32,
    finished_at: Option<DateTime<Utc>>,
    group_type: String,
    group_name: String,
    symbol: String,
    change: String,
    old_weight: Option<f64>,
    new_weight: Option<f64>,
}

/// The membership changes of an environment's committed runs (rollbacks included) that match
/// `filter`, across groups, newest first: at most `limit` of those whose id is below
/// `after_id` (pass the last id of a page to continue below it).
///
/// Changes to a group itself (created, described anew, removed) are not membership changes;
/// a removed group's members are, as `removed`.
pub async fn changes_feed(
    db: &impl ConnectionTrait,
    environment: &str,
    filter: ChangeFilter,
    after_id: Option<i32>,
    limit: u64,
) -> Result<Vec<FeedChange>, DbErr> {
    let mut query = membership_change::Entity::find()
        .select_only()
        .column(membership_change::Column::Id)
        .column(membership_change::Column::RunId)
        .column_as(load_run::Column::FinishedAt, "finished_at")
        .column(membership_change::Column::GroupType)
        .column(membership_change::Column::GroupName)
        .column(membership_change::Column::Symbol)
        .column(membership_change::Column::Change)
        .column(membership_change::Column::OldWeight)
        .column(membership_change::Column::NewWeight)
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run::Column::State.is_in(COMMITTED));
    if let Some(since) = filter.since {
        query = query.filter(load_run::Column::FinishedAt.gte(since));
    }
    if let Some(run_id) = filter.run_id {
        query = query.filter(membership_change::Column::RunId.eq(run_id));
    }
    if let Some((group_type, name)) = &filter.group {
        query = query
            .filter(membership_change::Column::GroupType.eq(group_type.as_str()))
            .filter(
                membership_change::Column::GroupName.eq(normalise_group_name(*group_type, name)),
            );
    }
    if let Some(after) = after_id {
        query = query.filter(membership_change::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(membership_change::Column::Id)
        .limit(limit)
        .into_model::<FeedRow>()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(FeedChange {
                id: r.id,
                run_id: r.run_id,
                finished_at: r.finished_at,
                group_type: r.group_type.parse().map_err(corrupt)?,
                group_name: r.group_name,
                symbol: r.symbol,
                change: r.change.parse().map_err(corrupt)?,
                old_weight: r.old_weight,
                new_weight: r.new_weight,
            })
        })
        .collect()
}

/// A point in a group's past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// Right after this run of the environment (before any later run).
    Run(i32),
    /// At this time: after every run that finished by then.
    Time(DateTime<Utc>),
}

/// A member as it was.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Holding {
    pub symbol: String,
    pub weight: Option<f64>,
    pub metadata: Option<serde_json::Value>,
}

/// A group's members as they were at `at`, heaviest first (no weight last), then by symbol;
/// `None` when the group did not exist then. Rebuilt from the stored members by undoing,
/// newest first, every change recorded by the committed runs after that point, all read in one
/// read transaction.
///
/// Fails with [`DbErr::RecordNotFound`] when `at` names a run that is not one of this
/// environment's. History recorded before change records kept metadata (migration
/// m20261201_000010) gives members it brings back no metadata, and does not know which groups
/// those runs created or removed.
pub async fn holdings_at(
    db: &DatabaseConnection,
    environment: &str,
    group_type: GroupType,
    group_name: &str,
    at: At,
) -> Result<Option<Vec<Holding>>, DbErr> {
    // One read transaction: the present members and the records undone from them are of
    // one committed state.
    let txn = store::begin_read(db).await?;
    let window = window_after(&txn, environment, at).await?;
    let name = normalise_group_name(group_type, group_name);
    let state = state_before(&txn, environment, group_type, &name, &window).await?;
    txn.commit().await?;
    Ok(state.map(|s| s.holdings()))
}

/// One symbol's difference between two points of a group's past.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DiffEntry {
    pub symbol: String,
    /// `added` (in `to` only), `removed` (in `from` only), `reweighted`, or `updated` (same
    /// weight, other metadata).
    pub change: ChangeKind,
    pub old_weight: Option<f64>,
    pub new_weight: Option<f64>,
}

/// What changed in a group between right after run `from_run` and right after run `to_run`
/// ([`holdings_at`] of each, compared; a group that did not exist counts as empty), by symbol.
/// `from_run` may be the later run: the changes then go backwards.
pub async fn diff_runs(
    db: &DatabaseConnection,
    environment: &str,
    group_type: GroupType,
    group_name: &str,
    from_run: i32,
    to_run: i32,
) -> Result<Vec<DiffEntry>, DbErr> {
    let txn = store::begin_read(db).await?;
    let from_window = window_after(&txn, environment, At::Run(from_run)).await?;
    let to_window = window_after(&txn, environment, At::Run(to_run)).await?;
    let name = normalise_group_name(group_type, group_name);
    let from = state_before(&txn, environment, group_type, &name, &from_window).await?;
    let to = state_before(&txn, environment, group_type, &name, &to_window).await?;
    txn.commit().await?;
    let empty = BTreeMap::new();
    let from = from.as_ref().map_or(&empty, |s| &s.members);
    let to = to.as_ref().map_or(&empty, |s| &s.members);
    Ok(compare(from, to))
}

/// What to roll back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackRequest {
    pub environment: String,
    /// The run whose changes are undone.
    pub run_id: i32,
    /// Report what the rollback would do; write nothing.
    pub dry_run: bool,
    /// Roll back even when later runs changed the same groups: the groups go back to their
    /// state before the run, those later changes undone too.
    pub force: bool,
}

/// Why a rollback was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RollbackRefused {
    /// No run has this id.
    #[error("there is no run {run_id}")]
    UnknownRun { run_id: i32 },
    /// The run belongs to another environment.
    #[error("run {run_id} belongs to environment {environment}, not {requested}")]
    OtherEnvironment {
        run_id: i32,
        environment: String,
        requested: String,
    },
    /// The run committed nothing: it failed, was rejected or abandoned, or is still running.
    #[error(
        "run {run_id} is {state}: only a run that succeeded (or partly did) changed anything \
         to roll back"
    )]
    NotCommitted { run_id: i32, state: String },
    /// The run committed, but changed no group and no member.
    #[error("run {run_id} changed nothing: there is nothing to roll back")]
    NothingChanged { run_id: i32 },
    /// Later committed runs changed some of the same groups; `force` rolls back anyway.
    #[error(
        "run {run_id} cannot be rolled back on its own: later {} {} changed the same {} ({}); \
         forcing it (`--force`, `force: true`) puts {} back as {} before run {run_id}, \
         undoing those later changes too",
        plural(.later.len(), "run", "runs"),
        list(.later.iter().map(|id| format!("#{id}"))),
        plural(.groups.len(), "group", "groups"),
        list(.groups.iter().map(|(t, n)| format!("{t} {n}"))),
        plural(.groups.len(), "it", "them"),
        plural(.groups.len(), "it was", "they were"),
    )]
    LaterRuns {
        run_id: i32,
        /// The later runs, oldest first.
        later: Vec<i32>,
        /// The groups both touched.
        groups: Vec<(GroupType, String)>,
    },
    /// The run was recorded before change records kept what undoing needs.
    #[error(
        "run {run_id} was recorded before change records kept what undoing it needs \
         (migration m20261201_000010): it cannot be rolled back"
    )]
    NotRecordedForUndo { run_id: i32 },
    /// The run changed groups of more than one type (no run does: each syncs one type).
    #[error("run {run_id} changed groups of several types; it cannot be rolled back as one run")]
    SeveralGroupTypes { run_id: i32 },
}

/// `later runs #11, #12` / `later run #11`.
fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Rolls back run `req.run_id`: every group it touched returns to its state before it (its
/// members with their weights and metadata, its description and metadata; a group it created
/// is removed, a group it removed comes back).
///
/// The rollback is a run of its own (kind `rollback`, scope and source `run N`), made like
/// every other under the write lock in one transaction: it records its change records and
/// file records (`rolled_back`, with the MD5 each group's input had before run N, so the next
/// incremental load reads a file that was rolled back) and commits a new data version; it can
/// itself be rolled back. Its report has one file per group, `loaded` or (already as it was)
/// `unchanged`. A dry run reports exactly that and writes nothing.
///
/// Refused ([`LoadError::RollbackRefused`]) for an unknown run, a run of another environment,
/// a run that committed nothing or changed nothing, a run recorded before undo was possible,
/// and, unless `force`, when later committed runs changed any of the same groups.
#[tracing::instrument(skip_all, fields(run.id = req.run_id, rollback.dry_run = req.dry_run))]
pub async fn rollback(
    db: &DatabaseConnection,
    req: &RollbackRequest,
) -> Result<LoadReport, LoadError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    // What run N did is settled once it committed: checked before taking the lock, so a
    // refusal leaves no record.
    let run = load_run::Entity::find_by_id(req.run_id)
        .one(db)
        .await?
        .ok_or(RollbackRefused::UnknownRun { run_id: req.run_id })?;
    if run.environment != req.environment {
        return Err(RollbackRefused::OtherEnvironment {
            run_id: run.id,
            environment: run.environment,
            requested: req.environment.clone(),
        }
        .into());
    }
    if !COMMITTED.contains(&run.state.as_str()) {
        return Err(RollbackRefused::NotCommitted {
            run_id: run.id,
            state: run.state,
        }
        .into());
    }
    let touched = touched_groups(db, run.id).await?;
    let group_type = match touched
        .iter()
        .map(|(t, _)| *t)
        .collect::<BTreeSet<_>>()
        .len()
    {
        0 => return Err(RollbackRefused::NothingChanged { run_id: run.id }.into()),
        1 => touched.iter().map(|(t, _)| *t).next(),
        _ => return Err(RollbackRefused::SeveralGroupTypes { run_id: run.id }.into()),
    }
    .ok_or(RollbackRefused::NothingChanged { run_id: run.id })?;
    if !recorded_for_undo(db, run.id).await? {
        return Err(RollbackRefused::NotRecordedForUndo { run_id: run.id }.into());
    }
    if !req.force {
        refuse_later_runs(db, &req.environment, run.id, &touched).await?;
    }

    let label = format!("run {}", run.id);
    let sync_req = SyncRequest {
        group_type,
        mode: Mode::Incremental,
        environment: req.environment.clone(),
        kind: ROLLBACK_KIND,
        source: label.clone(),
        scope: Some(label),
        remove_gone: false,
        dry_run: req.dry_run,
        guards: None,
    };
    // The groups' present, which the rollback is computed from, is read under the lock.
    let writer = Writer::begin(db, &sync_req, started_at).await?;
    let inputs = match restore_inputs(db, req, run.id, group_type, &touched).await {
        Ok(inputs) => inputs,
        Err(e) => {
            if let Some(writer) = writer {
                writer.fail(db, &sync_req, &e).await;
            }
            return Err(e);
        }
    };
    sync_with(db, &sync_req, writer, inputs, clock).await
}

/// The groups a run changed (their members or themselves).
async fn touched_groups(
    db: &impl ConnectionTrait,
    run_id: i32,
) -> Result<BTreeSet<(GroupType, String)>, DbErr> {
    let members: Vec<(String, String)> = membership_change::Entity::find()
        .select_only()
        .column(membership_change::Column::GroupType)
        .column(membership_change::Column::GroupName)
        .distinct()
        .filter(membership_change::Column::RunId.eq(run_id))
        .into_tuple()
        .all(db)
        .await?;
    let groups: Vec<(String, String)> = group_change::Entity::find()
        .select_only()
        .column(group_change::Column::GroupType)
        .column(group_change::Column::GroupName)
        .distinct()
        .filter(group_change::Column::RunId.eq(run_id))
        .into_tuple()
        .all(db)
        .await?;
    members
        .into_iter()
        .chain(groups)
        .map(|(t, name)| Ok((t.parse().map_err(corrupt)?, name)))
        .collect()
}

/// Whether every change record of the run keeps what undoing it needs: records made before
/// migration m20261201_000010 have no metadata. An `added` record needs none (undoing it
/// removes the membership); every other change made since has at least one side.
async fn recorded_for_undo(db: &impl ConnectionTrait, run_id: i32) -> Result<bool, DbErr> {
    let lacking = membership_change::Entity::find()
        .filter(membership_change::Column::RunId.eq(run_id))
        .filter(membership_change::Column::Change.ne(ChangeKind::Added.as_str()))
        .filter(membership_change::Column::OldMetadata.is_null())
        .filter(membership_change::Column::NewMetadata.is_null())
        .count(db)
        .await?;
    Ok(lacking == 0)
}

/// Refuses when a later committed run changed one of `touched`.
async fn refuse_later_runs(
    db: &impl ConnectionTrait,
    environment: &str,
    run_id: i32,
    touched: &BTreeSet<(GroupType, String)>,
) -> Result<(), LoadError> {
    let mut later = BTreeSet::new();
    let mut groups = Vec::new();
    for (group_type, name) in touched {
        let runs = later_runs(db, environment, run_id, *group_type, name).await?;
        if !runs.is_empty() {
            later.extend(runs);
            groups.push((*group_type, name.clone()));
        }
    }
    if later.is_empty() {
        return Ok(());
    }
    Err(RollbackRefused::LaterRuns {
        run_id,
        later: later.into_iter().collect(),
        groups,
    }
    .into())
}

/// The committed runs after `run_id` that changed a group (its members or itself).
async fn later_runs(
    db: &impl ConnectionTrait,
    environment: &str,
    run_id: i32,
    group_type: GroupType,
    name: &str,
) -> Result<BTreeSet<i32>, DbErr> {
    let members: Vec<i32> = membership_change::Entity::find()
        .select_only()
        .column(membership_change::Column::RunId)
        .distinct()
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run::Column::State.is_in(COMMITTED))
        .filter(membership_change::Column::GroupType.eq(group_type.as_str()))
        .filter(membership_change::Column::GroupName.eq(name))
        .filter(membership_change::Column::RunId.gt(run_id))
        .into_tuple()
        .all(db)
        .await?;
    let groups: Vec<i32> = group_change::Entity::find()
        .select_only()
        .column(group_change::Column::RunId)
        .distinct()
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run::Column::State.is_in(COMMITTED))
        .filter(group_change::Column::GroupType.eq(group_type.as_str()))
        .filter(group_change::Column::GroupName.eq(name))
        .filter(group_change::Column::RunId.gt(run_id))
        .into_tuple()
        .all(db)
        .await?;
    Ok(members.into_iter().chain(groups).collect())
}

/// One input per touched group: what undoing the changes of run `run_id` and of every later
/// committed run puts back. Without `force`, a later run found here (it committed after the
/// check before the lock) refuses the rollback.
async fn restore_inputs(
    db: &impl ConnectionTrait,
    req: &RollbackRequest,
    run_id: i32,
    group_type: GroupType,
    touched: &BTreeSet<(GroupType, String)>,
) -> Result<Vec<Input>, LoadError> {
    let env = req.environment.as_str();
    let md5_before = store::loaded_md5_before(db, env, group_type, run_id).await?;
    let window = Window::From(run_id);
    let mut later = BTreeSet::new();
    let mut conflicted = Vec::new();
    let mut inputs = Vec::with_capacity(touched.len());
    for (_, name) in touched {
        let undo = undo(db, env, group_type, name, &window).await?;
        if undo.runs.iter().any(|&r| r != run_id) {
            later.extend(undo.runs.iter().copied().filter(|&r| r != run_id));
            conflicted.push((group_type, name.clone()));
        }
        let members = undo
            .members
            .into_iter()
            .map(|(symbol, was)| {
                let was = was.map(|(weight, metadata)| Desired {
                    weight,
                    metadata: metadata.unwrap_or(serde_json::Value::Null),
                });
                (Symbol::from_normalised(symbol), was)
            })
            .collect();
        let group = match undo.group {
            Some(was) => was,
            None => graph::group(db, env, group_type, name)
                .await?
                .map(|g| RestoredGroup {
                    description: g.description,
                    metadata: g.metadata,
                }),
        };
        inputs.push(Input {
            file_name: format!("run {run_id}"),
            group_name: name.clone(),
            md5: md5_before.get(name).cloned().unwrap_or_default(),
            outcome: Outcome::Restore(Restore { group, members }),
        });
    }
    if !req.force && !later.is_empty() {
        return Err(RollbackRefused::LaterRuns {
            run_id,
            later: later.into_iter().collect(),
            groups: conflicted,
        }
        .into());
    }
    Ok(inputs)
}

/// The runs whose changes are undone to reach a point in the past.
enum Window {
    /// Runs from this id on.
    From(i32),
    /// Runs that finished after this time.
    FinishedAfter(DateTime<Utc>),
}

/// The window of runs after `at`; an unknown run (or one of another environment) is an error.
async fn window_after(
    db: &impl ConnectionTrait,
    environment: &str,
    at: At,
) -> Result<Window, DbErr> {
    match at {
        At::Time(t) => Ok(Window::FinishedAfter(t)),
        At::Run(run_id) => {
            let known = load_run::Entity::find_by_id(run_id)
                .filter(load_run::Column::Environment.eq(environment))
                .count(db)
                .await?;
            if known == 0 {
                return Err(DbErr::RecordNotFound(format!(
                    "run {run_id} of environment {environment}"
                )));
            }
            Ok(Window::From(run_id.saturating_add(1)))
        }
    }
}

/// A member as undoing puts it back: its weight and metadata, or `None` when it was not one.
type Was = Option<(Option<f64>, Option<serde_json::Value>)>;

/// What undoing a window of runs puts back in one group.
struct Undo {
    /// The group's own fields before the window: `Some(None)` when it did not exist, `None`
    /// when the window did not change the group itself (it is as it is now).
    group: Option<Option<RestoredGroup>>,
    /// Each member the window changed, as it was before.
    members: BTreeMap<String, Was>,
    /// The runs that changed the group.
    runs: BTreeSet<i32>,
}

#[derive(FromQueryResult)]
struct MemberChangeRow {
    run_id: i32,
    symbol: String,
    change: String,
    old_weight: Option<f64>,
    old_metadata: Option<serde_json::Value>,
}

#[derive(FromQueryResult)]
struct GroupChangeRow {
    run_id: i32,
    change: String,
    old_description: Option<String>,
    old_metadata: Option<serde_json::Value>,
}

/// The changes the window's committed runs made to one group, as what undoing them puts back:
/// for each member and for the group itself, the side "before" of its earliest change in the
/// window (undoing newest first ends there).
async fn undo(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
    name: &str,
    window: &Window,
) -> Result<Undo, DbErr> {
    let mut members = membership_change::Entity::find()
        .select_only()
        .column(membership_change::Column::RunId)
        .column(membership_change::Column::Symbol)
        .column(membership_change::Column::Change)
        .column(membership_change::Column::OldWeight)
        .column(membership_change::Column::OldMetadata)
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run::Column::State.is_in(COMMITTED))
        .filter(membership_change::Column::GroupType.eq(group_type.as_str()))
        .filter(membership_change::Column::GroupName.eq(name));
    let mut groups = group_change::Entity::find()
        .select_only()
        .column(group_change::Column::RunId)
        .column(group_change::Column::Change)
        .column(group_change::Column::OldDescription)
        .column(group_change::Column::OldMetadata)
        .inner_join(load_run::Entity)
        .filter(load_run::Column::Environment.eq(environment))
        .filter(load_run::Column::State.is_in(COMMITTED))
        .filter(group_change::Column::GroupType.eq(group_type.as_str()))
        .filter(group_change::Column::GroupName.eq(name));
    match window {
        Window::From(run_id) => {
            members = members.filter(membership_change::Column::RunId.gte(*run_id));
            groups = groups.filter(group_change::Column::RunId.gte(*run_id));
        }
        Window::FinishedAfter(t) => {
            members = members.filter(load_run::Column::FinishedAt.gt(*t));
            groups = groups.filter(load_run::Column::FinishedAt.gt(*t));
        }
    }
    let member_rows = members
        .order_by_asc(membership_change::Column::Id)
        .into_model::<MemberChangeRow>()
        .all(db)
        .await?;
    let group_rows = groups
        .order_by_asc(group_change::Column::Id)
        .into_model::<GroupChangeRow>()
        .all(db)
        .await?;

    let mut out = Undo {
        group: None,
        members: BTreeMap::new(),
        runs: BTreeSet::new(),
    };
    for row in member_rows {
        out.runs.insert(row.run_id);
        let kind: ChangeKind = row.change.parse().map_err(corrupt)?;
        out.members.entry(row.symbol).or_insert(match kind {
            ChangeKind::Added => None,
            ChangeKind::Removed | ChangeKind::Reweighted | ChangeKind::Updated => {
                Some((row.old_weight, row.old_metadata))
            }
        });
    }
    for row in group_rows {
        out.runs.insert(row.run_id);
        if out.group.is_none() {
            let kind: GroupChangeKind = row.change.parse().map_err(corrupt)?;
            out.group = Some(match kind {
                GroupChangeKind::Created => None,
                GroupChangeKind::Updated | GroupChangeKind::Removed => Some(RestoredGroup {
                    description: row.old_description,
                    metadata: row.old_metadata,
                }),
            });
        }
    }
    Ok(out)
}

/// A group as it was.
struct PastGroup {
    members: BTreeMap<String, (Option<f64>, Option<serde_json::Value>)>,
}

impl PastGroup {
    fn holdings(self) -> Vec<Holding> {
        let mut out: Vec<Holding> = self
            .members
            .into_iter()
            .map(|(symbol, (weight, metadata))| Holding {
                symbol,
                weight,
                metadata,
            })
            .collect();
        out.sort_by(|a, b| {
            graph::heavier_first(a.weight, b.weight).then_with(|| a.symbol.cmp(&b.symbol))
        });
        out
    }
}

/// A group as it was before the window's runs: its present with their changes undone; `None`
/// when it did not exist.
async fn state_before(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
    name: &str,
    window: &Window,
) -> Result<Option<PastGroup>, DbErr> {
    let current = graph::group(db, environment, group_type, name).await?;
    let undo = undo(db, environment, group_type, name, window).await?;
    let existed = match &undo.group {
        Some(was) => was.is_some(),
        None => current.is_some(),
    };
    if !existed {
        return Ok(None);
    }
    let mut members: BTreeMap<String, (Option<f64>, Option<serde_json::Value>)> = match &current {
        Some(g) => store::group_memberships(db, g.id)
            .await?
            .into_iter()
            .map(|(symbol, m)| (symbol.as_str().to_owned(), (m.weight, m.metadata)))
            .collect(),
        None => BTreeMap::new(),
    };
    for (symbol, was) in undo.members {
        match was {
            Some(member) => {
                members.insert(symbol, member);
            }
            None => {
                members.remove(&symbol);
            }
        }
    }
    Ok(Some(PastGroup { members }))
}

/// Two states of a group's members compared, by symbol.
fn compare(
    from: &BTreeMap<String, (Option<f64>, Option<serde_json::Value>)>,
    to: &BTreeMap<String, (Option<f64>, Option<serde_json::Value>)>,
) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    let symbols: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    for symbol in symbols {
        let entry = match (from.get(symbol), to.get(symbol)) {
            (None, None) => continue,
            (None, Some((w, _))) => (ChangeKind::Added, None, *w),
            (Some((w, _)), None) => (ChangeKind::Removed, *w, None),
            (Some((a, _)), Some((b, _))) if a != b => (ChangeKind::Reweighted, *a, *b),
            (Some((a, ma)), Some((b, mb))) if ma != mb => (ChangeKind::Updated, *a, *b),
            (Some(_), Some(_)) => continue,
        };
        out.push(DiffEntry {
            symbol: symbol.clone(),
            change: entry.0,
            old_weight: entry.1,
            new_weight: entry.2,
        });
    }
    out
}

fn corrupt(e: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("a stored change record does not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn comparing_two_states_names_every_kind_of_difference_by_symbol() {
        let m = |v: &str| Some(json!({ "name": v }));
        let from: BTreeMap<_, _> = [
            ("AAPL".to_owned(), (Some(7.0), m("Apple"))),
            ("IBM".to_owned(), (Some(1.0), m("IBM"))),
            ("MSFT".to_owned(), (Some(6.0), m("Microsoft"))),
            ("NVDA".to_owned(), (Some(5.0), m("NVIDIA"))),
        ]
        .into_iter()
        .collect();
        let to: BTreeMap<_, _> = [
            ("AAPL".to_owned(), (Some(7.0), m("Apple"))),
            ("MSFT".to_owned(), (Some(6.5), m("Microsoft"))),
            ("NVDA".to_owned(), (Some(5.0), m("NVIDIA Corp."))),
            ("ORCL".to_owned(), (Some(2.0), m("Oracle"))),
        ]
        .into_iter()
        .collect();
        let entry = |symbol: &str, change, old_weight, new_weight| DiffEntry {
            symbol: symbol.to_owned(),
            change,
            old_weight,
            new_weight,
        };
        assert_eq!(
            compare(&from, &to),
            vec![
                entry("IBM", ChangeKind::Removed, Some(1.0), None),
                entry("MSFT", ChangeKind::Reweighted, Some(6.0), Some(6.5)),
                entry("NVDA", ChangeKind::Updated, Some(5.0), Some(5.0)),
                entry("ORCL", ChangeKind::Added, None, Some(2.0)),
            ]
        );
    }

    #[test]
    fn a_refusal_names_the_later_runs_and_the_groups_and_the_way_past_it() {
        let refused = RollbackRefused::LaterRuns {
            run_id: 9,
            later: vec![11, 12],
            groups: vec![(GroupType::Etf, "SPY".to_owned())],
        };
        let text = refused.to_string();
        assert!(
            text.contains("#11, #12") && text.contains("ETF SPY") && text.contains("--force"),
            "{text}"
        );
    }

    #[test]
    fn a_past_group_lists_its_members_heaviest_first_then_by_symbol() {
        let group = PastGroup {
            members: [
                ("B".to_owned(), (Some(1.0), None)),
                ("A".to_owned(), (Some(1.0), None)),
                ("C".to_owned(), (None, None)),
                ("D".to_owned(), (Some(3.0), None)),
            ]
            .into_iter()
            .collect(),
        };
        let order: Vec<String> = group.holdings().into_iter().map(|h| h.symbol).collect();
        assert_eq!(order, ["D", "A", "B", "C"]);
    }
}
