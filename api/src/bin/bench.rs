//! `holdgraph-bench`: benchmarks that print numbers (tests never assert timings).
//!
//! `cargo run --release --bin holdgraph-bench -- load` loads the shared dataset into fresh
//! SQLite and PostgreSQL databases: full, incremental with no change, incremental after one
//! ETF changed; it prints wall time and rows per second for each. `setup` times
//! `holdgraph setup`, `serve` the GraphQL server under a dashboard mix.
//!
//! `cargo build --release && target/release/holdgraph-bench scale [--scales 1,10,100] [--keep]`
//! writes synthetic datasets N times the real one (37·N ETF files, a share of their symbols
//! swapped for synthetic tickers, weights jittered) and runs the release `holdgraph` binary on
//! them as a child process: full load, no-change and one-file incremental loads, each with wall
//! time, rows per second and the child's peak RSS.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use entity::GroupType;
use loader::{LoadRequest, Mode, Quiet};
use sea_orm::DatabaseConnection;

/// Holdings Graph benchmarks.
#[derive(Parser)]
struct Args {
    /// The real dataset's folder (the one holding `holdings/`).
    #[arg(
        long,
        env = "HOLDGRAPH_DATASET",
        default_value = "datasets/etf-holdings-2025-11"
    )]
    dataset: PathBuf,
    /// A PostgreSQL URL whose server can create databases; empty to skip PostgreSQL.
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// Repetitions of each measurement (the table shows the median and the best).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[command(subcommand)]
    bench: Bench,
}

/// The benchmarks, one subcommand each.
#[derive(Subcommand)]
enum Bench {
    /// Full, no-change incremental and one-ETF incremental loads of every ETF and universe.
    Load,
    /// `holdgraph setup` from an empty database, then again on the loaded one.
    Setup,
    /// The server under a dashboard mix over HTTP, and a warm query in process.
    Serve {
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds of load per database.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The server's `--version-check-ms`.
        #[arg(long, default_value_t = 0)]
        version_check_ms: u64,
    },
    /// The release `holdgraph` binary, as a child process, on synthetic datasets N times the
    /// real one: full, no-change and one-file loads with wall time, rows/s and peak RSS.
    Scale {
        /// Copies of the real dataset to measure, comma separated (1 is the real dataset).
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        scales: Vec<usize>,
        /// Keep each generated folder (its path is printed) instead of deleting it.
        #[arg(long)]
        keep: bool,
    },
}

/// Runs the benchmark the command line names.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.bench {
        Bench::Load => load(&args).await,
        Bench::Setup => setup(&args).await,
        Bench::Serve {
            concurrency,
            seconds,
            version_check_ms,
        } => serve(&args, *concurrency, *seconds, *version_check_ms).await,
        Bench::Scale { scales, keep } => scale(&args, scales, *keep).await,
    }
}

/// One fresh database for one measurement round.
struct Fresh {
    /// The connection, migrated.
    db: DatabaseConnection,
    /// The PostgreSQL server's admin URL and the database to drop after the round.
    drop: Option<(String, String)>,
    /// The SQLite database's folder, removed on drop.
    _dir: tempfile::TempDir,
}

/// A fresh, migrated database of `backend` for round `round` of the `load` benchmark.
async fn fresh(backend: &str, args: &Args, round: usize) -> anyhow::Result<Fresh> {
    let dir = tempfile::tempdir()?;
    let (url, name) = fresh_url(backend, args, dir.path(), &format!("load_{round}")).await?;
    Ok(Fresh {
        db: holdgraph::db::connect(&url).await?,
        drop: name.map(|n| (args.postgres_url.clone(), n)),
        _dir: dir,
    })
}

/// The loader's request for every file of one group type in `dir`.
fn request(group_type: GroupType, mode: Mode, dir: &Path) -> LoadRequest {
    LoadRequest {
        group_type,
        mode,
        dry_run: false,
        only: None,
        dir: dir.to_owned(),
        environment: "DEFAULT".to_owned(),
        share_classes: Some(PathBuf::from("definitions/share_classes.csv")),
        funds: Some(PathBuf::from("definitions/funds.json")),
        guards: None,
        max_file_bytes: loader::run::DEFAULT_MAX_FILE_BYTES,
    }
}

/// Loads ETFs then universes; returns (milliseconds, rows read).
async fn load_both(
    db: &DatabaseConnection,
    mode: Mode,
    dir: &Path,
) -> anyhow::Result<(f64, usize)> {
    let clock = Instant::now();
    let mut rows = 0;
    for group_type in [GroupType::Etf, GroupType::Universe] {
        let report = loader::load(db, &request(group_type, mode, dir), &Quiet).await?;
        anyhow::ensure!(
            !report.failed(),
            "a file was rejected:\n{}",
            report.render(false)
        );
        rows += report.totals.rows_read;
    }
    Ok((clock.elapsed().as_secs_f64() * 1e3, rows))
}

/// The `load` benchmark: the loader in process, full and incremental, on each database.
async fn load(args: &Args) -> anyhow::Result<()> {
    let source = holdings(args)?;
    let backends = backends(args).await?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "database",
        "step",
        "rows",
        "median ms",
        "best ms",
        "rows/s (median)",
    ]);
    for backend in backends {
        let mut steps: [(&str, Vec<f64>, usize); 3] = [
            ("full load (37 ETFs + 4 universes)", Vec::new(), 0),
            ("incremental, nothing changed", Vec::new(), 0),
            ("incremental, one ETF changed", Vec::new(), 0),
        ];
        for round in 0..args.runs {
            let work = tempfile::tempdir()?;
            copy_dir(&source, work.path())?;
            let fresh = fresh(backend, args, round).await?;
            let (ms, rows) = load_both(&fresh.db, Mode::Full, work.path()).await?;
            steps[0].1.push(ms);
            steps[0].2 = rows;
            let (ms, rows) = load_both(&fresh.db, Mode::Incremental, work.path()).await?;
            steps[1].1.push(ms);
            steps[1].2 = rows;
            change_one_etf(&work.path().join("spy_holdings.csv"))?;
            let (ms, rows) = load_both(&fresh.db, Mode::Incremental, work.path()).await?;
            steps[2].1.push(ms);
            steps[2].2 = rows;
            fresh.db.close().await.ok();
            if let Some((admin, name)) = fresh.drop {
                holdgraph::db::drop_postgres_database(&admin, &name).await?;
            }
        }
        for (step, mut times, rows) in steps {
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            table.add_row([
                backend.to_owned(),
                step.to_owned(),
                rows.to_string(),
                format!("{median:.1}"),
                format!("{:.1}", times[0]),
                if rows > 0 {
                    format!("{:.0}", rows as f64 / (median / 1e3))
                } else {
                    "-".to_owned()
                },
            ]);
        }
    }
    println!("{table}");
    Ok(())
}

/// Which databases a benchmark runs on: SQLite, and PostgreSQL when it can create databases.
async fn backends(args: &Args) -> anyhow::Result<Vec<&'static str>> {
    let mut backends = vec!["sqlite"];
    if !args.postgres_url.is_empty() {
        match holdgraph::db::create_postgres_database(&args.postgres_url, "hg_bench_probe").await {
            Ok(_) => {
                holdgraph::db::drop_postgres_database(&args.postgres_url, "hg_bench_probe").await?;
                backends.push("postgres");
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e:#}"),
        }
    }
    Ok(backends)
}

/// The dataset's holdings folder, or an error saying where it was looked for.
fn holdings(args: &Args) -> anyhow::Result<PathBuf> {
    let dir = args.dataset.join("holdings");
    anyhow::ensure!(dir.is_dir(), "dataset not found at {}", dir.display());
    Ok(dir)
}

/// A fresh, empty database of a backend: its URL, and the PostgreSQL database to drop after.
async fn fresh_url(
    backend: &str,
    args: &Args,
    dir: &Path,
    tag: &str,
) -> anyhow::Result<(String, Option<String>)> {
    if backend == "sqlite" {
        let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
        return Ok((url, None));
    }
    let name = format!("hg_bench_{tag}_{}", std::process::id());
    let url = holdgraph::db::create_postgres_database(&args.postgres_url, &name).await?;
    Ok((url, Some(name)))
}

/// The `setup` benchmark: `holdgraph setup` in process on an empty database, then again.
async fn setup(args: &Args) -> anyhow::Result<()> {
    let holdings = holdings(args)?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "database",
        "step",
        "median ms",
        "best ms",
        "exit",
    ]);
    for backend in backends(args).await? {
        let mut first = Vec::new();
        let mut again = Vec::new();
        let mut exit = 0;
        for round in 0..args.runs {
            let dir = tempfile::tempdir()?;
            let (url, drop) =
                fresh_url(backend, args, dir.path(), &format!("setup_{round}")).await?;
            holdgraph::db::connect(&url).await?.close().await.ok();
            let cli = holdgraph::Cli::try_parse_from([
                "holdgraph",
                "--database-url",
                &url,
                "--holdings-dir",
                &holdings.display().to_string(),
                "setup",
            ])?;
            for times in [&mut first, &mut again] {
                let clock = Instant::now();
                let code = holdgraph::run(
                    &cli,
                    &mut std::io::sink(),
                    &mut std::io::sink(),
                    holdgraph::ProgressStyle::Quiet,
                )
                .await;
                times.push(clock.elapsed().as_secs_f64() * 1e3);
                exit = exit.max(code);
            }
            if let Some(name) = drop {
                holdgraph::db::drop_postgres_database(&args.postgres_url, &name).await?;
            }
        }
        for (step, mut times) in [
            ("setup on an empty database", first),
            ("setup again (nothing changed)", again),
        ] {
            times.sort_by(f64::total_cmp);
            table.add_row([
                backend.to_owned(),
                step.to_owned(),
                format!("{:.1}", times[times.len() / 2]),
                format!("{:.1}", times[0]),
                exit.to_string(),
            ]);
        }
    }
    println!("{table}");
    Ok(())
}

/// The dashboard mix: (label, query). Each client walks it round robin.
fn mix() -> Vec<(&'static str, String)> {
    let stocks = ["AAPL", "NVDA", "MSFT", "AMZN", "JPM", "XOM", "LLY", "BRK.B"];
    let etfs = ["SPY", "QQQ", "IVV", "XLK", "VTI", "IWM", "XLF", "VUG"];
    let sectors = [
        "information_technology",
        "energy",
        "health_care",
        "utilities",
    ];
    let unions = [
        ("SPY", "nasdaq100"),
        ("QQQ", "dow30"),
        ("XLK", "XLC"),
        ("sp500", "IWM"),
    ];
    let mut out = Vec::new();
    for i in 0..8 {
        out.push((
            "stock with its ETFs",
            format!(
                r#"{{ stock(symbol: "{}") {{ symbol name sectorKey etfs {{ weight group {{ name }} }} }} }}"#,
                stocks[i]
            ),
        ));
        out.push((
            "ETF top 25 holdings",
            format!(
                r#"{{ etf(name: "{}") {{ description members(first: 25) {{ edges {{ node {{ symbol weight name }} }} }} }} }}"#,
                etfs[i]
            ),
        ));
        out.push((
            "sector members",
            format!(
                r#"{{ sector(name: "{}") {{ memberCount members(first: 100, orderBy: SYMBOL) {{ edges {{ node {{ symbol name }} }} }} }} }}"#,
                sectors[i % sectors.len()]
            ),
        ));
        let (a, b) = unions[i % unions.len()];
        out.push((
            "union of two groups",
            format!(r#"{{ symbols(groups: ["{a}", "{b}"]) }}"#),
        ));
        if i % 4 == 0 {
            out.push((
                "all of VTI",
                r#"{ etf(name: "VTI") { members(first: 5000) { totalCount edges { node { symbol weight } } } } }"#
                    .to_owned(),
            ));
        }
    }
    out
}

/// The `serve` benchmark: the dashboard mix over HTTP from `concurrency` clients for `seconds`
/// per database, and a warm query executed in process.
async fn serve(
    args: &Args,
    concurrency: usize,
    seconds: u64,
    version_check_ms: u64,
) -> anyhow::Result<()> {
    use holdgraph::graphql::{Caller, execute, prepare, schema};
    use holdgraph::state::{AppState, ServerSettings};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let holdings = holdings(args)?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "database", "query", "requests", "req/s", "p50 µs", "p99 µs", "errors",
    ]);
    let mut in_process = Vec::new();
    for backend in backends(args).await? {
        let dir = tempfile::tempdir()?;
        let (url, drop) = fresh_url(backend, args, dir.path(), "serve").await?;
        let cli = holdgraph::Cli::try_parse_from([
            "holdgraph",
            "--database-url",
            &url,
            "--holdings-dir",
            &holdings.display().to_string(),
            "setup",
        ])?;
        let code = holdgraph::run(
            &cli,
            &mut std::io::sink(),
            &mut std::io::sink(),
            holdgraph::ProgressStyle::Quiet,
        )
        .await;
        anyhow::ensure!(code == 0, "setup failed with exit code {code}");
        let db = holdgraph::db::connect(&url).await?;
        let settings = ServerSettings {
            version_check: std::time::Duration::from_millis(version_check_ms),
            ..ServerSettings::default()
        };
        let state = AppState::new(db.clone(), cli.config.clone(), settings).await?;

        // A warm query executed in process: no HTTP, the caches already filled.
        let schema = schema(state.clone());
        let query = r#"{ stock(symbol: "AAPL") { etfs { weight group { name } } } }"#;
        let run_once = || async {
            let request = prepare(query.into(), &state, Caller { admin: false });
            execute(&schema, request).await
        };
        anyhow::ensure!(
            run_once().await.errors.is_empty(),
            "the in-process query failed"
        );
        let iterations = 20_000;
        let clock = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(run_once().await);
        }
        let warm_us = clock.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        // The floor: the same request machinery for a query that reads nothing.
        let floor = || async {
            let request = prepare("{ __typename }".into(), &state, Caller { admin: false });
            execute(&schema, request).await
        };
        let clock = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(floor().await);
        }
        let floor_us = clock.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        println!(
            "{backend}: {{ __typename }} in process: {floor_us:.1} µs per query (the executor's floor)"
        );
        // The same query through the whole server in process (router, middleware, response
        // cache), no socket: what a warm dashboard query costs the server.
        let router = holdgraph::http::router(state.clone());
        let body = serde_json::json!({ "query": query }).to_string();
        let through_router = || post_in_process(&router, body.clone());
        for _ in 0..3 {
            let bytes = through_router().await?;
            anyhow::ensure!(bytes.starts_with(b"{\"data\""), "the routed query failed");
        }
        let clock = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(through_router().await?);
        }
        let routed_us = clock.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        // A new query text every request (an alias counts up, the symbol rotates), as
        // bench/http.sh's q1-new: parsed, validated and executed, past the response cache.
        let listed = execute(
            &schema,
            prepare(
                "{ stocks(first: 5000) { edges { node { symbol } } } }".into(),
                &state,
                Caller { admin: false },
            ),
        )
        .await
        .data
        .into_json()?;
        let symbols: Vec<String> = listed["stocks"]["edges"]
            .as_array()
            .map(|edges| {
                edges
                    .iter()
                    .filter_map(|e| e["node"]["symbol"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        anyhow::ensure!(!symbols.is_empty(), "no symbols to rotate");
        let new_text = |n: usize| {
            let query = format!(
                r#"{{ s{n}: stock(symbol: "{}") {{ etfs {{ weight group {{ name }} }} }} }}"#,
                symbols[n % symbols.len()]
            );
            post_in_process(&router, serde_json::json!({ "query": query }).to_string())
        };
        let bytes = new_text(0).await?;
        anyhow::ensure!(bytes.starts_with(b"{\"data\""), "the new-text query failed");
        let clock = Instant::now();
        for n in 1..=iterations as usize {
            std::hint::black_box(new_text(n).await?);
        }
        let new_us = clock.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        in_process.push((backend, warm_us, routed_us, new_us));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(holdgraph::serve::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?;
        let mix = Arc::new(mix());
        let endpoint = Arc::new(format!("http://{addr}/graphql"));
        for (_, q) in mix.iter() {
            client
                .post(endpoint.as_str())
                .json(&serde_json::json!({"query": q}))
                .send()
                .await?;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
        let clock = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let (client, mix, endpoint) = (client.clone(), mix.clone(), endpoint.clone());
            tasks.push(tokio::spawn(async move {
                let mut samples: Vec<(&'static str, f64, bool)> = Vec::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let (label, q) = &mix[i % mix.len()];
                    i += 1;
                    let start = Instant::now();
                    let ok = match client
                        .post(endpoint.as_str())
                        .json(&serde_json::json!({"query": q}))
                        .send()
                        .await
                    {
                        // A GraphQL error still answers 200: count it by its body.
                        Ok(r) => {
                            r.status().is_success()
                                && r.bytes().await.is_ok_and(|b| {
                                    b.starts_with(b"{\"data\"")
                                        && !b.windows(8).any(|w| w == b"\"errors\"")
                                })
                        }
                        Err(_) => false,
                    };
                    samples.push((label, start.elapsed().as_secs_f64() * 1e6, ok));
                }
                samples
            }));
        }
        let mut by_label: BTreeMap<&str, (Vec<f64>, usize)> = BTreeMap::new();
        for task in tasks {
            for (label, us, ok) in task.await? {
                let entry = by_label.entry(label).or_default();
                entry.0.push(us);
                if !ok {
                    entry.1 += 1;
                }
            }
        }
        let elapsed = clock.elapsed().as_secs_f64();
        let _ = stop.send(());
        server.await??;
        let mut all = Vec::new();
        let mut errors = 0;
        for (label, (mut times, errs)) in by_label {
            times.sort_by(f64::total_cmp);
            table.add_row(row(backend, label, &times, elapsed, errs));
            all.extend(times);
            errors += errs;
        }
        all.sort_by(f64::total_cmp);
        table.add_row(row(backend, "the whole mix", &all, elapsed, errors));
        db.close().await.ok();
        if let Some(name) = drop {
            holdgraph::db::drop_postgres_database(&args.postgres_url, &name).await?;
        }
    }
    println!("{table}");
    for (backend, us, routed, new) in in_process {
        println!(
            "{backend}: warm stock(symbol: \"AAPL\") {{ etfs {{ weight group {{ name }} }} }} in process: \
             {us:.1} µs per query executed, {routed:.1} µs per request through the router, \
             {new:.1} µs per request with a new text each time (another alias and symbol)"
        );
    }
    Ok(())
}

/// A JSON body posted to `/graphql` through the router in process (no socket); the response
/// body.
async fn post_in_process(router: &axum::Router, body: String) -> anyhow::Result<axum::body::Bytes> {
    use tower::ServiceExt;
    let request = axum::http::Request::post("/graphql")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))?;
    let response = router.clone().oneshot(request).await?;
    Ok(axum::body::to_bytes(response.into_body(), usize::MAX).await?)
}

/// One table row of the `serve` benchmark from its sorted latencies (µs).
fn row(backend: &str, label: &str, sorted: &[f64], elapsed: f64, errors: usize) -> Vec<String> {
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    vec![
        backend.to_owned(),
        label.to_owned(),
        sorted.len().to_string(),
        format!("{:.0}", sorted.len() as f64 / elapsed),
        format!("{:.0}", pct(0.50)),
        format!("{:.0}", pct(0.99)),
        errors.to_string(),
    ]
}

/// Copies the files (not the folders) of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Reweights the first 50 holdings and adds one, as a weekly provider update would.
fn change_one_etf(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if (1..=50).contains(&i)
            && let Some((rest, weight)) = line.rsplit_once(',')
            && let Ok(w) = weight.parse::<f64>()
        {
            out.push_str(&format!("{rest},{}\n", w * 0.99));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("ZZBENCH,BENCH HOLDING INC,0.01\n");
    std::fs::write(path, out)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `scale`: the real `holdgraph` binary on synthetic datasets N times the real one.
// ---------------------------------------------------------------------------------------------

/// Share of the real symbols a copy k ≥ 1 replaces with synthetic ones (chosen per symbol, so a
/// synthetic stock is held by the same ETFs of its copy as the real stock it stands for).
const SYNTHETIC_SHARE: f64 = 0.30;

/// Largest relative change of a weight in a copy (± 5 %), before the file is rescaled.
const WEIGHT_JITTER: f64 = 0.05;

/// Synthetic tickers are `Z` and five letters whose first is below `Z`; `ZZ....` is left for
/// the row the one-file change adds, so it can never be one of them.
const SYNTHETIC_POOL_LIMIT: u64 = 25 * 26 * 26 * 26 * 26;

/// The holding the one-file change adds (outside the synthetic pool, see above).
const ADDED_SYMBOL: &str = "ZZBNCH";

/// The steps measured at each scale, in the order they run: label and `holdgraph` command.
const SCALE_STEPS: [(&str, &[&str]); 4] = [
    (
        "ETF full load (--rebuild)",
        &["load-etf-holdings", "--rebuild", "--json"],
    ),
    (
        "universes full load (4 files)",
        &["load-universes", "--rebuild", "--json"],
    ),
    (
        "ETF incremental, nothing changed",
        &["load-etf-holdings", "--json"],
    ),
    (
        "ETF incremental, 1 file changed",
        &["load-etf-holdings", "--json"],
    ),
];

/// The full-load step, whose rows/s the summary compares across scales.
const FULL_STEP: usize = 0;

/// The step run after [`change_one_file`] changed one ETF file.
const CHANGE_STEP: usize = 3;

/// One holding row of a real ETF file, in the canonical columns.
struct HoldingRow {
    /// The symbol as the file spells it.
    symbol: String,
    /// The security's name (may be empty).
    name: String,
    /// The weight as written, kept verbatim in copy 0.
    weight_text: String,
    /// The weight parsed, when it is a number.
    weight: Option<f64>,
    /// The provider's sector (empty when the file has none).
    sector: String,
}

/// One real ETF file: its group name (the file name before `_holdings.csv`) and rows.
struct RealEtf {
    /// The group, as in the file name (`spy`, `brk.b`).
    group: String,
    /// Its data rows, in file order.
    rows: Vec<HoldingRow>,
}

/// A synthetic dataset on disk.
struct ScaledDataset {
    /// The folder, removed on drop unless `--keep` took it over.
    dir: Option<tempfile::TempDir>,
    /// The folder's path (also valid after `--keep`).
    path: PathBuf,
    /// ETF files written.
    etf_files: usize,
    /// Data rows over every ETF file.
    etf_rows: usize,
    /// The mid-size ETF file the one-file step changes.
    changed: PathBuf,
}

/// A deterministic pseudo-random sequence (splitmix64): same seed, same dataset, on any machine.
struct SplitMix64(u64);

impl SplitMix64 {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A stable 64-bit hash of a string (FNV-1a); std's hasher may change between Rust releases.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The synthetic ticker number `index`: `Z` and five base-26 letters (`ZAAAAA`, `ZAAAAB`, ...).
fn synthetic_ticker(index: u64) -> String {
    let mut letters = [b'A'; 5];
    let mut rest = index;
    for slot in letters.iter_mut().rev() {
        *slot = b'A' + (rest % 26) as u8;
        rest /= 26;
    }
    let mut ticker = String::with_capacity(6);
    ticker.push('Z');
    ticker.extend(letters.iter().map(|&b| char::from(b)));
    ticker
}

/// Whether a real symbol looks like a listed ticker, so a synthetic one may stand for it (rows
/// the loader skips, such as `CASH_USD`, stay as they are and keep being skipped).
fn replaceable(symbol: &str) -> bool {
    (1..=7).contains(&symbol.len())
        && symbol.starts_with(|c: char| c.is_ascii_uppercase())
        && symbol.chars().all(|c| c.is_ascii_uppercase() || c == '.')
}

/// The fields of one CSV line (quoted fields with `""` escapes; the files have no line breaks
/// inside fields).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// A field written for CSV: quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// A weight with at most six decimals and no trailing zeros.
fn format_weight(weight: f64) -> String {
    let text = format!("{weight:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Reads a real ETF file by its header's column names (`symbol`, `weight`, optional `name` and
/// `sector`, in any order).
fn read_real_etf(path: &Path, group: String) -> anyhow::Result<RealEtf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = csv_fields(lines.next().unwrap_or_default())
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(symbol), Some(weight)) = (column("symbol"), column("weight")) else {
        anyhow::bail!(
            "{}: expected a header with `symbol` and `weight` columns",
            path.display()
        );
    };
    let (name, sector) = (column("name"), column("sector"));
    let field = |fields: &[String], at: Option<usize>| {
        at.and_then(|i| fields.get(i))
            .map(|f| f.trim().to_owned())
            .unwrap_or_default()
    };
    let rows = lines
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields = csv_fields(line);
            let weight_text = field(&fields, Some(weight));
            HoldingRow {
                symbol: field(&fields, Some(symbol)),
                name: field(&fields, name),
                weight: weight_text.parse::<f64>().ok().filter(|w| w.is_finite()),
                weight_text,
                sector: field(&fields, sector),
            }
        })
        .collect();
    Ok(RealEtf { group, rows })
}

/// The file name of copy `copy` of an ETF group: the real name for copy 0.
fn copy_file_name(group: &str, copy: usize) -> String {
    if copy == 0 {
        format!("{group}_holdings.csv")
    } else {
        format!("{group}{copy:03}_holdings.csv")
    }
}

/// Writes copy `copy` of one ETF in the canonical header. Copy 0 is the real file; a later
/// copy swaps the symbols `synthetic` picks for synthetic tickers and jitters each weight by up
/// to ± 5 %, rescaled so the file sums to what the real one summed to.
fn write_etf_copy(
    etf: &RealEtf,
    copy: usize,
    synthetic: &dyn Fn(&str) -> Option<String>,
    to: &Path,
) -> anyhow::Result<PathBuf> {
    let mut weights: Vec<Option<f64>> = etf.rows.iter().map(|r| r.weight).collect();
    if copy > 0 {
        let mut rng = SplitMix64(fnv1a(&etf.group) ^ (copy as u64).wrapping_mul(0xA24B_AED4));
        let before: f64 = weights.iter().flatten().sum();
        for w in weights.iter_mut().flatten() {
            *w *= 1.0 + WEIGHT_JITTER * (2.0 * rng.next_f64() - 1.0);
        }
        let after: f64 = weights.iter().flatten().sum();
        if after > 0.0 {
            for w in weights.iter_mut().flatten() {
                *w *= before / after;
            }
        }
    }
    let mut out = String::with_capacity(etf.rows.len() * 48);
    out.push_str("symbol,name,weight,sector\n");
    for (row, weight) in etf.rows.iter().zip(&weights) {
        let replaced = if copy > 0 {
            synthetic(&row.symbol)
        } else {
            None
        };
        let (symbol, name) = match &replaced {
            Some(ticker) => (ticker.as_str(), format!("SYNTHETIC {}", row.name)),
            None => (row.symbol.as_str(), row.name.clone()),
        };
        let weight = match weight {
            // A real weight stays as written; a tiny one must not round to zero.
            Some(w) if copy > 0 => format_weight(if row.weight.is_some_and(|r| r > 0.0) {
                w.max(1e-6)
            } else {
                *w
            }),
            _ => row.weight_text.clone(),
        };
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(symbol),
            csv_field(&name),
            csv_field(&weight),
            csv_field(&row.sector)
        ));
    }
    let path = to.join(copy_file_name(&etf.group, copy));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes `copies` copies of the real dataset's ETF files (37 × `copies` files) and its
/// universe files as they are into a new temporary folder.
fn generate_scaled(source: &Path, copies: usize) -> anyhow::Result<ScaledDataset> {
    anyhow::ensure!(copies > 0, "a scale must be at least 1");
    let mut etfs = Vec::new();
    let mut universes = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(source)
        .with_context(|| format!("cannot list {}", source.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(group) = name.strip_suffix("_holdings.csv") {
            etfs.push(read_real_etf(&entry.path(), group.to_owned())?);
        } else if name.ends_with(".csv") {
            universes.push(entry.path());
        }
    }
    anyhow::ensure!(
        !etfs.is_empty(),
        "no *_holdings.csv in {}",
        source.display()
    );

    // Each real symbol that looks like a ticker gets one synthetic stand-in per copy: number
    // `(copy - 1) × symbols + its index`, so the pool grows with the copies.
    let mut symbols: Vec<&str> = etfs
        .iter()
        .flat_map(|e| e.rows.iter().map(|r| r.symbol.as_str()))
        .filter(|s| replaceable(s))
        .collect();
    symbols.sort_unstable();
    symbols.dedup();
    let index: std::collections::HashMap<&str, u64> =
        symbols.iter().zip(0u64..).map(|(&s, i)| (s, i)).collect();
    let pool = index.len() as u64 * (copies as u64 - 1);
    anyhow::ensure!(
        pool < SYNTHETIC_POOL_LIMIT,
        "{copies} copies need {pool} synthetic tickers, more than the {SYNTHETIC_POOL_LIMIT} \
         six-letter ones available"
    );

    let dir = tempfile::Builder::new()
        .prefix(&format!("holdgraph-scale-{copies}x-"))
        .tempdir()?;
    let to = dir.path().to_owned();
    for universe in &universes {
        if let Some(name) = universe.file_name() {
            std::fs::copy(universe, to.join(name))
                .with_context(|| format!("cannot copy {}", universe.display()))?;
        }
    }
    // The one-file step changes the middle copy of the median-sized real ETF.
    let mut by_size: Vec<&RealEtf> = etfs.iter().collect();
    by_size.sort_by_key(|e| (e.rows.len(), e.group.clone()));
    let mid_size = by_size[by_size.len() / 2].group.clone();
    let changed = to.join(copy_file_name(&mid_size, copies / 2));

    let mut etf_rows = 0;
    for copy in 0..copies {
        let synthetic = |symbol: &str| {
            let &i = index.get(symbol).filter(|_| copy > 0)?;
            let pick =
                SplitMix64(fnv1a(symbol) ^ (copy as u64).wrapping_mul(0x9E37_79B9)).next_f64();
            (pick < SYNTHETIC_SHARE)
                .then(|| synthetic_ticker((copy as u64 - 1) * index.len() as u64 + i))
        };
        for etf in &etfs {
            write_etf_copy(etf, copy, &synthetic, &to)?;
            etf_rows += etf.rows.len();
        }
    }
    Ok(ScaledDataset {
        dir: Some(dir),
        path: to,
        etf_files: etfs.len() * copies,
        etf_rows,
        changed,
    })
}

/// The weekly-update change of one canonical file: every tenth holding reweighted by −3 %, the
/// last one dropped, a new one added.
fn change_one_file(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<&str> = text.lines().collect();
    anyhow::ensure!(
        lines.len() > 2,
        "{} has too few rows to change",
        path.display()
    );
    lines.pop();
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        let mut fields = csv_fields(line);
        if i > 0
            && i % 10 == 3
            && let Some(w) = fields.get(2).and_then(|w| w.parse::<f64>().ok())
        {
            fields[2] = format_weight(w * 0.97);
            let fields: Vec<_> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&fields.join(","));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{ADDED_SYMBOL},BENCH ADDED HOLDING INC,0.01,Industrials\n"
    ));
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The release `holdgraph` binary beside this benchmark's own executable.
fn holdgraph_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("holdgraph");
    anyhow::ensure!(
        exe.is_file(),
        "{} not found: the scale benchmark runs the real binary; build it first with \
         `cargo build --release` (then run target/release/holdgraph-bench)",
        exe.display()
    );
    Ok(exe)
}

/// The arguments that raise the write lock's wait, when this `holdgraph` has the flag (older
/// builds have no lock and no flag).
fn lock_timeout_args(exe: &Path) -> anyhow::Result<Vec<String>> {
    let help = std::process::Command::new(exe)
        .arg("--help")
        .output()
        .with_context(|| format!("cannot run {} --help", exe.display()))?;
    Ok(
        if String::from_utf8_lossy(&help.stdout).contains("--lock-timeout-ms") {
            vec!["--lock-timeout-ms".to_owned(), "60000".to_owned()]
        } else {
            Vec::new()
        },
    )
}

/// The process's peak resident set so far (`VmHWM`), in KiB; `None` once it has exited or
/// where `/proc` is missing.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What one run of the child process measured.
struct ChildRun {
    /// Wall time from spawn to exit.
    seconds: f64,
    /// The largest `VmHWM` seen while it ran, in KiB (`None` without `/proc`).
    peak_rss_kib: Option<u64>,
    /// Holdings the load's JSON report counts (`totals.holdings`).
    holdings: Option<u64>,
    /// What the load did, from the report's `totals.counts` (`created 3, reweighted 2, ...`).
    changes: String,
}

/// Runs `holdgraph <args>` to completion, polling its peak RSS every 5 ms; stdout and stderr go
/// to files in `scratch` (a pipe would fill and stall the child while we poll). An exit code
/// other than 0 is an error carrying its stderr and the rejected files' reasons.
fn run_holdgraph(exe: &Path, args: &[String], scratch: &Path) -> anyhow::Result<ChildRun> {
    let (out_path, err_path) = (scratch.join("stdout.json"), scratch.join("stderr.txt"));
    let clock = Instant::now();
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let mut peak: Option<u64> = None;
    let status = loop {
        // Read before `try_wait`: once reaped, the process's /proc entry is gone.
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = Some(peak.map_or(kib, |p| p.max(kib)));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let seconds = clock.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let report: Option<serde_json::Value> = serde_json::from_str(&stdout).ok();
    if !status.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let rejected: Vec<String> = report
            .as_ref()
            .and_then(|r| r.get("files"))
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("error").and_then(serde_json::Value::as_str))
            .map(str::to_owned)
            .collect();
        anyhow::bail!(
            "`holdgraph {}` exited with {status}\n{}{}",
            args.join(" "),
            stderr.trim(),
            rejected
                .iter()
                .map(|e| format!("\n  rejected: {e}"))
                .collect::<String>()
        );
    }
    let changes = report
        .as_ref()
        .and_then(|r| r.pointer("/totals/counts"))
        .and_then(serde_json::Value::as_object)
        .map(|counts| {
            counts
                .iter()
                .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                .map(|(what, n)| format!("{what} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(ChildRun {
        seconds,
        peak_rss_kib: peak,
        holdings: report
            .as_ref()
            .and_then(|r| r.pointer("/totals/holdings"))
            .and_then(serde_json::Value::as_u64),
        changes,
    })
}

/// `SELECT count(*) FROM group_memberships`, on a connection of its own (no migrations: the
/// child process owns the schema).
async fn count_memberships(url: &str) -> anyhow::Result<u64> {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(holdgraph::db::loopback_without_tls(url)).await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) FROM group_memberships".to_owned(),
        ))
        .await?
        .context("count(*) returned no row")?;
    let n = row
        .try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))?;
    db.close().await.ok();
    Ok(u64::try_from(n)?)
}

/// Where one round runs: the binary, its common flags, the database and the dataset.
struct Round<'a> {
    /// The `holdgraph` binary.
    exe: &'a Path,
    /// Flags every command gets (database, holdings folder, lock wait).
    common: Vec<String>,
    /// The fresh database's URL.
    url: &'a str,
    /// The synthetic dataset.
    data: &'a ScaledDataset,
    /// `backend N×`, for progress lines.
    label: String,
}

impl Round<'_> {
    /// Runs `holdgraph <common flags> <command>` off the async runtime (it polls and sleeps).
    async fn holdgraph(&self, command: &[&str], scratch: &Path) -> anyhow::Result<ChildRun> {
        let mut args = self.common.clone();
        args.extend(command.iter().map(|&a| a.to_owned()));
        let (exe, scratch) = (self.exe.to_owned(), scratch.to_owned());
        tokio::task::spawn_blocking(move || run_holdgraph(&exe, &args, &scratch)).await?
    }

    /// The four steps on the fresh database: each step's child run, and the ETF memberships in
    /// the database after the full load (counted by SQL).
    async fn run(&self) -> anyhow::Result<(Vec<ChildRun>, u64)> {
        let scratch = tempfile::tempdir()?;
        // Migrations run at the start of every command: a first, untimed command makes the
        // schema so the full load's time is the load alone. Its exit code does not matter (an
        // empty database may make it exit 1); a broken database fails the next step.
        self.holdgraph(&["query", "--stats"], scratch.path())
            .await
            .ok();
        let mut runs = Vec::new();
        let mut etf_memberships = 0;
        for (step, (label, command)) in SCALE_STEPS.iter().enumerate() {
            if step == CHANGE_STEP {
                change_one_file(&self.data.changed)?;
            }
            let run = self.holdgraph(command, scratch.path()).await?;
            eprintln!(
                "  {} {label}: {:.3} s, {} holdings ({}), peak RSS {} KiB",
                self.label,
                run.seconds,
                run.holdings.map_or("?".to_owned(), |h| h.to_string()),
                if run.changes.is_empty() {
                    "no change"
                } else {
                    &run.changes
                },
                run.peak_rss_kib.map_or("?".to_owned(), |k| k.to_string()),
            );
            runs.push(run);
            if step == FULL_STEP {
                etf_memberships = count_memberships(self.url).await?;
            }
        }
        Ok((runs, etf_memberships))
    }
}

/// Runs `holdgraph`'s loads on synthetic datasets of each scale, on each database, and prints
/// wall time, rows per second and the child's peak RSS.
async fn scale(args: &Args, scales: &[usize], keep: bool) -> anyhow::Result<()> {
    let source = holdings(args)?;
    let exe = holdgraph_binary()?;
    let lock_flags = lock_timeout_args(&exe)?;
    let backends = backends(args).await?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "backend",
        "scale",
        "ETF files",
        "memberships",
        "step",
        "seconds",
        "rows/s",
        "peak RSS MB",
    ]);
    // (backend, scale) → the full load's rows/s, for the summary lines.
    let mut full_rates: Vec<(&str, usize, f64)> = Vec::new();
    let mut failures = Vec::new();
    for &copies in scales {
        let clock = Instant::now();
        let mut data = generate_scaled(&source, copies)?;
        eprintln!(
            "{copies}×: {} ETF files, {} rows, written in {:.1} s to {}",
            data.etf_files,
            data.etf_rows,
            clock.elapsed().as_secs_f64(),
            data.path.display()
        );
        let original = std::fs::read(&data.changed)?;
        let rounds = if copies >= 10 { 1 } else { args.runs.max(1) };
        for &backend in &backends {
            let mut steps: Vec<Vec<ChildRun>> = SCALE_STEPS.iter().map(|_| Vec::new()).collect();
            let mut etf_memberships = 0;
            let mut failed = None;
            for round in 0..rounds {
                let db_dir = tempfile::tempdir()?;
                let (url, drop) = fresh_url(
                    backend,
                    args,
                    db_dir.path(),
                    &format!("scale_{copies}_{round}"),
                )
                .await?;
                let mut flags = vec![
                    "--database-url".to_owned(),
                    url.clone(),
                    "--holdings-dir".to_owned(),
                    data.path.display().to_string(),
                ];
                flags.extend(lock_flags.iter().cloned());
                let work = Round {
                    exe: &exe,
                    common: flags,
                    url: &url,
                    data: &data,
                    label: format!("{backend} {copies}× run {}/{rounds}", round + 1),
                };
                let result = work.run().await;
                std::fs::write(&data.changed, &original)?;
                if let Some(name) = drop {
                    holdgraph::db::drop_postgres_database(&args.postgres_url, &name).await?;
                }
                match result {
                    Ok((runs, count)) => {
                        etf_memberships = count;
                        for (step, run) in runs.into_iter().enumerate() {
                            steps[step].push(run);
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = failed {
                eprintln!("{backend} at {copies}×: {e:#}");
                failures.push(format!("{backend} at {copies}×: {e:#}"));
                continue;
            }
            for (step, mut runs) in steps.into_iter().enumerate() {
                runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
                let peak = runs.iter().filter_map(|r| r.peak_rss_kib).max();
                let median = &runs[runs.len() / 2];
                let rows = median.holdings.unwrap_or(if step == FULL_STEP {
                    etf_memberships
                } else {
                    0
                });
                let rate = rows as f64 / median.seconds;
                if step == FULL_STEP {
                    full_rates.push((backend, copies, rate));
                    if median.holdings.is_some_and(|h| h != etf_memberships) {
                        eprintln!(
                            "{backend} at {copies}×: the report counts {rows} holdings, the \
                             database holds {etf_memberships} memberships"
                        );
                    }
                }
                table.add_row([
                    backend.to_owned(),
                    format!("{copies}×"),
                    data.etf_files.to_string(),
                    rows.to_string(),
                    SCALE_STEPS[step].0.to_owned(),
                    format!("{:.3}", median.seconds),
                    if rows > 0 {
                        format!("{rate:.0}")
                    } else {
                        "-".to_owned()
                    },
                    peak.map_or("-".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
                ]);
            }
        }
        if keep && let Some(dir) = data.dir.take() {
            eprintln!("kept {}", dir.keep().display());
        }
    }
    println!(
        "{} run as a child process. seconds: wall time, the median of {} runs below 10×, one \
         run per step at 10× and above. memberships: the holdings the step loaded (its JSON \
         report's totals.holdings). peak RSS: the child's VmHWM (the largest over the runs). \
         The universes are the same 4 files at every scale.",
        exe.display(),
        args.runs.max(1)
    );
    println!("{table}");
    for &backend in &backends {
        let rates: Vec<_> = full_rates.iter().filter(|r| r.0 == backend).collect();
        if let (Some(low), Some(high)) = (
            rates.iter().min_by_key(|r| r.1),
            rates.iter().max_by_key(|r| r.1),
        ) && high.1 > low.1
        {
            println!(
                "{backend}: rows/s at {}× = {:.0} % of rows/s at {}× (ETF full load)",
                high.1,
                high.2 * 100.0 / low.2,
                low.1
            );
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} measurement(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
