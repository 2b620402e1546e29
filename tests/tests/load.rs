//! The ETF and universe loaders on the real shared dataset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tests::{TestApp, dataset, dataset_holdings};

/// Distinct symbols per file, counted the simplest way: the first field of every line after the
/// header, trimmed and upper-cased, leaving out cash placeholders such as `CASH_USD`.
fn simple_counts(dir: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("dataset") {
        let path = entry.expect("entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("")
            .to_owned();
        let (group, has_header) = if let Some(t) = file.strip_suffix("_holdings.csv") {
            (t.to_ascii_uppercase(), true)
        } else if file == "sp500.csv" {
            ("sp500".to_owned(), false)
        } else if let Some(u) = file.strip_suffix(".csv") {
            (u.to_owned(), true)
        } else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read");
        let symbols: BTreeSet<String> = text
            .lines()
            .skip(usize::from(has_header))
            .map(|l| {
                l.split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_uppercase()
            })
            .filter(|s| !s.is_empty() && !s.starts_with("CASH_"))
            .collect();
        out.insert(group, symbols.len());
    }
    out
}

async fn stored_counts(app: &TestApp, environment: &str) -> BTreeMap<String, usize> {
    let groups = entity::definition_group::Entity::find()
        .filter(entity::definition_group::Column::Environment.eq(environment))
        .all(&app.db)
        .await
        .expect("groups");
    let mut out = BTreeMap::new();
    for g in groups {
        let n = app
            .count(&format!(
                "SELECT COUNT(*) FROM group_memberships WHERE group_id = {}",
                g.id
            ))
            .await;
        out.insert(g.name, usize::try_from(n).expect("count"));
    }
    out
}

async fn load_all(app: &TestApp, dir: &str, mode: &str) {
    let etfs = app
        .run(&["--holdings-dir", dir, "load-etf-holdings", "--mode", mode])
        .await;
    assert_eq!(etfs.code, 0, "{}{}", etfs.stdout, etfs.stderr);
    let universes = app
        .run(&["--holdings-dir", dir, "load-universes", "--mode", mode])
        .await;
    assert_eq!(
        universes.code, 0,
        "{}{}",
        universes.stdout, universes.stderr
    );
}

/// (symbol, weight) of one group.
async fn members(app: &TestApp, environment: &str, group: &str) -> BTreeMap<String, Option<f64>> {
    let g = entity::definition_group::Entity::find()
        .filter(entity::definition_group::Column::Environment.eq(environment))
        .filter(entity::definition_group::Column::Name.eq(group))
        .one(&app.db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("group {group} in {environment}"));
    entity::group_membership::Entity::find()
        .filter(entity::group_membership::Column::GroupId.eq(g.id))
        .all(&app.db)
        .await
        .expect("members")
        .into_iter()
        .map(|m| (m.symbol, m.weight))
        .collect()
}

#[tokio::test]
async fn full_load_of_the_shared_dataset_matches_independent_counts() {
    let app = TestApp::new().await;
    load_all(&app, &dataset_holdings(), "full").await;
    let expected = simple_counts(&dataset().join("holdings"));
    assert_eq!(expected.len(), 41, "37 ETFs and 4 universes");
    assert_eq!(stored_counts(&app, "DEFAULT").await, expected);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM definition_groups WHERE type = 'ETF'")
            .await,
        37
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM definition_groups WHERE type = 'UNIVERSE'")
            .await,
        4
    );
}

#[tokio::test]
async fn provider_raw_files_load_the_same_symbols_and_weights_as_their_canonical_twins() {
    let app = TestApp::new().await;
    let raw = dataset().join("provider-raw");
    let dir = app.dir.path().join("raw");
    std::fs::create_dir_all(&dir).expect("dir");
    for f in std::fs::read_dir(&raw).expect("raw") {
        let f = f.expect("entry");
        std::fs::copy(f.path(), dir.join(f.file_name())).expect("copy");
    }
    let out = app
        .run(&[
            "--holdings-dir",
            &dir.display().to_string(),
            "--environment",
            "RAW",
            "load-etf-holdings",
            "--mode",
            "full",
            "--json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json report");
    let canonical = app
        .run(&[
            "--holdings-dir",
            &dataset_holdings(),
            "load-etf-holdings",
            "--mode",
            "full",
        ])
        .await;
    assert_eq!(canonical.code, 0);

    for (group, file, shape) in [
        ("IVV", "IVV_holdings_ishares.csv", "ishares"),
        ("SPY", "holdings-daily-us-en-spy.csv", "spdr"),
        ("VTI", "VTI_holdings_vanguard.csv", "vanguard"),
    ] {
        assert_eq!(
            members(&app, "RAW", group).await,
            members(&app, "DEFAULT", group).await,
            "{group} from {file}"
        );
        let file_report = report["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["file_name"] == file)
            .expect("file in report");
        assert_eq!(file_report["shape"], shape);
        // Every row is a holding or a counted skip.
        let skipped: u64 = file_report["skipped_by_reason"]
            .as_object()
            .expect("reasons")
            .values()
            .map(|v| v.as_u64().expect("count"))
            .sum();
        assert_eq!(
            file_report["rows_read"].as_u64(),
            Some(file_report["holdings"].as_u64().expect("holdings") + skipped)
        );
    }
    // Cash and futures rows of the iShares file, counted from the file itself.
    let ivv = std::fs::read_to_string(raw.join("IVV_holdings_ishares.csv")).expect("ivv");
    let cash = ivv.lines().filter(|l| l.contains(",Cash,")).count();
    let futures = ivv.lines().filter(|l| l.contains(",Futures,")).count();
    let ivv_report = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["group_name"] == "IVV")
        .expect("IVV");
    assert_eq!(
        ivv_report["skipped_by_reason"]["cash"].as_u64(),
        Some(cash as u64)
    );
    assert_eq!(
        ivv_report["skipped_by_reason"]["derivative"].as_u64(),
        Some(futures as u64)
    );
    assert!(ivv_report["skipped_by_reason"]["footer"].as_u64() >= Some(1));
    let spy_report = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["group_name"] == "SPY")
        .expect("SPY");
    assert_eq!(spy_report["skipped_by_reason"]["cash"].as_u64(), Some(1));
}

#[tokio::test]
async fn weights_of_ten_and_more_round_trip_exactly() {
    let app = TestApp::new().await;
    let out = app
        .run(&[
            "--holdings-dir",
            &dataset_holdings(),
            "load-etf-holdings",
            "--etf",
            "XLK",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stored = members(&app, "DEFAULT", "XLK").await;
    let text = std::fs::read_to_string(dataset().join("holdings/xlk_holdings.csv")).expect("xlk");
    let mut big = 0;
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let weight_text = cells[cells.len() - 1].trim();
        let weight_text = if weight_text.parse::<f64>().is_ok() {
            weight_text
        } else {
            cells[cells.len() - 2].trim()
        };
        let w = stored[cells[0]].expect("weight");
        assert_eq!(w.to_string(), weight_text, "{}", cells[0]);
        if w >= 10.0 {
            big += 1;
        }
    }
    assert!(big >= 1, "XLK has a holding of 10 % or more");
    assert_eq!(stored["NVDA"], Some(14.59997));
}

/// Weights go to the database inside JSON text (see `loader::apply`) and come back to the
/// server's snapshot inside JSON text again (see `holdgraph::snapshot`): every double, written
/// with all its digits or with a few, must read back as exactly the same double both ways, on
/// both databases.
#[tokio::test]
async fn thousands_of_seventeen_digit_weights_round_trip_bit_for_bit() {
    let app = TestApp::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("symbol,name,weight\n");
    let mut expected = BTreeMap::new();
    // A fixed pseudo-random sequence (xorshift), so a failure repeats.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..3_000u32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Between 0 and about 0.067, so the file sums to about 100 %.
        let weight = (state >> 11) as f64 / (1u64 << 53) as f64 / 15.0;
        let text = format!("{weight:.17e}");
        let symbol = format!("W{}", base26(i));
        csv.push_str(&format!("{symbol},Weight {i} Inc,{text}\n"));
        expected.insert(symbol, text.parse::<f64>().expect("a double"));
    }
    // Weights as files write them (up to eight decimals, which the snapshot reads as whole
    // hundred-millionths), the ends of the range, and more decimals than eight.
    let few = [
        "0.31",
        "0.27",
        "14.59997",
        "24.697283",
        "0",
        "100",
        "99.99999999",
        "0.00000001",
        "0.000000001",
        "12.3456789012",
        "0.1",
        "0.3",
    ];
    for (i, text) in few.iter().enumerate() {
        let symbol = format!("V{}", base26(i as u32));
        csv.push_str(&format!("{symbol},Few {i} Inc,{text}\n"));
        expected.insert(symbol, text.parse::<f64>().expect("a double"));
    }
    std::fs::write(dir.path().join("zzw_holdings.csv"), csv).expect("write");
    let out = app
        .run(&[
            "--holdings-dir",
            &dir.path().display().to_string(),
            "load-etf-holdings",
        ])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let stored = members(&app, "DEFAULT", "ZZW").await;
    assert_eq!(stored.len(), expected.len());
    for (symbol, weight) in &expected {
        let got = stored[symbol].expect("a weight");
        assert_eq!(
            got.to_bits(),
            weight.to_bits(),
            "{symbol}: {got} != {weight}"
        );
    }

    let snapshot = holdgraph::snapshot::Snapshot::read(
        &app.db,
        "DEFAULT",
        holdgraph::cache::Caches::new(10, &holdgraph::cache::CacheCounters::default()),
        None,
    )
    .await
    .expect("a snapshot");
    let zzw = snapshot
        .find(entity::GroupType::Etf, "ZZW")
        .expect("ZZW in the snapshot");
    let members = &snapshot.groups[zzw as usize].members;
    assert_eq!(members.len(), expected.len());
    for member in members {
        let symbol = &snapshot.stocks[member.stock as usize].symbol;
        let got = member.weight.expect("a weight");
        let weight = expected[&**symbol];
        assert_eq!(
            got.to_bits(),
            weight.to_bits(),
            "{symbol} in the snapshot: {got} != {weight}"
        );
    }
}

/// `0` → `A`, `25` → `Z`, `26` → `BA`: letters only, so every one is a ticker.
fn base26(mut n: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[tokio::test]
async fn brkb_in_ivv_and_brk_dot_b_in_spy_are_one_stock() {
    let app = TestApp::new().await;
    load_all(&app, &dataset_holdings(), "full").await;
    let ivv = members(&app, "DEFAULT", "IVV").await;
    let spy = members(&app, "DEFAULT", "SPY").await;
    assert!(ivv.contains_key("BRK.B") && spy.contains_key("BRK.B"));
    assert!(!ivv.contains_key("BRKB"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM group_memberships WHERE symbol = 'BRKB'")
            .await,
        0
    );
    // The spelling the file used is kept.
    let brk = entity::group_membership::Entity::find()
        .filter(entity::group_membership::Column::Symbol.eq("BRK.B"))
        .all(&app.db)
        .await
        .expect("rows");
    let spellings: BTreeSet<String> = brk
        .iter()
        .filter_map(|m| m.metadata.as_ref()?["spelling"].as_str().map(str::to_owned))
        .collect();
    assert!(
        spellings.contains("BRKB") && spellings.contains("BRK.B"),
        "{spellings:?}"
    );
    // NASDAQ tickers that end in their class letter stay as they are.
    assert!(ivv.contains_key("META") && ivv.contains_key("CMCSA"));
}

#[tokio::test]
async fn full_reload_after_deleting_one_file_removes_that_group_and_nothing_else() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    load_all(&app, &dir_s, "full").await;
    let before = stored_counts(&app, "DEFAULT").await;
    std::fs::remove_file(dir.join("xle_holdings.csv")).expect("remove");
    let out = app
        .run(&["--holdings-dir", &dir_s, "load-etf-holdings", "--rebuild"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Removed ETF: XLE"), "{}", out.stdout);
    let mut expected = before.clone();
    let xle = expected.remove("XLE").expect("XLE was loaded");
    assert_eq!(stored_counts(&app, "DEFAULT").await, expected);
    let run = app.count("SELECT MAX(id) FROM load_runs").await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM membership_changes WHERE run_id = {run} \
             AND group_name = 'XLE' AND change = 'removed'"
        ))
        .await,
        i64::try_from(xle).expect("count")
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM membership_changes WHERE run_id = {run}"
        ))
        .await,
        i64::try_from(xle).expect("count")
    );
}

/// (group, symbol, change, old weight, new weight)
type Change = (String, String, String, Option<f64>, Option<f64>);

#[tokio::test]
async fn incremental_after_editing_one_file_records_exactly_its_changes() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    load_all(&app, &dir_s, "full").await;
    let before = members(&app, "DEFAULT", "SPY").await;
    let memberships_before = app.count("SELECT COUNT(*) FROM group_memberships").await;

    // Drop AAPL, reweight MSFT, add a new symbol.
    let path = dir.join("spy_holdings.csv");
    let text = std::fs::read_to_string(&path).expect("spy");
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
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");

    let out = app
        .run(&["--holdings-dir", &dir_s, "load-etf-holdings", "--json"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(report["totals"]["files_unchanged"], 36);
    assert_eq!(report["totals"]["files_loaded"], 1);

    let run = report["run_id"].as_i64().expect("run id");
    let changes = entity::membership_change::Entity::find()
        .filter(entity::membership_change::Column::RunId.eq(run))
        .all(&app.db)
        .await
        .expect("changes");
    let mut got: Vec<Change> = changes
        .into_iter()
        .map(|c| (c.group_name, c.symbol, c.change, c.old_weight, c.new_weight))
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        got,
        vec![
            (
                "SPY".into(),
                "AAPL".into(),
                "removed".into(),
                before["AAPL"],
                None
            ),
            (
                "SPY".into(),
                "MSFT".into(),
                "reweighted".into(),
                before["MSFT"],
                Some(6.5)
            ),
            (
                "SPY".into(),
                "ZZZT".into(),
                "added".into(),
                None,
                Some(0.01)
            ),
        ]
    );
    let after = members(&app, "DEFAULT", "SPY").await;
    assert_eq!(after.len(), before.len());
    assert_eq!(after["MSFT"], Some(6.5));
    // One membership out, one in, nowhere else a change.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM group_memberships").await,
        memberships_before
    );
}

#[tokio::test]
async fn incremental_with_nothing_changed_writes_no_membership_row() {
    let app = TestApp::new().await;
    load_all(&app, &dataset_holdings(), "full").await;
    let before = app.dump_graph().await;
    load_all(&app, &dataset_holdings(), "incremental").await;
    assert_eq!(app.dump_graph().await, before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM load_run_files WHERE run_id = (SELECT MAX(id) FROM load_runs) AND status = 'unchanged'")
            .await,
        4
    );
}

#[tokio::test]
async fn dry_run_leaves_every_table_as_it_was() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    let empty = app.dump().await;
    let out = app
        .run(&["--holdings-dir", &dir_s, "load-etf-holdings", "--dry-run"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("[DRY RUN] Would load ETF: SPY (503 holdings): 503 created"),
        "{}",
        out.stdout
    );
    assert_eq!(app.dump().await, empty, "a dry run on an empty database");

    load_all(&app, &dir_s, "full").await;
    std::fs::remove_file(dir.join("xlb_holdings.csv")).expect("remove");
    std::fs::write(
        dir.join("xlc_holdings.csv"),
        "symbol,name,weight\nMETA,META,50\nGOOGL,ALPHABET,50\n",
    )
    .expect("write");
    let loaded = app.dump().await;
    // The default (incremental) dry run says what an incremental load does: it keeps a group
    // whose file is gone, and holds back a file that would replace most of its group.
    let out = app
        .run(&[
            "--holdings-dir",
            &dir_s,
            "load-etf-holdings",
            "--mode",
            "dry-run",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("Kept ETF: XLB"), "{}", out.stdout);
    assert!(
        out.stdout.contains("[DRY RUN] HELD BACK ETF: XLC"),
        "{}",
        out.stdout
    );
    // A full dry run, forced, removes XLB and replaces XLC.
    let out = app
        .run(&[
            "--holdings-dir",
            &dir_s,
            "load-etf-holdings",
            "--rebuild",
            "--dry-run",
            "--force",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("[DRY RUN] Would remove ETF: XLB"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("[DRY RUN] Would load ETF: XLC (2 holdings)"),
        "{}",
        out.stdout
    );
    assert_eq!(app.dump().await, loaded, "a dry run on a loaded database");
}

/// Each kind of file that cannot be read as holdings, with the line the error must name.
const BAD_FILES: &[(&str, &[u8], Option<u64>)] = &[
    ("no header", b"just,some,words\n1,2,3\n", None),
    ("no symbol column", b"name,weight\nApple,7\n", Some(1)),
    (
        "binary",
        b"symbol,name,weight\nAAPL,\x00\x01\x02\xff,7\n",
        Some(2),
    ),
    (
        "unterminated quote",
        b"symbol,name,weight\nAAPL,Apple,7\nMSFT,\"Microsoft,6\nNVDA,Nvidia,5\n",
        Some(3),
    ),
    (
        "every row invalid",
        b"symbol,name,weight\nAAPL,Apple,heavy\nMSFT,Microsoft,\n",
        Some(1),
    ),
    ("empty", b"", None),
];

#[tokio::test]
async fn each_kind_of_bad_file_is_rejected_naming_file_and_line_and_changes_nothing() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    load_all(&app, &dir_s, "full").await;
    let path = dir.join("xlk_holdings.csv");
    for (kind, bytes, line) in BAD_FILES {
        let before = app.dump_graph().await;
        std::fs::write(&path, bytes).expect("write");
        for mode in ["full", "incremental"] {
            let out = app
                .run(&[
                    "--holdings-dir",
                    &dir_s,
                    "load-etf-holdings",
                    "--mode",
                    mode,
                ])
                .await;
            assert_eq!(out.code, 1, "{kind} ({mode}) must fail: {}", out.stdout);
            assert!(
                out.stderr.contains("xlk_holdings.csv"),
                "{kind}: {}",
                out.stderr
            );
            if let Some(line) = line {
                assert!(
                    out.stderr.contains(&format!("line {line}:")),
                    "{kind}: {}",
                    out.stderr
                );
            }
            assert!(
                out.stdout.contains("REJECTED ETF: XLK"),
                "{kind}: {}",
                out.stdout
            );
            assert_eq!(
                app.dump_graph().await,
                before,
                "{kind} ({mode}) changed data"
            );
        }
    }
    assert_eq!(
        members(&app, "DEFAULT", "XLK").await["NVDA"],
        Some(14.59997)
    );
}

#[tokio::test]
async fn a_missing_or_empty_holdings_folder_is_a_clear_error() {
    let app = TestApp::new().await;
    let missing = app.dir.path().join("nowhere");
    let out = app
        .run(&[
            "--holdings-dir",
            &missing.display().to_string(),
            "load-etf-holdings",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    let empty = app.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = app
        .run(&[
            "--holdings-dir",
            &empty.display().to_string(),
            "load-universes",
            "--mode",
            "full",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no universe files found"),
        "{}",
        out.stderr
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM definition_groups").await, 0);
    let out = app
        .run(&[
            "--holdings-dir",
            &dataset_holdings(),
            "load-etf-holdings",
            "--etf",
            "NOPE",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no file for ETF holdings NOPE"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_failure_injected_halfway_through_a_full_load_leaves_the_previous_data_intact() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let dir_s = dir.display().to_string();
    load_all(&app, &dir_s, "full").await;
    let before = app.dump_graph().await;

    // A database trigger refuses one symbol; it sits in a file loaded after half the others.
    let trigger = if app.is_postgres() {
        vec![
            "CREATE FUNCTION refuse_zzfail() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'injected failure'; END; $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_zzfail BEFORE INSERT ON group_memberships \
             FOR EACH ROW WHEN (NEW.symbol = 'ZZFAIL') EXECUTE FUNCTION refuse_zzfail()",
        ]
    } else {
        vec![
            "CREATE TRIGGER refuse_zzfail BEFORE INSERT ON group_memberships \
             WHEN NEW.symbol = 'ZZFAIL' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        ]
    };
    for sql in trigger {
        sea_orm::ConnectionTrait::execute_unprepared(&app.db, sql)
            .await
            .expect("trigger");
    }
    // Every group changes, and the failing row comes in the middle (QQQ sorts in the middle).
    for f in std::fs::read_dir(&dir).expect("dir") {
        let path = f.expect("entry").path();
        if path.to_string_lossy().ends_with("_holdings.csv") {
            let mut text = std::fs::read_to_string(&path).expect("read");
            text.push_str("ZZOK,ANOTHER TEST HOLDING,0.01\n");
            std::fs::write(&path, text).expect("write");
        }
    }
    let qqq = dir.join("qqq_holdings.csv");
    let mut text = std::fs::read_to_string(&qqq).expect("qqq");
    text.push_str("ZZFAIL,0.01,FAILING HOLDING\n");
    std::fs::write(&qqq, text).expect("write");
    std::fs::remove_file(dir.join("xle_holdings.csv")).expect("remove");

    let out = app
        .run(&[
            "--holdings-dir",
            &dir_s,
            "load-etf-holdings",
            "--mode",
            "full",
        ])
        .await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("injected failure"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("INSERT"),
        "no SQL in messages: {}",
        out.stderr
    );
    assert_eq!(app.dump_graph().await, before);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM load_runs WHERE state = 'failed'")
            .await,
        1
    );
}
