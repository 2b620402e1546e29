//! End to end: the real `holdgraph` binary on an empty database serves the bundled sample on
//! a port the OS picks, answers over HTTP, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_sets_up_an_empty_database_serves_it_and_stops_on_sigterm() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdgraph"))
        .args(["--database-url", &url])
        .arg("--holdings-dir")
        .arg(project.join("holdings"))
        .arg("--definitions-dir")
        .arg(project.join("definitions"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start holdgraph");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut saw_setup = false;
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("line");
        saw_setup |= line.contains("running setup");
        if let Some(rest) = line.split("serving on http://").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    assert!(saw_setup, "an empty database is set up first");

    let client = reqwest::Client::new();
    let health: serde_json::Value = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let answer: serde_json::Value = client
        .post(format!("http://{addr}/graphql"))
        .json(&serde_json::json!({
            "query": r#"{ etf(name: "DIA") { memberCount } stock(symbol: "AAPL") { sectorKey universes { name } } }"#
        }))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["data"]["etf"]["memberCount"], 30, "{answer}");
    assert_eq!(answer["data"]["stock"]["universes"][0]["name"], "dow30");
    let page = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("graphiql")
        .text()
        .await
        .expect("html");
    assert!(page.contains("graphiql"), "GraphiQL is served at /");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}
