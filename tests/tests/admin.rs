//! The admin API: typed mutation results that agree with the CLI and the tables, file uploads
//! that change nothing unless accepted, and `setStockSector`'s refusals.

use std::collections::BTreeMap;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tests::TestApp;

use crate::graphql::{TOKEN, call, code, gql, server, setup};

/// Every file of a folder (sub-folders included) with its bytes: equal exactly when the
/// folder is.
fn folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read folder") {
            let path = entry.expect("entry").path();
            let name = path
                .strip_prefix(dir)
                .expect("inside")
                .display()
                .to_string();
            if path.is_dir() {
                out.insert(format!("{name}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(name, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

const UPLOAD: &str = r#"mutation($file: Upload!, $group: String!, $force: Boolean!, $dry: Boolean!) {
  uploadHoldings(file: $file, group: $group, force: $force, dryRun: $dry) {
    storedAs replaced
    load { ok runId state dataVersion
      files { fileName group outcome reason line rowsRead holdings skipped
              guard { guard value limit count of added before after }
              changes { created reweighted deleted unchanged } } }
  }
}"#;

/// Sends `content` as `file_name` through the GraphQL multipart request spec.
async fn upload(
    router: &Router,
    file_name: &str,
    content: &[u8],
    group: &str,
    force: bool,
    dry_run: bool,
) -> (StatusCode, Value) {
    let boundary = "holdgraph-test-boundary";
    let operations = json!({
        "query": UPLOAD,
        "variables": { "file": null, "group": group, "force": force, "dry": dry_run },
    });
    let mut body = Vec::new();
    let mut part = |headers: &str, data: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"operations\"",
        operations.to_string().as_bytes(),
    );
    part(
        "Content-Disposition: form-data; name=\"map\"",
        br#"{"0": ["variables.file"]}"#,
    );
    part(
        &format!(
            "Content-Disposition: form-data; name=\"0\"; filename=\"{file_name}\"\r\nContent-Type: text/csv"
        ),
        content,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let request = Request::post("/graphql")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from(body))
        .expect("request");
    call(router, request).await
}

/// XLK's file without its last `n` holdings.
fn shortened(holdings: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(holdings.join("xlk_holdings.csv")).expect("xlk");
    let lines: Vec<&str> = text.lines().collect();
    lines[..lines.len() - n].join("\n") + "\n"
}

#[tokio::test]
async fn a_load_mutations_numbers_are_the_clis_json_and_the_tables() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    std::fs::write(dir.join("xlk_holdings.csv"), shortened(&dir, 3)).expect("write");
    // The CLI's dry run says what the real run in the same mode does.
    let cli = app
        .run(&[
            "--holdings-dir",
            &h,
            "load-etf-holdings",
            "--etf",
            "XLK",
            "--dry-run",
            "--json",
        ])
        .await;
    assert_eq!(cli.code, 0, "{}{}", cli.stdout, cli.stderr);
    let cli: Value = serde_json::from_str(&cli.stdout).expect("JSON");
    let cli_file = &cli["files"][0];

    let (_, router) = server(&app, &h, Some(TOKEN)).await;
    let r = gql(
        &router,
        r#"mutation { loadEtfHoldings(etf: "XLK") {
            ok runId state dataVersion dryRun
            run { id kind state finishedAt dataVersion }
            files { fileName group groupType shape md5 outcome rowsRead holdings skipped
                    skippedByReason { reason count }
                    changes { created updated reweighted deleted unchanged } }
            totals { files filesLoaded rowsRead changes { deleted } } } }"#,
        Some(TOKEN),
    )
    .await;
    let result = &r["data"]["loadEtfHoldings"];
    assert_eq!(result["ok"], true, "{r}");
    assert_eq!(result["dryRun"], false);
    assert_eq!(result["state"], "succeeded");
    let run_id = result["runId"].as_i64().expect("a run id");
    assert_eq!(result["run"]["id"], run_id);
    assert_eq!(result["run"]["kind"], "etf");
    assert_eq!(result["run"]["state"], "succeeded");
    assert!(result["run"]["finishedAt"].is_string(), "{r}");
    assert_eq!(result["run"]["dataVersion"], result["dataVersion"]);

    let file = &result["files"][0];
    assert_eq!(file["fileName"], cli_file["file_name"]);
    assert_eq!(file["group"], "XLK");
    assert_eq!(file["groupType"], "ETF");
    assert_eq!(file["shape"], cli_file["shape"]);
    assert_eq!(file["md5"], cli_file["md5"]);
    assert_eq!(file["outcome"], "LOADED");
    assert_eq!(file["rowsRead"], cli_file["rows_read"]);
    assert_eq!(file["holdings"], cli_file["holdings"]);
    let skipped: u64 = cli_file["skipped_by_reason"]
        .as_object()
        .expect("reasons")
        .values()
        .map(|v| v.as_u64().expect("count"))
        .sum();
    assert_eq!(file["skipped"], skipped);
    for (gql_name, cli_name) in [
        ("created", "created"),
        ("updated", "updated"),
        ("reweighted", "reweighted"),
        ("deleted", "deleted"),
        ("unchanged", "unchanged"),
    ] {
        assert_eq!(
            file["changes"][gql_name], cli_file["counts"][cli_name],
            "{gql_name}: {r}"
        );
    }
    assert_eq!(file["changes"]["deleted"], 3, "{r}");

    // The tables say the same.
    let members = app
        .count(
            "SELECT COUNT(*) FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
             WHERE g.type = 'ETF' AND g.name = 'XLK'",
        )
        .await;
    assert_eq!(file["holdings"], members);
    let removed = app
        .count(&format!(
            "SELECT COUNT(*) FROM membership_changes WHERE run_id = {run_id} AND change = 'removed'"
        ))
        .await;
    assert_eq!(file["changes"]["deleted"], removed);
    let recorded = app
        .count(&format!(
            "SELECT rows_read FROM load_run_files WHERE run_id = {run_id} AND group_name = 'XLK'"
        ))
        .await;
    assert_eq!(file["rowsRead"], recorded);
    let version = app
        .count("SELECT version FROM data_versions WHERE environment = 'DEFAULT'")
        .await;
    assert_eq!(result["dataVersion"], version);
    assert_eq!(result["totals"]["changes"]["deleted"], 3);
}

#[tokio::test]
async fn an_upload_rejected_or_held_back_changes_neither_the_data_nor_the_folder() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;
    let tables = app.dump_graph().await;
    let files = folder(&dir);

    // Not holdings at all.
    let (status, r) = upload(
        &router,
        "xlk_holdings.csv",
        b"this is,not\na holdings,file\n",
        "XLK",
        false,
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let up = &r["data"]["uploadHoldings"];
    assert_eq!(up["load"]["ok"], false, "{r}");
    assert_eq!(up["load"]["files"][0]["outcome"], "REJECTED", "{r}");
    assert!(
        up["load"]["files"][0]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("xlk_holdings.csv")),
        "the reason names the file: {r}"
    );
    assert_eq!(up["storedAs"], Value::Null);

    // A rejection that points at a line says which, as a number: here the header, the third
    // line of what was sent, which has no weight column.
    let headed = b"XLK holdings\nas of 2025-11-28\nsymbol,name\nAAPL,Apple Inc.\n";
    let (_, r) = upload(&router, "xlk_holdings.csv", headed, "XLK", false, false).await;
    let file = &r["data"]["uploadHoldings"]["load"]["files"][0];
    assert_eq!(file["outcome"], "REJECTED", "{r}");
    assert_eq!(file["line"], 3, "{r}");
    assert!(
        file["reason"]
            .as_str()
            .is_some_and(|m| m.contains("weight")),
        "{r}"
    );

    // XLE's holdings sent as XLK's: most of XLK would be replaced, so a guard holds it back.
    let xle = std::fs::read(dir.join("xle_holdings.csv")).expect("xle");
    let (_, r) = upload(&router, "xlk_holdings.csv", &xle, "XLK", false, false).await;
    let up = &r["data"]["uploadHoldings"];
    assert_eq!(up["load"]["files"][0]["outcome"], "HELD_BACK", "{r}");
    assert_eq!(up["storedAs"], Value::Null);
    // With the guard's figures as numbers: every one of XLK's members would go, XLE's come.
    let xlk_members = app
        .count(
            "SELECT COUNT(*) FROM group_memberships m JOIN definition_groups g \
             ON g.id = m.group_id WHERE g.name = 'XLK' AND g.type = 'ETF'",
        )
        .await;
    let guard = &up["load"]["files"][0]["guard"];
    assert_eq!(guard["guard"], "max-replaced-percent", "{r}");
    assert_eq!(guard["of"], xlk_members, "{r}");
    assert_eq!(guard["count"], xlk_members, "{r}");
    assert_eq!(guard["value"], 100.0, "{r}");
    assert_eq!(guard["limit"], 50.0, "{r}");
    assert_eq!(guard["added"], up["load"]["files"][0]["holdings"], "{r}");

    // A good file in a dry run is checked and reported, and kept nowhere.
    let (_, r) = upload(
        &router,
        "xlk_holdings.csv",
        shortened(&dir, 2).as_bytes(),
        "XLK",
        false,
        true,
    )
    .await;
    let up = &r["data"]["uploadHoldings"];
    assert_eq!(up["load"]["files"][0]["changes"]["deleted"], 2, "{r}");
    assert_eq!(up["load"]["runId"], Value::Null, "{r}");
    assert_eq!(up["storedAs"], Value::Null);

    // A file named for another group is refused before anything is read.
    let (_, r) = upload(&router, "xle_holdings.csv", &xle, "XLK", false, false).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");

    assert_eq!(app.dump_graph().await, tables, "the data is unchanged");
    assert_eq!(folder(&dir), files, "the holdings folder is unchanged");
}

#[tokio::test]
async fn an_accepted_upload_replaces_the_file_and_is_served_by_the_next_query() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;
    let query = r#"{ etf(name: "XLK") { memberCount } }"#;
    let before = gql(&router, query, None).await["data"]["etf"]["memberCount"]
        .as_i64()
        .expect("count");
    let content = shortened(&dir, 4);
    let (_, r) = upload(
        &router,
        "XLK_holdings.csv",
        content.as_bytes(),
        "XLK",
        false,
        false,
    )
    .await;
    let up = &r["data"]["uploadHoldings"];
    assert_eq!(up["load"]["ok"], true, "{r}");
    assert_eq!(up["load"]["files"][0]["changes"]["deleted"], 4, "{r}");
    assert_eq!(up["replaced"], true, "{r}");
    let stored = dir.join("xlk_holdings.csv");
    assert_eq!(up["storedAs"], "xlk_holdings.csv", "{r}");
    assert_eq!(
        std::fs::read_to_string(&stored).expect("stored"),
        content,
        "the folder holds the uploaded file"
    );
    assert!(
        !dir.join(".uploads").exists(),
        "no staging folder is left behind"
    );
    let after = gql(&router, query, None).await;
    assert_eq!(after["data"]["etf"]["memberCount"], before - 4, "{after}");
    // The folder and the data now agree: an incremental load finds nothing to do.
    let again = app
        .run(&["--holdings-dir", &h, "load-etf-holdings", "--etf", "XLK"])
        .await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("Unchanged"), "{}", again.stdout);
}

#[tokio::test]
async fn set_stock_sector_refuses_a_symbol_no_group_holds_unless_forced_and_resolves_aliases() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    let definitions = app.copy_definitions();
    setup(&app, &h).await;
    let overrides = definitions.join("sector_overrides.csv");
    let before = std::fs::read(&overrides).ok();
    let (_, router) = server(&app, &h, Some(TOKEN)).await;

    let r = gql(
        &router,
        r#"mutation { setStockSector(symbol: "ZZZZ", sector: "energy") { sector } }"#,
        Some(TOKEN),
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no group holds ZZZZ")),
        "{r}"
    );
    assert_eq!(
        std::fs::read(&overrides).ok(),
        before,
        "nothing was written"
    );

    let r = gql(
        &router,
        r#"mutation { setStockSector(symbol: "ZZZZ", sector: "energy", force: true) { symbol sector held } }"#,
        Some(TOKEN),
    )
    .await;
    let set = &r["data"]["setStockSector"];
    assert_eq!(set["sector"], "energy", "{r}");
    assert_eq!(set["held"], false, "{r}");

    let r = gql(
        &router,
        r#"mutation { setStockSector(symbol: "MSFT", sector: "Tech") { sector sectorName resolvedFrom } }"#,
        Some(TOKEN),
    )
    .await;
    let set = &r["data"]["setStockSector"];
    assert_eq!(set["sector"], "information_technology", "{r}");
    assert_eq!(set["resolvedFrom"], "Tech", "{r}");
    let kept = std::fs::read_to_string(&overrides).expect("overrides");
    assert!(
        kept.lines()
            .any(|l| l.starts_with("MSFT,information_technology")),
        "{kept}"
    );
}

#[test]
fn the_graphql_layer_uses_nothing_of_the_cli() {
    let dir = tests::project_dir().join("api/src/graphql");
    for entry in std::fs::read_dir(&dir).expect("graphql sources") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        assert!(
            !text.contains("crate::cli"),
            "{} uses the CLI: GraphQL must call crate::ops",
            path.display()
        );
    }
}

#[tokio::test]
async fn an_upload_over_the_file_size_limit_is_refused_and_leaves_no_trace() {
    use clap::Parser;
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let cli = holdgraph::Cli::try_parse_from([
        "holdgraph",
        "--database-url",
        &app.url,
        "--holdings-dir",
        &h,
        "--definitions-dir",
        &app.definitions_dir().display().to_string(),
        "--max-file-bytes",
        "100",
        "setup",
    ])
    .expect("args");
    let settings = holdgraph::state::ServerSettings {
        admin_token: Some(TOKEN.to_owned()),
        ..holdgraph::state::ServerSettings::default()
    };
    let state = holdgraph::state::AppState::new(app.db.clone(), cli.config, settings)
        .await
        .expect("state");
    let router = holdgraph::http::router(state);
    let tables = app.dump_graph().await;
    let files = folder(&dir);

    let content = std::fs::read(dir.join("xlk_holdings.csv")).expect("xlk");
    assert!(content.len() > 100, "the file is over the limit set here");
    let (_, r) = upload(&router, "xlk_holdings.csv", &content, "XLK", false, false).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than 100 bytes")),
        "{r}"
    );
    assert_eq!(app.dump_graph().await, tables, "the data is as it was");
    assert_eq!(
        folder(&dir),
        files,
        "the folder is as it was: no staging left behind"
    );
}
