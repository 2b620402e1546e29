//! The HTTP layer around GraphQL: batches, GET answers HTTP caches may keep (ETag, 304),
//! automatic persisted queries, `/metrics` and request ids.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tests::{TestApp, project_dir};
use tower::ServiceExt;

use super::graphql::{eventually, gql, server, server_with, setup};

fn sample() -> String {
    project_dir().join("holdings").display().to_string()
}

/// Sends a request; the status, headers and body.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = router.clone().oneshot(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn post_json(body: &Value) -> Request<Body> {
    Request::post("/graphql")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// `GET /graphql` with these parameters, URL-encoded.
fn get_with(params: &[(&str, &str)], if_none_match: Option<&str>) -> Request<Body> {
    let url = reqwest::Url::parse_with_params("http://localhost/graphql", params).expect("url");
    let mut request = Request::get(format!("/graphql?{}", url.query().unwrap_or("")));
    if let Some(tag) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, tag);
    }
    request.body(Body::empty()).expect("request")
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn header_of<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_batch_answers_each_request_in_order_under_its_own_limits_and_an_oversized_one_is_refused()
 {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let queries = [
        r#"{ etf(name: "DIA") { memberCount } }"#,
        "{ stats { etfs } }",
        r#"query Apple { stock(symbol: "AAPL") { symbol } }"#,
    ];
    let batch: Vec<Value> = queries.iter().map(|q| json!({ "query": q })).collect();
    let (status, headers, body) = send(&router, post_json(&Value::from(batch))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    let answers = json_of(&body);
    let answers = answers.as_array().expect("a JSON array");
    assert_eq!(answers.len(), 3, "{answers:?}");
    for (query, answer) in queries.iter().zip(answers) {
        assert_eq!(*answer, gql(&router, query, None).await, "{query}");
    }
    assert_eq!(answers[0]["data"]["etf"]["memberCount"], 30);

    // A query past the depth limit fails in its own slot; its neighbours are answered.
    let deep = r#"{ stock(symbol: "AAPL") { etfs { stock { etfs { stock { etfs { stock { etfs {
        stock { etfs { stock { etfs { stock { symbol } } } } } } } } } } } } } }"#;
    let mixed = json!([{ "query": queries[1] }, { "query": deep }, { "query": queries[0] }]);
    let (status, _, body) = send(&router, post_json(&mixed)).await;
    assert_eq!(status, StatusCode::OK);
    let answers = json_of(&body);
    assert!(answers[0]["errors"].is_null(), "{answers}");
    assert_eq!(
        answers[1]["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP",
        "{answers}"
    );
    assert_eq!(answers[2]["data"]["etf"]["memberCount"], 30, "{answers}");

    // 21 requests: one more than the default cap.
    let big: Vec<Value> = (0..21).map(|_| json!({ "query": queries[1] })).collect();
    let (status, headers, body) = send(&router, post_json(&Value::from(big))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    let refused = json_of(&body);
    assert_eq!(refused["code"], "BATCH_TOO_LARGE", "{refused}");
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("20")),
        "{refused}"
    );

    // The cap is a setting.
    let settings = holdgraph::state::ServerSettings {
        max_batch: 2,
        ..Default::default()
    };
    let (_, small) = server_with(&app, app.db.clone(), &holdings, settings).await;
    let three: Vec<Value> = (0..3).map(|_| json!({ "query": queries[1] })).collect();
    let (status, _, body) = send(&small, post_json(&Value::from(three))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["code"], "BATCH_TOO_LARGE");
}

/// Writes the sample's XLK file with its first `keep` holdings.
fn xlk_with(dir: &std::path::Path, keep: usize) {
    let full =
        std::fs::read_to_string(project_dir().join("holdings/xlk_holdings.csv")).expect("xlk");
    let mut lines = full.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).take(keep).collect();
    let text: Vec<&str> = std::iter::once(header).chain(rows).collect();
    std::fs::write(dir.join("xlk_holdings.csv"), text.join("\n") + "\n").expect("write");
}

#[tokio::test]
async fn a_repeated_get_is_not_modified_until_a_load_gives_it_a_new_etag() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings_from(&project_dir().join("holdings"));
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, None).await;
    let query = r#"{ etf(name: "XLK") { memberCount } }"#;

    let (status, headers, body) = send(&router, get_with(&[("query", query)], None)).await;
    assert_eq!(status, StatusCode::OK);
    let before = json_of(&body);
    assert!(before["errors"].is_null(), "{before}");
    assert_eq!(
        header_of(&headers, "cache-control"),
        Some("public, max-age=5")
    );
    let tag = header_of(&headers, "etag").expect("an ETag").to_owned();
    assert!(
        tag.starts_with('"') && tag.ends_with('"'),
        "a strong ETag: {tag}"
    );

    // Asked again: the same tag, and with it, 304 and no body.
    let (status, headers, body) = send(&router, get_with(&[("query", query)], None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_of(&headers, "etag"), Some(tag.as_str()));
    assert_eq!(json_of(&body), before);
    let (status, headers, body) = send(&router, get_with(&[("query", query)], Some(&tag))).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty(), "{body:?}");
    assert_eq!(header_of(&headers, "etag"), Some(tag.as_str()));
    assert_eq!(
        header_of(&headers, "cache-control"),
        Some("public, max-age=5")
    );
    // A list naming it, or a weak form of it, matches too.
    let listed = format!("\"other\", W/{tag}");
    let (status, _, _) = send(&router, get_with(&[("query", query)], Some(&listed))).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // POST answers and errors are never kept.
    let (_, headers, _) = send(&router, post_json(&json!({ "query": query }))).await;
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header_of(&headers, "etag"), None);
    let (_, headers, body) = send(&router, get_with(&[("query", "{ nope }")], None)).await;
    assert!(!json_of(&body)["errors"].is_null());
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    assert_eq!(header_of(&headers, "etag"), None);

    // A load: a new data version, a new answer, a new tag.
    xlk_with(&dir, 10);
    app.load_etf(&h, "XLK").await;
    let (served, took) =
        eventually(&router, query, |r| r["data"]["etf"]["memberCount"] == 10).await;
    assert_eq!(served["data"]["etf"]["memberCount"], 10, "after {took:?}");
    let (status, headers, body) = send(&router, get_with(&[("query", query)], Some(&tag))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["data"]["etf"]["memberCount"], 10);
    let new_tag = header_of(&headers, "etag").expect("an ETag");
    assert_ne!(new_tag, tag);
}

/// The query the persisted-query test sends, and its SHA-256 (computed once with
/// `printf '%s' "$QUERY" | sha256sum`, so the test does not trust the server's hashing).
const PERSISTED: &str =
    "query Fund($name: String!) { etf(name: $name) { name memberCount } stats { dataVersion } }";
const PERSISTED_SHA256: &str = "b341c57cc24056b6c12236e6072c64a19ae680da383c65e695cc5ffb04292ed6";

#[tokio::test]
async fn a_persisted_query_is_not_found_until_its_text_is_sent_then_answers_by_hash_alone() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": PERSISTED_SHA256 } });
    let variables = json!({ "name": "DIA" });
    let by_hash = json!({ "extensions": extensions, "variables": variables });
    let get_by_hash = |tag: Option<&str>| {
        get_with(
            &[
                ("operationName", "Fund"),
                ("variables", &variables.to_string()),
                ("extensions", &extensions.to_string()),
            ],
            tag,
        )
    };
    let not_found = |answer: &Value| {
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND",
            "{answer}"
        );
        assert_eq!(answer["errors"][0]["message"], "PersistedQueryNotFound");
    };

    let (status, headers, body) = send(&router, post_json(&by_hash)).await;
    assert_eq!(status, StatusCode::OK);
    not_found(&json_of(&body));
    assert_eq!(header_of(&headers, "cache-control"), Some("no-store"));
    let (status, headers, body) = send(&router, get_by_hash(None)).await;
    assert_eq!(status, StatusCode::OK);
    not_found(&json_of(&body));
    assert_eq!(header_of(&headers, "etag"), None);

    // The text with a hash that is not its own is refused, and not stored.
    let wrong = json!({
        "query": "{ stats { etfs } }",
        "extensions": extensions,
    });
    let (_, _, body) = send(&router, post_json(&wrong)).await;
    let answer = json_of(&body);
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_HASH_MISMATCH",
        "{answer}"
    );
    not_found(&json_of(&send(&router, post_json(&by_hash)).await.2));

    // The text with its hash: answered, and remembered.
    let with_text = json!({
        "query": PERSISTED,
        "variables": variables,
        "extensions": extensions,
    });
    let (_, _, body) = send(&router, post_json(&with_text)).await;
    let answer = json_of(&body);
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(answer["data"]["etf"]["memberCount"], 30, "{answer}");

    let (_, _, body) = send(&router, post_json(&by_hash)).await;
    assert_eq!(json_of(&body), answer, "by POST");
    let (status, headers, body) = send(&router, get_by_hash(None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body), answer, "by GET");
    assert_eq!(
        header_of(&headers, "cache-control"),
        Some("public, max-age=5")
    );
    let tag = header_of(&headers, "etag").expect("an ETag").to_owned();
    let (status, _, body) = send(&router, get_by_hash(Some(&tag))).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());

    // A hash-only mutation is still refused on GET: the check reads the stored text.
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": MUTATION_SHA256 } });
    let stored = json!({ "query": MUTATION, "extensions": ext });
    let (_, _, body) = send(&router, post_json(&stored)).await;
    let answer = json_of(&body);
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "stored, then refused for want of a token: {answer}"
    );
    let (status, headers, _) =
        send(&router, get_with(&[("extensions", &ext.to_string())], None)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header_of(&headers, "allow"), Some("POST"));
}

/// A mutation, and its SHA-256 (computed as [`PERSISTED_SHA256`] was).
const MUTATION: &str = "mutation { warmCache { groups } }";
const MUTATION_SHA256: &str = "17a58f58358ab6088b3a49494b8751e837d9aecde14c94512bad13184c5ac48d";

/// One sample of a Prometheus text exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format: `# HELP` and `# TYPE` comments, and `name{label="value",...} number`
/// lines. Panics, naming the line, on anything else.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name, parse_labels(inner, line))
            }
        };
        let mut chars = name.chars();
        assert!(
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "not a metric name: {line}"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// `a="x",b="y \"quoted\""`: names, then quoted values with backslash escapes.
fn parse_labels(text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unclosed label value: {line}"),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_the_requests_of_an_operation() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    // A name no other test uses: the recorder is the process's.
    let named = json!({
        "query": "query MetricsProbe { stats { etfs } }",
        "operationName": "MetricsProbe",
    });
    for _ in 0..2 {
        let (status, _, _) = send(&router, post_json(&named)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let request = get_with(
        &[
            ("query", "query MetricsProbe { stats { etfs } }"),
            ("operationName", "MetricsProbe"),
        ],
        None,
    );
    assert_eq!(send(&router, request).await.0, StatusCode::OK);
    // The text's fourth request is answered from the response cache (filled by the third).
    let (status, _, _) = send(&router, post_json(&named)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = send(
        &router,
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        header_of(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    let samples = parse_prometheus(&text);
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum::<f64>()
    };
    assert_eq!(
        value(
            "holdgraph_graphql_requests_total",
            &[("operation", "MetricsProbe"), ("outcome", "ok")]
        ),
        4.0,
        "{text}"
    );
    assert_eq!(
        value(
            "holdgraph_graphql_request_duration_seconds_count",
            &[("operation", "MetricsProbe")]
        ),
        4.0,
        "{text}"
    );
    assert!(
        value(
            "holdgraph_http_requests_total",
            &[("route", "/graphql"), ("status", "200")]
        ) >= 4.0
    );
    assert!(value("holdgraph_cache_hits_total", &[("cache", "response")]) >= 1.0);
    for name in [
        "holdgraph_data_version",
        "holdgraph_cache_misses_total",
        "holdgraph_db_pool_connections",
        "holdgraph_db_pool_idle_connections",
        "holdgraph_graphql_request_duration_seconds_bucket",
    ] {
        assert!(samples.iter().any(|s| s.name == name), "{name} in {text}");
    }
}

#[tokio::test]
async fn a_request_id_is_echoed_when_sane_and_made_otherwise() {
    let app = TestApp::new().await;
    let holdings = sample();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let with_id = |id: Option<&str>| {
        let mut request = Request::get("/health");
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.body(Body::empty()).expect("request")
    };
    let (_, headers, _) = send(&router, with_id(Some("client-42.a_b:c"))).await;
    assert_eq!(header_of(&headers, "x-request-id"), Some("client-42.a_b:c"));

    let (_, headers, _) = send(&router, with_id(None)).await;
    let made = header_of(&headers, "x-request-id")
        .expect("an id")
        .to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let (_, headers, _) = send(&router, with_id(None)).await;
    assert_ne!(header_of(&headers, "x-request-id"), Some(made.as_str()));

    for insane in ["has space", "quote\"d", &"x".repeat(65)] {
        let (_, headers, _) = send(&router, with_id(Some(insane))).await;
        let id = header_of(&headers, "x-request-id").expect("an id");
        assert_ne!(id, insane);
        assert_eq!(id.len(), 36);
    }
    // Errors carry it too.
    let request = Request::get("/nowhere")
        .header("x-request-id", "lost-1")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = send(&router, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header_of(&headers, "x-request-id"), Some("lost-1"));
}
