//! One writer at a time, across processes and servers.
//!
//! Every command that writes takes the database-wide write lock before it reads the state it
//! diffs against, and holds it until its transaction has committed or rolled back:
//!
//! - PostgreSQL: a session advisory lock on a connection of its own (taken out of the pool and
//!   not in a transaction, so `idle_in_transaction_session_timeout` does not end it), held for
//!   the whole run. The server releases it when that connection ends, so a killed writer never
//!   leaves it behind; and before a run commits it checks that its connection still holds the
//!   lock, so a connection the server ended mid-run makes the run roll back instead of
//!   committing beside another writer.
//! - SQLite: an exclusive lock on the file `<database>.lock` beside the database. The kernel
//!   releases it when the process dies. (A database in memory is one process's: a lock in the
//!   process serves.)
//!
//! A writer that cannot take the lock retries until its timeout and then fails with
//! [`LockError::Busy`], naming the run that holds it.
//!
//! Holding the lock, a writer records its run as `running` and commits that row before it
//! touches any data, so a run whose process dies is still on record; the next writer to take
//! the lock marks it `abandoned`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::load_run;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};

/// The advisory lock key every Holdings Graph writer on a PostgreSQL database shares.
const ADVISORY_KEY: i64 = 0x686f_6c64_6772_6170; // "holdgrap"

/// How often a waiting writer tries again.
const RETRY: Duration = Duration::from_millis(20);

/// How long a writer waits for the lock unless the process says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

tokio::task_local! {
    static TIMEOUT: Duration;
}

/// Runs `work` with its writers waiting at most `timeout` for the lock (`--lock-timeout-ms`):
/// scoped to the command, so two commands in one process may wait differently.
pub async fn with_timeout<F: std::future::Future>(timeout: Duration, work: F) -> F::Output {
    TIMEOUT.scope(timeout, work).await
}

/// How long the current command's writers wait for the lock.
pub fn timeout() -> Duration {
    TIMEOUT.try_with(|t| *t).unwrap_or(DEFAULT_TIMEOUT)
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another writer held it for the whole timeout.
    #[error(
        "another write holds the database write lock: {holder}; waited {waited_ms} ms \
         (raise --lock-timeout-ms to wait longer)"
    )]
    Busy { holder: String, waited_ms: u128 },
    #[error("cannot open the write lock file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The held lock; dropping it releases it, [`WriteLock::release`] does so at once.
pub struct WriteLock {
    held: Held,
}

enum Held {
    Postgres(sea_orm::sqlx::PgConnection),
    File(std::fs::File),
    Memory(tokio::sync::OwnedMutexGuard<()>),
}

impl WriteLock {
    /// Takes the lock, waiting at most `timeout`.
    pub async fn acquire(db: &DatabaseConnection, timeout: Duration) -> Result<Self, LockError> {
        let started = Instant::now();
        let target = Target::of(db).await?;
        loop {
            if let Some(held) = target.try_take(db).await? {
                return Ok(Self { held });
            }
            if started.elapsed() >= timeout {
                return Err(LockError::Busy {
                    holder: holder_of(db).await,
                    waited_ms: started.elapsed().as_millis(),
                });
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Checks that the lock is still held (PostgreSQL: the server may have ended the
    /// connection that holds it); a run calls this just before it commits.
    pub async fn verify(&mut self) -> Result<(), DbErr> {
        let Held::Postgres(conn) = &mut self.held else {
            return Ok(());
        };
        let held: Result<bool, _> = sea_orm::sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND granted)",
        )
        .fetch_one(&mut *conn)
        .await;
        match held {
            Ok(true) => Ok(()),
            Ok(false) => Err(DbErr::Custom(
                "the write lock was lost before the run could commit; nothing was changed"
                    .to_owned(),
            )),
            Err(e) => Err(DbErr::Custom(format!(
                "the connection holding the write lock ended before the run could commit \
                 ({e}); nothing was changed"
            ))),
        }
    }

    /// Releases the lock now (PostgreSQL: unlocks and closes its connection).
    pub async fn release(self) {
        match self.held {
            Held::Postgres(mut conn) => {
                let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock_all()")
                    .execute(&mut conn)
                    .await;
                if let Err(e) = unlocked {
                    tracing::debug!("releasing the write lock: {e}");
                }
                use sea_orm::sqlx::Connection as _;
                drop(conn.close().await);
            }
            Held::File(file) => drop(file),
            Held::Memory(guard) => drop(guard),
        }
    }
}

/// Where the lock lives for this database.
enum Target {
    Postgres,
    File(PathBuf),
    Memory,
}

impl Target {
    async fn of(db: &DatabaseConnection) -> Result<Self, DbErr> {
        match db.get_database_backend() {
            DbBackend::Postgres => Ok(Self::Postgres),
            _ => {
                let row = db
                    .query_one_raw(Statement::from_string(
                        DbBackend::Sqlite,
                        "SELECT file FROM pragma_database_list WHERE name = 'main'",
                    ))
                    .await?;
                let file: String = match row {
                    Some(row) => row.try_get("", "file")?,
                    None => String::new(),
                };
                Ok(if file.is_empty() {
                    Self::Memory
                } else {
                    Self::File(PathBuf::from(format!("{file}.lock")))
                })
            }
        }
    }

    async fn try_take(&self, db: &DatabaseConnection) -> Result<Option<Held>, LockError> {
        match self {
            Self::Postgres => {
                let pool = db.get_postgres_connection_pool();
                let mut conn = pool
                    .acquire()
                    .await
                    .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?
                    .detach();
                let taken: bool = sea_orm::sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into())))?;
                if taken {
                    Ok(Some(Held::Postgres(conn)))
                } else {
                    use sea_orm::sqlx::Connection as _;
                    drop(conn.close().await);
                    Ok(None)
                }
            }
            Self::File(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|source| LockError::File {
                        path: path.clone(),
                        source,
                    })?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Held::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(source)) => Err(LockError::File {
                        path: path.clone(),
                        source,
                    }),
                }
            }
            Self::Memory => {
                static LOCK: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
                let lock = LOCK.get_or_init(|| Arc::new(tokio::sync::Mutex::new(())));
                Ok(lock.clone().try_lock_owned().ok().map(Held::Memory))
            }
        }
    }
}

/// Who ran a run: `pid 1234 on host`.
pub fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".to_owned());
    format!("pid {} on {host}", std::process::id())
}

/// The run that holds the lock, as a waiter's message names it.
async fn holder_of(db: &DatabaseConnection) -> String {
    let running = load_run::Entity::find()
        .filter(load_run::Column::State.eq("running"))
        .order_by_desc(load_run::Column::Id)
        .one(db)
        .await;
    match running {
        Ok(Some(run)) => format!(
            "run #{} ({} {} load of {}, started {}, {})",
            run.id,
            run.kind,
            run.mode,
            run.scope.as_deref().unwrap_or(&run.source),
            run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            run.holder.as_deref().unwrap_or("holder unknown")
        ),
        Ok(None) => "a writer whose run is not recorded yet".to_owned(),
        Err(e) => format!("a writer (its run could not be read: {e})"),
    }
}

/// Marks every run still `running` as `abandoned`: with the lock held, no live process is
/// running one. Returns their ids.
pub async fn abandon_orphans(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<i32>, DbErr> {
    let ids: Vec<i32> = load_run::Entity::find()
        .filter(load_run::Column::State.eq("running"))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    if !ids.is_empty() {
        load_run::Entity::update_many()
            .col_expr(load_run::Column::State, Expr::value("abandoned"))
            .col_expr(load_run::Column::FinishedAt, Expr::value(now))
            .col_expr(
                load_run::Column::Error,
                Expr::value("its process stopped before the run finished; nothing it did was kept"),
            )
            .filter(load_run::Column::Id.is_in(ids.clone()))
            .exec(db)
            .await?;
        tracing::warn!(runs = ?ids, "runs left running by a stopped process marked abandoned");
    }
    Ok(ids)
}
