//! History and rollback over GraphQL, end to end: `loadRuns` pages and filters as the run log
//! in SQL does, `loadRun` and `changes` name exactly the file and the change records a load
//! wrote, `holdingsAt` and `diff` give the members read from the tables after each load, and
//! `rollbackRun` puts the graph back, writes nothing in a dry run, and is refused behind a
//! later run unless forced. Each test on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL`
//! is set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::Router;
use serde_json::Value;
use tests::TestApp;

use crate::graphql::{TOKEN, code, gql, server, setup};

/// The holding the XLK edit drops.
const REMOVED: &str = "SWKS";
/// The holding the XLK edit reweights, and its new weight.
const REWEIGHTED: (&str, f64) = ("MSFT", 12.5);
/// The holding the XLK edit adds, and its weight.
const ADDED: (&str, f64) = ("ZZZT", 0.01);

/// Edits XLK's file: drops [`REMOVED`], gives [`REWEIGHTED`] its new weight, appends [`ADDED`].
fn edit_xlk(dir: &Path) {
    let path = dir.join("xlk_holdings.csv");
    let text = std::fs::read_to_string(&path).expect("read xlk");
    let mut seen = (false, false);
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with(&format!("{REMOVED},")) {
            seen.0 = true;
        } else if line.starts_with(&format!("{},", REWEIGHTED.0)) {
            seen.1 = true;
            let (rest, _) = line.rsplit_once(',').expect("a weight column");
            lines.push(format!("{rest},{}", REWEIGHTED.1));
        } else {
            lines.push(line.to_owned());
        }
    }
    assert_eq!(
        seen,
        (true, true),
        "XLK holds {REMOVED} and {}",
        REWEIGHTED.0
    );
    lines.push(format!("{},TEST HOLDING INC,{}", ADDED.0, ADDED.1));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write xlk");
}

/// Rewrites one holding's weight in a file (the last column of its line).
fn set_weight(path: &Path, symbol: &str, weight: f64) {
    let text = std::fs::read_to_string(path).expect("read");
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with(&format!("{symbol},")) {
                found = true;
                let (rest, _) = line.rsplit_once(',').expect("a weight column");
                format!("{rest},{weight}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(found, "{} holds {symbol}", path.display());
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

/// `loadEtfHoldings` (incremental) of one ETF, or of every ETF file; must be `ok`.
async fn load_etf(router: &Router, etf: Option<&str>) -> Value {
    let args = etf.map_or(String::new(), |e| format!("(etf: \"{e}\")"));
    let r = gql(
        router,
        &format!(
            "mutation {{ loadEtfHoldings{args} {{ ok runId state dataVersion
                files {{ fileName group outcome md5
                         changes {{ created updated reweighted deleted unchanged }} }} }} }}"
        ),
        Some(TOKEN),
    )
    .await;
    let result = r["data"]["loadEtfHoldings"].clone();
    assert_eq!(result["ok"], true, "{r}");
    assert!(result["runId"].is_i64(), "the load is recorded: {r}");
    result
}

fn run_id(result: &Value) -> i64 {
    result["runId"].as_i64().expect("a run id")
}

const ROLLBACK_FIELDS: &str = "ok runId dryRun state dataVersion scope
    files { fileName group outcome changes { created updated reweighted deleted unchanged } }";

/// `rollbackRun(id, dryRun, force)` with the admin token: the whole response.
async fn rollback_run(router: &Router, id: i64, dry_run: bool, force: bool) -> Value {
    gql(
        router,
        &format!(
            "mutation {{ rollbackRun(id: {id}, dryRun: {dry_run}, force: {force}) \
             {{ {ROLLBACK_FIELDS} }} }}"
        ),
        Some(TOKEN),
    )
    .await
}

/// An integer column (INTEGER on SQLite, int4 or int8 on PostgreSQL).
fn int(row: &sea_orm::QueryResult, index: usize) -> Option<i64> {
    row.try_get_by_index::<Option<i64>>(index)
        .or_else(|_| {
            row.try_get_by_index::<Option<i32>>(index)
                .map(|v| v.map(i64::from))
        })
        .expect("integer")
}

/// The first column of every row, as integers.
async fn ints(app: &TestApp, sql: &str) -> Vec<i64> {
    app.rows(sql)
        .await
        .iter()
        .map(|r| int(r, 0).expect("not null"))
        .collect()
}

/// The first column of every row, as text.
async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    app.rows(sql)
        .await
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

/// An ETF's members as stored right now: symbol → weight.
async fn members(app: &TestApp, etf: &str) -> BTreeMap<String, Option<f64>> {
    app.rows(&format!(
        "SELECT m.symbol, m.weight FROM group_memberships m \
             JOIN definition_groups g ON g.id = m.group_id \
             WHERE g.environment = 'DEFAULT' AND g.type = 'ETF' AND g.name = '{etf}'"
    ))
    .await
    .iter()
    .map(|r| {
        (
            r.try_get_by_index::<String>(0).expect("symbol"),
            r.try_get_by_index::<Option<f64>>(1).expect("weight"),
        )
    })
    .collect()
}

/// One recorded membership change: group, symbol, change, old weight, new weight.
type Change = (String, String, String, Option<f64>, Option<f64>);

/// The change records of one run, newest first, as SQL reads them.
async fn recorded_changes(app: &TestApp, run: i64) -> Vec<Change> {
    app.rows(&format!(
        "SELECT group_name, symbol, change, old_weight, new_weight FROM membership_changes \
             WHERE run_id = {run} ORDER BY id DESC"
    ))
    .await
    .iter()
    .map(|r| {
        (
            r.try_get_by_index::<String>(0).expect("group"),
            r.try_get_by_index::<String>(1).expect("symbol"),
            r.try_get_by_index::<String>(2).expect("change"),
            r.try_get_by_index::<Option<f64>>(3).expect("old weight"),
            r.try_get_by_index::<Option<f64>>(4).expect("new weight"),
        )
    })
    .collect()
}

/// Change nodes of the API (`group symbol change oldWeight newWeight`) as [`Change`]s.
fn api_changes(nodes: &Value) -> Vec<Change> {
    nodes
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["group"].as_str().expect("group").to_owned(),
                n["symbol"].as_str().expect("symbol").to_owned(),
                n["change"].as_str().expect("change").to_owned(),
                n["oldWeight"].as_f64(),
                n["newWeight"].as_f64(),
            )
        })
        .collect()
}

/// Every page of the connection field `name(args)`, asked `first: size` at a time and
/// continued from each page's `endCursor`: the nodes in order, and every page's `totalCount`.
async fn walk(
    router: &Router,
    name: &str,
    args: &str,
    size: usize,
    node: &str,
) -> (Vec<Value>, Vec<Value>) {
    let args = if args.is_empty() {
        String::new()
    } else {
        format!("{args}, ")
    };
    let mut after = String::new();
    let mut nodes = Vec::new();
    let mut totals = Vec::new();
    for page in 0.. {
        assert!(page < 10_000, "the pages of {name} never end");
        let r = gql(
            router,
            &format!(
                "{{ {name}({args}first: {size}{after}) {{ totalCount \
                 pageInfo {{ hasNextPage hasPreviousPage endCursor }} nodes {{ {node} }} }} }}"
            ),
            None,
        )
        .await;
        let connection = &r["data"][name];
        let got = connection["nodes"].as_array().expect("nodes").clone();
        let info = &connection["pageInfo"];
        assert_eq!(info["hasPreviousPage"], page > 0, "{r}");
        totals.push(connection["totalCount"].clone());
        let more = info["hasNextPage"].as_bool().expect("hasNextPage");
        if more {
            assert_eq!(got.len(), size, "a page before the last is full: {r}");
        } else {
            assert!(got.len() <= size, "{r}");
        }
        nodes.extend(got);
        if !more {
            break;
        }
        // The cursor as a GraphQL string literal (JSON's quoting is GraphQL's).
        after = format!(", after: {}", info["endCursor"]);
    }
    (nodes, totals)
}

fn ids(nodes: &[Value]) -> Vec<i64> {
    nodes
        .iter()
        .map(|n| n["id"].as_i64().expect("id"))
        .collect()
}

/// MD5 of `data` as lowercase hex, computed here so the test checks the recorded hash against
/// one made independently of the loader.
fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn load_runs_pages_through_every_run_once_newest_first_and_filters_as_sql_does() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;

    set_weight(&dir.join("xle_holdings.csv"), "XOM", 23.5);
    let changed = run_id(&load_etf(&router, Some("XLE")).await);
    // Every file as loaded already: a run that changes nothing, kept in the log all the same.
    let unchanged = load_etf(&router, None).await;
    assert_eq!(unchanged["dataVersion"], Value::Null, "{unchanged}");
    let unchanged = run_id(&unchanged);
    // A file that is not holdings at all: a rejected run, in the log too.
    std::fs::write(dir.join("xlb_holdings.csv"), "just,some,words\n1,2,3\n").expect("write");
    let r = gql(
        &router,
        r#"mutation { loadEtfHoldings(etf: "XLB") { ok runId state dataVersion } }"#,
        Some(TOKEN),
    )
    .await;
    let rejected = &r["data"]["loadEtfHoldings"];
    assert_eq!(rejected["ok"], false, "{r}");
    assert_eq!(rejected["state"], "rejected", "{r}");
    let rejected = run_id(rejected);

    let all = ints(&app, "SELECT id FROM load_runs ORDER BY id DESC").await;
    let count = app.count("SELECT COUNT(*) FROM load_runs").await;
    assert!(all.len() > 3, "setup and three loads recorded their runs");
    let node = "id kind state dataVersion changedData";
    let (nodes, totals) = walk(&router, "loadRuns", "", 1, node).await;
    assert_eq!(ids(&nodes), all, "every run once, newest first");
    assert!(totals.iter().all(|t| *t == count), "{totals:?} vs {count}");
    let (nodes3, _) = walk(&router, "loadRuns", "", 3, node).await;
    assert_eq!(ids(&nodes3), all, "the same in pages of three");

    // `changedData` is whether the run committed a data version, run by run.
    let versions: BTreeMap<i64, Option<i64>> = app
        .rows("SELECT id, data_version FROM load_runs")
        .await
        .iter()
        .map(|r| (int(r, 0).expect("id"), int(r, 1)))
        .collect();
    for n in &nodes {
        let id = n["id"].as_i64().expect("id");
        assert_eq!(n["dataVersion"].as_i64(), versions[&id], "{n}");
        assert_eq!(n["changedData"], versions[&id].is_some(), "{n}");
    }
    let by_id = |id: i64| {
        nodes
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("run {id} is listed"))
    };
    assert_eq!(by_id(changed)["changedData"], true);
    assert_eq!(by_id(changed)["kind"], "etf");
    assert_eq!(by_id(unchanged)["changedData"], false);
    assert_eq!(by_id(unchanged)["kind"], "etf");
    assert_eq!(by_id(rejected)["changedData"], false);
    assert_eq!(by_id(rejected)["state"], "rejected");

    // Each kind and each state recorded, one page at a time, as SQL selects them.
    let kinds = texts(&app, "SELECT DISTINCT kind FROM load_runs").await;
    assert!(kinds.len() > 1, "setup runs several kinds: {kinds:?}");
    for kind in &kinds {
        let (nodes, totals) =
            walk(&router, "loadRuns", &format!("kind: \"{kind}\""), 1, node).await;
        let expected = ints(
            &app,
            &format!("SELECT id FROM load_runs WHERE kind = '{kind}' ORDER BY id DESC"),
        )
        .await;
        assert_eq!(ids(&nodes), expected, "kind {kind}");
        assert!(nodes.iter().all(|n| n["kind"] == kind.as_str()));
        assert!(totals.iter().all(|t| *t == expected.len()), "kind {kind}");
    }
    let states = texts(&app, "SELECT DISTINCT state FROM load_runs").await;
    assert!(states.len() > 1, "succeeded and rejected runs: {states:?}");
    for state in &states {
        let (nodes, totals) =
            walk(&router, "loadRuns", &format!("state: \"{state}\""), 2, node).await;
        let expected = ints(
            &app,
            &format!("SELECT id FROM load_runs WHERE state = '{state}' ORDER BY id DESC"),
        )
        .await;
        assert_eq!(ids(&nodes), expected, "state {state}");
        assert!(totals.iter().all(|t| *t == expected.len()), "state {state}");
    }
    let (etf_ok, _) = walk(
        &router,
        "loadRuns",
        "kind: \"etf\", state: \"succeeded\"",
        100,
        node,
    )
    .await;
    let expected = ints(
        &app,
        "SELECT id FROM load_runs WHERE kind = 'etf' AND state = 'succeeded' ORDER BY id DESC",
    )
    .await;
    assert_eq!(ids(&etf_ok), expected);
    assert!(expected.contains(&changed) && expected.contains(&unchanged));
    assert!(!expected.contains(&rejected));
    let (rejected_runs, _) = walk(&router, "loadRuns", "state: \"rejected\"", 5, node).await;
    assert_eq!(ids(&rejected_runs), [rejected]);

    // Filters that match nothing give an empty connection, not an error.
    let r = gql(
        &router,
        r#"{ loadRuns(kind: "rollback") { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }"#,
        None,
    )
    .await;
    assert_eq!(r["data"]["loadRuns"]["totalCount"], 0, "{r}");
    assert_eq!(r["data"]["loadRuns"]["nodes"], serde_json::json!([]), "{r}");
    assert_eq!(
        r["data"]["loadRuns"]["pageInfo"]["hasNextPage"], false,
        "{r}"
    );
}

#[tokio::test]
async fn load_run_names_the_edited_file_with_its_md5_and_the_changes_sql_recorded() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;

    edit_xlk(&dir);
    let bytes = std::fs::read(dir.join("xlk_holdings.csv")).expect("xlk");
    let result = load_etf(&router, Some("XLK")).await;
    let run = run_id(&result);

    let r = gql(
        &router,
        &format!(
            "{{ loadRun(id: {run}) {{ id kind mode state changedData dataVersion
                files {{ fileName group groupType md5 status created updated deleted }}
                report
                changes(first: 100) {{ totalCount pageInfo {{ hasNextPage }}
                    nodes {{ runId group groupType symbol change oldWeight newWeight }} }}
                xlk: changes(group: \"XLK\") {{ nodes {{ symbol }} }}
                spy: changes(group: \"SPY\") {{ nodes {{ symbol }} }} }} }}"
        ),
        None,
    )
    .await;
    let load_run = &r["data"]["loadRun"];
    assert_eq!(load_run["id"], run, "{r}");
    assert_eq!(load_run["kind"], "etf");
    assert_eq!(load_run["state"], "succeeded");
    assert_eq!(load_run["changedData"], true);
    assert_eq!(load_run["dataVersion"], result["dataVersion"]);
    assert!(load_run["report"].is_object(), "the run's report: {r}");

    // Its one file is XLK's, with the MD5 of the bytes on disk, as load_run_files says.
    let files = load_run["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{r}");
    let file = &files[0];
    assert_eq!(file["fileName"], "xlk_holdings.csv");
    assert_eq!(file["group"], "XLK");
    assert_eq!(file["groupType"], "ETF");
    assert_eq!(file["md5"], md5_hex(&bytes));
    assert_eq!(file["md5"], result["files"][0]["md5"]);
    assert_eq!(file["status"], "loaded");
    let recorded = texts(
        &app,
        &format!("SELECT file_name FROM load_run_files WHERE run_id = {run}"),
    )
    .await;
    assert_eq!(recorded, ["xlk_holdings.csv"]);
    let (created, deleted) = (file["created"].as_i64(), file["deleted"].as_i64());
    assert_eq!((created, deleted), (Some(1), Some(1)), "{file}");

    // Its changes are the run's change records, newest first: the three the edit made.
    let expected = recorded_changes(&app, run).await;
    let nodes = &load_run["changes"]["nodes"];
    assert_eq!(api_changes(nodes), expected);
    assert_eq!(load_run["changes"]["totalCount"], expected.len());
    assert_eq!(load_run["changes"]["pageInfo"]["hasNextPage"], false);
    assert!(
        nodes
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["runId"] == run && n["groupType"] == "ETF"),
        "{nodes}"
    );
    let by_symbol: BTreeMap<&str, (&str, Option<f64>)> = expected
        .iter()
        .map(|(_, s, c, _, new)| (s.as_str(), (c.as_str(), *new)))
        .collect();
    assert_eq!(
        by_symbol,
        BTreeMap::from([
            (REMOVED, ("removed", None)),
            (REWEIGHTED.0, ("reweighted", Some(REWEIGHTED.1))),
            (ADDED.0, ("added", Some(ADDED.1))),
        ])
    );
    let symbols = |v: &Value| -> BTreeSet<String> {
        v["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|n| n["symbol"].as_str().expect("symbol").to_owned())
            .collect()
    };
    assert_eq!(
        symbols(&load_run["xlk"]),
        expected.iter().map(|c| c.1.clone()).collect()
    );
    assert!(
        symbols(&load_run["spy"]).is_empty(),
        "the run left SPY alone"
    );

    // The cross-group feed, filtered to the run, pages through exactly those records.
    let (feed, _) = walk(
        &router,
        "changes",
        &format!("runId: {run}"),
        1,
        "id runId group symbol change oldWeight newWeight",
    )
    .await;
    assert_eq!(api_changes(&Value::Array(feed.clone())), expected);
    let feed_ids = ids(&feed);
    let sql_ids = ints(
        &app,
        &format!("SELECT id FROM membership_changes WHERE run_id = {run} ORDER BY id DESC"),
    )
    .await;
    assert_eq!(feed_ids, sql_ids);
    let (feed_xlk, _) = walk(
        &router,
        "changes",
        &format!("runId: {run}, group: \"xlk\""),
        2,
        "id",
    )
    .await;
    assert_eq!(ids(&feed_xlk), sql_ids, "a group named in any case");

    let r = gql(&router, "{ loadRun(id: 999999) { id } }", None).await;
    assert_eq!(r["data"]["loadRun"], Value::Null, "{r}");
}

#[tokio::test]
async fn holdings_at_and_diff_give_the_members_sql_read_after_each_load() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;
    let before_run = ints(&app, "SELECT MAX(id) FROM load_runs").await[0];
    let before = members(&app, "XLK").await;
    let setup_state = texts(
        &app,
        &format!("SELECT state FROM load_runs WHERE id = {before_run}"),
    )
    .await;
    assert_eq!(setup_state, ["succeeded"], "setup's last run committed");

    edit_xlk(&dir);
    let after_run = run_id(&load_etf(&router, Some("XLK")).await);
    let after = members(&app, "XLK").await;
    assert_ne!(before, after);
    // A later run on XLK moves it on again; the points asked about stay where they were.
    set_weight(&dir.join("xlk_holdings.csv"), "NVDA", 15.0);
    let later_run = run_id(&load_etf(&router, Some("XLK")).await);
    let later = members(&app, "XLK").await;
    assert_ne!(after, later);

    let holdings_at = |run: i64| {
        let router = &router;
        async move {
            let r = gql(
                router,
                &format!(r#"{{ holdingsAt(group: "XLK", runId: {run}) {{ symbol weight }} }}"#),
                None,
            )
            .await;
            let list = r["data"]["holdingsAt"]
                .as_array()
                .expect("holdings")
                .clone();
            let weights: Vec<f64> = list
                .iter()
                .map(|h| h["weight"].as_f64().expect("weighted"))
                .collect();
            assert!(
                weights.windows(2).all(|w| w[0] >= w[1]),
                "heaviest first: {r}"
            );
            let got: BTreeMap<String, Option<f64>> = list
                .iter()
                .map(|h| {
                    (
                        h["symbol"].as_str().expect("symbol").to_owned(),
                        h["weight"].as_f64(),
                    )
                })
                .collect();
            assert_eq!(got.len(), list.len(), "each member once: {r}");
            got
        }
    };
    assert_eq!(holdings_at(before_run).await, before);
    assert_eq!(holdings_at(after_run).await, after);
    assert_eq!(holdings_at(later_run).await, later);

    // At the time a run finished: every run committed by then, none after.
    let finished = gql(
        &router,
        &format!("{{ loadRun(id: {after_run}) {{ finishedAt }} }}"),
        None,
    )
    .await["data"]["loadRun"]["finishedAt"]
        .clone();
    assert!(finished.is_string(), "{finished}");
    let r = gql(
        &router,
        &format!(r#"{{ holdingsAt(group: "XLK", time: {finished}) {{ symbol weight }} }}"#),
        None,
    )
    .await;
    let at_time: BTreeMap<String, Option<f64>> = r["data"]["holdingsAt"]
        .as_array()
        .unwrap_or_else(|| panic!("holdings at {finished}: {r}"))
        .iter()
        .map(|h| {
            (
                h["symbol"].as_str().expect("symbol").to_owned(),
                h["weight"].as_f64(),
            )
        })
        .collect();
    assert_eq!(at_time, after, "at {finished}");

    // The diff names exactly the symbols whose membership or weight differs.
    let differing = |from: &BTreeMap<String, Option<f64>>, to: &BTreeMap<String, Option<f64>>| {
        from.keys()
            .chain(to.keys())
            .filter(|s| from.get(*s) != to.get(*s))
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    let diff = |from: i64, to: i64| {
        let router = &router;
        async move {
            let r = gql(
                router,
                &format!(
                    r#"{{ diff(group: "XLK", fromRun: {from}, toRun: {to}) {{ symbol change oldWeight newWeight }} }}"#
                ),
                None,
            )
            .await;
            r["data"]["diff"].as_array().expect("diff").clone()
        }
    };
    for (from_run, from, to_run, to) in [
        (before_run, &before, after_run, &after),
        (after_run, &after, before_run, &before),
        (before_run, &before, later_run, &later),
        (after_run, &after, later_run, &later),
    ] {
        let entries = diff(from_run, to_run).await;
        let named: BTreeSet<String> = entries
            .iter()
            .map(|e| e["symbol"].as_str().expect("symbol").to_owned())
            .collect();
        assert_eq!(named, differing(from, to), "{from_run} → {to_run}");
        assert_eq!(named.len(), entries.len(), "each symbol once");
        for e in &entries {
            let symbol = e["symbol"].as_str().expect("symbol");
            let (old, new) = (from.get(symbol), to.get(symbol));
            assert_eq!(e["oldWeight"].as_f64(), old.copied().flatten(), "{e}");
            assert_eq!(e["newWeight"].as_f64(), new.copied().flatten(), "{e}");
            let change = match (old, new) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                _ => "reweighted",
            };
            assert_eq!(e["change"], change, "{e}");
        }
    }
    // The edit's three changes, from the edit itself.
    let named: BTreeSet<String> = diff(before_run, after_run)
        .await
        .iter()
        .map(|e| e["symbol"].as_str().expect("symbol").to_owned())
        .collect();
    assert_eq!(
        named,
        BTreeSet::from([REMOVED, REWEIGHTED.0, ADDED.0].map(str::to_owned))
    );
    assert!(diff(after_run, after_run).await.is_empty());

    let r = gql(
        &router,
        r#"{ holdingsAt(group: "NOPE", runId: 1) { symbol } }"#,
        None,
    )
    .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");
    let r = gql(&router, r#"{ holdingsAt(group: "XLK") { symbol } }"#, None).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
}

#[tokio::test]
async fn rollback_run_restores_the_graph_writes_nothing_in_a_dry_run_and_is_refused_behind_a_later_run_unless_forced()
 {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    let h = dir.display().to_string();
    setup(&app, &h).await;
    let (_, router) = server(&app, &h, Some(TOKEN)).await;
    let before = app.stored_graph().await;
    let count_query = r#"{ etf(name: "XLK") { memberCount } }"#;
    let served_before = gql(&router, count_query, None).await["data"]["etf"]["memberCount"].clone();

    edit_xlk(&dir);
    let run = run_id(&load_etf(&router, Some("XLK")).await);
    let after_load = app.stored_graph().await;
    assert_ne!(after_load, before, "the load changed the graph");
    let xlk_after = members(&app, "XLK").await;

    // Without the token: refused, nothing written.
    let stored = app.dump().await;
    let r = gql(
        &router,
        &format!("mutation {{ rollbackRun(id: {run}) {{ ok }} }}"),
        None,
    )
    .await;
    assert_eq!(code(&r), "UNAUTHENTICATED", "{r}");

    // A dry run says what the rollback does and writes nothing at all.
    let r = rollback_run(&router, run, true, false).await;
    let dry = &r["data"]["rollbackRun"];
    assert_eq!(dry["ok"], true, "{r}");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["runId"], Value::Null, "a dry run records nothing");
    assert_eq!(dry["dataVersion"], Value::Null);
    assert_eq!(app.dump().await, stored, "a dry run writes nothing");
    let files = dry["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "one entry per group the run touched: {r}");
    assert_eq!(files[0]["group"], "XLK");
    assert_eq!(files[0]["outcome"], "LOADED");
    // Undoing the edit: the removed holding back, the added one gone, the weight restored.
    let unchanged = xlk_after.len() - 2;
    assert_eq!(
        files[0]["changes"],
        serde_json::json!({
            "created": 1, "updated": 1, "reweighted": 1, "deleted": 1, "unchanged": unchanged
        }),
        "{r}"
    );

    let r = rollback_run(&router, run, false, false).await;
    let real = &r["data"]["rollbackRun"];
    assert_eq!(real["ok"], true, "{r}");
    assert_eq!(real["dryRun"], false);
    assert_eq!(real["files"], dry["files"], "the dry run said what it does");
    assert_eq!(real["scope"], format!("run {run}"));
    let undo = real["runId"].as_i64().expect("the rollback is recorded");
    assert!(undo > run);
    assert_eq!(
        app.stored_graph().await,
        before,
        "the graph is as before the load"
    );
    let version = app
        .count("SELECT version FROM data_versions WHERE environment = 'DEFAULT'")
        .await;
    assert_eq!(
        real["dataVersion"], version,
        "it committed the current version"
    );
    let served = gql(&router, count_query, None).await;
    assert_eq!(
        served["data"]["etf"]["memberCount"], served_before,
        "served at once: {served}"
    );

    // The rollback is a run of kind `rollback` in the log.
    let r = gql(
        &router,
        r#"{ loadRuns(kind: "rollback") { totalCount nodes { id kind state changedData scope } } }"#,
        None,
    )
    .await;
    let runs = &r["data"]["loadRuns"];
    assert_eq!(runs["totalCount"], 1, "{r}");
    assert_eq!(runs["nodes"][0]["id"], undo);
    assert_eq!(runs["nodes"][0]["kind"], "rollback");
    assert_eq!(runs["nodes"][0]["state"], "succeeded");
    assert_eq!(runs["nodes"][0]["changedData"], true);
    let r = gql(
        &router,
        "{ loadRuns(first: 1) { nodes { id kind } } }",
        None,
    )
    .await;
    assert_eq!(r["data"]["loadRuns"]["nodes"][0]["id"], undo, "newest: {r}");
    assert_eq!(r["data"]["loadRuns"]["nodes"][0]["kind"], "rollback");
    let kinds = texts(
        &app,
        &format!("SELECT kind FROM load_runs WHERE id = {undo}"),
    )
    .await;
    assert_eq!(kinds, ["rollback"]);
    // Its own changes are the load's, undone.
    let undone: BTreeMap<String, String> = recorded_changes(&app, undo)
        .await
        .into_iter()
        .map(|(_, s, c, _, _)| (s, c))
        .collect();
    assert_eq!(
        undone,
        BTreeMap::from([
            (REMOVED.to_owned(), "added".to_owned()),
            (REWEIGHTED.0.to_owned(), "reweighted".to_owned()),
            (ADDED.0.to_owned(), "removed".to_owned()),
        ])
    );

    // The edited file is still there: the next load reads it again (run B), and a later run
    // on XLK (run C) stands behind B.
    let b = load_etf(&router, Some("XLK")).await;
    assert_eq!(b["files"][0]["outcome"], "LOADED", "{b}");
    let b = run_id(&b);
    assert_eq!(app.stored_graph().await, after_load);
    set_weight(&dir.join("xlk_holdings.csv"), "NVDA", 15.0);
    let c = run_id(&load_etf(&router, Some("XLK")).await);
    let before_force = app.stored_graph().await;
    let stored = app.dump().await;
    for dry_run in [false, true] {
        let r = rollback_run(&router, b, dry_run, false).await;
        assert_eq!(code(&r), "REFUSED", "{r}");
        let message = r["errors"][0]["message"].as_str().expect("message");
        assert!(
            message.contains(&format!("#{c}")) && message.contains("XLK"),
            "names the later run and the group: {message}"
        );
        assert_eq!(r["data"], Value::Null, "{r}");
    }
    assert_eq!(app.dump().await, stored, "a refusal writes nothing");
    assert_eq!(app.stored_graph().await, before_force);

    // Forced: XLK is as before B (as the rollback left it), C's change undone too.
    let r = rollback_run(&router, b, false, true).await;
    let forced = &r["data"]["rollbackRun"];
    assert_eq!(forced["ok"], true, "{r}");
    assert!(forced["runId"].as_i64().is_some_and(|id| id > c), "{r}");
    assert_eq!(app.stored_graph().await, before, "XLK is as before run {b}");
    assert_eq!(
        ints(
            &app,
            "SELECT COUNT(*) FROM load_runs WHERE kind = 'rollback'"
        )
        .await,
        [2]
    );
}
