//! The real `holdgraph` binary's console output: tables without empty columns and with
//! right-aligned, fixed-precision weights; a reader that closes its pipe early is no error;
//! with JSON logs, stderr carries nothing but JSON. Each test loads SPY from the shipped
//! dataset into a fresh database (SQLite, or PostgreSQL when `TEST_POSTGRES_URL` is set).

use std::process::{Command, Output, Stdio};

use tests::TestApp;

/// A fresh database holding SPY.
async fn with_spy() -> TestApp {
    let app = TestApp::new().await;
    let holdings = tests::dataset_holdings();
    let load = app
        .run(&[
            "--holdings-dir",
            &holdings,
            "load-etf-holdings",
            "--etf",
            "SPY",
        ])
        .await;
    assert_eq!(load.code, 0, "{}", load.stderr);
    app
}

/// `holdgraph ARGS` on the test's database, with the environment's settings removed.
fn holdgraph(app: &TestApp, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_holdgraph"));
    command
        .args(["--database-url", &app.url])
        .arg("--definitions-dir")
        .arg(app.definitions_dir())
        .args(args)
        .env_remove("LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("ENVIRONMENT")
        .stdin(Stdio::null());
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("run holdgraph")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cells of a console table's header and data lines, padding kept (`│ a ┆ b │`).
fn cells(line: &str) -> Vec<&str> {
    line.trim_start_matches('│')
        .trim_end_matches('│')
        .split('┆')
        .collect()
}

#[tokio::test]
async fn an_etf_table_has_no_empty_column_and_right_aligned_weights_with_fixed_decimals() {
    let app = with_spy().await;
    let out = run(holdgraph(&app, &["query", "--etf", "spy"]));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with('│')).collect();
    let (header, rows) = lines.split_first().expect("a table");
    let header = cells(header);
    let rows: Vec<Vec<&str>> = rows.iter().map(|l| cells(l)).collect();
    assert_eq!(rows.len(), 25, "{stdout}");
    assert!(!header.iter().any(|h| h.trim() == "industry"), "{stdout}");
    for (i, name) in header.iter().enumerate() {
        assert!(
            rows.iter().any(|r| !r[i].trim().is_empty()),
            "column {name:?} is empty in every row:\n{stdout}"
        );
    }
    let weight = header
        .iter()
        .position(|h| h.trim() == "weight %")
        .expect("a weight column");
    let places: Vec<usize> = rows
        .iter()
        .map(|r| {
            let cell = r[weight];
            // Right-aligned: the number touches the one space of padding on the right.
            assert!(
                cell.strip_suffix(' ')
                    .is_some_and(|c| c.ends_with(|ch: char| ch.is_ascii_digit())),
                "weight {cell:?} is not right-aligned:\n{stdout}"
            );
            let (whole, fraction) = cell.trim().split_once('.').expect("a decimal point");
            assert!(whole.parse::<u32>().is_ok(), "{cell:?}");
            fraction.len()
        })
        .collect();
    assert!(
        places.iter().all(|p| *p == places[0]) && [2, 4].contains(&places[0]),
        "weights with {places:?} decimals:\n{stdout}"
    );
}

#[tokio::test]
async fn a_reader_that_closes_its_pipe_early_is_no_error() {
    let app = with_spy().await;
    for args in [
        &["query", "--etf", "spy", "--limit", "0"][..],
        &["query", "--etf", "spy", "--json"],
    ] {
        // The reader is gone before the command writes a byte: every write meets a closed
        // pipe, as it does after `| head -3` has read its lines.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut command = holdgraph(&app, args);
        command.stdout(writer).stderr(Stdio::piped());
        let out = run(command);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}

#[tokio::test]
async fn with_json_logs_problems_and_progress_reach_stderr_as_json_events() {
    let app = with_spy().await;
    let json_lines = |out: &Output| -> Vec<serde_json::Value> {
        text(&out.stderr)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    };

    let mut unknown = holdgraph(&app, &["query", "--etf", "nope"]);
    unknown.env("LOG_FORMAT", "json");
    let out = run(unknown);
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out);
    assert!(
        events.iter().any(|e| e["level"] == "ERROR"
            && e["fields"]["message"] == "no ETF nope in environment DEFAULT"),
        "{events:?}"
    );

    let holdings = tests::dataset_holdings();
    let mut load = holdgraph(
        &app,
        &[
            "--holdings-dir",
            &holdings,
            "load-etf-holdings",
            "--etf",
            "XLE",
        ],
    );
    load.env("LOG_FORMAT", "json").env("RUST_LOG", "info");
    let out = run(load);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let events = json_lines(&out);
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["file"] == "xle_holdings.csv"),
        "{events:?}"
    );
    // The report stays on stdout, as text.
    assert!(
        text(&out.stdout).contains("Loaded ETF: XLE"),
        "{}",
        text(&out.stdout)
    );
}
