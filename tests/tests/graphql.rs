//! The GraphQL API and the HTTP routes, driven through the router without a socket.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use holdgraph::state::{AppState, ServerSettings};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tests::{TestApp, dataset_holdings, project_dir};
use tower::ServiceExt;

pub(crate) const TOKEN: &str = "test-admin-token";

/// The state and router over a test database, as `serve` builds them.
pub(crate) async fn server(
    app: &TestApp,
    holdings: &str,
    token: Option<&str>,
) -> (Arc<AppState>, Router) {
    server_on(app, app.db.clone(), holdings, token).await
}

/// A server on a connection of its own whose every SQL statement the driver counts (sea-orm's
/// metric callback runs once per statement executed), so a test counts what really reaches
/// the database, not what the server says it sends.
async fn counted_server(app: &TestApp, holdings: &str) -> (Arc<AppState>, Router, Arc<AtomicU64>) {
    let mut db = holdgraph::db::connect(&app.url).await.expect("connect");
    let statements = Arc::new(AtomicU64::new(0));
    let counter = statements.clone();
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    // No version poll during the test: what is counted is what the queries send.
    let settings = ServerSettings {
        version_check: std::time::Duration::from_secs(3600),
        ..ServerSettings::default()
    };
    let (state, router) = server_with(app, db, holdings, settings).await;
    (state, router, statements)
}

pub(crate) async fn server_on(
    app: &TestApp,
    db: sea_orm::DatabaseConnection,
    holdings: &str,
    token: Option<&str>,
) -> (Arc<AppState>, Router) {
    let settings = ServerSettings {
        admin_token: token.map(str::to_owned),
        ..ServerSettings::default()
    };
    server_with(app, db, holdings, settings).await
}

pub(crate) async fn server_with(
    app: &TestApp,
    db: sea_orm::DatabaseConnection,
    holdings: &str,
    settings: ServerSettings,
) -> (Arc<AppState>, Router) {
    use clap::Parser;
    let cli = holdgraph::Cli::try_parse_from([
        "holdgraph",
        "--database-url",
        &app.url,
        "--holdings-dir",
        holdings,
        "--definitions-dir",
        &app.definitions_dir().display().to_string(),
        "setup",
    ])
    .expect("args");
    let state = AppState::new(db, cli.config, settings)
        .await
        .expect("state");
    (state.clone(), holdgraph::http::router(state))
}

pub(crate) async fn setup(app: &TestApp, holdings: &str) {
    let out = app.run(&["--holdings-dir", holdings, "setup"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

pub(crate) async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

pub(crate) async fn gql(router: &Router, query: &str, token: Option<&str>) -> Value {
    let mut request = Request::post("/graphql").header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let body = Body::from(json!({ "query": query }).to_string());
    let (status, value) = call(router, request.body(body).expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    value
}

/// Asks `query` until `done` holds of the answer, for at most two seconds (a load committed
/// elsewhere reaches the server through its watcher, within 100 ms), and returns the answer
/// and how long it took to appear.
pub(crate) async fn eventually(
    router: &Router,
    query: &str,
    done: impl Fn(&Value) -> bool,
) -> (Value, std::time::Duration) {
    let clock = std::time::Instant::now();
    loop {
        let r = gql(router, query, None).await;
        if done(&r) || clock.elapsed() > std::time::Duration::from_secs(2) {
            return (r, clock.elapsed());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

pub(crate) fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
}

#[tokio::test]
async fn traversal_results_equal_independent_sql() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;

    // AAPL's ETFs and weights, heaviest first.
    let r = gql(
        &router,
        r#"{ stock(symbol: "aapl") { symbol sectorKey etfs { weight group { name } } } }"#,
        None,
    )
    .await;
    let got: Vec<(String, f64)> = r["data"]["stock"]["etfs"]
        .as_array()
        .expect("etfs")
        .iter()
        .map(|e| {
            (
                e["group"]["name"].as_str().expect("name").to_owned(),
                e["weight"].as_f64().expect("w"),
            )
        })
        .collect();
    let expected: Vec<(String, f64)> = app.rows("SELECT g.name, m.weight FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
         WHERE m.symbol = 'AAPL' AND g.type = 'ETF' ORDER BY m.weight DESC, g.name",
    )
    .await
    .iter()
    .map(|row| (row.try_get_by_index(0).expect("name"), row.try_get_by_index(1).expect("weight")))
    .collect();
    assert_eq!(got, expected);
    assert_eq!(r["data"]["stock"]["sectorKey"], "information_technology");

    // SPY's top 25 by weight.
    let r = gql(
        &router,
        r#"{ etf(name: "SPY") { members(first: 25) { edges { node { symbol weight } } } } }"#,
        None,
    )
    .await;
    let got: Vec<(String, f64)> = r["data"]["etf"]["members"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["node"]["symbol"].as_str().expect("s").to_owned(),
                e["node"]["weight"].as_f64().expect("w"),
            )
        })
        .collect();
    let expected: Vec<(String, f64)> = app.rows("SELECT m.symbol, m.weight FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
         WHERE g.name = 'SPY' AND g.type = 'ETF' ORDER BY m.weight DESC, m.symbol LIMIT 25",
    )
    .await
    .iter()
    .map(|row| (row.try_get_by_index(0).expect("s"), row.try_get_by_index(1).expect("w")))
    .collect();
    assert_eq!(got, expected);

    // Every VTI member, paged through to the end: no duplicate, no gap.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let query = format!(
            r#"{{ etf(name: "VTI") {{ members(first: 1000, after: {after}, orderBy: SYMBOL) {{
                totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ symbol }} }} }} }} }}"#
        );
        let r = gql(&router, &query, None).await;
        let members = &r["data"]["etf"]["members"];
        assert_eq!(members["totalCount"], 3482, "{r}");
        seen.extend(
            members["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["symbol"].as_str().expect("symbol").to_owned()),
        );
        if members["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = members["pageInfo"]["endCursor"].clone();
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 3482);
    assert_eq!(distinct.len(), seen.len(), "no duplicate");
    let expected: BTreeSet<String> = app.rows("SELECT m.symbol FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
         WHERE g.name = 'VTI' AND g.type = 'ETF'",
    )
    .await
    .iter()
    .map(|row| row.try_get_by_index(0).expect("symbol"))
    .collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "no gap"
    );

    // Back from a membership to its stock and on to that stock's groups.
    let r = gql(
        &router,
        r#"{ etf(name: "XLE") { members(first: 1) { edges { node { stock { symbol sectorKey universes { name } } } } } } }"#,
        None,
    )
    .await;
    let stock = &r["data"]["etf"]["members"]["edges"][0]["node"]["stock"];
    assert_eq!(stock["sectorKey"], "energy", "{r}");
    assert!(stock["universes"].as_array().is_some_and(|u| !u.is_empty()));
}

#[tokio::test]
async fn queries_over_the_graph_send_no_statement_to_the_database() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (state, router, statements) = counted_server(&app, &holdings).await;
    let query = r#"{ stocks(first: 100) { edges { node { symbol sectorKey etfs { weight group { name } } } } } }"#;

    let (sent_before, counted_before) = (statements.load(Ordering::Relaxed), state.queries());
    let r = gql(&router, query, None).await;
    let edges = r["data"]["stocks"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100, "{r}");
    let with_etfs = edges
        .iter()
        .filter(|e| !e["node"]["etfs"].as_array().expect("etfs").is_empty())
        .count();
    assert!(with_etfs > 50, "{with_etfs} of 100 stocks have ETFs");

    // From an ETF to 100 of its holdings and on to each one's ETFs.
    let r = gql(
        &router,
        r#"{ etf(name: "IWM") { members(first: 100) { edges { node { symbol
            stock { sectorKey etfs { weight group { name } } } } } } } }"#,
        None,
    )
    .await;
    let edges = r["data"]["etf"]["members"]["edges"]
        .as_array()
        .expect("edges");
    assert_eq!(edges.len(), 100, "{r}");
    assert!(
        edges.iter().all(|e| e["node"]["stock"]["etfs"]
            .as_array()
            .is_some_and(|l| !l.is_empty())),
        "every holding leads back to at least its own ETF"
    );
    // The graph is served from the snapshot: not one statement reached the database.
    assert_eq!(statements.load(Ordering::Relaxed) - sent_before, 0);
    assert_eq!(state.queries(), counted_before);

    // The first query again: its whole response is cached, and equals the computed one.
    let again = gql(&router, query, None).await;
    let first = gql(
        &router,
        &format!("{query} # not cached under this text"),
        None,
    )
    .await;
    assert_eq!(again, first);
    state.db.clone().close().await.ok();
}

#[tokio::test]
async fn mutations_need_the_admin_token() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let mutation = "mutation { loadUniverses(mode: INCREMENTAL) { ok text } }";

    let (_, closed) = server(&app, &holdings, None).await;
    let r = gql(&closed, mutation, Some(TOKEN)).await;
    assert_eq!(code(&r), "FORBIDDEN");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("--admin-token")
    );

    let (_, router) = server(&app, &holdings, Some(TOKEN)).await;
    assert_eq!(code(&gql(&router, mutation, None).await), "UNAUTHENTICATED");
    assert_eq!(
        code(&gql(&router, mutation, Some("wrong")).await),
        "UNAUTHENTICATED"
    );
    let r = gql(&router, mutation, Some(TOKEN)).await;
    assert_eq!(r["data"]["loadUniverses"]["ok"], true, "{r}");
    assert!(
        r["data"]["loadUniverses"]["text"]
            .as_str()
            .expect("text")
            .contains("Unchanged universe: sp500"),
        "{r}"
    );
    // A command that cannot start is the caller's mistake, named in the message.
    let r = gql(
        &router,
        r#"mutation { loadEtfHoldings(etf: "NOPE") { ok } }"#,
        Some(TOKEN),
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("NOPE")),
        "{r}"
    );
}

#[tokio::test]
async fn set_stock_sector_stores_the_key_and_is_served_at_once() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, Some(TOKEN)).await;
    let before = gql(&router, r#"{ stock(symbol: "AAPL") { sectorKey } }"#, None).await;
    assert_eq!(
        before["data"]["stock"]["sectorKey"],
        "information_technology"
    );
    let r = gql(
        &router,
        r#"mutation { setStockSector(symbol: "aapl", sector: "Health Care", industry: "Devices") {
            symbol sector sectorName resolvedFrom held enrichment { run { ok runId } } } }"#,
        Some(TOKEN),
    )
    .await;
    let set = &r["data"]["setStockSector"];
    assert_eq!(set["symbol"], "AAPL", "{r}");
    assert_eq!(set["sector"], "health_care", "the key is stored: {r}");
    assert_eq!(set["sectorName"], "Health Care", "{r}");
    assert_eq!(set["resolvedFrom"], "Health Care", "{r}");
    assert_eq!(set["held"], true, "{r}");
    assert_eq!(set["enrichment"]["run"]["ok"], true, "{r}");
    let after = gql(
        &router,
        r#"{ stock(symbol: "AAPL") { sectorKey sector { displayName } sectorSource industry } }"#,
        None,
    )
    .await;
    assert_eq!(
        after["data"]["stock"]["sectorKey"], "health_care",
        "{after}"
    );
    assert_eq!(
        after["data"]["stock"]["sector"]["displayName"],
        "Health Care"
    );
    assert_eq!(after["data"]["stock"]["sectorSource"], "manual");
    assert_eq!(after["data"]["stock"]["industry"], "Devices");
    let bad = gql(
        &router,
        r#"mutation { setStockSector(symbol: "AAPL") { sector } }"#,
        Some(TOKEN),
    )
    .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_cli_load_in_another_process_is_served_without_a_restart() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, None).await;
    let query =
        r#"{ etf(name: "XLE") { memberCount members(first: 1) { edges { node { symbol } } } } }"#;
    let before = gql(&router, query, None).await;
    assert_eq!(before["data"]["etf"]["memberCount"], 22);
    let first = before["data"]["etf"]["members"]["edges"][0]["node"]["symbol"]
        .as_str()
        .expect("symbol")
        .to_owned();
    let path = dir.join("xle_holdings.csv");
    let text = std::fs::read_to_string(&path).expect("xle");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{first},")))
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").expect("write");
    // `app.run` opens its own connection, as another process would.
    app.load_etf(&h, "XLE").await;
    let (after, took) = eventually(&router, query, |r| r["data"]["etf"]["memberCount"] == 21).await;
    assert_eq!(
        after["data"]["etf"]["memberCount"], 21,
        "{after} after {took:?}"
    );
    assert_ne!(
        after["data"]["etf"]["members"]["edges"][0]["node"]["symbol"],
        first.as_str()
    );
}

#[tokio::test]
async fn over_deep_over_complex_and_oversized_queries_are_refused_with_a_code() {
    let app = TestApp::new().await;
    let holdings = project_dir().join("holdings").display().to_string();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let deep = r#"{ stock(symbol: "AAPL") { etfs { stock { etfs { stock { etfs { stock { etfs {
        stock { etfs { stock { etfs { stock { symbol } } } } } } } } } } } } } }"#;
    assert_eq!(code(&gql(&router, deep, None).await), "QUERY_TOO_DEEP");
    let complex = r#"{ stocks(first: 1000) { edges { node { groups { group { members(first: 1000) {
        edges { node { symbol } } } } } } } } }"#;
    assert_eq!(
        code(&gql(&router, complex, None).await),
        "QUERY_TOO_COMPLEX"
    );
    let big_page = r#"{ etf(name: "DIA") { members(first: 6000) { totalCount } } }"#;
    assert_eq!(code(&gql(&router, big_page, None).await), "BAD_USER_INPUT");
    let bad_cursor = r#"{ stocks(after: "nope") { edges { node { symbol } } } }"#;
    assert_eq!(
        code(&gql(&router, bad_cursor, None).await),
        "BAD_USER_INPUT"
    );
    let unknown_group = r#"{ symbols(groups: ["NOPE"]) }"#;
    assert_eq!(code(&gql(&router, unknown_group, None).await), "NOT_FOUND");
    let r = gql(&router, r#"{ stock(symbol: "ZZZZZ") { symbol } }"#, None).await;
    assert_eq!(r["data"]["stock"], Value::Null);
    // A body over the cap never reaches GraphQL.
    let huge =
        json!({ "query": "x".repeat(ServerSettings::default().body_limit_bytes + 1) }).to_string();
    let request = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("content-length", huge.len())
        .body(Body::from(huge))
        .expect("request");
    let (status, _) = call(&router, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn admin_endpoints_report_refresh_warm_and_test_the_caches() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, Some(TOKEN)).await;
    let get = |path: &str, token: bool| {
        let mut r = Request::get(path);
        if token {
            r = r.header("authorization", format!("Bearer {TOKEN}"));
        }
        r.body(Body::empty()).expect("request")
    };
    let (status, health) = call(&router, get("/health", false)).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, ready) = call(&router, get("/ready", false)).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (status, _) = call(&router, get("/admin/cache/stats", false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, test) = call(&router, get("/admin/cache/test", true)).await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!(test["spy_holdings"], 503);
    assert_eq!(test["aapl_sector"], "information_technology");

    let post = |path: &str, body: Value| {
        Request::post(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let (status, refreshed) = call(
        &router,
        post(
            "/admin/cache/refresh",
            json!({"cache_type": "etf", "key": "SPY", "warm": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed["invalidated"].as_u64().is_some(), "{refreshed}");
    assert_eq!(refreshed["warmed"], true);
    let (status, bad) = call(
        &router,
        post("/admin/cache/refresh", json!({"cache_type": "bogus"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    let (status, warmed) = call(&router, post("/admin/cache/warm", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{warmed}");
    assert_eq!(warmed["groups"], 73);
    assert!(
        warmed["stocks"].as_u64().expect("stocks") >= 3810,
        "{warmed}"
    );
    // A text asked again and again: cached from its third request, a hit on the fourth.
    for _ in 0..4 {
        gql(&router, "{ stats { etfs } } # admin endpoints", None).await;
    }
    let (_, stats) = call(&router, get("/admin/cache/stats", true)).await;
    let caches = stats["caches"].as_array().expect("caches");
    let responses = caches
        .iter()
        .find(|c| c["name"] == "response")
        .expect("response cache");
    assert!(responses["hits"].as_u64().expect("hits") >= 1, "{stats}");
    assert!(responses["size"].as_u64().expect("size") >= 1, "{stats}");
    let r = gql(
        &router,
        "{ cacheStats { caches { name hits misses hitRate size loads } } }",
        None,
    )
    .await;
    let names: Vec<&str> = r["data"]["cacheStats"]["caches"]
        .as_array()
        .expect("caches")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["response", "analytics", "checks"]);
}

#[tokio::test]
async fn analytics_agree_with_the_tables() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let r = gql(
        &router,
        r#"{ overlap(a: "SPY", b: "QQQ") { common overlapWeight } holders(symbol: "NVDA", first: 3) { weight group { name } }
            exposure(group: "XLK", by: SECTOR) { key members weight } symbols(groups: ["dow30", "XLE"])
            stats { etfs sectors themes universes stocks } loadRuns(first: 2) { nodes { kind state } }
            changes(group: "SPY", first: 100) { nodes { symbol change } } }"#,
        None,
    )
    .await;
    let d = &r["data"];
    let common = app
        .count(
            "SELECT COUNT(*) FROM group_memberships a JOIN group_memberships b ON a.symbol = b.symbol \
             WHERE a.group_id = (SELECT id FROM definition_groups WHERE name = 'SPY' AND type = 'ETF') \
             AND b.group_id = (SELECT id FROM definition_groups WHERE name = 'QQQ' AND type = 'ETF')",
        )
        .await;
    assert_eq!(d["overlap"]["common"].as_i64(), Some(common), "{r}");
    assert_eq!(d["holders"][0]["group"]["name"], "VGT", "{r}");
    assert_eq!(d["exposure"][0]["key"], "information_technology");
    let union = app
        .count(
            "SELECT COUNT(DISTINCT m.symbol) FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
             WHERE (g.name = 'dow30' AND g.type = 'UNIVERSE') OR (g.name = 'XLE' AND g.type = 'ETF')",
        )
        .await;
    assert_eq!(d["symbols"].as_array().map(|s| s.len() as i64), Some(union));
    assert_eq!(d["stats"]["etfs"], 37);
    assert_eq!(d["stats"]["stocks"], 3810);
    assert_eq!(d["loadRuns"]["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        d["changes"]["nodes"].as_array().map(|c| c.len() as i64),
        Some(
            100.min(
                app.count("SELECT COUNT(*) FROM membership_changes WHERE group_name = 'SPY'")
                    .await
            )
        )
    );
}

#[test]
fn schema_graphql_is_the_served_schema() {
    let path = project_dir().join("schema.graphql");
    let served = holdgraph::graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &served).expect("write schema.graphql");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == served,
        "schema.graphql differs from the served schema; run UPDATE_SCHEMA=1 cargo test -p tests schema_graphql"
    );
}

#[tokio::test]
async fn a_load_while_another_runs_is_refused_with_conflict_and_readers_are_still_served() {
    let app = TestApp::new().await;
    let holdings = project_dir().join("holdings").display().to_string();
    setup(&app, &holdings).await;
    let (state, router) = server(&app, &holdings, Some(TOKEN)).await;
    let mutation = "mutation { loadEtfHoldings(mode: INCREMENTAL) { ok text } }";
    let read = r#"{ etf(name: "DIA") { memberCount } }"#;

    // A load in progress holds the write lock.
    let running = state.load_lock.lock().await;
    let refused = gql(&router, mutation, Some(TOKEN)).await;
    assert_eq!(code(&refused), "CONFLICT", "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("another load is running")),
        "{refused}"
    );
    let r = gql(&router, read, None).await;
    assert_eq!(
        r["data"]["etf"]["memberCount"], 30,
        "readers are served: {r}"
    );

    drop(running);
    let r = gql(&router, mutation, Some(TOKEN)).await;
    assert_eq!(r["data"]["loadEtfHoldings"]["ok"], true, "{r}");
}

/// `text` percent-encoded for a URL query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn get_serves_queries_and_graphiql_but_refuses_mutations() {
    let app = TestApp::new().await;
    let holdings = project_dir().join("holdings").display().to_string();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, Some(TOKEN)).await;
    let get = |uri: String| {
        Request::get(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request")
    };

    let query = r#"{ etf(name: "dia") { name memberCount } }"#;
    let (status, r) = call(
        &router,
        get(format!("/graphql?query={}", url_encode(query))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["data"]["etf"]["name"], "DIA", "{r}");
    assert_eq!(r["data"]["etf"]["memberCount"], 30);

    let mutation = "mutation { warmCache { groups } }";
    let (status, r) = call(
        &router,
        get(format!("/graphql?query={}", url_encode(mutation))),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{r}");
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // A named mutation picked out of a document that also holds a query.
    let document = "query Q { stats { etfs } } mutation M { warmCache { groups } }";
    let uri = format!("/graphql?query={}&operationName=M", url_encode(document));
    let (status, _) = call(&router, get(uri)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let uri = format!("/graphql?query={}&operationName=Q", url_encode(document));
    let (status, r) = call(&router, get(uri)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert!(
        r["data"]["stats"]["etfs"].as_u64().is_some_and(|n| n > 0),
        "{r}"
    );

    let response = router
        .clone()
        .oneshot(get("/graphiql".to_owned()))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&page).contains("graphiql"));
}

#[tokio::test]
async fn a_request_holding_a_snapshot_keeps_its_version_while_a_load_commits_and_it_is_freed_after()
{
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (state, router) = server(&app, &h, None).await;
    let count = r#"{ etf(name: "XLE") { memberCount } }"#;
    assert_eq!(
        gql(&router, count, None).await["data"]["etf"]["memberCount"],
        22
    );
    // A request that began before the load answers from this snapshot.
    let old = state.snapshot();

    let path = dir.join("xle_holdings.csv");
    let text = std::fs::read_to_string(&path).expect("xle");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let kept: Vec<&str> = std::iter::once(header).chain(lines.skip(1)).collect();
    std::fs::write(&path, kept.join("\n") + "\n").expect("write");
    app.load_etf(&h, "XLE").await;
    let (r, _) = eventually(&router, count, |r| r["data"]["etf"]["memberCount"] == 21).await;
    assert_eq!(r["data"]["etf"]["memberCount"], 21, "{r}");
    let new = state.snapshot();
    assert!(new.version > old.version);

    // The old snapshot still answers as its version did: a request sees one version.
    let xle = |s: &holdgraph::snapshot::Snapshot| {
        s.find(entity::GroupType::Etf, "XLE")
            .map(|g| s.group(g).members.len())
    };
    assert_eq!(xle(&old), Some(22));
    assert_eq!(xle(&new), Some(21));

    // Replaced, the old snapshot is waited for in the background, which frees it once the
    // last request lets go: that request (on an HTTP thread) does not pay for the freeing.
    assert_eq!(
        std::sync::Arc::strong_count(&old),
        2,
        "this request and the background"
    );
    let freed = std::sync::Arc::downgrade(&old);
    drop(old);
    assert!(
        freed.upgrade().is_some(),
        "the background still holds it, for a moment"
    );
    let clock = std::time::Instant::now();
    while freed.upgrade().is_some() && clock.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(freed.upgrade().is_none(), "freed once let go");
}

#[tokio::test]
async fn a_load_rebuilds_only_the_groups_it_changed_and_the_snapshot_equals_a_full_read() {
    use holdgraph::cache::{CacheCounters, Caches};
    use holdgraph::snapshot::Snapshot;
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    // No version poll: the test builds each snapshot itself (a PostgreSQL notification may
    // build it first, from the same previous snapshot).
    let settings = ServerSettings {
        version_check: std::time::Duration::from_secs(3600),
        ..ServerSettings::default()
    };
    let (state, _router) = server_with(&app, app.db.clone(), &h, settings).await;
    let all = state.snapshot().groups.len();
    assert_eq!(
        state.snapshot().groups_read,
        all,
        "the first snapshot reads everything"
    );

    let path = dir.join("xle_holdings.csv");
    let original = std::fs::read_to_string(&path).expect("xle");
    // Loads XLE's file with its rows changed by `edit` (the header kept); the load's run id.
    let load = async |edit: &dyn Fn(Vec<Vec<String>>) -> Vec<Vec<String>>| {
        let mut lines = original.lines();
        let header = lines.next().expect("header");
        let rows: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        let body: Vec<String> = edit(rows).into_iter().map(|r| r.join(",")).collect();
        std::fs::write(&path, format!("{header}\n{}\n", body.join("\n"))).expect("write");
        let report = app.load_etf(&h, "XLE").await;
        report["run_id"].as_i64().expect("a run")
    };
    // The snapshot served after the change, against one read whole at the same version.
    let served = async |reads: usize, why: &str| {
        state.sync_version(false).await.expect("sync");
        let built = state.snapshot();
        let full = Snapshot::read(
            &state.db,
            state.environment(),
            Caches::new(10, &CacheCounters::default()),
            None,
        )
        .await
        .expect("full read");
        assert_eq!(built.version, full.version);
        assert_eq!(built.groups_read, reads, "{why}");
        assert_eq!(format!("{built:?}"), format!("{full:?}"), "{why}");
        built
    };
    let before = state.snapshot();

    // A member gone (it stays in other groups), one reweighted, one renamed.
    load(&|mut rows| {
        rows.remove(0);
        rows[0][2] = "9.5".into();
        rows[1][1] = "A NEW NAME INC".into();
        rows
    })
    .await;
    let after = served(1, "one group changed").await;
    assert!(after.version > before.version);
    let xle = |s: &Snapshot| s.find(entity::GroupType::Etf, "XLE").expect("XLE");
    assert_eq!(
        after.group(xle(&after)).members.len() + 1,
        before.group(xle(&before)).members.len()
    );
    let spy = |s: &Snapshot| {
        s.groups[s.find(entity::GroupType::Etf, "SPY").expect("SPY") as usize].clone()
    };
    assert!(
        Arc::ptr_eq(&spy(&after), &spy(&before)),
        "SPY is shared, not read again"
    );

    // A reweight, then its rollback: both from the previous snapshot.
    let run = load(&|mut rows| {
        rows[3][2] = "0.25".into();
        rows
    })
    .await;
    served(1, "a reweight").await;
    let out = app.run(&["rollback", "--run", &run.to_string()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    served(1, "a rollback").await;

    // A group's own row edited by hand (no load run records it), then a load of another
    // group: the edited group is read again for its row alone, not taken from the old
    // snapshot.
    use sea_orm::ConnectionTrait as _;
    app.db
        .execute_unprepared(
            "UPDATE definition_groups SET description = 'Edited by hand' WHERE name = 'SPY'",
        )
        .await
        .expect("edit SPY");
    load(&|mut rows| {
        rows[3][2] = "0.5".into();
        rows
    })
    .await;
    let edited = served(2, "SPY's row and XLE's members changed").await;
    assert_eq!(
        spy(&edited).model.description.as_deref(),
        Some("Edited by hand")
    );

    // A stock no group held: every stock after it moves, so everything is read again.
    load(&|mut rows| {
        rows.push(vec!["ZZZQ".into(), "NEW LISTING CORP".into(), "0.1".into()]);
        rows
    })
    .await;
    served(all, "a new stock").await;
}

#[tokio::test]
async fn every_type_field_argument_and_enum_value_has_a_description() {
    let query = "{ __schema { types { name description
        fields(includeDeprecated: true) { name description args { name description } }
        inputFields { name description }
        enumValues(includeDeprecated: true) { name description } } } }";
    let response = holdgraph::graphql::bare_schema().execute(query).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    let data = response.data.into_json().expect("json");
    let described = |v: &Value| {
        v["description"]
            .as_str()
            .is_some_and(|d| !d.trim().is_empty())
    };
    let mut missing = Vec::new();
    for t in data["__schema"]["types"].as_array().expect("types") {
        let name = t["name"].as_str().expect("name");
        if name.starts_with("__") || ["String", "Int", "Float", "Boolean", "ID"].contains(&name) {
            continue;
        }
        if !described(t) {
            missing.push(name.to_owned());
        }
        let members = ["fields", "inputFields", "enumValues"]
            .iter()
            .filter_map(|k| t[*k].as_array())
            .flatten();
        for f in members {
            let field = format!("{name}.{}", f["name"].as_str().expect("field"));
            if !described(f) {
                missing.push(field.clone());
            }
            for a in f["args"].as_array().into_iter().flatten() {
                if !described(a) {
                    missing.push(format!("{field}({})", a["name"].as_str().expect("arg")));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:#?}");
}

/// Writes a copy of a holdings file without the data line of `symbol`.
fn without(dir: &std::path::Path, file: &str, symbol: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("holdings file");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{symbol},")))
        .collect();
    assert!(kept.len() < text.lines().count(), "{symbol} is in {file}");
    std::fs::write(&path, kept.join("\n") + "\n").expect("write");
}

#[tokio::test]
async fn a_members_cursor_survives_loads_of_other_groups_and_is_stale_once_its_own_group_changed() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, None).await;
    let page = |after: &Value| {
        format!(
            r#"{{ stats {{ dataVersion }} etf(name: "SPY") {{ memberCount members(first: 10, after: {after}) {{
                pageInfo {{ endCursor }} edges {{ node {{ symbol weight }} }} }} }} }}"#
        )
    };
    let first = gql(&router, &page(&Value::Null), None).await;
    let cursor = first["data"]["etf"]["members"]["pageInfo"]["endCursor"].clone();
    let second = gql(&router, &page(&cursor), None).await;
    let edges = |r: &Value| r["data"]["etf"]["members"]["edges"].clone();
    assert_eq!(
        edges(&second).as_array().map(Vec::len),
        Some(10),
        "{second}"
    );
    let stocks_cursor = gql(
        &router,
        "{ stocks(first: 5) { pageInfo { endCursor } } }",
        None,
    )
    .await["data"]["stocks"]["pageInfo"]["endCursor"]
        .clone();
    let stocks_after =
        format!(r#"{{ stocks(first: 5, after: {stocks_cursor}) {{ nodes {{ symbol }} }} }}"#);
    let stocks_page = gql(&router, &stocks_after, None).await;

    // A load of another ETF: a new data version, SPY untouched.
    without(&dir, "xle_holdings.csv", "XOM");
    app.load_etf(&h, "XLE").await;
    let (served, _) = eventually(&router, r#"{ etf(name: "XLE") { memberCount } }"#, |r| {
        r["data"]["etf"]["memberCount"] == 21
    })
    .await;
    assert_eq!(served["data"]["etf"]["memberCount"], 21, "{served}");
    let again = gql(&router, &page(&cursor), None).await;
    assert!(again["errors"].is_null(), "{again}");
    assert_ne!(
        again["data"]["stats"]["dataVersion"], second["data"]["stats"]["dataVersion"],
        "a load was served"
    );
    assert_eq!(
        edges(&again),
        edges(&second),
        "the same page as before the load"
    );
    // Top-level stock cursors are keys, valid across loads too.
    let r = gql(&router, &stocks_after, None).await;
    assert_eq!(r["data"], stocks_page["data"], "{r}");

    // A load of SPY itself: its old cursors are refused, with the reason.
    let last = edges(&second)[9]["node"]["symbol"]
        .as_str()
        .expect("symbol")
        .to_owned();
    without(&dir, "spy_holdings.csv", &last);
    app.load_etf(&h, "SPY").await;
    let (stale, _) = eventually(&router, &page(&cursor), |r| !r["errors"].is_null()).await;
    assert_eq!(code(&stale), "STALE_CURSOR", "{stale}");
    assert!(
        stale["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ETF SPY changed since") && m.contains("start again")),
        "{stale}"
    );
    let fresh = gql(&router, &page(&Value::Null), None).await;
    assert!(fresh["errors"].is_null(), "{fresh}");
    assert_eq!(fresh["data"]["etf"]["memberCount"], 502, "{fresh}");
}
