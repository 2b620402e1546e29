//! `holdgraph-bench`: benchmarks that print numbers (tests never assert timings).
//!
//! `cargo run --release --bin holdgraph-bench -- load` loads the shared dataset into fresh
//! SQLite and PostgreSQL databases: full, incremental with no change, incremental after one
//! ETF changed; it prints wall time and rows per second for each.

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.bench {
        Bench::Load => load(&args).await,
        Bench::Setup => setup(&args).await,
        Bench::Serve {
            concurrency,
            seconds,
            version_check_ms,
        } => serve(&args, concurrency, seconds, version_check_ms).await,
    }
}

/// One fresh database for one measurement round.
struct Fresh {
    db: DatabaseConnection,
    drop: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn fresh(backend: &str, args: &Args, round: usize) -> anyhow::Result<Fresh> {
    let dir = tempfile::tempdir()?;
    let (url, name) = fresh_url(backend, args, dir.path(), &format!("load_{round}")).await?;
    Ok(Fresh {
        db: holdgraph::db::connect(&url).await?,
        drop: name.map(|n| (args.postgres_url.clone(), n)),
        _dir: dir,
    })
}

fn request(group_type: GroupType, mode: Mode, dir: &Path) -> LoadRequest {
    LoadRequest {
        group_type,
        mode,
        dry_run: false,
        only: None,
        dir: dir.to_owned(),
        environment: "DEFAULT".to_owned(),
        share_classes: Some(PathBuf::from("definitions/share_classes.csv")),
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
                r#"{{ stock(symbol: "{}") {{ symbol name sector etfs {{ weight group {{ name }} }} }} }}"#,
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
        in_process.push((
            backend,
            clock.elapsed().as_secs_f64() * 1e6 / f64::from(iterations),
        ));

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
    for (backend, us) in in_process {
        println!(
            "{backend}: warm stock(symbol: \"AAPL\") {{ etfs {{ weight group {{ name }} }} }} in process: {us:.1} µs per query"
        );
    }
    Ok(())
}

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
