//! Test harness: `TestApp` gives every test its own database built by the real migrations (a
//! fresh SQLite file, or a fresh PostgreSQL database when `TEST_POSTGRES_URL` is set) and runs
//! `holdgraph` commands against it in process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// A fresh, migrated database and the means to run commands against it.
pub struct TestApp {
    pub db: DatabaseConnection,
    pub url: String,
    /// Scratch space for the test (holdings copies, the SQLite file).
    pub dir: tempfile::TempDir,
    /// The definitions folder commands use: the project's, or a copy a test may edit.
    definitions: std::sync::Mutex<PathBuf>,
    postgres: Option<(String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestApp {
    /// A new database: PostgreSQL when `TEST_POSTGRES_URL` is set, SQLite otherwise.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, postgres) = match std::env::var("TEST_POSTGRES_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!(
                    "hg_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0)
                );
                let url = holdgraph::db::create_postgres_database(&admin, &name)
                    .await
                    .expect("create test database");
                (url, Some((admin, name)))
            }
            _ => (
                format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
                None,
            ),
        };
        let db = holdgraph::db::connect(&url)
            .await
            .expect("connect and migrate");
        let app = Self {
            db,
            url,
            dir,
            definitions: std::sync::Mutex::new(project_dir().join("definitions")),
            postgres,
        };
        // Commands such as set-sector write definitions: never the shipped ones.
        app.copy_definitions();
        app
    }

    /// Copies the project's definitions into scratch space and makes commands use the copy,
    /// so a test may edit them (`set-sector` writes the overrides file). Returns the copy.
    pub fn copy_definitions(&self) -> PathBuf {
        let to = self.dir.path().join("definitions");
        std::fs::create_dir_all(&to).expect("definitions copy");
        for entry in std::fs::read_dir(project_dir().join("definitions")).expect("definitions") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
        *self.definitions.lock().expect("lock") = to.clone();
        to
    }

    /// The definitions folder commands use.
    pub fn definitions_dir(&self) -> PathBuf {
        self.definitions.lock().expect("lock").clone()
    }

    /// Whether this test runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Runs `holdgraph ARGS` against this database, with the project's definitions folder.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut full: Vec<String> = vec![
            "holdgraph".into(),
            "--database-url".into(),
            self.url.clone(),
            "--definitions-dir".into(),
            self.definitions.lock().expect("lock").display().to_string(),
        ];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = holdgraph::run_with_args(full, &mut stdout, &mut stderr).await;
        Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Loads one ETF's file from the holdings folder `holdings` with `--force`, as another
    /// process would; asserts it succeeded and returns its JSON report.
    pub async fn load_etf(&self, holdings: &str, etf: &str) -> serde_json::Value {
        let out = self
            .run(&[
                "--holdings-dir",
                holdings,
                "load-etf-holdings",
                "--etf",
                etf,
                "--force",
                "--json",
            ])
            .await;
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        serde_json::from_str(&out.stdout).expect("the load's JSON report")
    }

    /// Copies the real dataset's holdings folder into this test's scratch space, so the test
    /// may edit or delete files.
    pub fn copy_holdings(&self) -> PathBuf {
        self.copy_holdings_from(&dataset().join("holdings"))
    }

    /// Copies the files of a holdings folder (not its sub-folders, such as
    /// `classifications/`) into this test's scratch space.
    pub fn copy_holdings_from(&self, from: &Path) -> PathBuf {
        let to = self.dir.path().join("holdings");
        copy_files(from, &to);
        to
    }

    /// Every row of every table that loads write, by table, in a stable order, as text: two
    /// dumps are equal exactly when the stored data is.
    pub async fn dump(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut out = BTreeMap::new();
        macro_rules! rows {
            ($name:literal, $entity:path, $id:expr) => {
                let rows = <$entity>::find()
                    .order_by_asc($id)
                    .all(&self.db)
                    .await
                    .expect("dump")
                    .into_iter()
                    .map(|row| format!("{row:?}"))
                    .collect();
                out.insert($name, rows);
            };
        }
        rows!(
            "definition_groups",
            entity::definition_group::Entity,
            entity::definition_group::Column::Id
        );
        rows!(
            "group_memberships",
            entity::group_membership::Entity,
            entity::group_membership::Column::Id
        );
        rows!(
            "load_runs",
            entity::load_run::Entity,
            entity::load_run::Column::Id
        );
        rows!(
            "load_run_files",
            entity::load_run_file::Entity,
            entity::load_run_file::Column::Id
        );
        rows!(
            "membership_changes",
            entity::membership_change::Entity,
            entity::membership_change::Column::Id
        );
        rows!(
            "group_changes",
            entity::group_change::Entity,
            entity::group_change::Column::Id
        );
        rows!(
            "data_versions",
            entity::data_version::Entity,
            entity::data_version::Column::Environment
        );
        out
    }

    /// The tables that hold the graph and its change history, without the run log
    /// (`load_runs`, `load_run_files`), which records failed attempts too.
    pub async fn dump_graph(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut all = self.dump().await;
        all.remove("load_runs");
        all.remove("load_run_files");
        all
    }

    /// The graph as stored, without ids and timestamps: every group (type, name, description,
    /// metadata) and every membership (its group's type and name, symbol, weight, metadata), each
    /// sorted. Equal exactly when the stored graph is, whatever rows were deleted and inserted.
    pub async fn stored_graph(&self) -> (Vec<String>, Vec<String>) {
        let groups = entity::definition_group::Entity::find()
            .all(&self.db)
            .await
            .expect("groups");
        let names: BTreeMap<i32, String> = groups
            .iter()
            .map(|g| {
                (
                    g.id,
                    format!("{} {} {}", g.environment, g.group_type, g.name),
                )
            })
            .collect();
        let mut group_rows: Vec<String> = groups
            .iter()
            .map(|g| format!("{} {:?} {:?}", names[&g.id], g.description, g.metadata))
            .collect();
        group_rows.sort();
        let mut member_rows: Vec<String> = entity::group_membership::Entity::find()
            .all(&self.db)
            .await
            .expect("members")
            .into_iter()
            .map(|m| {
                format!(
                    "{} {} {:?} {:?}",
                    names.get(&m.group_id).map_or("(no group)", String::as_str),
                    m.symbol,
                    m.weight,
                    m.metadata
                )
            })
            .collect();
        member_rows.sort();
        (group_rows, member_rows)
    }

    /// Every row of a raw SQL query.
    pub async fn rows(&self, sql: &str) -> Vec<sea_orm::QueryResult> {
        self.db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
    }

    /// Runs a scalar `SELECT COUNT(*) ...` (or any single integer) query.
    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("one row");
        row.try_get_by_index::<i64>(0)
            .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
            .expect("integer")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop the database from a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    let _ = holdgraph::db::drop_postgres_database(&admin, &name).await;
                });
            })
            .join();
        }
    }
}

/// The project's root folder.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The real dataset the repository ships (`HOLDGRAPH_DATASET` overrides where it is). Panics
/// with the path it looked at and the variable that moves it when the folder is missing.
pub fn dataset() -> PathBuf {
    let (path, from) = match std::env::var("HOLDGRAPH_DATASET") {
        Ok(path) if !path.is_empty() => (PathBuf::from(path), "HOLDGRAPH_DATASET"),
        _ => (
            project_dir().join("datasets/etf-holdings-2025-11"),
            "the repository's datasets/ folder (HOLDGRAPH_DATASET overrides it)",
        ),
    };
    assert!(
        path.join("holdings").is_dir(),
        "the test dataset is missing: {} has no holdings/ folder (looked there because of {from})",
        path.display()
    );
    path
}

/// The shared dataset's holdings folder as a string, for `--holdings-dir`.
pub fn dataset_holdings() -> String {
    dataset().join("holdings").display().to_string()
}

/// Copies the regular files of one folder into another (created when missing).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the folder") {
        let entry = entry.expect("entry");
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}
