//! Subscriptions over websockets: the real server on a port of its own, a client speaking
//! `graphql-transport-ws` (and the older `graphql-ws`), loads through the HTTP mutation.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use holdgraph::state::AppState;
use serde_json::{Value, json};
use tests::{TestApp, project_dir};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::graphql::{TOKEN, server, setup};

/// How long any one message may take to arrive before the test fails (a bound, not a
/// measurement: messages come in milliseconds).
const PATIENCE: Duration = Duration::from_secs(30);

/// The sample set up in a holdings folder of the test's own, and the server over it on a
/// port of its own.
async fn start(app: &TestApp) -> (Arc<AppState>, SocketAddr, std::path::PathBuf) {
    let dir = app.copy_holdings_from(&project_dir().join("holdings"));
    let holdings = dir.display().to_string();
    setup(app, &holdings).await;
    let (state, _) = server(app, &holdings, Some(TOKEN)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Serves until the test's runtime ends.
    tokio::spawn(holdgraph::serve::serve(
        listener,
        state.clone(),
        std::future::pending(),
    ));
    (state, addr, dir)
}

/// Rewrites a holdings file without its last data row.
fn drop_last_row(dir: &std::path::Path, file: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("holdings file");
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.pop();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
}

/// A GraphQL request over HTTP to the running server.
async fn post(addr: SocketAddr, query: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(TOKEN)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

/// Waits until the server's event hub has `n` subscribers (the server registers a
/// subscription when it first polls it, a moment after the message arrived).
async fn subscribed(state: &AppState, n: usize) {
    tokio::time::timeout(PATIENCE, async {
        while state.events.subscribers() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the subscriptions were registered");
}

/// A websocket client of `/graphql`, sorting what arrives by subscription id.
struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Messages received but not asked for yet, by subscription id.
    inbox: BTreeMap<String, VecDeque<Value>>,
    /// The protocol spoken: `graphql-transport-ws` or `graphql-ws`.
    protocol: &'static str,
}

impl Client {
    /// Connects to `GET /graphql` with a GraphQL websocket protocol and initialises the
    /// connection.
    async fn connect(addr: SocketAddr, protocol: &'static str) -> Self {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        let mut client = Self {
            ws,
            inbox: BTreeMap::new(),
            protocol,
        };
        client
            .send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        let ack = client.receive().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// Starts a subscription.
    async fn subscribe(&mut self, id: &str, query: &str) {
        let kind = match self.protocol {
            "graphql-ws" => "start",
            _ => "subscribe",
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query } }))
            .await;
    }

    /// Ends a subscription.
    async fn complete(&mut self, id: &str) {
        let kind = match self.protocol {
            "graphql-ws" => "stop",
            _ => "complete",
        };
        self.send(json!({ "id": id, "type": kind })).await;
    }

    /// The next protocol message (answering pings on the way).
    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a message in time")
                .expect("the connection is open")
                .expect("a websocket message");
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).expect("json");
            match value["type"].as_str() {
                Some("ping") => self.send(json!({ "type": "pong" })).await,
                Some("ka" | "pong") => {}
                _ => return value,
            }
        }
    }

    /// The next message of subscription `id`.
    async fn next(&mut self, id: &str) -> Value {
        loop {
            if let Some(message) = self.inbox.get_mut(id).and_then(VecDeque::pop_front) {
                return message;
            }
            let message = self.receive().await;
            let to = message["id"].as_str().unwrap_or_default().to_owned();
            self.inbox.entry(to).or_default().push_back(message);
        }
    }

    /// The data of the next event of subscription `id`.
    async fn event(&mut self, id: &str, field: &str) -> Value {
        let message = self.next(id).await;
        let kind = match self.protocol {
            "graphql-ws" => "data",
            _ => "next",
        };
        assert_eq!(message["type"], kind, "{message}");
        assert!(message["payload"]["errors"].is_null(), "{message}");
        message["payload"]["data"][field].clone()
    }
}

const PROGRESS: &str = "subscription { runProgress { runId kind phase filesDone filesTotal \
                        currentFile rowsRead state run { id state } result { ok runId } } }";
const DATA: &str = "subscription { dataChanged { dataVersion groups { type name \
                    group { name memberCount } } } }";
const LOAD: &str = "mutation { loadEtfHoldings(mode: INCREMENTAL) { ok runId state dataVersion } }";

#[tokio::test]
async fn a_load_streams_its_progress_and_one_data_change_to_subscribers() {
    let app = TestApp::new().await;
    let (state, addr, dir) = start(&app).await;
    let mut client = Client::connect(addr, "graphql-transport-ws").await;
    client.subscribe("progress", PROGRESS).await;
    client.subscribe("data", DATA).await;
    subscribed(&state, 2).await;

    drop_last_row(&dir, "xlk_holdings.csv");
    let answer = post(addr, LOAD).await;
    let load = &answer["data"]["loadEtfHoldings"];
    assert_eq!(load["ok"], true, "{answer}");
    let run_id = load["runId"].as_i64().expect("a run id");

    // Every step of the run, in order, up to its end.
    let mut steps = Vec::new();
    loop {
        let step = client.event("progress", "runProgress").await;
        assert_eq!(step["runId"], run_id, "{step}");
        assert_eq!(step["kind"], "etf", "{step}");
        let finished = step["phase"] == "FINISHED";
        steps.push(step);
        if finished {
            break;
        }
    }
    let total = steps[0]["filesTotal"].as_u64().expect("filesTotal");
    assert_eq!(total, 2, "the sample has two ETF files: {steps:#?}");
    let reads: Vec<u64> = steps
        .iter()
        .filter(|s| s["phase"] == "READING" && !s["currentFile"].is_null())
        .map(|s| s["filesDone"].as_u64().expect("filesDone"))
        .collect();
    assert_eq!(reads, (1..=total).collect::<Vec<_>>(), "{steps:#?}");
    let done: Vec<u64> = steps
        .iter()
        .map(|s| s["filesDone"].as_u64().expect("filesDone"))
        .collect();
    assert!(done.is_sorted(), "{steps:#?}");
    assert!(steps.iter().all(|s| s["filesTotal"] == total), "{steps:#?}");
    // Only the changed file is read in an incremental load: XLK's rows, DIA's none.
    let xlk = steps
        .iter()
        .find(|s| s["currentFile"] == "xlk_holdings.csv")
        .expect("the XLK read");
    assert!(xlk["rowsRead"].as_u64() > Some(0), "{xlk}");

    let last = steps.last().expect("the final event");
    assert_eq!(last["filesDone"], total, "{last}");
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(last["run"]["id"], run_id, "{last}");
    assert_eq!(last["run"]["state"], "succeeded", "{last}");
    assert_eq!(last["result"]["ok"], true, "{last}");
    assert_eq!(last["result"]["runId"], run_id, "{last}");
    assert_eq!(
        steps.iter().filter(|s| s["phase"] == "FINISHED").count(),
        1,
        "{steps:#?}"
    );

    // One data change: XLK only, at the version served now.
    let served =
        post(addr, "{ stats { dataVersion } }").await["data"]["stats"]["dataVersion"].clone();
    assert_eq!(served, load["dataVersion"], "{answer}");
    let change = client.event("data", "dataChanged").await;
    assert_eq!(change["dataVersion"], served, "{change}");
    assert_eq!(
        change["groups"],
        json!([{ "type": "ETF", "name": "XLK", "group": { "name": "XLK", "memberCount": 14 } }]),
        "{change}"
    );

    // The next change is the next load's, not a second one of the first: DIA only.
    client.complete("progress").await;
    drop_last_row(&dir, "dia_holdings.csv");
    let answer = post(addr, LOAD).await;
    let next = client.event("data", "dataChanged").await;
    assert_eq!(
        next["dataVersion"], answer["data"]["loadEtfHoldings"]["dataVersion"],
        "{answer}"
    );
    assert_eq!(next["groups"][0]["name"], "DIA", "{next}");
    assert_eq!(next["groups"].as_array().map(Vec::len), Some(1), "{next}");

    // Asked for by id afterwards, the first run answers its final event, report included.
    let query = format!(
        "subscription {{ runProgress(runId: {run_id}) {{ runId phase state result {{ ok }} }} }}"
    );
    client.subscribe("again", &query).await;
    let again = client.event("again", "runProgress").await;
    assert_eq!(
        again,
        json!({ "runId": run_id, "phase": "FINISHED", "state": "succeeded", "result": { "ok": true } })
    );
    let end = client.next("again").await;
    assert_eq!(end["type"], "complete", "{end}");
}

#[tokio::test]
async fn run_progress_of_a_finished_run_answers_its_final_event_at_once() {
    let app = TestApp::new().await;
    let (_, addr, _) = start(&app).await;
    let runs = post(
        addr,
        "{ loadRuns(first: 1) { nodes { id kind state filesTotal } } }",
    )
    .await;
    let run = &runs["data"]["loadRuns"]["nodes"][0];
    let run_id = run["id"].as_i64().expect("setup recorded runs");

    let mut client = Client::connect(addr, "graphql-transport-ws").await;
    let query = format!(
        "subscription {{ runProgress(runId: {run_id}) {{ runId kind phase state filesDone \
         filesTotal result {{ ok }} run {{ id state }} }} }}"
    );
    client.subscribe("done", &query).await;
    let event = client.event("done", "runProgress").await;
    assert_eq!(event["runId"], run_id, "{event}");
    assert_eq!(event["kind"], run["kind"], "{event}");
    assert_eq!(event["phase"], "FINISHED", "{event}");
    assert_eq!(event["state"], run["state"], "{event}");
    assert_eq!(event["filesDone"], run["filesTotal"], "{event}");
    assert_eq!(event["run"]["id"], run_id, "{event}");
    // Set up by another process (the CLI): no report here, the record is all there is.
    assert!(event["result"].is_null(), "{event}");
    let end = client.next("done").await;
    assert_eq!(end["type"], "complete", "the stream ends after it: {end}");

    // A run that does not exist is an error with a code.
    client
        .subscribe(
            "none",
            "subscription { runProgress(runId: 999999) { runId } }",
        )
        .await;
    // The operation was valid, so the error comes as a result (`next` with `errors`), as the
    // protocol says of execution errors, and the stream ends.
    let error = client.next("none").await;
    assert_eq!(error["type"], "next", "{error}");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{error}"
    );
    let end = client.next("none").await;
    assert_eq!(end["type"], "complete", "{end}");
}

#[tokio::test]
async fn the_older_graphql_ws_protocol_is_served_too_and_plain_gets_still_answer() {
    let app = TestApp::new().await;
    let (_, addr, _) = start(&app).await;
    let runs = post(addr, "{ loadRuns(first: 1) { nodes { id } } }").await;
    let run_id = runs["data"]["loadRuns"]["nodes"][0]["id"]
        .as_i64()
        .expect("setup recorded runs");

    let mut client = Client::connect(addr, "graphql-ws").await;
    let query = format!("subscription {{ runProgress(runId: {run_id}) {{ runId phase }} }}");
    client.subscribe("done", &query).await;
    let event = client.event("done", "runProgress").await;
    assert_eq!(event, json!({ "runId": run_id, "phase": "FINISHED" }));

    // The same path without an upgrade is a query.
    let response = reqwest::get(format!(
        "http://{addr}/graphql?query=%7B%20stats%20%7B%20etfs%20%7D%20%7D"
    ))
    .await
    .expect("get");
    assert!(response.status().is_success());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["stats"]["etfs"], 2, "{body}");
}
