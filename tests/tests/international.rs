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

/// The US dataset and the two international funds in one database, and a server over it.
async fn served(app: &TestApp) -> axum::Router {
    let us = tests::dataset_holdings();
    let out = app
        .run(&["--holdings-dir", &us, "load-etf-holdings", "--json"])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    load_international(app).await;
    crate::graphql::server(app, &us, None).await.1
}

/// (location, weight) of the equity rows of the EFA export, read here with the csv crate.
fn efa_equity_rows() -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(dataset().join("international/EFA_holdings_ishares.csv"))
        .expect("efa");
    let body = text
        .split_once("Ticker,Name,")
        .map(|(_, rest)| format!("Ticker,Name,{rest}"))
        .expect("header");
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(body.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (class, weight, location) = (
        column("Asset Class"),
        column("Weight (%)"),
        column("Location"),
    );
    reader
        .records()
        .filter_map(Result::ok)
        .filter(|r| r.get(class) == Some("Equity"))
        .map(|r| {
            (
                r[location].to_owned(),
                r[weight].parse::<f64>().expect("weight"),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_ambiguous_ticker_is_never_answered_with_one_company() {
    let app = TestApp::new().await;
    let router = served(&app).await;
    let gql = |q: &'static str| crate::graphql::gql(&router, q, None);

    let san = gql(r#"{ stock(symbol: "SAN") { symbol } }"#).await;
    assert_eq!(crate::graphql::code(&san), "AMBIGUOUS_SYMBOL", "{san}");
    assert_eq!(san["data"]["stock"], serde_json::Value::Null);
    let candidates: BTreeSet<&str> = san["errors"][0]["extensions"]["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["symbol"].as_str())
        .collect();
    assert_eq!(candidates, BTreeSet::from(["SAN:ES", "SAN:FR"]));

    // Toyota (Tokyo) and Elm Co. (VWO, market not named): ambiguous too.
    let t7203 = gql(r#"{ stock(symbol: "7203") { symbol } }"#).await;
    assert_eq!(crate::graphql::code(&t7203), "AMBIGUOUS_SYMBOL", "{t7203}");
    let listings = gql(r#"{ listings(symbol: "7203") { symbol name country } }"#).await;
    let listed: Vec<(&str, &str)> = listings["data"]["listings"]
        .as_array()
        .expect("listings")
        .iter()
        .map(|l| {
            (
                l["symbol"].as_str().unwrap_or(""),
                l["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(listed.len(), 2, "{listings}");
    assert!(
        listed.contains(&("7203:JP", "TOYOTA MOTOR CORP")),
        "{listings}"
    );

    // A listing key answers its company; a US ticker its US listing, as before.
    let sanofi =
        gql(r#"{ stock(symbol: "san:fr") { symbol ticker name country countryName } }"#).await;
    assert_eq!(
        sanofi["data"]["stock"],
        serde_json::json!({"symbol": "SAN:FR", "ticker": "SAN", "name": "SANOFI SA",
                           "country": "FR", "countryName": "France"}),
        "{sanofi}"
    );
    let aapl = gql(r#"{ stock(symbol: "aapl") { symbol country listings { symbol } } }"#).await;
    assert_eq!(aapl["data"]["stock"]["symbol"], "AAPL", "{aapl}");
    assert_eq!(aapl["data"]["stock"]["country"], "US");
}

#[tokio::test]
async fn country_exposure_and_look_through_equal_sums_computed_from_the_files() {
    let app = TestApp::new().await;
    let router = served(&app).await;

    // EFA by country: the file's equity weights summed per location.
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (location, weight) in efa_equity_rows() {
        *expected.entry(location).or_default() += weight;
    }
    let exposure = crate::graphql::gql(
        &router,
        r#"{ exposure(group: "EFA", by: COUNTRY) { key displayName members weight } }"#,
        None,
    )
    .await;
    let served: BTreeMap<String, f64> = exposure["data"]["exposure"]
        .as_array()
        .unwrap_or_else(|| panic!("{exposure}"))
        .iter()
        .map(|e| {
            (
                e["displayName"].as_str().unwrap_or("").to_owned(),
                e["weight"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (country, weight) in &expected {
        assert!(
            (served[country] - weight).abs() < 1e-6,
            "{country}: {exposure}"
        );
    }

    // 10,000 in SPY and 5,000 in EFA, by country: SPY's weights are all US listings.
    let spy_weights = weights(&app, "SPY").await;
    let japan: f64 = expected["Japan"];
    let answer = crate::graphql::gql(
        &router,
        r#"{ lookThrough(holdings: [{group: "SPY", amount: 10000}, {group: "EFA", amount: 5000}],
                         by: COUNTRY, first: 100) {
               total unallocated totalCount
               entries { key displayName amount percent contributions { group { name } amount } } } }"#,
        None,
    )
    .await;
    let look = &answer["data"]["lookThrough"];
    assert_eq!(look["total"], 15000.0, "{answer}");
    let entry = |key: &str| -> &serde_json::Value {
        look["entries"]
            .as_array()
            .and_then(|e| e.iter().find(|x| x["key"] == key))
            .unwrap_or_else(|| panic!("{key} in {answer}"))
    };
    let us = 10000.0 * spy_weights.iter().sum::<f64>() / 100.0;
    let efa_us: f64 = efa_equity_rows()
        .iter()
        .filter(|(l, _)| l == "United States")
        .map(|(_, w)| 5000.0 * w / 100.0)
        .sum();
    assert!((entry("US")["amount"].as_f64().unwrap_or(0.0) - (us + efa_us)).abs() < 1e-4);
    let jp = entry("JP");
    assert!(
        (jp["amount"].as_f64().unwrap_or(0.0) - 5000.0 * japan / 100.0).abs() < 1e-4,
        "{jp}"
    );
    assert_eq!(jp["displayName"], "Japan");
    assert_eq!(jp["contributions"][0]["group"]["name"], "EFA");
    // Everything the entries miss is the unallocated remainder.
    let listed: f64 = look["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["amount"].as_f64())
        .sum();
    let unallocated = look["unallocated"].as_f64().unwrap_or(f64::NAN);
    assert!((listed + unallocated - 15000.0).abs() < 1e-3, "{answer}");

    // By stock, two US funds: AAPL's amount is each fund's weight times its amount.
    let by_stock = crate::graphql::gql(
        &router,
        r#"{ lookThrough(holdings: [{group: "SPY", amount: 10000}, {group: "QQQ", amount: 5000}],
                         by: STOCK, first: 5) {
               entries { key stock { name } amount contributions { group { name } amount } } } }"#,
        None,
    )
    .await;
    let spy_aapl = weight_of(&app, "SPY", "AAPL").await;
    let qqq_aapl = weight_of(&app, "QQQ", "AAPL").await;
    let aapl = by_stock["data"]["lookThrough"]["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["key"] == "AAPL"))
        .unwrap_or_else(|| panic!("{by_stock}"));
    let expected = 10000.0 * spy_aapl / 100.0 + 5000.0 * qqq_aapl / 100.0;
    assert!(
        (aapl["amount"].as_f64().unwrap_or(0.0) - expected).abs() < 1e-4,
        "{aapl}"
    );
    assert_eq!(aapl["contributions"].as_array().map(Vec::len), Some(2));
}

/// Every weight of a group's members.
async fn weights(app: &TestApp, group: &str) -> Vec<f64> {
    let sql = format!(
        "SELECT m.weight FROM group_memberships m \
         JOIN definition_groups g ON g.id = m.group_id WHERE g.name = '{group}'"
    );
    app.db
        .query_all_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("weights")
        .iter()
        .filter_map(|r| r.try_get::<Option<f64>>("", "weight").ok().flatten())
        .collect()
}

/// One member's weight.
async fn weight_of(app: &TestApp, group: &str, symbol: &str) -> f64 {
    let sql = format!(
        "SELECT m.weight FROM group_memberships m JOIN definition_groups g \
         ON g.id = m.group_id WHERE g.name = '{group}' AND m.symbol = '{symbol}'"
    );
    app.db
        .query_one_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .expect("query")
        .and_then(|r| r.try_get::<Option<f64>>("", "weight").ok().flatten())
        .unwrap_or_else(|| panic!("{symbol} in {group}"))
}

#[tokio::test]
async fn a_foreign_company_never_borrows_a_us_sector_through_a_shared_ticker() {
    let app = TestApp::new().await;
    let us = tests::dataset_holdings();
    let out = app.run(&["--holdings-dir", &us, "setup"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    load_international(&app).await;
    // Enrichment reads the US screener file (classifications/) from the US holdings folder.
    let out = app.run(&["--holdings-dir", &us, "enrich-sectors"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let router = crate::graphql::server(&app, &us, None).await.1;
    let answer = crate::graphql::gql(
        &router,
        r#"{ cls: stock(symbol: "CLS") { name sectorKey sectorSource }
             celestica: listings(symbol: "CLS") { symbol }
             sanofi: stock(symbol: "SAN:FR") { sectorKey sectorSource }
             aapl: stock(symbol: "AAPL") { sectorKey } }"#,
        None,
    )
    .await;
    let data = &answer["data"];
    // VWO's CLS is Clicks Group (South Africa); the screener's CLS is Celestica (US). VWO
    // names no sector and no market: the stock stays unknown.
    assert_eq!(data["cls"]["name"], "Clicks Group Ltd.", "{answer}");
    assert_eq!(data["cls"]["sectorKey"], "unknown", "{answer}");
    // EFA's iShares export gives Sanofi its GICS sector: kept.
    assert_eq!(data["sanofi"]["sectorKey"], "health_care", "{answer}");
    assert_eq!(data["sanofi"]["sectorSource"], "provider", "{answer}");
    assert_eq!(
        data["aapl"]["sectorKey"], "information_technology",
        "{answer}"
    );
}
