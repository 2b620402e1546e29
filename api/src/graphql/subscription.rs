//! The root `Subscription`: load runs' progress and the groups each new data version changed,
//! pushed over websockets (`GET /graphql` with `graphql-transport-ws` or `graphql-ws`).
//!
//! Events come from the server's [`crate::events::Events`] hub. A run of another process is
//! followed through its `load_runs` row, which says only how it ended; no admin token is
//! needed, since progress reveals only counts and file names of the shipped folders.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, Enum, Object, Subscription as SubscriptionRoot};
use entity::GroupType;
use loader::graph::RunSummary;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::analytics::LoadRun;
use super::dataloader::{RunById, RunLoader};
use super::error::{code, coded, internal};
use super::group::{Group, GroupKind};
use super::ops::LoadResult;
use super::{Caller, snapshot, state};
use crate::events::{DataChanged, Phase, RunEvent};
use crate::state::AppState;

/// How often a run of another process is looked up while it runs.
const POLL: Duration = Duration::from_millis(250);

/// The root subscription.
#[derive(Default)]
pub struct Subscription;

/// The data a websocket connection's subscriptions run with: the caller and a dataloader for
/// the runs events name (it batches, and caches nothing, so a run read later is read anew).
pub fn connection_data(state: &Arc<AppState>, caller: Caller) -> async_graphql::Data {
    let mut data = async_graphql::Data::default();
    data.insert(caller);
    data.insert(DataLoader::new(
        RunLoader {
            state: state.clone(),
        },
        tokio::spawn,
    ));
    data
}

/// Streams over a websocket (`GET /graphql` with `graphql-transport-ws` or `graphql-ws`):
/// load progress and data changes, so dashboards refetch only what moved.
#[SubscriptionRoot]
impl Subscription {
    /// The progress of load runs: without `runId`, every step of every run this server
    /// starts (`loadEtfHoldings`, `loadUniverses`) from now on; with `runId`, that run's steps
    /// up to its `FINISHED` event, then the stream ends. A run that already ended answers its
    /// `FINISHED` event at once; a run of another process (the CLI, another server) is followed
    /// through its record and answers only its `FINISHED` event, when it ends. An unknown
    /// `runId` is a NOT_FOUND error.
    async fn run_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only this run (`loadRuns { id }`, `LoadResult.runId`); default every \
                          run of this server."
        )]
        run_id: Option<i32>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<RunProgress>>> {
        let state = state(ctx)?.clone();
        // Subscribed first, so no event of the run falls between the look-up and the stream.
        let rx = state.events.runs();
        let follow = match run_id {
            None => Follow::Every { rx },
            Some(id) => {
                let ended = ended(&state, id).await?;
                let mut tick = tokio::time::interval(POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Follow::One {
                    state,
                    id,
                    rx,
                    tick,
                    first: ended.map(Box::new),
                }
            }
        };
        Ok(stream::unfold(Some(follow), |follow| async move {
            let mut follow = follow?;
            let (item, more) = follow.next().await?;
            Some((item, more.then_some(follow)))
        }))
    }

    /// The data version served changed (a load here or in another process committed): the
    /// new version and the groups whose members, weights or metadata differ from the version
    /// served before, added and removed groups included. One event per version, from now on.
    async fn data_changed(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = DataChange>> {
        let rx = state(ctx)?.events.data();
        Ok(stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((DataChange(event), rx)),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a dataChanged subscriber fell behind");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }))
    }
}

/// What a `runProgress` stream follows.
enum Follow {
    /// Every run of this server.
    Every { rx: Receiver<Arc<RunEvent>> },
    /// One run, to its end.
    One {
        state: Arc<AppState>,
        id: i32,
        rx: Receiver<Arc<RunEvent>>,
        /// When to look for the run's end (in the ledger of finished runs, else its record).
        tick: tokio::time::Interval,
        /// The final event, when the run had ended before the subscription began.
        first: Option<Box<RunProgress>>,
    },
}

impl Follow {
    /// The next event, and whether more may follow; `None` when the stream is over.
    async fn next(&mut self) -> Option<(async_graphql::Result<RunProgress>, bool)> {
        match self {
            Self::Every { rx } => loop {
                match rx.recv().await {
                    Ok(event) => return Some((Ok(RunProgress::live(event)), true)),
                    // Progress is a sample: a subscriber that fell behind goes on from here.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            },
            Self::One {
                state,
                id,
                rx,
                tick,
                first,
            } => {
                if let Some(event) = first.take() {
                    return Some((Ok(*event), false));
                }
                loop {
                    tokio::select! {
                        got = rx.recv() => match got {
                            Ok(event) if event.run_id == Some(*id) => {
                                let more = event.phase != Phase::Finished;
                                return Some((Ok(RunProgress::live(event)), more));
                            }
                            Ok(_) | Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => return None,
                        },
                        _ = tick.tick() => match ended(state, *id).await {
                            Ok(Some(event)) => return Some((Ok(event), false)),
                            Ok(None) => {}
                            Err(e) => return Some((Err(e), false)),
                        },
                    }
                }
            }
        }
    }
}

/// A run's final event if it has ended: the one this server kept (with its report), else,
/// unless it is running here, the one its record gives once it is no longer `running`.
/// NOT_FOUND when the run is neither running here nor on record.
async fn ended(state: &AppState, id: i32) -> async_graphql::Result<Option<RunProgress>> {
    if let Some(event) = state.events.finished(id) {
        return Ok(Some(RunProgress::live(event)));
    }
    if state.events.is_running_here(id) {
        return Ok(None);
    }
    let Some(run) = loader::graph::runs_by_id(&state.db, state.environment(), &[id])
        .await
        .map_err(internal)?
        .pop()
    else {
        return Err(coded(code::NOT_FOUND, format!("no load run {id}")));
    };
    if run.state == "running" {
        return Ok(None);
    }
    let rows_read = rows_read(state, id).await.map_err(internal)?;
    let event = RunEvent {
        run_id: Some(run.id),
        kind: run.kind.clone(),
        phase: Phase::Finished,
        files_done: usize::try_from(run.files_total).unwrap_or(0),
        files_total: usize::try_from(run.files_total).unwrap_or(0),
        current_file: None,
        rows_read,
        report: None,
        state: Some(run.state.clone()),
    };
    Ok(Some(RunProgress {
        event: Arc::new(event),
        run: Some(run),
    }))
}

/// The rows a recorded run read (`load_runs.rows_read`, which the run summary leaves out).
async fn rows_read(state: &AppState, id: i32) -> Result<usize, sea_orm::DbErr> {
    use entity::load_run::{Column, Entity};
    use sea_orm::{EntityTrait, QuerySelect};
    let rows: Option<i32> = Entity::find_by_id(id)
        .select_only()
        .column(Column::RowsRead)
        .into_tuple()
        .one(&state.db)
        .await?;
    Ok(rows.and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
}

/// Where a load run is.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunPhase {
    /// Reading and checking the files, one event per file read.
    Reading,
    /// Every file is read; the run diffs and writes in its transaction.
    Writing,
    /// The run is over (`state` says how); its last event.
    Finished,
}

impl From<Phase> for RunPhase {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Reading => Self::Reading,
            Phase::Writing => Self::Writing,
            Phase::Finished => Self::Finished,
        }
    }
}

/// One step of a load run.
pub struct RunProgress {
    event: Arc<RunEvent>,
    /// The run's record, when the event was read from it.
    run: Option<RunSummary>,
}

impl RunProgress {
    fn live(event: Arc<RunEvent>) -> Self {
        Self { event, run: None }
    }
}

/// One step of a load run: its counts so far, and on the `FINISHED` event how it ended.
#[Object]
impl RunProgress {
    /// The recorded run (`loadRuns { id }`); null for a dry run, which records nothing.
    async fn run_id(&self) -> Option<i32> {
        self.event.run_id
    }

    /// `etf`, `universe`, ... (`LoadRun.kind`).
    async fn kind(&self) -> &str {
        &self.event.kind
    }

    /// Where the run is.
    async fn phase(&self) -> RunPhase {
        self.event.phase.into()
    }

    /// Files whose first read is done (unchanged and rejected files included).
    async fn files_done(&self) -> usize {
        self.event.files_done
    }

    /// Files the run considers; 0 until it has listed them.
    async fn files_total(&self) -> usize {
        self.event.files_total
    }

    /// The file this event reports the read of; null on other events.
    async fn current_file(&self) -> Option<&str> {
        self.event.current_file.as_deref()
    }

    /// Rows read so far, all files together (unchanged and rejected files count none).
    async fn rows_read(&self) -> usize {
        self.event.rows_read
    }

    /// How the run ended (`succeeded`, `partial`, `rejected`, `failed`, `abandoned`); null
    /// until `FINISHED`.
    async fn state(&self) -> Option<&str> {
        self.event.state.as_deref()
    }

    /// The run as recorded now (started, finished, counts, holder); null for a dry run.
    async fn run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LoadRun>> {
        if let Some(run) = &self.run {
            return Ok(Some(run.clone().into()));
        }
        let Some(id) = self.event.run_id else {
            return Ok(None);
        };
        let run = match ctx.data_opt::<DataLoader<RunLoader>>() {
            Some(dataloader) => dataloader.load_one(RunById(id)).await.map_err(internal)?,
            None => {
                let state = state(ctx)?;
                loader::graph::runs_by_id(&state.db, state.environment(), &[id])
                    .await
                    .map_err(internal)?
                    .pop()
            }
        };
        Ok(run.map(LoadRun::from))
    }

    /// What the run did, file by file, as the load mutation answers it: on the `FINISHED`
    /// event of a run of this server; null on other events, and for runs of other processes
    /// (see `run`).
    async fn result(&self) -> Option<LoadResult> {
        self.event.report.as_deref().map(LoadResult::from)
    }
}

/// A new data version is served.
pub struct DataChange(Arc<DataChanged>);

/// A new data version is served, and the groups it changed.
#[Object]
impl DataChange {
    /// The version now served (`stats { dataVersion }`).
    async fn data_version(&self) -> i64 {
        self.0.data_version
    }

    /// The groups whose members, weights, member names, description or metadata differ from
    /// the version served before, added and removed ones included; by type, then name.
    async fn groups(&self) -> Vec<GroupRef> {
        self.0
            .groups
            .iter()
            .map(|(kind, name)| GroupRef {
                kind: *kind,
                name: name.clone(),
            })
            .collect()
    }
}

/// A group named by type and name.
pub struct GroupRef {
    kind: GroupType,
    name: String,
}

/// A group named by type and name, which may no longer exist.
#[Object]
impl GroupRef {
    /// The group's kind.
    #[graphql(name = "type")]
    async fn kind(&self) -> GroupKind {
        self.kind.into()
    }

    /// The group's name (`SPY`, `sp500`).
    async fn name(&self) -> &str {
        &self.name
    }

    /// The group in the version served when this field is resolved (which a later load may
    /// have moved past the event's); null when the group was removed.
    async fn group(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Group>> {
        let snap = snapshot(ctx)?;
        Ok(snap
            .find(self.kind, &self.name)
            .map(|g| Group::new(snap.clone(), g)))
    }
}
