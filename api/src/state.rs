//! The server's process-wide state: the connection, the configuration, the [`Snapshot`] of the
//! data version being served (its group index and caches), and the lock that keeps loads one at
//! a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use entity::{GroupType, definition_group};
use loader::graph;
use sea_orm::{DatabaseConnection, DbErr};

use crate::cache::{CacheCounters, Caches, GroupMembers, Member, StockMembers};
use crate::config::Config;

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
    /// How often the data version is read at most (zero: on every request).
    pub version_check: Duration,
    pub cache_capacity: u64,
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
        }
    }
}

/// Every group of the environment at one data version, by id and by (type, name).
#[derive(Default)]
pub struct GroupIndex {
    pub by_id: HashMap<i32, Arc<definition_group::Model>>,
    pub by_key: HashMap<(String, String), Arc<definition_group::Model>>,
}

impl GroupIndex {
    /// A group by type and (any-case) name.
    pub fn find(&self, group_type: GroupType, name: &str) -> Option<Arc<definition_group::Model>> {
        self.by_key
            .get(&(
                group_type.as_str().to_owned(),
                graph::normalise_group_name(group_type, name),
            ))
            .cloned()
    }

    /// Groups of one type (or all), ordered by type and name.
    pub fn list(&self, group_type: Option<GroupType>) -> Vec<Arc<definition_group::Model>> {
        let mut out: Vec<_> = self
            .by_id
            .values()
            .filter(|g| group_type.is_none_or(|t| g.group_type == t.as_str()))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.group_type, &a.name).cmp(&(&b.group_type, &b.name)));
        out
    }
}

/// Everything served at one data version: its groups and its caches. A request takes the
/// current snapshot once and answers from it throughout, so it sees one version; when a load
/// commits the server swaps in a new snapshot with empty caches, and whatever a slow request
/// still fills into the old one is dropped with it.
pub struct Snapshot {
    /// The `data_versions` counter this snapshot was built at.
    pub version: i64,
    pub index: GroupIndex,
    pub caches: Caches,
    /// Every stock symbol, sorted; read on first use.
    symbols: tokio::sync::OnceCell<Arc<Vec<String>>>,
}

impl Snapshot {
    fn new(version: i64, index: GroupIndex, capacity: u64, counters: &CacheCounters) -> Self {
        Self {
            version,
            index,
            caches: Caches::new(capacity, counters),
            symbols: tokio::sync::OnceCell::new(),
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
    /// Loads and other writes run one at a time.
    pub load_lock: tokio::sync::Mutex<()>,
    /// SQL statements the read paths issued (shown by `cacheStats`).
    pub queries: AtomicU64,
    current: RwLock<Arc<Snapshot>>,
    last_check: std::sync::Mutex<Option<Instant>>,
    /// When the latest version read began.
    version_read: tokio::sync::Mutex<Option<Instant>>,
    /// The SQLite database file and its WAL, when the database is an SQLite file.
    sqlite_files: Option<[std::path::PathBuf; 2]>,
    file_stamp: std::sync::Mutex<Option<FileStamp>>,
}

type FileStamp = (Vec<Option<(u64, std::time::SystemTime)>>, Instant);

impl AppState {
    /// State over a migrated database; reads the current version and group index.
    pub async fn new(
        db: DatabaseConnection,
        config: Config,
        settings: ServerSettings,
    ) -> Result<Arc<Self>, DbErr> {
        let config_url = config.database_url.clone();
        let counters = CacheCounters::default();
        // A placeholder at version -1: the forced read below replaces it before any request.
        let empty = Snapshot::new(-1, GroupIndex::default(), 0, &counters);
        let state = Arc::new(Self {
            db,
            config,
            settings,
            counters,
            load_lock: tokio::sync::Mutex::new(()),
            queries: AtomicU64::new(0),
            current: RwLock::new(Arc::new(empty)),
            last_check: std::sync::Mutex::new(None),
            version_read: tokio::sync::Mutex::new(None),
            sqlite_files: crate::db::sqlite_file(&config_url).map(|path| {
                let path = std::path::PathBuf::from(path);
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                [path, wal.into()]
            }),
            file_stamp: std::sync::Mutex::new(None),
        });
        state.sync_version(true).await?;
        Ok(state)
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

    /// Reads the data version (at most every `version_check`, or always when `force`); when it
    /// moved (a load here or in another process), serves a new snapshot: the groups read again,
    /// the caches empty.
    pub async fn sync_version(&self, force: bool) -> Result<(), DbErr> {
        if !force && self.files_unchanged() {
            return Ok(());
        }
        if !force && !self.settings.version_check.is_zero() {
            let mut last = self
                .last_check
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < self.settings.version_check) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        // Requests that arrive while a version read is running wait for the next read, which
        // one of them makes for all: every answer still rests on a read begun after its
        // request arrived, but concurrent requests share it.
        let arrived = Instant::now();
        let mut last_read = self.version_read.lock().await;
        if !force && last_read.is_some_and(|started| started >= arrived) {
            return Ok(());
        }
        *last_read = Some(Instant::now());
        self.count_query();
        let current = loader::store::data_version(&self.db, self.environment()).await?;
        if current == self.version() {
            return Ok(());
        }
        self.count_query();
        let groups = graph::groups(&self.db, self.environment(), None).await?;
        let mut index = GroupIndex::default();
        for g in groups {
            let g = Arc::new(g);
            index
                .by_key
                .insert((g.group_type.clone(), g.name.clone()), g.clone());
            index.by_id.insert(g.id, g);
        }
        let snapshot = Snapshot::new(current, index, self.settings.cache_capacity, &self.counters);
        let old = {
            let mut slot = self
                .current
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::replace(&mut *slot, Arc::new(snapshot))
        };
        // Requests still answering from the old snapshot keep it alive; free what they do not
        // need now rather than when the last of them ends.
        old.caches.clear();
        tracing::info!(data.version = current, "serving a new data version");
        Ok(())
    }

    /// For SQLite: whether the database file and its WAL look as they did at the last version
    /// read. Every commit, from any process, changes the WAL's size or time, while reads change
    /// neither, so an unchanged stamp means an unchanged version; a `stat` costs a microsecond
    /// where a query through sqlx's SQLite worker costs tens. At least once a second the
    /// version is read anyway.
    fn files_unchanged(&self) -> bool {
        let Some(files) = &self.sqlite_files else {
            return false;
        };
        let stamp: Vec<Option<(u64, std::time::SystemTime)>> = files
            .iter()
            .map(|f| {
                let m = std::fs::metadata(f).ok()?;
                Some((m.len(), m.modified().ok()?))
            })
            .collect();
        let mut last = self
            .file_stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((seen, at)) = last.as_ref()
            && *seen == stamp
            && at.elapsed() < Duration::from_secs(1)
        {
            return true;
        }
        *last = Some((stamp, Instant::now()));
        false
    }

    /// Memberships of many stocks at a snapshot, from its cache or in one batched read.
    pub async fn stock_members(
        &self,
        snapshot: &Snapshot,
        symbols: &[String],
    ) -> Result<HashMap<String, StockMembers>, DbErr> {
        let mut out = HashMap::with_capacity(symbols.len());
        let mut missing = Vec::new();
        for s in symbols {
            match snapshot.caches.stocks.get(s).await {
                Some(v) => {
                    out.insert(s.clone(), v);
                }
                None => missing.push(s.clone()),
            }
        }
        out.extend(self.fetch_stocks(snapshot, &missing).await?);
        Ok(out)
    }

    /// Reads the memberships of these stocks in one batch (per 500 symbols) and caches them
    /// in the snapshot.
    pub async fn fetch_stocks(
        &self,
        snapshot: &Snapshot,
        missing: &[String],
    ) -> Result<HashMap<String, StockMembers>, DbErr> {
        let mut out = HashMap::with_capacity(missing.len());
        if missing.is_empty() {
            return Ok(out);
        }
        let index = &snapshot.index;
        let mut loaded: HashMap<String, Vec<Member>> =
            missing.iter().map(|s| (s.clone(), Vec::new())).collect();
        for chunk in missing.chunks(loader::store::CHUNK) {
            self.count_query();
            for m in graph::memberships_with_symbols(&self.db, chunk).await? {
                if let Some(group) = index.by_id.get(&m.group_id)
                    && let Some(list) = loaded.get_mut(&m.symbol)
                {
                    list.push(Member {
                        membership: Arc::new(m),
                        group: group.clone(),
                    });
                }
            }
        }
        let mut filled = Vec::with_capacity(loaded.len());
        for (symbol, mut list) in loaded {
            list.sort_by(|a, b| {
                weight_desc(a.membership.weight, b.membership.weight)
                    .then_with(|| a.group.name.cmp(&b.group.name))
            });
            let list = Arc::new(list);
            out.insert(symbol.clone(), list.clone());
            filled.push((symbol, list));
        }
        snapshot.caches.stocks.fill(filled).await;
        Ok(out)
    }

    /// Members of many groups at a snapshot, from its cache or in one batched read.
    pub async fn group_members(
        &self,
        snapshot: &Snapshot,
        ids: &[i32],
    ) -> Result<HashMap<i32, GroupMembers>, DbErr> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match snapshot.caches.groups.get(id).await {
                Some(v) => {
                    out.insert(*id, v);
                }
                None => missing.push(*id),
            }
        }
        out.extend(self.fetch_groups(snapshot, &missing).await?);
        Ok(out)
    }

    /// Reads the members of these groups in one batch (per 500 groups) and caches them in the
    /// snapshot.
    pub async fn fetch_groups(
        &self,
        snapshot: &Snapshot,
        missing: &[i32],
    ) -> Result<HashMap<i32, GroupMembers>, DbErr> {
        let mut out = HashMap::with_capacity(missing.len());
        if missing.is_empty() {
            return Ok(out);
        }
        for _ in missing.chunks(loader::store::CHUNK) {
            self.count_query();
        }
        let mut loaded = graph::members_of_groups(&self.db, missing).await?;
        let mut filled = Vec::with_capacity(missing.len());
        for &id in missing {
            let list: GroupMembers = Arc::new(
                loaded
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Arc::new)
                    .collect(),
            );
            out.insert(id, list.clone());
            filled.push((id, list));
        }
        snapshot.caches.groups.fill(filled).await;
        Ok(out)
    }

    /// Reads every membership of the current version once and fills both caches
    /// (`warmCache`).
    pub async fn warm(&self) -> Result<(usize, usize), DbErr> {
        let snapshot = self.snapshot();
        let index = &snapshot.index;
        let ids: Vec<i32> = index.by_id.keys().copied().collect();
        snapshot.caches.clear();
        let groups = self.group_members(&snapshot, &ids).await?;
        let mut by_symbol: HashMap<String, Vec<Member>> = HashMap::new();
        for (id, list) in &groups {
            let Some(group) = index.by_id.get(id) else {
                continue;
            };
            for m in list.iter() {
                by_symbol.entry(m.symbol.clone()).or_default().push(Member {
                    membership: m.clone(),
                    group: group.clone(),
                });
            }
        }
        let stocks = by_symbol.len();
        let filled = by_symbol.into_iter().map(|(s, mut list)| {
            list.sort_by(|a, b| {
                weight_desc(a.membership.weight, b.membership.weight)
                    .then_with(|| a.group.name.cmp(&b.group.name))
            });
            (s, Arc::new(list))
        });
        snapshot.caches.stocks.fill(filled).await;
        Ok((groups.len(), stocks))
    }

    /// Every stock symbol (in an ETF, universe or theme) at a snapshot, sorted; read once per
    /// version.
    pub async fn stock_symbols(&self, snapshot: &Snapshot) -> Result<Arc<Vec<String>>, DbErr> {
        snapshot
            .symbols
            .get_or_try_init(|| async {
                self.count_query();
                graph::symbols_in(
                    &self.db,
                    self.environment(),
                    &[GroupType::Etf, GroupType::Universe, GroupType::Theme],
                )
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }
}

/// Heaviest first; no weight last.
pub fn weight_desc(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    b.unwrap_or(f64::NEG_INFINITY)
        .total_cmp(&a.unwrap_or(f64::NEG_INFINITY))
}

/// What a cache refresh did.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RefreshOutcome {
    pub invalidated: u64,
    pub warmed: bool,
}

/// Why a cache refresh could not run.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl AppState {
    /// Drops the cached members of every group of a type (`etf`, `sector`, `theme`,
    /// `universe`) or of one group (`key`), or everything (`all`); reads them again if `warm`.
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
            other => Some(other.parse::<GroupType>().map_err(|_| {
                RefreshError::BadInput(format!(
                    "cache_type {cache_type:?} is not one of etf, sector, theme, universe, all"
                ))
            })?),
        };
        let ids: Vec<i32> = match (kind, key) {
            (None, _) => {
                let n = caches.stocks.len() + caches.groups.len();
                caches.clear();
                let warmed = warm && self.warm().await.is_ok();
                return Ok(RefreshOutcome {
                    invalidated: n,
                    warmed,
                });
            }
            (Some(t), Some(name)) => vec![
                snapshot
                    .index
                    .find(t, name)
                    .ok_or_else(|| RefreshError::BadInput(format!("no {t} named {name:?}")))?
                    .id,
            ],
            (Some(t), None) => snapshot.index.list(Some(t)).iter().map(|g| g.id).collect(),
        };
        // Responses may include these groups: they are built again on demand.
        caches.responses.invalidate_all();
        let mut invalidated = 0;
        for id in &ids {
            if caches.groups.contains(id) {
                invalidated += 1;
            }
            caches.groups.invalidate(id).await;
        }
        if warm {
            self.fetch_groups(&snapshot, &ids).await?;
        }
        Ok(RefreshOutcome {
            invalidated,
            warmed: warm,
        })
    }
}
