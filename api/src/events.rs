//! Live events for GraphQL subscriptions: the progress of this process's load runs, and which
//! groups a new data version changed.
//!
//! Both travel on tokio broadcast channels held by [`Events`] (one per server, on
//! [`crate::state::AppState`]): senders never wait, a subscriber that falls behind loses the
//! oldest events (progress is a sample, and every run's final event is also kept for the
//! look-ups of `runProgress(runId:)`), and nothing is computed for nobody (the group diff of a
//! new version only runs while someone listens).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use entity::GroupType;
use loader::LoadReport;
use tokio::sync::broadcast;

use crate::snapshot::{Group, Snapshot};

/// Run events a slow subscriber may fall behind by before it loses the oldest.
const RUN_EVENTS: usize = 1024;
/// Data-changed events a slow subscriber may fall behind by (one per data version).
const DATA_EVENTS: usize = 64;
/// Final events of finished runs kept for `runProgress(runId:)`.
const FINISHED_KEPT: usize = 32;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading and checking the files (the first read of each).
    Reading,
    /// Every file is read; the run is diffing and writing in its transaction.
    Writing,
    /// The run is over: committed, rejected or failed.
    Finished,
}

/// A step of one load run.
#[derive(Clone, Debug)]
pub struct RunEvent {
    /// The recorded run; `None` for a dry run (or a run that failed before it was recorded).
    pub run_id: Option<i32>,
    /// `etf`, `universe`, ... (`load_runs.kind`).
    pub kind: String,
    pub phase: Phase,
    /// Files whose first read is done.
    pub files_done: usize,
    /// Files the run considers.
    pub files_total: usize,
    /// The file whose read this event reports.
    pub current_file: Option<String>,
    /// Rows read so far (the first read of each file; unchanged and rejected files count 0).
    pub rows_read: usize,
    /// The report, on the final event of a run that returned one.
    pub report: Option<Arc<LoadReport>>,
    /// The run's final state (`succeeded`, `partial`, `rejected`, `failed`), on the final
    /// event.
    pub state: Option<String>,
}

/// A new data version is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataChanged {
    /// The version now served.
    pub data_version: i64,
    /// The groups whose members (symbol, weight, name) or description and metadata differ
    /// from the version served before, added and removed groups included; by type and name.
    pub groups: Vec<(GroupType, String)>,
}

/// The event hub of one server.
pub struct Events {
    runs: broadcast::Sender<Arc<RunEvent>>,
    data: broadcast::Sender<Arc<DataChanged>>,
    ledger: Arc<Mutex<Ledger>>,
}

/// Which runs of this process are going on, and how the last few ended.
#[derive(Debug, Default)]
struct Ledger {
    running: HashSet<i32>,
    finished: VecDeque<Arc<RunEvent>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A hub with no subscriber yet.
    pub fn new() -> Self {
        Self {
            runs: broadcast::channel(RUN_EVENTS).0,
            data: broadcast::channel(DATA_EVENTS).0,
            ledger: Arc::default(),
        }
    }

    /// A progress sink for one load of `kind` (`etf`, `universe`; see `loader::run::kind_key`).
    ///
    /// Make one per load, pass it as the load's [`loader::Progress`], then call
    /// [`RunProgressSink::finish`] with the report the load returned:
    ///
    /// ```ignore
    /// let sink = state.events.progress(loader::run::kind_key(GroupType::Etf));
    /// let result = ops::load(&state.config, &state.db, &options, &sink).await;
    /// if let Ok(report) = &result {
    ///     sink.finish(&Arc::new(report.clone()));
    /// }
    /// ```
    ///
    /// A sink dropped without `finish` (the load returned an error: nothing changed) sends a
    /// final event with state `failed` itself.
    pub fn progress(&self, kind: &str) -> RunProgressSink {
        RunProgressSink {
            runs: self.runs.clone(),
            ledger: self.ledger.clone(),
            kind: kind.to_owned(),
            count: Mutex::default(),
        }
    }

    /// Every run event from now on.
    pub fn runs(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.runs.subscribe()
    }

    /// Every data-changed event from now on.
    pub fn data(&self) -> broadcast::Receiver<Arc<DataChanged>> {
        self.data.subscribe()
    }

    /// Subscriptions listening now, run progress and data changes together.
    pub fn subscribers(&self) -> usize {
        self.runs.receiver_count() + self.data.receiver_count()
    }

    /// The final event of a run of this process that finished lately.
    pub fn finished(&self, run_id: i32) -> Option<Arc<RunEvent>> {
        lock(&self.ledger)
            .finished
            .iter()
            .find(|e| e.run_id == Some(run_id))
            .cloned()
    }

    /// Whether a run of this process with this id is going on (its events come here).
    pub fn is_running_here(&self, run_id: i32) -> bool {
        lock(&self.ledger).running.contains(&run_id)
    }

    /// Announces that `new` replaced `old` as the served snapshot: one [`DataChanged`] naming
    /// the groups that differ, when the version moved and someone listens.
    pub fn snapshot_swapped(&self, old: &Snapshot, new: &Snapshot) {
        if old.version == new.version || self.data.receiver_count() == 0 {
            return;
        }
        let event = DataChanged {
            data_version: new.version,
            groups: changed_groups(old, new),
        };
        tracing::debug!(
            data.version = event.data_version,
            groups = event.groups.len(),
            "data changed"
        );
        // No receiver left since the check: nobody to tell.
        let _ = self.data.send(Arc::new(event));
    }
}

/// The groups that differ between two snapshots, by type and name: added, removed, or with
/// other members, weights, member names, description or metadata. Both list their groups by
/// type, then name, so one merge pass pairs them; a pair is compared member by member and left
/// at the first difference.
pub fn changed_groups(old: &Snapshot, new: &Snapshot) -> Vec<(GroupType, String)> {
    use std::cmp::Ordering;
    fn key(g: &Group) -> (&str, &str) {
        (&g.model.group_type, &g.model.name)
    }
    let named = |g: &Group| (g.kind, g.model.name.clone());
    let (mut a, mut b) = (old.groups.iter().peekable(), new.groups.iter().peekable());
    let mut out = Vec::new();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(g), None) => {
                out.push(named(g));
                a.next();
            }
            (None, Some(g)) => {
                out.push(named(g));
                b.next();
            }
            (Some(x), Some(y)) => match key(x).cmp(&key(y)) {
                Ordering::Less => {
                    out.push(named(x));
                    a.next();
                }
                Ordering::Greater => {
                    out.push(named(y));
                    b.next();
                }
                Ordering::Equal => {
                    // A group a load left alone is the same one in both snapshots.
                    if !Arc::ptr_eq(x, y) && !same_group(old, x, new, y) {
                        out.push(named(y));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    out
}

/// Whether a group holds the same data in two snapshots. Members are in a fixed order
/// (heaviest first, ties by symbol), so equal data lines up member by member.
fn same_group(old: &Snapshot, x: &Group, new: &Snapshot, y: &Group) -> bool {
    x.members.len() == y.members.len()
        && x.model.description == y.model.description
        && x.model.metadata == y.model.metadata
        && x.members.iter().zip(&y.members).all(|(m, n)| {
            m.weight.map(f64::to_bits) == n.weight.map(f64::to_bits)
                && m.name == n.name
                && old.stocks[m.stock as usize].symbol == new.stocks[n.stock as usize].symbol
        })
}

/// A load's [`loader::Progress`] that broadcasts each step (see [`Events::progress`]).
pub struct RunProgressSink {
    runs: broadcast::Sender<Arc<RunEvent>>,
    ledger: Arc<Mutex<Ledger>>,
    kind: String,
    count: Mutex<Count>,
}

/// What a sink has seen so far.
#[derive(Debug, Default)]
struct Count {
    run_id: Option<i32>,
    files_done: usize,
    files_total: usize,
    rows_read: usize,
    begun: bool,
    finished: bool,
}

impl RunProgressSink {
    /// Sends the run's final event (phase `Finished`, the report's state, the report) and
    /// keeps it for `runProgress(runId:)`. Call it once, after the load returned `report`.
    pub fn finish(&self, report: &Arc<LoadReport>) {
        let mut count = lock(&self.count);
        if count.finished {
            return;
        }
        count.finished = true;
        count.run_id = report.run_id.or(count.run_id);
        count.files_total = count.files_total.max(report.totals.files);
        count.files_done = count.files_total;
        let event = Arc::new(RunEvent {
            phase: Phase::Finished,
            report: Some(report.clone()),
            state: Some(report.state().to_owned()),
            ..self.event(&count, None)
        });
        self.close(&count, event);
    }

    /// The event of the current counts.
    fn event(&self, count: &Count, current_file: Option<&str>) -> RunEvent {
        RunEvent {
            run_id: count.run_id,
            kind: self.kind.clone(),
            phase: Phase::Reading,
            files_done: count.files_done,
            files_total: count.files_total,
            current_file: current_file.map(str::to_owned),
            rows_read: count.rows_read,
            report: None,
            state: None,
        }
    }

    /// Sends an event. Called with the counts locked, so events leave in the order counted.
    fn send(&self, event: RunEvent) {
        // No subscriber: nobody to tell.
        let _ = self.runs.send(Arc::new(event));
    }

    /// Records the final event in the ledger, then sends it.
    fn close(&self, count: &Count, event: Arc<RunEvent>) {
        {
            let mut ledger = lock(&self.ledger);
            if let Some(id) = count.run_id {
                ledger.running.remove(&id);
                if ledger.finished.len() == FINISHED_KEPT {
                    ledger.finished.pop_front();
                }
                ledger.finished.push_back(event.clone());
            }
        }
        let _ = self.runs.send(event);
    }
}

impl loader::Progress for RunProgressSink {
    fn started(&self, run_id: Option<i32>) {
        lock(&self.count).run_id = run_id;
        if let Some(id) = run_id {
            lock(&self.ledger).running.insert(id);
        }
    }

    fn begin(&self, files: usize) {
        let mut count = lock(&self.count);
        count.begun = true;
        count.files_total = files;
        self.send(self.event(&count, None));
    }

    fn file_read(&self, file_name: &str, rows_read: usize) {
        let mut count = lock(&self.count);
        count.files_done += 1;
        count.rows_read += rows_read;
        self.send(self.event(&count, Some(file_name)));
    }

    fn end(&self) {
        let count = lock(&self.count);
        self.send(RunEvent {
            phase: Phase::Writing,
            ..self.event(&count, None)
        });
    }
}

impl Drop for RunProgressSink {
    /// A run that began but was never finished returned an error: it changed nothing, and its
    /// record (if it has one) says `failed`.
    fn drop(&mut self) {
        let count = lock(&self.count);
        if count.finished || !(count.begun || count.run_id.is_some()) {
            return;
        }
        let event = Arc::new(RunEvent {
            phase: Phase::Finished,
            state: Some("failed".to_owned()),
            ..self.event(&count, None)
        });
        self.close(&count, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loader::Progress as _;

    #[test]
    fn a_sink_counts_files_and_rows_and_ends_with_one_final_event() {
        let events = Events::new();
        let mut rx = events.runs();
        let sink = events.progress("etf");
        sink.started(Some(7));
        assert!(events.is_running_here(7));
        sink.begin(2);
        sink.file_read("a.csv", 10);
        sink.file_read("b.csv", 0);
        sink.end();
        drop(sink);
        let seen: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let steps: Vec<_> = seen
            .iter()
            .map(|e| (e.phase, e.files_done, e.files_total, e.rows_read))
            .collect();
        assert_eq!(
            steps,
            [
                (Phase::Reading, 0, 2, 0),
                (Phase::Reading, 1, 2, 10),
                (Phase::Reading, 2, 2, 10),
                (Phase::Writing, 2, 2, 10),
                (Phase::Finished, 2, 2, 10),
            ]
        );
        assert_eq!(seen[1].current_file.as_deref(), Some("a.csv"));
        assert_eq!(seen[4].state.as_deref(), Some("failed"));
        assert!(!events.is_running_here(7));
        assert_eq!(events.finished(7).map(|e| e.phase), Some(Phase::Finished));
    }

    #[test]
    fn a_dry_run_sink_that_never_began_sends_nothing_when_dropped() {
        let events = Events::new();
        let mut rx = events.runs();
        let sink = events.progress("etf");
        sink.started(None);
        drop(sink);
        assert!(rx.try_recv().is_err());
    }
}
