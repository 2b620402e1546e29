//! Non-US funds (`international/` of the dataset): every company kept, tickers as markets write
//! them, listings told apart by market or by name.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, Statement};
use tests::{TestApp, dataset};

/// Copies EFA and VWO into a holdings folder under their group names and loads them.
async fn load_international(app: &TestApp) -> serde_json::Value {
    let dir = app.dir.path().join("international");
    std::fs::create_dir_all(&dir).expect("dir");
    let from = dataset().join("international");
    for (file, as_name) in [
        ("EFA_holdings_ishares.csv", "efa_holdings.csv"),
        ("vwo_holdings.csv", "vwo_holdings.csv"),
    ] {
        std::fs::copy(from.join(file), dir.join(as_name)).expect("copy");
    }
    let dir = dir.display().to_string();
    let out = app
        .run(&["--holdings-dir", &dir, "load-etf-holdings", "--json"])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).expect("json report")
}

/// (symbol, name, country) of one group's members.
async fn members(app: &TestApp, group: &str) -> Vec<(String, String, Option<String>)> {
    let sql = format!(
        "SELECT m.symbol, m.metadata FROM group_memberships m \
         JOIN definition_groups g ON g.id = m.group_id WHERE g.name = '{group}'"
    );
    let rows = app
        .db
        .query_all_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("members");
    rows.iter()
        .map(|r| {
            let symbol: String = r.try_get("", "symbol").expect("symbol");
            let metadata: String = r
                .try_get::<serde_json::Value>("", "metadata")
                .map(|v| v.to_string())
                .or_else(|_| r.try_get::<String>("", "metadata"))
                .expect("metadata");
            let metadata: serde_json::Value = serde_json::from_str(&metadata).expect("json");
            (
                symbol,
                metadata["name"].as_str().unwrap_or("").to_owned(),
                metadata["country"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// A name as the test compares it: letters and digits, upper case.
fn comparable(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn file_report<'a>(report: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    report["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["file_name"] == file))
        .unwrap_or_else(|| panic!("{file} in {report}"))
}

#[tokio::test]
async fn vwo_keeps_every_company_under_a_shared_ticker() {
    let app = TestApp::new().await;
    let report = load_international(&app).await;

    // The file's companies, computed here: a (ticker, name) pair, names compared by their
    // letters and digits (the file spells two companies two ways each: `Inc` / `Inc.`).
    let text =
        std::fs::read_to_string(dataset().join("international/vwo_holdings.csv")).expect("vwo");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut companies: BTreeSet<(String, String)> = BTreeSet::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record.expect("row");
        rows += 1;
        companies.insert((record[0].to_owned(), comparable(&record[1])));
    }
    let vwo = file_report(&report, "vwo_holdings.csv");
    assert_eq!(vwo["rows_read"], rows);
    assert_eq!(vwo["holdings"], companies.len());
    assert_eq!(
        vwo["skipped_by_reason"],
        serde_json::json!({"duplicate": rows - companies.len()})
    );

    let stored = members(&app, "VWO").await;
    assert_eq!(stored.len(), companies.len());
    let stored_companies: BTreeSet<(String, String)> = stored
        .iter()
        .map(|(symbol, name, _)| (loader::listing::ticker(symbol).to_owned(), comparable(name)))
        .collect();
    // Every company of the file, under its own key (the tickers compare after the loader's
    // one normalisation, `DELTA-F` → `DELTA.F`).
    let normalised: BTreeSet<(String, String)> = companies
        .iter()
        .map(|(ticker, name)| {
            let symbol = loader::symbol::Symbol::parse(ticker).expect("ticker");
            (symbol.as_str().to_owned(), name.clone())
        })
        .collect();
    assert_eq!(stored_companies, normalised);

    let under = |ticker: &str| -> BTreeMap<String, String> {
        stored
            .iter()
            .filter(|(s, _, _)| loader::listing::ticker(s) == ticker)
            .map(|(s, n, _)| (s.clone(), n.clone()))
            .collect()
    };
    let t2330 = under("2330");
    assert_eq!(t2330.len(), 2, "{t2330:?}");
    assert!(
        t2330
            .values()
            .any(|n| n.starts_with("Advanced Petrochemical"))
    );
    assert!(
        t2330
            .values()
            .any(|n| n.starts_with("Taiwan Semiconductor"))
    );
    assert!(
        t2330.keys().all(|k| k != "2330"),
        "no company silently takes the bare ticker: {t2330:?}"
    );
    assert_eq!(under("2382").len(), 3);
    for ticker in ["M&M", "WALMEX*", "PE&OLES*", "BAJAJ-AUTO", "DELTA.F"] {
        assert_eq!(under(ticker).len(), 1, "{ticker}");
    }
}

#[tokio::test]
async fn efa_keeps_both_san_companies_with_their_countries_and_7203_is_two_stocks() {
    let app = TestApp::new().await;
    let report = load_international(&app).await;
    let efa = file_report(&report, "efa_holdings.csv");
    assert_eq!(
        efa["skipped_by_reason"],
        serde_json::json!({"title": 3, "blank": 1, "cash": 21, "derivative": 3, "footer": 1})
    );

    let stored = members(&app, "EFA").await;
    let by_symbol: BTreeMap<&str, (&str, Option<&str>)> = stored
        .iter()
        .map(|(s, n, c)| (s.as_str(), (n.as_str(), c.as_deref())))
        .collect();
    assert_eq!(
        by_symbol.get("SAN:ES"),
        Some(&("BANCO SANTANDER SA", Some("ES")))
    );
    assert_eq!(by_symbol.get("SAN:FR"), Some(&("SANOFI SA", Some("FR"))));
    assert_eq!(
        by_symbol.get("RR.:GB"),
        Some(&("ROLLS-ROYCE HOLDINGS PLC", Some("GB")))
    );
    // Every equity row of the file is a member, each with a country.
    assert_eq!(efa["holdings"], stored.len());
    assert!(stored.iter().all(|(_, _, c)| c.is_some()));

    // 7203 is Toyota in Tokyo (EFA) and Elm Co. (VWO, no market given): two stocks.
    let listings = app
        .count(
            "SELECT COUNT(DISTINCT symbol) FROM group_memberships \
             WHERE symbol = '7203' OR symbol LIKE '7203:%' OR symbol LIKE '7203~%'",
        )
        .await;
    assert_eq!(listings, 2);
    assert!(by_symbol.contains_key("7203:JP"));
}

#[tokio::test]
async fn us_funds_keep_their_plain_tickers_and_their_collisions() {
    let app = TestApp::new().await;
    let dir = tests::dataset_holdings();
    let out = app
        .run(&["--holdings-dir", &dir, "load-etf-holdings", "--json"])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    // A US fund names its market (funds.json): one company per ticker, as before.
    assert_eq!(report["totals"]["skipped_by_reason"]["collision"], 2);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM group_memberships \
             WHERE symbol LIKE '%:%' OR symbol LIKE '%~%'"
        )
        .await,
        0
    );
    let spy = members(&app, "SPY").await;
    assert!(spy.iter().all(|(_, _, c)| c.as_deref() == Some("US")));
}
