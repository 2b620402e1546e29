//! The server's process-wide state: the connection, the configuration, the [`Snapshot`] of the
//! data version being served, and the watchers that build the next one when a load commits.
//!
//! Requests never wait on the database for the graph: they read the snapshot. Watchers learn
//! of new versions off the request path (PostgreSQL `LISTEN`/`NOTIFY` from the load's own
//! transaction, with a slow poll behind it; on SQLite a `stat` of the database and its WAL every
//! few milliseconds, and a read of the version when they changed), build the new snapshot beside
//! the old one and swap it in. They also keep the database's health: an outage is logged once,
//! so is the recovery, and `/ready` answers from it without waiting on a dead connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::cache::{CacheCounters, Caches};
use crate::config::Config;
use crate::events::Events;
use crate::snapshot::Snapshot;

/// The version of the placeholder served before the first read (see [`Snapshot::empty`]).
const EMPTY_VERSION: i64 = -1;

/// The channel loads notify on PostgreSQL (see `loader::apply::bump_data_version`).
pub const VERSION_CHANNEL: &str = loader::apply::VERSION_CHANNEL;

/// Limits and switches of the server.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// The bearer token mutations and `/admin/*` require; `None` refuses them all.
    pub admin_token: Option<String>,
    pub max_depth: usize,
    pub max_complexity: usize,
    /// The largest `first` a list accepts.
    pub max_page_size: usize,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// How often the data version is polled (zero: the default of the database, 1 s on
    /// PostgreSQL where NOTIFY announces loads at once, 10 ms file checks on SQLite).
    pub version_check: Duration,
    pub cache_capacity: u64,
    /// Origins browsers may call from: `*` or a comma-separated list.
    pub cors_origins: String,
    /// Most requests one batch (a JSON array posted to `/graphql`) may hold.
    pub max_batch: usize,
    /// How long HTTP caches may keep a `GET /graphql` answer (`Cache-Control: max-age`).
    pub http_max_age: Duration,
    /// Threads serving HTTP connections, each a runtime of its own (one: the caller's
    /// runtime serves them); see [`crate::serve::serve`].
    pub http_threads: usize,
    /// With as many HTTP threads as the process has cores, each thread stays on a core of its
    /// own and takes the connections whose packets arrive there; see [`crate::serve::serve`].
    pub pin_http_threads: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            admin_token: None,
            max_depth: 12,
            max_complexity: 50_000,
            max_page_size: 5_000,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            version_check: Duration::ZERO,
            cache_capacity: 50_000,
            cors_origins: "*".to_owned(),
            max_batch: 20,
            http_max_age: Duration::from_secs(5),
            http_threads: 1,
            pin_http_threads: true,
        }
    }
}

/// Process-wide state shared by every request.
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Config,
    pub settings: ServerSettings,
    /// Cache statistics across data versions.
    pub counters: CacheCounters,
    /// Loads and other writes from this server run one at a time.
    pub load_lock: tokio::sync::Mutex<()>,
    /// SQL statements the read paths issued (shown by `cacheStats`).
    pub queries: AtomicU64,
    current: RwLock<Arc<Snapshot>>,
    /// One snapshot build at a time.
    building: tokio::sync::Mutex<()>,
    /// Whether the last contact with the database worked.
    db_up: AtomicBool,
    /// When the last contact with the database worked.
    last_contact: std::sync::Mutex<Option<Instant>>,
    /// Wakes the version watcher (a NOTIFY arrived, a write here committed).
    wake: tokio::sync::Notify,
    /// The SQLite database file and its WAL, when the database is an SQLite file.
    sqlite_files: Option<[std::path::PathBuf; 2]>,
    /// `serve` is setting up an empty database: `/ready` says so, queries wait for it.
    starting: AtomicBool,
    /// Load runs already counted in the metrics.
    runs: tokio::sync::Mutex<RunWatch>,
    /// Run progress and data changes, for subscriptions.
    pub events: Events,
}

/// Which load runs the metrics have counted: every run up to `through`, and of the runs after
/// it the ones still `running` when last seen are in `pending`.
#[derive(Debug, Default)]
struct RunWatch {
    through: i32,
    pending: std::collections::BTreeSet<i32>,
}

impl AppState {
    /// State over a migrated database: reads the current snapshot, then starts the watchers
    /// (they stop when the state is dropped).
    pub async fn new(
        db: DatabaseConnection,
        config: Config,
        settings: ServerSettings,
    ) -> Result<Arc<Self>, DbErr> {
        Self::build(db, config, settings, false).await
    }

    /// State for a server that is about to set up an empty database: `/ready` answers
    /// "starting" and queries are refused until [`AppState::finish_starting`], and the watchers
    /// leave the versions the setup commits alone until then.
    pub async fn starting(
        db: DatabaseConnection,
        config: Config,
        settings: ServerSettings,
    ) -> Result<Arc<Self>, DbErr> {
        Self::build(db, config, settings, true).await
    }

    async fn build(
        db: DatabaseConnection,
        config: Config,
        settings: ServerSettings,
        starting: bool,
    ) -> Result<Arc<Self>, DbErr> {
        // The recorder first: the version served and the cache look-ups count from the start.
        crate::metrics::handle();
        let counters = CacheCounters::default();
        let empty = Snapshot::empty(Caches::new(0, &counters));
        let sqlite_files = crate::db::sqlite_file(&config.database_url).map(|path| {
            let path = std::path::PathBuf::from(path);
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            [path, wal.into()]
        });
        let state = Arc::new(Self {
            db,
            config,
            settings,
            counters,
            load_lock: tokio::sync::Mutex::new(()),
            queries: AtomicU64::new(0),
            current: RwLock::new(Arc::new(empty)),
            building: tokio::sync::Mutex::new(()),
            db_up: AtomicBool::new(true),
            last_contact: std::sync::Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            sqlite_files,
            starting: AtomicBool::new(starting),
            runs: tokio::sync::Mutex::default(),
            events: Events::new(),
        });
        state.start_counting_runs().await?;
        state.sync_version(true).await?;
        watch(&state);
        Ok(state)
    }

    /// Whether the server is still setting up an empty database.
    pub fn is_starting(&self) -> bool {
        self.starting.load(Ordering::Acquire)
    }

    /// Serves what the setup loaded, then ends the starting phase.
    pub async fn finish_starting(&self) -> Result<(), DbErr> {
        self.sync_version(false).await?;
        self.starting.store(false, Ordering::Release);
        Ok(())
    }

    /// The environment served.
    pub fn environment(&self) -> &str {
        &self.config.environment
    }

    /// The snapshot of the data version being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map_or_else(|e| e.into_inner().clone(), |s| s.clone())
    }

    /// The data version being served.
    pub fn version(&self) -> i64 {
        self.snapshot().version
    }

    /// Statistics of the caches: counts since the server started, sizes of the version served.
    pub fn cache_stats(&self) -> Vec<crate::cache::CacheStat> {
        self.snapshot().caches.stats()
    }

    /// SQL statements the read paths issued since the server started.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Counts one SQL statement of a read path.
    pub fn count_query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the last contact with the database worked, and how long ago it was.
    pub fn database_health(&self) -> (bool, Option<Duration>) {
        let last = *self
            .last_contact
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            self.db_up.load(Ordering::Relaxed),
            last.map(|t| t.elapsed()),
        )
    }

    /// Records the outcome of a contact with the database, logging an outage and a recovery
    /// once each.
    pub fn record_contact<T>(&self, result: &Result<T, DbErr>) {
        match result {
            Ok(_) => {
                *self
                    .last_contact
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                if !self.db_up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        data.version = self.version(),
                        "the database is reachable again"
                    );
                    self.wake.notify_one();
                }
            }
            Err(e) => {
                if self.db_up.swap(false, Ordering::Relaxed) {
                    tracing::error!(
                        error = %e,
                        data.version = self.version(),
                        "the database is unreachable; serving the last snapshot until it is back"
                    );
                }
            }
        }
    }

    /// Reads the data version and, when it moved (a load here or in another process), builds
    /// and swaps in the new snapshot. `force` builds it even at the same version.
    pub async fn sync_version(&self, force: bool) -> Result<bool, DbErr> {
        let _one = self.building.lock().await;
        if !force {
            let current = loader::store::data_version(&self.db, self.environment()).await;
            self.record_contact(&current);
            let current = current?;
            // A run that failed or changed nothing commits no version: look for finished runs
            // at every read, not only when the version moved.
            if let Err(e) = self.count_runs().await {
                tracing::debug!(error = %e, "cannot read the load runs for the metrics");
            }
            if current == self.version() {
                return Ok(false);
            }
        }
        let clock = Instant::now();
        let caches = Caches::new(self.settings.cache_capacity, &self.counters);
        // Built from the snapshot served, reading only what changed since, unless asked to
        // read everything again.
        let previous = (!force).then(|| self.snapshot());
        let built = Snapshot::read(&self.db, self.environment(), caches, previous).await;
        self.record_contact(&built);
        let snapshot = Arc::new(built?);
        let (version, groups, memberships, groups_read, read_time) = (
            snapshot.version,
            snapshot.groups.len(),
            snapshot.memberships,
            snapshot.groups_read,
            snapshot.read_time,
        );
        let old = {
            let mut slot = self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::replace(&mut *slot, snapshot.clone())
        };
        // Requests still answering from the old snapshot keep it alive; free its caches now
        // rather than when the last of them ends.
        old.caches.clear();
        // Subscribers hear of every version after the first one read (the placeholder before
        // it is no data version); under `building`, so in the order the versions were served.
        if old.version != EMPTY_VERSION {
            self.events.snapshot_swapped(&old, &snapshot);
        }
        crate::metrics::data_version(version);
        retire(old);
        tracing::info!(
            data.version = version,
            snapshot.groups = groups,
            snapshot.memberships = memberships,
            snapshot.groups_read = groups_read,
            duration_ms = clock.elapsed().as_secs_f64() * 1e3,
            read_ms = read_time.as_secs_f64() * 1e3,
            "serving a new data version"
        );
        Ok(true)
    }

    /// Starts counting load runs from now: the runs on record are not this server's to count,
    /// except the ones still running, which are counted when they finish.
    async fn start_counting_runs(&self) -> Result<(), DbErr> {
        use entity::load_run::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
        let through: Option<i32> = Entity::find()
            .select_only()
            .column_as(Column::Id.max(), "through")
            .filter(Column::Environment.eq(self.environment()))
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        let running: Vec<i32> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Environment.eq(self.environment()))
            .filter(Column::State.eq("running"))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut watch = self.runs.lock().await;
        watch.through = through.unwrap_or(0);
        watch.pending = running.into_iter().collect();
        Ok(())
    }

    /// Counts the load runs that finished since the last look (from this process or another)
    /// in the metrics, by kind, outcome and duration.
    async fn count_runs(&self) -> Result<(), DbErr> {
        use entity::load_run::{Column, Entity};
        use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
        let mut watch = self.runs.lock().await;
        let rows = Entity::find()
            .filter(Column::Environment.eq(self.environment()))
            .filter(
                Condition::any()
                    .add(Column::Id.gt(watch.through))
                    .add(Column::Id.is_in(watch.pending.iter().copied())),
            )
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await?;
        for run in rows {
            watch.through = watch.through.max(run.id);
            if run.state == "running" {
                watch.pending.insert(run.id);
                continue;
            }
            watch.pending.remove(&run.id);
            let took = run
                .finished_at
                .and_then(|end| (end - run.started_at).to_std().ok())
                .unwrap_or_default();
            crate::metrics::load_run(&run.kind, &run.state, took);
        }
        Ok(())
    }

    /// For SQLite: the size and time of the database file and its WAL. Every commit, from any
    /// process, changes them, and reads change neither, so the version is read only when the
    /// stamp moved (and for two polls after, see `Due`; and once a second, to keep the health
    /// current).
    fn file_stamp(&self) -> Option<Stamp> {
        let files = self.sqlite_files.as_ref()?;
        Some(
            files
                .iter()
                .map(|f| {
                    let m = std::fs::metadata(f).ok()?;
                    Some((m.len(), m.modified().ok()?))
                })
                .collect(),
        )
    }

    /// Reads the snapshot again from the database (`warmCache`, `/admin/cache/warm`): returns
    /// the groups and stocks it holds.
    pub async fn warm(&self) -> Result<(usize, usize), DbErr> {
        self.sync_version(true).await?;
        let snap = self.snapshot();
        Ok((snap.groups.len(), snap.stocks.len()))
    }

    /// Asks the watcher to read the version now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Starts the watchers of a state: the version poll (both databases) and, on PostgreSQL, the
/// NOTIFY listener. Each holds the state weakly and ends when it is dropped.
fn watch(state: &Arc<AppState>) {
    let postgres = state.db.get_database_backend() == DbBackend::Postgres;
    let poll = match (state.settings.version_check, postgres) {
        (d, _) if !d.is_zero() => d,
        (_, true) => Duration::from_secs(1),
        (_, false) => Duration::from_millis(10),
    };
    let weak = Arc::downgrade(state);
    tokio::spawn(poll_versions(weak, poll));
    tokio::spawn(metrics_upkeep(Arc::downgrade(state)));
    if postgres {
        tokio::spawn(listen_for_loads(Arc::downgrade(state)));
    }
}

/// Frees a snapshot replaced by another once the requests still reading it are done, here in
/// the background: left to them, the last request to let go would free every membership of it
/// on an HTTP thread, in the middle of serving. A snapshot still held after a minute (by a
/// long subscription, say) is left to its last reader.
fn retire(old: Arc<Snapshot>) {
    tokio::spawn(async move {
        let mut old = old;
        for _ in 0..60_000 / 5 {
            match Arc::try_unwrap(old) {
                Ok(snapshot) => {
                    let clock = Instant::now();
                    drop(snapshot);
                    tracing::debug!(
                        duration_ms = clock.elapsed().as_secs_f64() * 1e3,
                        "freed the snapshot before"
                    );
                    return;
                }
                Err(held) => old = held,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

/// Reads the version every `poll` (or when woken) and swaps in new snapshots. On SQLite the
/// poll is a `stat` of the files, and the version is read when they changed.
async fn poll_versions(state: Weak<AppState>, poll: Duration) {
    let mut due = Due::new(Instant::now());
    loop {
        let Some(s) = state.upgrade() else { return };
        let woken = tokio::select! {
            () = s.wake.notified() => true,
            () = tokio::time::sleep(poll) => false,
        };
        if s.is_starting() {
            // The setup's versions are served when it is done (`finish_starting`).
            continue;
        }
        let stamp = s.file_stamp();
        let down = !s.db_up.load(Ordering::Relaxed);
        if !due.check(stamp, woken || down, Instant::now()) {
            continue;
        }
        match s.sync_version(false).await {
            Ok(moved) => due.read(moved),
            Err(e) => {
                tracing::debug!(error = %e, "version check failed");
                drop(s);
                // Back off while the database is down; the state may be dropped meanwhile.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// When the version poll reads the version: when woken, when the database files' stamp
/// changed, for a few polls after that, and at least once a second.
///
/// The few polls after a change: SQLite writes a commit's frames to the WAL file, then marks
/// them committed in the shared-memory index, which no `stat` sees. A read between the two
/// finds the old version, and the files do not change again; without another look, the new
/// version would wait for the once-a-second read.
struct Due {
    stamp: Option<Stamp>,
    read_at: Instant,
    /// Polls left that read the version although the stamp did not change again.
    again: u8,
}

/// What `stat` says of each of the SQLite database's files (size and time of change).
type Stamp = Vec<Option<(u64, std::time::SystemTime)>>;

impl Due {
    /// Polls that read again after the files changed.
    const AGAIN: u8 = 3;

    fn new(now: Instant) -> Self {
        Self {
            stamp: None,
            read_at: now,
            again: 0,
        }
    }

    /// Whether this poll reads the version (and if so, remembers the stamp as read).
    fn check(&mut self, stamp: Option<Stamp>, woken: bool, now: Instant) -> bool {
        let changed = stamp.is_none() || stamp != self.stamp;
        if changed {
            self.again = Self::AGAIN;
        }
        let due = woken
            || changed
            || self.again > 0
            || now.duration_since(self.read_at) >= Duration::from_secs(1);
        if due {
            self.again = self.again.saturating_sub(1);
            self.stamp = stamp;
            self.read_at = now;
        }
        due
    }

    /// The read found a new version (`moved`): no need to look again.
    fn read(&mut self, moved: bool) {
        if moved {
            self.again = 0;
        }
    }
}

/// Drains the metrics' histograms now and then while the state lives, so their memory stays
/// bounded however rarely `/metrics` is scraped.
async fn metrics_upkeep(state: Weak<AppState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if state.upgrade().is_none() {
            return;
        }
        crate::metrics::upkeep();
    }
}

/// PostgreSQL: waits for the NOTIFY every load sends in its transaction, and wakes the poll at
/// once. A lost connection is re-established, and the version read again after it (a load may
/// have committed while nobody listened).
async fn listen_for_loads(state: Weak<AppState>) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let pool = match state.upgrade() {
            Some(s) => s.db.get_postgres_connection_pool().clone(),
            None => return,
        };
        let listener = async {
            let mut l = PgListener::connect_with(&pool).await?;
            l.listen(VERSION_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        }
        .await;
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for loads yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if let Some(s) = state.upgrade() {
            // Whatever committed while nobody listened.
            s.wake();
        }
        loop {
            // Wake up now and then to notice a dropped state.
            let next = tokio::time::timeout(Duration::from_secs(1), listener.try_recv()).await;
            let Some(s) = state.upgrade() else { return };
            match next {
                Err(_) => {}
                Ok(Ok(Some(_))) => s.wake(),
                // The connection dropped: `try_recv` reconnects on the next call.
                Ok(Ok(None)) => s.wake(),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the load listener lost its connection");
                    s.wake();
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why a cache refresh could not run.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What a cache refresh did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RefreshOutcome {
    pub invalidated: u64,
    pub warmed: bool,
}

impl AppState {
    /// Drops what is computed from the snapshot for a type of group (`etf`, `sector`, `theme`,
    /// `universe`) or one group (`key`), or everything (`all`); `warm` rebuilds the snapshot
    /// from the database as well (the graph itself is always in memory).
    pub async fn refresh(
        &self,
        cache_type: &str,
        key: Option<&str>,
        warm: bool,
    ) -> Result<RefreshOutcome, RefreshError> {
        let snapshot = self.snapshot();
        let caches = &snapshot.caches;
        let kind = match cache_type.trim().to_ascii_lowercase().as_str() {
            "all" => None,
            other => Some(other.parse::<entity::GroupType>().map_err(|_| {
                RefreshError::BadInput(format!(
                    "cache_type {cache_type:?} is not one of etf, sector, theme, universe, all"
                ))
            })?),
        };
        if let (Some(t), Some(name)) = (kind, key)
            && snapshot.find(t, name).is_none()
        {
            return Err(RefreshError::BadInput(format!("no {t} named {name:?}")));
        }
        let invalidated = caches.responses.len() + caches.analytics.len() + caches.checks.len();
        caches.clear();
        if warm {
            self.sync_version(true).await?;
        }
        Ok(RefreshOutcome {
            invalidated,
            warmed: warm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_when_the_files_change_and_a_few_polls_after() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let stamp = |n: u64| Some(vec![Some((n, std::time::SystemTime::UNIX_EPOCH))]);
        let mut due = Due::new(start);
        assert!(due.check(stamp(1), false, at(10)), "first stamp");
        // The version did not move: the next polls read again, then stop.
        due.read(false);
        assert!(due.check(stamp(1), false, at(20)));
        assert!(due.check(stamp(1), false, at(30)));
        assert!(!due.check(stamp(1), false, at(40)));
        assert!(!due.check(stamp(1), false, at(500)));
        // Once a second regardless, and whenever woken.
        assert!(due.check(stamp(1), false, at(1040)));
        assert!(due.check(stamp(1), true, at(1050)));
        // A change that moved the version needs no second look.
        assert!(due.check(stamp(2), false, at(1060)));
        due.read(true);
        assert!(!due.check(stamp(2), false, at(1070)));
        // PostgreSQL has no files: every poll reads.
        assert!(due.check(None, false, at(1080)));
        assert!(due.check(None, false, at(1090)));
    }
}
