//! Serving from snapshots: one version per response while loads commit, loads from elsewhere
//! served without a restart, the database down, bounded cost, and errors as JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tests::{TestApp, project_dir};

use super::graphql::{TOKEN, call, code, eventually, gql, server, server_on, server_with, setup};

/// The query GraphiQL and code generators send (graphql-js `getIntrospectionQuery()`).
const INTROSPECTION: &str = include_str!("../queries/introspection.graphql");

fn sample() -> String {
    project_dir().join("holdings").display().to_string()
}

#[tokio::test]
async fn the_standard_introspection_query_is_accepted() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let r = gql(&router, INTROSPECTION, None).await;
    assert!(r["errors"].is_null(), "{r}");
    let types = r["data"]["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "Stock"), "{r}");
    // The depth limit still holds for data queries.
    let deep = r#"{ stock(symbol: "AAPL") { etfs { stock { etfs { stock { etfs { stock { etfs {
        stock { etfs { stock { etfs { stock { symbol } } } } } } } } } } } } } }"#;
    assert_eq!(code(&gql(&router, deep, None).await), "QUERY_TOO_DEEP");
}

#[tokio::test]
async fn a_thousand_aliases_of_a_scan_are_refused_and_a_few_cost_one_computation() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (state, router) = server(&app, &holdings, None).await;
    for field in [
        "validation { ok }",
        "report { text }",
        r#"exposure(group: "DIA", by: SECTOR) { key }"#,
        r#"overlap(a: "DIA", b: "XLK") { common }"#,
    ] {
        let bomb: String = (0..1000).map(|i| format!("a{i}: {field} ")).collect();
        let clock = std::time::Instant::now();
        let r = gql(&router, &format!("{{ {bomb} }}"), None).await;
        assert_eq!(code(&r), "QUERY_TOO_COMPLEX", "{field}: {r}");
        // Refused before any work: no entry was computed.
        assert!(
            clock.elapsed() < std::time::Duration::from_secs(5),
            "{field}"
        );
    }
    let loads = |name: &str| {
        state
            .cache_stats()
            .into_iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.loads)
    };
    assert_eq!(loads("checks"), 0);
    let few: String = (0..8)
        .map(|i| format!("v{i}: validation {{ ok }} "))
        .collect();
    let r = gql(&router, &format!("{{ {few} }}"), None).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(r["data"]["v0"], r["data"]["v7"]);
    assert_eq!(loads("checks"), 1, "eight aliases, one validation run");
}

#[tokio::test]
async fn errors_below_graphql_answer_json_with_a_code() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let post = |body: Body| {
        Request::post("/graphql")
            .header("content-type", "application/json")
            .body(body)
            .expect("request")
    };
    let (status, r) = call(&router, post(Body::from("{not json"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert_eq!(r["code"], "BAD_REQUEST", "{r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");

    let big = json!({ "query": format!("{{ stats {{ etfs }} }} #{}", "x".repeat(70_000)) });
    let (status, r) = call(&router, post(Body::from(big.to_string()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert_eq!(r["code"], "PAYLOAD_TOO_LARGE", "{r}");

    let (status, r) = call(
        &router,
        Request::get("/nowhere")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(r["code"], "NOT_FOUND", "{r}");
}

/// Writes the sample's XLK file with its first `keep` holdings.
fn xlk_with(dir: &std::path::Path, keep: usize) -> usize {
    let path = dir.join("xlk_holdings.csv");
    let full =
        std::fs::read_to_string(project_dir().join("holdings/xlk_holdings.csv")).expect("xlk");
    let mut lines = full.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).take(keep).collect();
    let n = rows.len();
    let text: Vec<&str> = std::iter::once(header).chain(rows).collect();
    std::fs::write(path, text.join("\n") + "\n").expect("write");
    n
}

#[tokio::test]
async fn a_reader_during_alternating_loads_never_sees_a_version_with_another_versions_data() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings_from(&project_dir().join("holdings"));
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (state, router) = server(&app, &h, None).await;
    let query = r#"{ stats { dataVersion } etf(name: "XLK") { memberCount } }"#;
    // What each version holds, from the runs that wrote them.
    let mut expected: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    let full = xlk_with(&dir, usize::MAX) as u64;
    expected.insert(state.version(), full);

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (router, stop) = (router.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = gql(&router, query, None).await;
                seen.push((
                    r["data"]["stats"]["dataVersion"].as_i64().unwrap_or(-1),
                    r["data"]["etf"]["memberCount"].as_u64().unwrap_or(0),
                ));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for round in 0..6 {
        let keep = if round % 2 == 0 { 12 } else { usize::MAX };
        let n = xlk_with(&dir, keep) as u64;
        let report = app.load_etf(&h, "XLK").await;
        let version = report["data_version"].as_i64().expect("a data version");
        expected.insert(version, n);
        // The load is served without a restart (the reader keeps reading meanwhile).
        let (r, took) = eventually(&router, query, |r| {
            r["data"]["stats"]["dataVersion"].as_i64() == Some(version)
        })
        .await;
        assert_eq!(
            r["data"]["stats"]["dataVersion"].as_i64(),
            Some(version),
            "version {version} not served after {took:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.await.expect("reader");
    assert!(seen.len() > 10, "the reader ran ({} reads)", seen.len());
    for (version, count) in &seen {
        assert_eq!(
            expected.get(version),
            Some(count),
            "version {version} answered with {count} XLK members"
        );
    }
    let versions: std::collections::BTreeSet<i64> = seen.iter().map(|(v, _)| *v).collect();
    assert!(versions.len() > 1, "the reader saw loads: {versions:?}");
}

#[tokio::test]
async fn two_servers_on_one_database_both_serve_a_load_made_elsewhere() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings_from(&project_dir().join("holdings"));
    let h = dir.display().to_string();
    setup(&app, &h).await;
    // Each server on a connection pool of its own, as two processes would be.
    let one = holdgraph::db::connect(&app.url).await.expect("connect");
    let two = holdgraph::db::connect(&app.url).await.expect("connect");
    let (_, first) = server_on(&app, one, &h, None).await;
    let (_, second) = server_on(&app, two, &h, None).await;
    let n = xlk_with(&dir, 10);
    app.load_etf(&h, "XLK").await;
    let query = r#"{ etf(name: "XLK") { memberCount } }"#;
    for router in [&first, &second] {
        let (r, took) = eventually(router, query, |r| r["data"]["etf"]["memberCount"] == n).await;
        assert_eq!(r["data"]["etf"]["memberCount"], n, "after {took:?}");
    }
}

/// A TCP relay between the server and PostgreSQL that a test can cut and restore: the
/// database as the server sees it goes down and comes back.
struct Relay {
    addr: std::net::SocketAddr,
    upstream: String,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let relay = Self {
            addr,
            upstream: upstream.to_owned(),
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (upstream, tasks) = (self.upstream.clone(), self.tasks.clone());
        let inner = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                inner.lock().expect("tasks").push(pipe);
            }
        });
        tasks.lock().expect("tasks").push(accept);
    }

    /// Stops listening and cuts every connection.
    fn cut(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same address.
    async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("bind again");
        self.serve(listener);
    }
}

#[tokio::test]
async fn with_the_database_down_queries_are_answered_ready_says_503_and_it_recovers() {
    let app = TestApp::new().await;
    if !app.is_postgres() {
        // An SQLite file cannot go away while the process has it open.
        return;
    }
    let holdings = sample();
    setup(&app, &holdings).await;
    let relay = Relay::start("127.0.0.1:5432").await;
    let url = app
        .url
        .replacen("127.0.0.1:5432", &relay.addr.to_string(), 1);
    assert_ne!(url, app.url, "the test database is on 127.0.0.1:5432");
    let db = holdgraph::db::connect(&url).await.expect("connect");
    let (_, router) = server_on(&app, db, &holdings, Some(TOKEN)).await;
    let query = r#"{ stats { dataVersion } stock(symbol: "AAPL") { sectorKey etfs { weight } } }"#;
    let before = gql(&router, query, None).await;
    assert!(before["errors"].is_null(), "{before}");
    let ready = || Request::get("/ready").body(Body::empty()).expect("request");
    assert_eq!(call(&router, ready()).await.0, StatusCode::OK);

    relay.cut();
    // A new query text, so the answer does not come from the response cache.
    let during = gql(&router, &format!("{query} # down"), None).await;
    assert_eq!(during["data"], before["data"], "answered from the snapshot");
    let clock = std::time::Instant::now();
    let (status, body) = call(&router, ready()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["reason"].as_str().is_some(), "{body}");
    println!("/ready answered 503 in {:?}", clock.elapsed());
    let mutation = Request::post("/graphql")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(
            json!({"query": "mutation { loadUniverses { ok } }"}).to_string(),
        ))
        .expect("request");
    let (_, refused) = call(&router, mutation).await;
    assert_eq!(code(&refused), "SERVICE_UNAVAILABLE", "{refused}");

    relay.restore().await;
    let clock = std::time::Instant::now();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    while clock.elapsed() < std::time::Duration::from_secs(10) {
        status = call(&router, ready()).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "ready again once the database is back"
    );
    let after = gql(&router, &format!("{query} # back"), None).await;
    assert_eq!(after["data"], before["data"]);
    relay.cut();
}

#[tokio::test]
async fn responses_of_repeated_texts_are_cached_and_one_off_texts_are_not() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (state, router) = server(&app, &holdings, None).await;
    let response_cache = || {
        state
            .cache_stats()
            .into_iter()
            .find(|c| c.name == "response")
            .expect("response cache")
    };
    // Texts of their own: the table of sighted texts is the process's.
    let unique = format!("{:?}", std::time::SystemTime::now());
    let once = format!(r#"{{ etf(name: "DIA") {{ memberCount }} }} # once {unique}"#);
    gql(&router, &once, None).await;
    let repeated = format!(r#"{{ etf(name: "DIA") {{ memberCount }} }} # often {unique}"#);
    let answers: Vec<Value> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(gql(&router, &repeated, None).await);
        }
        out
    };
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let stat = response_cache();
    assert_eq!(stat.size, 1, "only the repeated text is cached: {stat:?}");
    assert!(stat.hits >= 1, "{stat:?}");
}

#[tokio::test]
async fn a_browser_on_another_origin_gets_its_preflight_and_answers_and_unlisted_origins_do_not() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/graphql")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .expect("request")
    };
    let allowed = |response: &axum::http::Response<Body>| {
        response
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    use tower::ServiceExt as _;

    // The default: any origin.
    let (_, router) = server(&app, &holdings, None).await;
    let response = router
        .clone()
        .oneshot(preflight("http://dash.example"))
        .await
        .expect("response");
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(allowed(&response).as_deref(), Some("*"));
    let post = Request::post("/graphql")
        .header("origin", "http://dash.example")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"query":"{ stats { etfs } }"}"#))
        .expect("request");
    let response = router.clone().oneshot(post).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(allowed(&response).as_deref(), Some("*"));

    // A list: its origins only.
    let settings = holdgraph::state::ServerSettings {
        cors_origins: "http://a.example, http://b.example".to_owned(),
        ..Default::default()
    };
    let (_, router) = super::graphql::server_with(&app, app.db.clone(), &holdings, settings).await;
    let response = router
        .clone()
        .oneshot(preflight("http://b.example"))
        .await
        .expect("response");
    assert_eq!(allowed(&response).as_deref(), Some("http://b.example"));
    let response = router
        .clone()
        .oneshot(preflight("http://evil.example"))
        .await
        .expect("response");
    assert_eq!(allowed(&response), None);
}

/// `serve::serve` on 127.0.0.1 with these settings over the sample data, until stopped.
struct Served {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The database, dropped with the server.
    _app: TestApp,
}

impl Served {
    async fn start(settings: holdgraph::state::ServerSettings) -> Self {
        let app = TestApp::new().await;
        let holdings = sample();
        setup(&app, &holdings).await;
        let (state, _) = server_with(&app, app.db.clone(), &holdings, settings).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(holdgraph::serve::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop,
            served,
            _app: app,
        }
    }

    /// Stops the server and checks it returned cleanly, in time.
    async fn stop(self) {
        self.stop.send(()).expect("the server runs");
        let result = tokio::time::timeout(std::time::Duration::from_secs(30), self.served)
            .await
            .expect("stopped in time")
            .expect("the server task");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// The connections `/metrics` says an HTTP thread holds open.
fn open(metrics: &str, thread: usize) -> f64 {
    let prefix = format!("holdgraph_http_connections{{thread=\"{thread}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn http_threads_share_a_burst_of_connections_answer_from_the_database_and_stop() {
    let served = Served::start(holdgraph::state::ServerSettings {
        http_threads: 2,
        ..holdgraph::state::ServerSettings::default()
    })
    .await;
    let addr = served.addr;
    // Eight clients at once, each on a connection of its own that stays open.
    let clients: Vec<reqwest::Client> = (0..8).map(|_| reqwest::Client::new()).collect();
    let post = |client: &reqwest::Client, query: &str| {
        let request = client
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": query }));
        async move {
            let response = request.send().await.expect("request");
            assert!(response.status().is_success(), "{}", response.status());
            response.json::<Value>().await.expect("json")
        }
    };
    let answers = futures_util::future::join_all(clients.iter().map(|c| {
        post(
            c,
            r#"{ stock(symbol: "AAPL") { etfs { group { name } } } }"#,
        )
    }))
    .await;
    for answer in &answers {
        let etfs = answer["data"]["stock"]["etfs"].as_array().expect("etfs");
        assert!(!etfs.is_empty(), "{answer}");
    }
    // The run history is read from the database, from an HTTP thread's runtime.
    let runs = post(
        &clients[0],
        "{ loadRuns(first: 2) { nodes { kind state } } }",
    )
    .await;
    assert_eq!(
        runs["data"]["loadRuns"]["nodes"].as_array().map(Vec::len),
        Some(2),
        "{runs}"
    );
    // Both threads hold some of the eight: no thread takes more than twice the least busy
    // one's share plus two.
    let metrics = clients[0]
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let (first, second) = (open(&metrics, 0), open(&metrics, 1));
    assert_eq!(first + second, 8.0, "{metrics}");
    assert!(
        first >= 2.0 && second >= 2.0,
        "{first} and {second}: {metrics}"
    );
    // Told to stop, it drains the idle connections and returns.
    served.stop().await;
}

/// With one HTTP thread per core, each on its core, a connection goes to the thread on the core
/// its packets arrive on (on loopback, the client's): a client kept on the last core is served
/// by the last thread, up to the limit of twice the least busy thread's connections plus two.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn pinned_http_threads_take_the_connections_of_their_core() {
    use holdgraph::serve::cores;
    use std::io::{Read, Write};

    let cpus = cores::allowed();
    if cpus.len() < 2 {
        eprintln!("one core: no other thread to hand connections to");
        return;
    }
    let served = Served::start(holdgraph::state::ServerSettings {
        http_threads: cpus.len(),
        pin_http_threads: true,
        ..holdgraph::state::ServerSettings::default()
    })
    .await;
    let addr = served.addr;
    let last = cpus.len() - 1;
    let core = cpus[last];
    // On a thread of its own kept on the last core: three connections, each answered before
    // the next opens and all left open, then the metrics on a fourth.
    let metrics = tokio::task::spawn_blocking(move || {
        cores::pin(core).expect("pin the client");
        let ask = |path: &str| {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: keep-alive\r\n\r\n"
            )
            .expect("send");
            let mut answer = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then the body up to its Content-Length.
            loop {
                let n = stream.read(&mut buf).expect("read");
                assert!(n > 0, "closed early");
                answer.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&answer);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if answer.len() >= end + 4 + length {
                        return (stream, text[end + 4..].to_string());
                    }
                }
            }
        };
        let held: Vec<_> = (0..3).map(|_| ask("/health").0).collect();
        let (_metrics_connection, metrics) = ask("/metrics");
        drop(held);
        metrics
    })
    .await
    .expect("client");
    assert_eq!(
        open(&metrics, last),
        3.0,
        "the last core's thread: {metrics}"
    );
    // The fourth went elsewhere: the last thread was at the limit.
    let others: f64 = (0..last).map(|thread| open(&metrics, thread)).sum();
    assert_eq!(others, 1.0, "{metrics}");
    served.stop().await;
}
