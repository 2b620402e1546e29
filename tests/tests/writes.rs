//! Writes that cannot lose data, in process: inputs that are not files, the guards against a
//! bad export replacing good data, dry runs that say what the real run does, and one data
//! version per data-changing run. The lock between processes is tested in
//! `api/tests/processes.rs`, with real processes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};
use tests::{Output, TestApp, dataset};

/// A holdings folder in the test's scratch space with copies of these dataset files only.
fn holdings_of(app: &TestApp, files: &[&str]) -> PathBuf {
    let to = app.dir.path().join("holdings");
    std::fs::create_dir_all(&to).expect("holdings folder");
    for file in files {
        std::fs::copy(dataset().join("holdings").join(file), to.join(file)).expect("copy");
    }
    to
}

/// Runs `holdgraph [GLOBAL...] --holdings-dir DIR load-etf-holdings --json ARGS...`.
pub(crate) async fn load_etfs(app: &TestApp, global: &[&str], dir: &Path, args: &[&str]) -> Output {
    let dir = dir.display().to_string();
    let mut all: Vec<&str> = global.to_vec();
    all.extend(["--holdings-dir", &dir, "load-etf-holdings", "--json"]);
    all.extend(args);
    app.run(&all).await
}

/// The JSON report a `--json` run printed.
pub(crate) fn report(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): exit {}\nstdout: {}\nstderr: {}",
            out.code, out.stdout, out.stderr
        )
    })
}

/// One file's entry in a report.
fn file<'a>(report: &'a Value, file_name: &str) -> &'a Value {
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["file_name"] == file_name)
        .unwrap_or_else(|| panic!("{file_name} is not in the report: {report}"))
}

/// A file's error text ("" when it has none).
fn error_of(report: &Value, file_name: &str) -> String {
    file(report, file_name)["error"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// (symbol, weight) of one group of the default environment; empty when it does not exist.
async fn members(app: &TestApp, group: &str) -> BTreeMap<String, Option<f64>> {
    let Some(g) = entity::definition_group::Entity::find()
        .filter(entity::definition_group::Column::Environment.eq("DEFAULT"))
        .filter(entity::definition_group::Column::Name.eq(group))
        .one(&app.db)
        .await
        .expect("query")
    else {
        return BTreeMap::new();
    };
    entity::group_membership::Entity::find()
        .filter(entity::group_membership::Column::GroupId.eq(g.id))
        .all(&app.db)
        .await
        .expect("members")
        .into_iter()
        .map(|m| (m.symbol, m.weight))
        .collect()
}

async fn symbols(app: &TestApp, group: &str) -> BTreeSet<String> {
    members(app, group).await.into_keys().collect()
}

/// What a report says a load or a rollback does, without what differs between a dry run and
/// a real one (run id, data version, timing).
pub(crate) fn what_it_does(report: &Value) -> Value {
    let files: Vec<Value> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            json!({
                "file_name": f["file_name"],
                "group_name": f["group_name"],
                "status": f["status"],
                "md5": f["md5"],
                "error": f["error"],
                "rows_read": f["rows_read"],
                "holdings": f["holdings"],
                "counts": f["counts"],
                "skipped_by_reason": f["skipped_by_reason"],
            })
        })
        .collect();
    json!({
        "mode": report["mode"],
        "group_type": report["group_type"],
        "scope": report["scope"],
        "files": files,
        "removed_groups": report["removed_groups"],
        "missing_files": report["missing_files"],
        "totals": report["totals"],
    })
}

/// Removes whatever is at `path` (file, symlink, socket or folder).
fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).expect("remove folder"),
        Ok(_) => std::fs::remove_file(path).expect("remove"),
        Err(_) => {}
    }
}

/// Writes a valid one-holding file into the pipe at `path` once someone opens it to read.
#[cfg(unix)]
fn feed_fifo(path: &Path) -> std::thread::JoinHandle<()> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        use std::io::Write as _;
        if let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = pipe.write_all(b"symbol,name,weight\nAAPL,APPLE INC,100\n");
        }
    })
}

#[cfg(unix)]
#[tokio::test]
async fn a_folder_symlink_socket_or_fifo_under_a_holdings_name_is_rejected_and_its_group_kept() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = app.dump_graph().await;
    assert_eq!(symbols(&app, "SPY").await.len(), 503);

    let spy = dir.join("spy_holdings.csv");
    for kind in ["folder", "symlink loop", "broken symlink", "socket", "fifo"] {
        remove_any(&spy);
        // Kept open until the loads are over, so the socket is a live one.
        let mut _listener = None;
        match kind {
            "folder" => {
                std::fs::create_dir(&spy).expect("folder");
                std::fs::write(spy.join("inner.csv"), "symbol,name,weight\nAAPL,A,1\n")
                    .expect("inner file");
            }
            "symlink loop" => {
                std::os::unix::fs::symlink("spy_holdings.csv", &spy).expect("symlink")
            }
            "broken symlink" => std::os::unix::fs::symlink("nowhere.csv", &spy).expect("symlink"),
            "socket" => {
                _listener = Some(std::os::unix::net::UnixListener::bind(&spy).expect("socket"));
            }
            _ => {
                let made = std::process::Command::new("mkfifo")
                    .arg(&spy)
                    .status()
                    .expect("mkfifo");
                assert!(made.success(), "mkfifo");
            }
        }
        for mode in [&[][..], &["--rebuild"][..], &["--rebuild", "--dry-run"][..]] {
            // A pipe is only read once someone writes to it: a feeder waits to write a valid
            // file, so a load that wrongly reads the pipe loads that file instead of hanging.
            let feeder = (kind == "fifo").then(|| feed_fifo(&spy));
            let out = load_etfs(&app, &[], &dir, mode).await;
            if let Some(feeder) = feeder {
                // Open as a reader (read-write never blocks on a pipe), so a feeder still
                // waiting for one ends.
                let reader = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&spy)
                    .expect("open the fifo");
                feeder.join().expect("feeder");
                drop(reader);
            }
            assert_eq!(out.code, 1, "{kind} {mode:?}: {}{}", out.stdout, out.stderr);
            let report = report(&out);
            assert_eq!(
                file(&report, "spy_holdings.csv")["status"],
                "rejected",
                "{kind} {mode:?}"
            );
            assert!(
                error_of(&report, "spy_holdings.csv").contains("spy_holdings.csv"),
                "{kind} {mode:?}: the error names the file: {report}"
            );
            assert_eq!(
                report["removed_groups"],
                json!([]),
                "{kind} {mode:?}: SPY is never a group whose file is gone"
            );
            assert!(
                !report["missing_files"]
                    .as_array()
                    .is_some_and(|m| m.contains(&json!("SPY"))),
                "{kind} {mode:?}: {report}"
            );
            assert!(
                out.stderr.contains("spy_holdings.csv"),
                "{kind} {mode:?}: {}",
                out.stderr
            );
            assert_eq!(app.dump_graph().await, before, "{kind} {mode:?}");
        }
    }

    // A real file over --max-file-bytes: rejected before it is read.
    remove_any(&spy);
    std::fs::copy(dataset().join("holdings/spy_holdings.csv"), &spy).expect("copy");
    let size = std::fs::metadata(&spy).expect("size").len();
    for mode in [&[][..], &["--rebuild"][..], &["--dry-run"][..]] {
        let out = load_etfs(&app, &["--max-file-bytes", "1000"], &dir, mode).await;
        assert_eq!(out.code, 1, "{mode:?}: {}{}", out.stdout, out.stderr);
        let report = report(&out);
        let spy_file = file(&report, "spy_holdings.csv");
        assert_eq!(spy_file["status"], "rejected", "{mode:?}");
        let error = error_of(&report, "spy_holdings.csv");
        assert!(
            error.contains("spy_holdings.csv")
                && error.contains("1000")
                && error.contains(&size.to_string()),
            "{mode:?}: the error names the file, its size ({size}) and the limit: {error}"
        );
        // XLE (700 bytes) is under the limit.
        assert_ne!(file(&report, "xle_holdings.csv")["status"], "rejected");
        assert_eq!(app.dump_graph().await, before, "{mode:?}");
    }
    assert_eq!(symbols(&app, "SPY").await.len(), 503);

    // The same file under the default limit is the one already loaded.
    let out = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        file(&report(&out), "spy_holdings.csv")["status"],
        "unchanged"
    );
}

#[tokio::test]
async fn a_file_whose_rows_are_mostly_invalid_is_rejected_unless_forced() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = app.dump_graph().await;

    // One valid row of six: 83 % skipped.
    std::fs::write(
        dir.join("spy_holdings.csv"),
        "symbol,name,weight\n\
         AAPL,APPLE INC,7.02\n\
         NOTATICKERABCDEFGHIJKL,JUNK,1\n\
         NOTATICKERMNOPQRSTUVWX,JUNK,1\n\
         MSFT,MICROSOFT CORP,abc\n\
         NVDA,NVIDIA CORP,abc\n\
         NOTATICKERYZABCDEFGHIJ,JUNK,1\n",
    )
    .expect("write");
    for mode in [
        &[][..],
        &["--rebuild"][..],
        &["--dry-run"][..],
        &["--rebuild", "--dry-run"][..],
    ] {
        let out = load_etfs(&app, &[], &dir, mode).await;
        assert_eq!(out.code, 1, "{mode:?}: {}{}", out.stdout, out.stderr);
        let report = report(&out);
        assert_eq!(
            file(&report, "spy_holdings.csv")["status"],
            "rejected",
            "{mode:?}: {report}"
        );
        let error = error_of(&report, "spy_holdings.csv");
        assert!(
            error.contains("83") && error.contains("--force"),
            "{mode:?}: the error gives the share skipped and the way past it: {error}"
        );
        assert_eq!(app.dump_graph().await, before, "{mode:?}");
    }
    assert_eq!(symbols(&app, "SPY").await.len(), 503);

    let out = load_etfs(&app, &[], &dir, &["--force"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(file(&report(&out), "spy_holdings.csv")["status"], "loaded");
    assert_eq!(
        members(&app, "SPY").await,
        BTreeMap::from([("AAPL".to_owned(), Some(7.02))])
    );
}

#[tokio::test]
async fn the_skipped_share_is_counted_over_data_rows_only_and_its_limit_is_a_flag() {
    let app = TestApp::new().await;
    let dir = app.dir.path().join("holdings");
    std::fs::create_dir_all(&dir).expect("folder");
    let valid = |n: usize| -> String {
        (0..n)
            .map(|i| format!("ZZ{},TEST HOLDING {i},1\n", char::from(b'A' + i as u8)))
            .collect()
    };
    let invalid = |n: usize| -> String {
        (0..n)
            .map(|i| format!("ZZZZZZZZZZZZZZZZZZZZZ{i},JUNK {i},1\n"))
            .collect()
    };
    // Title lines before the header, a blank line and a disclaimer after the data are not
    // data rows: counted as bad they would reject the first file, counted as data rows they
    // would let the second one through.
    let framed = |rows: String| {
        format!(
            "Fund Holdings as of Nov 28 2025\nSome Provider Test Fund\n\nsymbol,name,weight\n\
             {rows}\n\
             The holdings are subject to change.\n\
             Past performance does not guarantee future results.\n\
             Please read the prospectus before you invest.\n\
             Shares are bought and sold at market price.\n"
        )
    };
    // 2 of 10 data rows skipped: 20 %, not more than the limit.
    let at_limit = framed(valid(8) + &invalid(2));
    // 3 of 10 skipped: 30 %.
    let over_limit = framed(valid(7) + &invalid(3));
    // Cash rows are skipped but not bad: 2 holdings and 6 cash rows.
    let mostly_cash = format!(
        "symbol,name,weight\n{}{}",
        valid(2),
        (0..6)
            .map(|i| format!("CASH_{i},CASH POSITION {i},1\n"))
            .collect::<String>()
    );
    std::fs::write(dir.join("zza_holdings.csv"), at_limit).expect("write");
    std::fs::write(dir.join("zzb_holdings.csv"), over_limit).expect("write");
    std::fs::write(dir.join("zzc_holdings.csv"), mostly_cash).expect("write");

    let out = load_etfs(&app, &[], &dir, &["--dry-run"]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let dry = report(&out);
    let out = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let real = report(&out);
    for report in [&dry, &real] {
        assert_eq!(file(report, "zza_holdings.csv")["status"], "loaded");
        assert_eq!(file(report, "zza_holdings.csv")["holdings"], 8);
        assert_eq!(file(report, "zzb_holdings.csv")["status"], "rejected");
        assert!(
            error_of(report, "zzb_holdings.csv").contains("30"),
            "{report}"
        );
        assert_eq!(file(report, "zzc_holdings.csv")["status"], "loaded");
        assert_eq!(file(report, "zzc_holdings.csv")["holdings"], 2);
    }
    assert_eq!(symbols(&app, "ZZA").await.len(), 8);
    assert!(symbols(&app, "ZZB").await.is_empty());
    assert_eq!(symbols(&app, "ZZC").await.len(), 2);

    // A higher limit lets 30 % through.
    let out = load_etfs(&app, &["--max-skipped-percent", "30"], &dir, &[]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(file(&report(&out), "zzb_holdings.csv")["status"], "loaded");
    assert_eq!(symbols(&app, "ZZB").await.len(), 7);
}

#[tokio::test]
async fn a_load_that_replaces_most_of_a_group_is_held_back_unless_forced() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["xlk_holdings.csv", "xle_holdings.csv"]);
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = app.dump_graph().await;
    let xlk = members(&app, "XLK").await;
    let xle = members(&app, "XLE").await;
    assert!(
        xlk.keys().all(|s| !xle.contains_key(s)),
        "no symbol in both"
    );

    std::fs::copy(
        dataset().join("holdings/xle_holdings.csv"),
        dir.join("xlk_holdings.csv"),
    )
    .expect("copy");
    for mode in [
        &[][..],
        &["--rebuild"][..],
        &["--dry-run"][..],
        &["--rebuild", "--dry-run"][..],
        &["--mode", "dry-run"][..],
    ] {
        let out = load_etfs(&app, &[], &dir, mode).await;
        assert_eq!(out.code, 1, "{mode:?}: {}{}", out.stdout, out.stderr);
        let report = report(&out);
        assert_eq!(
            file(&report, "xlk_holdings.csv")["status"],
            "held_back",
            "{mode:?}: {report}"
        );
        let error = error_of(&report, "xlk_holdings.csv");
        assert!(
            error.contains("--force")
                && (error.contains(&xlk.len().to_string()) || error.contains("100")),
            "{mode:?}: the error gives the numbers ({} of {} members) and the way past it: {error}",
            xlk.len(),
            xlk.len()
        );
        assert_ne!(file(&report, "xle_holdings.csv")["status"], "held_back");
        assert_eq!(app.dump_graph().await, before, "{mode:?}");
    }
    assert_eq!(members(&app, "XLK").await, xlk);

    let out = load_etfs(&app, &[], &dir, &["--force"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report = report(&out);
    assert_eq!(file(&report, "xlk_holdings.csv")["status"], "loaded");
    assert_eq!(
        file(&report, "xlk_holdings.csv")["counts"]["deleted"],
        xlk.len()
    );
    assert_eq!(members(&app, "XLK").await, xle);
}

#[tokio::test]
async fn a_load_that_moves_a_groups_total_weight_is_held_back_unless_forced() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["xlk_holdings.csv", "xle_holdings.csv"]);
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let before = app.dump_graph().await;
    let xlk = members(&app, "XLK").await;

    // Every weight halved: the same members, about 50 points less in total.
    let path = dir.join("xlk_holdings.csv");
    let text = std::fs::read_to_string(&path).expect("xlk");
    let mut halved = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            halved.push_str(line);
        } else {
            let (rest, weight) = line.rsplit_once(',').expect("weight column");
            let weight: f64 = weight.trim().parse().expect("weight");
            halved.push_str(&format!("{rest},{}", weight / 2.0));
        }
        halved.push('\n');
    }
    std::fs::write(&path, halved).expect("write");

    for mode in [&[][..], &["--rebuild"][..], &["--dry-run"][..]] {
        let out = load_etfs(&app, &[], &dir, mode).await;
        assert_eq!(out.code, 1, "{mode:?}: {}{}", out.stdout, out.stderr);
        let report = report(&out);
        assert_eq!(
            file(&report, "xlk_holdings.csv")["status"],
            "held_back",
            "{mode:?}: {report}"
        );
        assert!(
            error_of(&report, "xlk_holdings.csv").contains("--force"),
            "{mode:?}: {report}"
        );
        assert_eq!(app.dump_graph().await, before, "{mode:?}");
    }
    // A wider limit lets it through, as does --force.
    let out = load_etfs(&app, &["--max-weight-shift", "60"], &dir, &["--dry-run"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(file(&report(&out), "xlk_holdings.csv")["status"], "loaded");
    assert_eq!(app.dump_graph().await, before, "a dry run");

    let out = load_etfs(&app, &[], &dir, &["--force"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(file(&report(&out), "xlk_holdings.csv")["status"], "loaded");
    let after = members(&app, "XLK").await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        xlk.keys().collect::<Vec<_>>()
    );
    assert_eq!(after["NVDA"], Some(14.59997 / 2.0));
}

#[tokio::test]
async fn a_dry_run_reports_exactly_what_the_same_real_run_then_does() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Incremental: SPY loses AAPL, MSFT is reweighted, ZZZT comes in; IJH's file is gone.
    let spy = dir.join("spy_holdings.csv");
    let text = std::fs::read_to_string(&spy).expect("spy");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("AAPL,"))
        .map(|l| {
            if l.starts_with("MSFT,") {
                "MSFT,MICROSOFT CORP,6.5".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    lines.push("ZZZT,TEST HOLDING INC,0.01".to_owned());
    std::fs::write(&spy, lines.join("\n") + "\n").expect("write");
    std::fs::remove_file(dir.join("ijh_holdings.csv")).expect("remove");

    let ijh = symbols(&app, "IJH").await.len();
    assert!(ijh > 0);
    let stored = app.dump().await;
    let dry = load_etfs(&app, &[], &dir, &["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry = report(&dry);
    let same = load_etfs(&app, &[], &dir, &["--mode", "dry-run"]).await;
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(what_it_does(&report(&same)), what_it_does(&dry));
    let dir_s = dir.display().to_string();
    let text = app
        .run(&["--holdings-dir", &dir_s, "load-etf-holdings", "--dry-run"])
        .await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        !text.stdout.contains("remove ETF: IJH"),
        "an incremental dry run keeps groups whose file is gone: {}",
        text.stdout
    );
    assert_eq!(app.dump().await, stored, "dry runs write nothing");

    let real = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(real.code, 0, "{}", real.stderr);
    let real = report(&real);
    assert_eq!(dry["mode"], "incremental");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["mode"], "incremental");
    assert_eq!(real["dry_run"], false);
    assert_eq!(dry["run_id"], Value::Null);
    assert_eq!(what_it_does(&dry), what_it_does(&real));
    assert_eq!(dry["removed_groups"], json!([]));
    assert_eq!(dry["missing_files"], json!(["IJH"]));
    assert_eq!(
        file(&dry, "spy_holdings.csv")["counts"],
        json!({"created": 1, "updated": 1, "reweighted": 1, "deleted": 1, "unchanged": 501})
    );
    assert_eq!(symbols(&app, "IJH").await.len(), ijh, "IJH is kept");

    // Full: IJH and XLB go, XLC loses one holding.
    std::fs::remove_file(dir.join("xlb_holdings.csv")).expect("remove");
    let xlc = dir.join("xlc_holdings.csv");
    let text = std::fs::read_to_string(&xlc).expect("xlc");
    let kept: Vec<&str> = text.lines().take(text.lines().count() - 1).collect();
    std::fs::write(&xlc, kept.join("\n") + "\n").expect("write");
    let xlb = symbols(&app, "XLB").await.len();

    let stored = app.dump().await;
    let dry = load_etfs(&app, &[], &dir, &["--rebuild", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let dry = report(&dry);
    let same = load_etfs(&app, &[], &dir, &["--mode", "full", "--dry-run"]).await;
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(what_it_does(&report(&same)), what_it_does(&dry));
    assert_eq!(app.dump().await, stored, "dry runs write nothing");

    let real = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(real.code, 0, "{}", real.stderr);
    let real = report(&real);
    assert_eq!(dry["mode"], "full");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["mode"], "full");
    assert_eq!(real["dry_run"], false);
    assert_eq!(what_it_does(&dry), what_it_does(&real));
    assert_eq!(
        dry["removed_groups"],
        json!([
            {"group_name": "IJH", "members": ijh},
            {"group_name": "XLB", "members": xlb},
        ])
    );
    assert_eq!(file(&dry, "xlc_holdings.csv")["counts"]["deleted"], 1);
    assert!(symbols(&app, "IJH").await.is_empty());
    assert!(symbols(&app, "XLB").await.is_empty());
}

/// One `load_runs` row: id, state, data version, holder.
type Run = (i32, String, Option<i64>, Option<String>);

async fn runs(app: &TestApp) -> Vec<Run> {
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            app.db.get_database_backend(),
            "SELECT id, state, data_version, holder FROM load_runs ORDER BY id",
        ))
        .await
        .expect("load_runs");
    rows.iter()
        .map(|row| {
            (
                row.try_get::<i32>("", "id").expect("id"),
                row.try_get::<String>("", "state").expect("state"),
                row.try_get::<Option<i64>>("", "data_version")
                    .expect("data_version"),
                row.try_get::<Option<String>>("", "holder").expect("holder"),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_run_that_changes_data_gets_its_own_higher_data_version() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    // (what, its report, whether it changed data, the state it ends in)
    let mut done: Vec<(&str, Value, bool, &str)> = Vec::new();

    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push(("full ETF load", report(&out), true, "succeeded"));
    let out = app
        .run(&[
            "--holdings-dir",
            &dir_s,
            "load-universes",
            "--rebuild",
            "--json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push(("full universe load", report(&out), true, "succeeded"));
    let out = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push((
        "incremental, nothing changed",
        report(&out),
        false,
        "succeeded",
    ));
    let out = load_etfs(&app, &[], &dir, &["--rebuild"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push(("full, nothing changed", report(&out), false, "succeeded"));

    let xlk = dir.join("xlk_holdings.csv");
    let original = std::fs::read_to_string(&xlk).expect("xlk");
    std::fs::write(&xlk, format!("{original}ZZZT,TEST HOLDING INC,0.01\n")).expect("write");
    let out = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push(("one file changed", report(&out), true, "succeeded"));

    let runs_before_dry = runs(&app).await.len();
    let out = load_etfs(&app, &[], &dir, &["--rebuild", "--dry-run"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(report(&out)["data_version"], Value::Null);
    assert_eq!(
        runs(&app).await.len(),
        runs_before_dry,
        "a dry run records no run"
    );

    std::fs::write(&xlk, "just,some,words\n1,2,3\n").expect("write");
    let out = load_etfs(&app, &[], &dir, &["--etf", "XLK"]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    done.push(("its only file rejected", report(&out), false, "rejected"));

    let xlb = dir.join("xlb_holdings.csv");
    let text = std::fs::read_to_string(&xlb).expect("xlb");
    let kept: Vec<&str> = text.lines().take(text.lines().count() - 1).collect();
    std::fs::write(&xlb, kept.join("\n") + "\n").expect("write");
    let out = load_etfs(&app, &[], &dir, &[]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    done.push((
        "one file rejected, one loaded",
        report(&out),
        true,
        "partial",
    ));

    std::fs::write(&xlk, &original).expect("write");
    let out = load_etfs(&app, &[], &dir, &["--etf", "XLK"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    done.push(("a file restored", report(&out), true, "succeeded"));

    let rows = runs(&app).await;
    assert_eq!(rows.len(), done.len(), "one run per load: {rows:?}");
    let by_id: BTreeMap<i32, &Run> = rows.iter().map(|r| (r.0, r)).collect();
    for (what, report, changed, state) in &done {
        let id = i32::try_from(report["run_id"].as_i64().expect("run id")).expect("id");
        let (_, stored_state, version, holder) = by_id[&id];
        assert_eq!(stored_state, state, "{what}");
        assert_eq!(
            version.is_some(),
            *changed,
            "{what}: data version {version:?}"
        );
        assert_eq!(report["data_version"].as_i64(), *version, "{what}");
        assert!(
            holder
                .as_deref()
                .is_some_and(|h| h.contains(&std::process::id().to_string())),
            "{what}: the holder names this process: {holder:?}"
        );
    }
    let versions: Vec<i64> = rows.iter().filter_map(|r| r.2).collect();
    assert_eq!(versions.len(), done.iter().filter(|d| d.2).count());
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions increase with the run id: {rows:?}"
    );
    assert_eq!(
        app.count("SELECT version FROM data_versions WHERE environment = 'DEFAULT'")
            .await,
        *versions.last().expect("a version")
    );
}
