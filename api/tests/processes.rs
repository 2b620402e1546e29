//! Writers in separate processes: two loads at once never interleave, a killed load leaves the
//! data as it was and its run `abandoned`, and a writer that cannot get the write lock in time
//! gives up naming the run that holds it. Each test runs the real `holdgraph` binary on a
//! fresh SQLite file, or on a fresh PostgreSQL database when `TEST_POSTGRES_URL` is set.
//!
//! A load is held in the middle of its transaction by a test-only trigger that makes one
//! insert slow (PostgreSQL `pg_sleep`; SQLite, whose triggers cannot sleep, a large cross join).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Statement};

/// How long a test waits for a child to reach a state before it fails (never reached when
/// things work; it only turns a hang into a failure).
const PATIENCE: Duration = Duration::from_secs(120);

/// A fresh, migrated database and scratch space (the integration tests' `TestApp`), and the
/// means to run `holdgraph` on it.
struct Db {
    app: tests::TestApp,
}

impl std::ops::Deref for Db {
    type Target = tests::TestApp;

    fn deref(&self) -> &tests::TestApp {
        &self.app
    }
}

impl Db {
    /// Migrated here, so children never race to create the schema.
    async fn new() -> Self {
        Self {
            app: tests::TestApp::new().await,
        }
    }

    /// `holdgraph --database-url URL --definitions-dir ... ARGS`, output to files in scratch
    /// space (a pipe nobody reads could fill and stall the child).
    fn spawn(&self, label: &str, args: &[&str]) -> Running {
        let stdout = self.dir.path().join(format!("{label}.out"));
        let stderr = self.dir.path().join(format!("{label}.err"));
        let child = Command::new(env!("CARGO_BIN_EXE_holdgraph"))
            .args(["--database-url", &self.url])
            .arg("--definitions-dir")
            .arg(project().join("definitions"))
            .args(args)
            // The defaults, whatever the environment running the tests says.
            .env_remove("LOCK_TIMEOUT_MS")
            .env_remove("MAX_FILE_BYTES")
            .env_remove("MAX_SKIPPED_PERCENT")
            .env_remove("MAX_REPLACED_PERCENT")
            .env_remove("MAX_WEIGHT_SHIFT")
            .env_remove("ENVIRONMENT")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start holdgraph");
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Runs `holdgraph ARGS` to the end.
    fn run(&self, label: &str, args: &[&str]) -> Finished {
        self.spawn(label, args).finish()
    }

    async fn execute(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every `load_runs` row, by id.
    async fn runs(&self) -> Vec<Run> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT id, state, data_version, source FROM load_runs ORDER BY id",
            ))
            .await
            .expect("load_runs");
        rows.iter()
            .map(|row| Run {
                id: row.try_get::<i32>("", "id").expect("id"),
                state: row.try_get::<String>("", "state").expect("state"),
                data_version: row
                    .try_get::<Option<i64>>("", "data_version")
                    .expect("data_version"),
                source: row.try_get::<String>("", "source").expect("source"),
            })
            .collect()
    }

    /// The symbols of one ETF of the default environment.
    async fn symbols(&self, group: &str) -> BTreeSet<String> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!(
                    "SELECT m.symbol FROM group_memberships m \
                     JOIN definition_groups g ON g.id = m.group_id \
                     WHERE g.environment = 'DEFAULT' AND g.name = '{group}'"
                ),
            ))
            .await
            .expect("symbols");
        rows.iter()
            .map(|row| row.try_get::<String>("", "symbol").expect("symbol"))
            .collect()
    }

    /// Makes inserting the membership `ZZSLOW` take far longer than any test: a load that
    /// inserts it stays inside its transaction until it is killed.
    async fn slow_down_zzslow(&self) {
        self.slow_down_zzslow_for(600).await;
    }

    /// Makes inserting `ZZSLOW` take `seconds` on PostgreSQL (hours on SQLite).
    async fn slow_down_zzslow_for(&self, seconds: u32) {
        if self.is_postgres() {
            // A killed client's server process notices at once, even while it sleeps, as it
            // would notice between statements of a load that is not held.
            self.execute(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET \
                 client_connection_check_interval = ''50ms''', current_database()); END $$",
            )
            .await;
            self.execute(&format!(
                "CREATE FUNCTION hold_zzslow() RETURNS trigger AS $$ BEGIN \
                 PERFORM pg_sleep({seconds}); RETURN NEW; END; $$ LANGUAGE plpgsql"
            ))
            .await;
            self.execute(
                "CREATE TRIGGER hold_zzslow BEFORE INSERT ON group_memberships \
                 FOR EACH ROW WHEN (NEW.symbol = 'ZZSLOW') EXECUTE FUNCTION hold_zzslow()",
            )
            .await;
        } else {
            self.execute("CREATE TABLE slow_rows (n INTEGER NOT NULL)")
                .await;
            let values: Vec<String> = (0..2000).map(|n| format!("({n})")).collect();
            self.execute(&format!(
                "INSERT INTO slow_rows (n) VALUES {}",
                values.join(",")
            ))
            .await;
            // 2000³ rows to visit: hours.
            self.execute(
                "CREATE TRIGGER hold_zzslow BEFORE INSERT ON group_memberships \
                 WHEN NEW.symbol = 'ZZSLOW' BEGIN \
                 SELECT COUNT(*) FROM slow_rows a, slow_rows b, slow_rows c \
                 WHERE a.n + b.n + c.n < 0; END",
            )
            .await;
        }
    }

    /// Removes what [`Db::slow_down_zzslow`] added, once no load is held by it.
    async fn stop_slowing_down(&self) {
        if self.is_postgres() {
            self.execute("DROP TRIGGER hold_zzslow ON group_memberships")
                .await;
            self.execute("DROP FUNCTION hold_zzslow()").await;
        } else {
            self.execute("DROP TRIGGER hold_zzslow").await;
            self.execute("DROP TABLE slow_rows").await;
        }
    }

    /// Waits until a child load is inside the transaction that inserts `ZZSLOW`.
    async fn wait_until_held(&self, child: &mut Running) {
        let started = Instant::now();
        loop {
            child.assert_running();
            assert!(
                started.elapsed() < PATIENCE,
                "the load never reached ZZSLOW: {}",
                child.stderr_text()
            );
            let running = self
                .count("SELECT COUNT(*) FROM load_runs WHERE state = 'running'")
                .await;
            if running == 1 && self.writer_is_inside_a_transaction().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether another connection is in the middle of a write: on PostgreSQL, a session
    /// sleeping in the trigger; on SQLite, the write lock taken (`BEGIN IMMEDIATE` is refused).
    async fn writer_is_inside_a_transaction(&self) -> bool {
        if self.is_postgres() {
            return self
                .count(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event = 'PgSleep'",
                )
                .await
                == 1;
        }
        let mut options = sea_orm::ConnectOptions::new(self.url.clone());
        options.max_connections(1).sqlx_logging(false);
        let probe = sea_orm::Database::connect(options).await.expect("probe");
        probe
            .execute_unprepared("PRAGMA busy_timeout = 0")
            .await
            .expect("busy timeout");
        let held = match probe.execute_unprepared("BEGIN IMMEDIATE").await {
            Ok(_) => {
                probe
                    .execute_unprepared("ROLLBACK")
                    .await
                    .expect("rollback");
                false
            }
            Err(_) => true,
        };
        probe.close().await.ok();
        held
    }

    /// Kills a held load and waits until the database no longer serves it (PostgreSQL ends
    /// its session when it sees the client gone).
    async fn kill(&self, mut child: Running) {
        child.child.kill().expect("kill");
        child.child.wait().expect("wait");
        if self.is_postgres() {
            let started = Instant::now();
            while self
                .count(
                    "SELECT COUNT(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event = 'PgSleep'",
                )
                .await
                > 0
            {
                assert!(
                    started.elapsed() < PATIENCE,
                    "the killed load's session lives on"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// One `load_runs` row.
#[derive(Debug)]
struct Run {
    id: i32,
    state: String,
    data_version: Option<i64>,
    source: String,
}

/// A child process, killed if the test ends (or fails) before it does.
struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a child ended and what it printed.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Running {
    fn finish(mut self) -> Finished {
        let status = self.child.wait().expect("wait");
        Finished {
            code: status.code(),
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: self.stderr_text(),
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "the load ended ({status}) before it was held:\n{}\n{}",
                std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                self.stderr_text()
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The dataset the repository ships (`HOLDGRAPH_DATASET` overrides where it is).
fn dataset_holdings() -> PathBuf {
    match std::env::var("HOLDGRAPH_DATASET") {
        Ok(path) if !path.is_empty() => PathBuf::from(path).join("holdings"),
        _ => project().join("datasets/etf-holdings-2025-11/holdings"),
    }
}

/// A folder in scratch space holding copies of these dataset files.
fn folder_of(db: &Db, name: &str, files: &[&str]) -> PathBuf {
    let to = db.dir.path().join(name);
    std::fs::create_dir_all(&to).expect("folder");
    for file in files {
        std::fs::copy(dataset_holdings().join(file), to.join(file)).expect("copy");
    }
    to
}

/// A folder whose only file is `spy_holdings.csv` with these of SPY's data lines.
fn spy_folder(
    db: &Db,
    name: &str,
    keep: impl Fn(usize, usize) -> bool,
) -> (PathBuf, BTreeSet<String>) {
    let text = std::fs::read_to_string(dataset_holdings().join("spy_holdings.csv")).expect("spy");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
    let kept: Vec<&str> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i, rows.len()))
        .map(|(_, l)| *l)
        .collect();
    let symbols = kept
        .iter()
        .map(|l| l.split(',').next().expect("symbol").to_owned())
        .collect();
    let dir = db.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(
        dir.join("spy_holdings.csv"),
        format!("{header}\n{}\n", kept.join("\n")),
    )
    .expect("write");
    (dir, symbols)
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn two_loads_at_once_end_with_one_folders_data_never_a_mix() {
    for round in 0..3 {
        let db = Db::new().await;
        let (b, b_symbols) = spy_folder(&db, "b", |i, n| i < n - 50);
        let (c, c_symbols) = spy_folder(&db, "c", |i, _| i >= 50);
        assert_ne!(b_symbols, c_symbols);
        // --force: C has 50 fewer of SPY's heaviest holdings than B, which the weight guard
        // would hold back; this test is about the lock.
        let load = |dir: &Path| {
            vec![
                "--lock-timeout-ms".to_owned(),
                "60000".to_owned(),
                "--holdings-dir".to_owned(),
                path(dir),
                "load-etf-holdings".to_owned(),
                "--rebuild".to_owned(),
                "--force".to_owned(),
                "--json".to_owned(),
            ]
        };
        let b_args = load(&b);
        let c_args = load(&c);
        let b_args: Vec<&str> = b_args.iter().map(String::as_str).collect();
        let c_args: Vec<&str> = c_args.iter().map(String::as_str).collect();
        let first = db.spawn("b", &b_args);
        let second = db.spawn("c", &c_args);
        let first = first.finish();
        let second = second.finish();
        assert_eq!(first.code, Some(0), "round {round}, B: {first:?}");
        assert_eq!(second.code, Some(0), "round {round}, C: {second:?}");

        let runs = db.runs().await;
        assert_eq!(runs.len(), 2, "round {round}: {runs:?}");
        // Each child reported its own run and the version it committed.
        let mut reported: Vec<(i64, i64)> = [&first, &second]
            .iter()
            .map(|out| {
                let report: serde_json::Value =
                    serde_json::from_str(&out.stdout).expect("JSON report");
                (
                    report["run_id"].as_i64().expect("run id"),
                    report["data_version"].as_i64().expect("data version"),
                )
            })
            .collect();
        reported.sort_unstable();
        let stored: Vec<(i64, i64)> = runs
            .iter()
            .map(|r| (i64::from(r.id), r.data_version.unwrap_or(-1)))
            .collect();
        assert_eq!(reported, stored, "round {round}");
        assert!(
            runs.iter().all(|r| r.state == "succeeded"),
            "round {round}: {runs:?}"
        );
        let (earlier, later) = (&runs[0], &runs[1]);
        let (Some(v1), Some(v2)) = (earlier.data_version, later.data_version) else {
            panic!("round {round}: both runs changed data: {runs:?}");
        };
        assert!(v1 < v2, "round {round}: {runs:?}");
        assert_eq!(
            db.count("SELECT version FROM data_versions WHERE environment = 'DEFAULT'")
                .await,
            v2
        );
        let (expected, before) = if later.source == path(&b) {
            (&b_symbols, &c_symbols)
        } else {
            assert_eq!(later.source, path(&c), "round {round}: {runs:?}");
            (&c_symbols, &b_symbols)
        };
        let stored = db.symbols("SPY").await;
        let wrong: Vec<&String> = stored.symmetric_difference(expected).collect();
        assert!(
            wrong.is_empty(),
            "round {round}: SPY is exactly the later run's folder; it differs in {wrong:?}"
        );
        // The later run diffed against what the earlier one committed.
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM membership_changes WHERE run_id = {} AND change = 'added'",
                later.id
            ))
            .await,
            i64::try_from(expected.difference(before).count()).expect("count"),
            "round {round}"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT COUNT(*) FROM membership_changes WHERE run_id = {} AND change = 'removed'",
                later.id
            ))
            .await,
            i64::try_from(before.difference(expected).count()).expect("count"),
            "round {round}"
        );
    }
}

/// A database with SPY and XLK loaded by the binary, and a holdings folder in which SPY gained
/// `ZZSLOW`, whose insert the trigger holds.
async fn loaded_with_a_held_insert_ahead() -> (Db, PathBuf) {
    let db = Db::new().await;
    let dir = folder_of(
        &db,
        "holdings",
        &["spy_holdings.csv", "xlk_holdings.csv", "dow30.csv"],
    );
    let out = db.run(
        "setup-load",
        &[
            "--holdings-dir",
            &path(&dir),
            "load-etf-holdings",
            "--rebuild",
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let spy = dir.join("spy_holdings.csv");
    let text = std::fs::read_to_string(&spy).expect("spy");
    std::fs::write(&spy, format!("{text}ZZSLOW,SLOW TEST HOLDING,0.01\n")).expect("write");
    db.slow_down_zzslow().await;
    (db, dir)
}

#[tokio::test]
async fn a_killed_load_leaves_the_data_as_it_was_and_its_run_abandoned() {
    let (db, dir) = loaded_with_a_held_insert_ahead().await;
    let before = db.dump_graph().await;
    let runs_before = db.runs().await;

    let mut held = db.spawn(
        "held",
        &["--holdings-dir", &path(&dir), "load-etf-holdings"],
    );
    db.wait_until_held(&mut held).await;
    let killed = db
        .count("SELECT id FROM load_runs WHERE state = 'running'")
        .await;
    db.kill(held).await;
    db.stop_slowing_down().await;

    assert_eq!(
        db.dump_graph().await,
        before,
        "the killed load changed data"
    );
    assert!(!db.symbols("SPY").await.contains("ZZSLOW"));
    let runs = db.runs().await;
    assert_eq!(runs.len(), runs_before.len() + 1, "{runs:?}");
    assert_eq!(
        runs.iter()
            .find(|r| i64::from(r.id) == killed)
            .map(|r| r.state.as_str()),
        Some("running"),
        "nobody has looked at it yet: {runs:?}"
    );

    // The next writer takes the lock, marks the dead run and does its own work.
    let out = db.run(
        "next",
        &[
            "--lock-timeout-ms",
            "60000",
            "--holdings-dir",
            &path(&dir),
            "load-universes",
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let runs = db.runs().await;
    let dead = runs
        .iter()
        .find(|r| i64::from(r.id) == killed)
        .expect("the killed run");
    assert_eq!(dead.state, "abandoned", "{runs:?}");
    assert_eq!(dead.data_version, None);
    let last = runs.last().expect("the next run");
    assert_eq!(last.state, "succeeded", "{runs:?}");
    assert!(i64::from(last.id) > killed);
    assert_eq!(db.symbols("SPY").await.len(), 503);

    // And the load the kill interrupted goes through on its own next try.
    let out = db.run(
        "again",
        &["--holdings-dir", &path(&dir), "load-etf-holdings"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(db.symbols("SPY").await.contains("ZZSLOW"));
}

#[tokio::test]
async fn a_writer_that_cannot_get_the_lock_in_time_exits_2_naming_the_run_that_holds_it() {
    let (db, dir) = loaded_with_a_held_insert_ahead().await;
    let before = db.dump_graph().await;

    let mut held = db.spawn(
        "held",
        &["--holdings-dir", &path(&dir), "load-etf-holdings"],
    );
    db.wait_until_held(&mut held).await;
    let holder = db
        .count("SELECT id FROM load_runs WHERE state = 'running'")
        .await;
    let runs_before = db.runs().await;

    for (label, args) in [
        (
            "etfs",
            vec![
                "--lock-timeout-ms",
                "200",
                "--holdings-dir",
                "HOLDINGS",
                "load-etf-holdings",
                "--rebuild",
            ],
        ),
        (
            "universes",
            vec![
                "--lock-timeout-ms",
                "200",
                "--holdings-dir",
                "HOLDINGS",
                "load-universes",
            ],
        ),
    ] {
        let dir_s = path(&dir);
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| if a == "HOLDINGS" { dir_s.as_str() } else { a })
            .collect();
        let out = db.run(label, &args);
        assert_eq!(out.code, Some(2), "{label}: {out:?}");
        assert!(
            out.stderr
                .contains("another write holds the database write lock"),
            "{label}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("run #{holder}")),
            "{label}: the message names run #{holder}: {}",
            out.stderr
        );
        held.assert_running();
    }
    assert_eq!(
        db.runs().await.len(),
        runs_before.len(),
        "a writer without the lock records no run"
    );

    db.kill(held).await;
    db.stop_slowing_down().await;
    assert_eq!(db.dump_graph().await, before);
}

#[tokio::test]
async fn two_loads_never_interleave_even_when_the_server_ends_idle_transactions() {
    let db = Db::new().await;
    if !db.is_postgres() {
        // SQLite's lock is a file lock, which only the end of the process releases.
        return;
    }
    // Servers are often set to end sessions that sit idle inside a transaction; a writer's
    // hold on the lock must not depend on a session that does.
    let a = folder_of(&db, "a", &["spy_holdings.csv"]);
    let b = folder_of(&db, "b", &["spy_holdings.csv"]);
    let out = db.run(
        "setup-load",
        &[
            "--holdings-dir",
            &path(&a),
            "load-etf-holdings",
            "--rebuild",
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let spy: BTreeSet<String> = db.symbols("SPY").await;
    for (dir, extra) in [(&a, "ZZSLOW"), (&b, "ZZB")] {
        let file = dir.join("spy_holdings.csv");
        let text = std::fs::read_to_string(&file).expect("spy");
        std::fs::write(&file, format!("{text}{extra},TEST HOLDING,0.01\n")).expect("write");
    }
    let a_symbols: BTreeSet<String> = spy.iter().cloned().chain(["ZZSLOW".to_owned()]).collect();
    let b_symbols: BTreeSet<String> = spy.iter().cloned().chain(["ZZB".to_owned()]).collect();
    db.slow_down_zzslow_for(4).await;
    db.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET \
         idle_in_transaction_session_timeout = ''1s''', current_database()); END $$",
    )
    .await;

    let mut held = db.spawn("a", &["--holdings-dir", &path(&a), "load-etf-holdings"]);
    db.wait_until_held(&mut held).await;
    let second = db.run(
        "b",
        &[
            "--lock-timeout-ms",
            "60000",
            "--holdings-dir",
            &path(&b),
            "load-etf-holdings",
        ],
    );
    let first = held.finish();
    assert!(
        matches!(first.code, Some(0 | 2)),
        "A succeeds, or fails having changed nothing: {first:?}"
    );
    assert_eq!(second.code, Some(0), "{second:?}");

    let runs = db.runs().await;
    let applied: Vec<&Run> = runs
        .iter()
        .filter(|r| r.state == "succeeded" && r.data_version.is_some())
        .collect();
    let last = applied.last().expect("a run applied");
    let expected = if last.source == path(&a) {
        &a_symbols
    } else {
        &b_symbols
    };
    let stored = db.symbols("SPY").await;
    let wrong: Vec<&String> = stored.symmetric_difference(expected).collect();
    assert!(
        wrong.is_empty(),
        "SPY is exactly the later run's folder, not a mix; it differs in {wrong:?}: {runs:?}"
    );
    assert!(
        applied
            .windows(2)
            .all(|w| w[0].data_version < w[1].data_version),
        "data versions follow the order the runs held the lock: {runs:?}"
    );
}

/// The first JSON log line of a child's stderr that `matches` (`--log-format json`), waiting
/// for it to be written.
async fn log_line(
    child: &mut Running,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let found = child
            .stderr_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|line| matches(line));
        if let Some(line) = found {
            return line;
        }
        child.assert_running();
        assert!(
            started.elapsed() < PATIENCE,
            "no such log line: {}",
            child.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn serve_on_an_empty_database_is_live_but_not_ready_during_setup_then_logs_each_request_with_its_id()
 {
    let db = Db::new().await;
    // Setup's first write waits for the write lock the test holds: setup runs until the test
    // lets it go on, however fast the machine.
    let lock = loader::lock::WriteLock::acquire(&db.db, Duration::from_secs(5))
        .await
        .expect("the write lock");
    let stdout = db.dir.path().join("serve.out");
    let stderr = db.dir.path().join("serve.err");
    let child = Command::new(env!("CARGO_BIN_EXE_holdgraph"))
        .args(["--database-url", &db.url])
        .arg("--definitions-dir")
        .arg(project().join("definitions"))
        .arg("--holdings-dir")
        .arg(project().join("holdings"))
        .args(["--lock-timeout-ms", "600000", "--log-format", "json"])
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "holdgraph=info")
        .env_remove("ADMIN_TOKEN")
        .env_remove("ENVIRONMENT")
        .env_remove("MAX_BATCH")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start holdgraph");
    let mut server = Running {
        child,
        stdout,
        stderr,
    };
    let message = |line: &serde_json::Value| {
        line["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let listening = log_line(&mut server, |l| message(l).contains("Listening on http://")).await;
    let addr = message(&listening)
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address")
        .to_owned();

    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
    let health = get("/health").await.expect("health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let ready = get("/ready").await.expect("ready");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"status": "starting", "reason": "setup running"})
    );
    let query = serde_json::json!({
        "query": r#"query Dow { etf(name: "DIA") { memberCount } }"#,
        "operationName": "Dow",
    });
    let early = client
        .post(format!("http://{addr}/graphql"))
        .json(&query)
        .send()
        .await
        .expect("graphql");
    assert_eq!(early.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = early.json().await.expect("JSON");
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE", "{body}");
    server.assert_running();

    lock.release().await;
    let started = Instant::now();
    loop {
        let status = get("/ready").await.expect("ready").status();
        if status == reqwest::StatusCode::OK {
            break;
        }
        server.assert_running();
        assert!(started.elapsed() < PATIENCE, "never ready: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log_line(&mut server, |l| message(l).contains("serving on http://")).await;

    let answer = client
        .post(format!("http://{addr}/graphql"))
        .header("x-request-id", "process-test-7")
        .json(&query)
        .send()
        .await
        .expect("graphql");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert_eq!(
        answer
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("process-test-7")
    );
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["data"]["etf"]["memberCount"], 30, "{body}");
    let line = log_line(&mut server, |l| {
        message(l) == "request" && l["span"]["request_id"] == "process-test-7"
    })
    .await;
    let fields = &line["fields"];
    assert_eq!(fields["method"], "POST", "{line}");
    assert_eq!(fields["path"], "/graphql", "{line}");
    assert_eq!(fields["operation"], "Dow", "{line}");
    assert_eq!(fields["status"], 200, "{line}");
    assert!(fields["duration_ms"].as_f64().is_some(), "{line}");
}
