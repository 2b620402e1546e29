//! Undo and history: rolling back a run puts its groups back exactly as they were, is refused
//! behind later runs unless forced, brings back groups a full run removed, does not leave
//! incremental loads believing a rolled-back file is loaded; a group's holdings can be read as
//! they were after any run. Each test on SQLite, and on PostgreSQL when `TEST_POSTGRES_URL`
//! is set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use entity::{GroupType, definition_group, group_change, group_membership, load_run};
use loader::LoadError;
use loader::history::{
    self, At, ChangeFilter, DiffEntry, Holding, RollbackRefused, RollbackRequest, RunFilter,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tests::{Output, TestApp, dataset};

use crate::writes::{load_etfs, report, what_it_does};

/// A holdings folder in the test's scratch space with copies of these dataset files only.
fn holdings_of(app: &TestApp, files: &[&str]) -> PathBuf {
    let to = app.dir.path().join("holdings");
    std::fs::create_dir_all(&to).expect("holdings folder");
    for file in files {
        std::fs::copy(dataset().join("holdings").join(file), to.join(file)).expect("copy");
    }
    to
}

/// `holdgraph --holdings-dir DIR load-etf-holdings --json ARGS...`, which must succeed; its
/// run id.
async fn load(app: &TestApp, dir: &Path, args: &[&str]) -> i32 {
    let out = load_out(app, dir, args).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    run_id(&report(&out))
}

async fn load_out(app: &TestApp, dir: &Path, args: &[&str]) -> Output {
    load_etfs(app, &[], dir, args).await
}

fn run_id(report: &Value) -> i32 {
    let id = report["run_id"].as_i64().expect("a run id");
    i32::try_from(id).expect("id")
}

/// One file's (group's) entry in a report.
fn file<'a>(report: &'a Value, group_name: &str) -> &'a Value {
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["group_name"] == group_name)
        .unwrap_or_else(|| panic!("{group_name} is not in the report: {report}"))
}

/// Rewrites a holdings file line by line (`None` drops the line), then appends `extra`.
fn edit(path: &Path, change: impl Fn(&str) -> Option<String>, extra: &[&str]) {
    let text = std::fs::read_to_string(path).expect("read");
    let mut lines: Vec<String> = text.lines().filter_map(&change).collect();
    lines.extend(extra.iter().map(|l| (*l).to_owned()));
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

/// SPY changed every way a membership can change: MSFT reweighted, AAPL renamed (its metadata
/// alone), NWS gone, ZZZT new.
fn change_spy(dir: &Path) {
    edit(
        &dir.join("spy_holdings.csv"),
        |l| {
            if l.starts_with("MSFT,") {
                Some("MSFT,MICROSOFT CORP,6.5".to_owned())
            } else if l.starts_with("AAPL,") {
                Some(l.replace("APPLE INC", "APPLE INC."))
            } else if l.starts_with("NWS,") {
                None
            } else {
                Some(l.to_owned())
            }
        },
        &["ZZZT,TEST HOLDING INC,0.01"],
    );
}

/// One group's members as stored, heaviest first then by symbol (the order `holdings_at`
/// gives), read directly from the tables.
async fn stored_holdings(app: &TestApp, group_type: GroupType, name: &str) -> Option<Vec<Holding>> {
    let group = definition_group::Entity::find()
        .filter(definition_group::Column::Environment.eq("DEFAULT"))
        .filter(definition_group::Column::GroupType.eq(group_type.as_str()))
        .filter(definition_group::Column::Name.eq(name))
        .one(&app.db)
        .await
        .expect("group")?;
    let mut members: Vec<Holding> = group_membership::Entity::find()
        .filter(group_membership::Column::GroupId.eq(group.id))
        .all(&app.db)
        .await
        .expect("members")
        .into_iter()
        .map(|m| Holding {
            symbol: m.symbol,
            weight: m.weight,
            metadata: m.metadata,
        })
        .collect();
    members.sort_by(|a, b| {
        b.weight
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.weight.unwrap_or(f64::NEG_INFINITY))
            .then_with(|| a.symbol.cmp(&b.symbol))
    });
    Some(members)
}

fn request(run_id: i32) -> RollbackRequest {
    RollbackRequest {
        environment: "DEFAULT".to_owned(),
        run_id,
        dry_run: false,
        force: false,
    }
}

async fn rollback(app: &TestApp, req: &RollbackRequest) -> Result<loader::LoadReport, LoadError> {
    history::rollback(&app.db, req).await
}

async fn run_record(app: &TestApp, id: i32) -> load_run::Model {
    load_run::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .expect("run")
        .expect("the run is recorded")
}

/// The membership changes one run recorded: symbol → (change, old metadata, new metadata).
async fn changes_of(
    app: &TestApp,
    run: i32,
    group: &str,
) -> BTreeMap<String, (String, Option<Value>, Option<Value>)> {
    entity::membership_change::Entity::find()
        .filter(entity::membership_change::Column::RunId.eq(run))
        .filter(entity::membership_change::Column::GroupName.eq(group))
        .all(&app.db)
        .await
        .expect("changes")
        .into_iter()
        .map(|c| (c.symbol, (c.change, c.old_metadata, c.new_metadata)))
        .collect()
}

async fn group_changes_of(app: &TestApp, run: i32) -> Vec<(String, String)> {
    group_change::Entity::find()
        .filter(group_change::Column::RunId.eq(run))
        .order_by_asc(group_change::Column::GroupName)
        .all(&app.db)
        .await
        .expect("group changes")
        .into_iter()
        .map(|c| (c.group_name, c.change))
        .collect()
}

#[tokio::test]
async fn a_rollback_of_a_load_restores_the_groups_and_members_exactly() {
    let app = TestApp::new().await;
    let dir = holdings_of(
        &app,
        &["spy_holdings.csv", "xle_holdings.csv", "xlk_holdings.csv"],
    );
    load(&app, &dir, &["--rebuild"]).await;
    let before = app.stored_graph().await;

    change_spy(&dir);
    std::fs::write(
        dir.join("zzq_holdings.csv"),
        "symbol,name,weight\nAAPL,APPLE INC,60\nMSFT,MICROSOFT CORP,40\n",
    )
    .expect("new fund");
    let run = load(&app, &dir, &[]).await;
    assert_ne!(
        app.stored_graph().await,
        before,
        "the load changed the graph"
    );

    // Every change carries what undoing it needs; a renamed holding is an `updated` change.
    let spy = changes_of(&app, run, "SPY").await;
    let kinds: BTreeMap<&str, &str> = spy
        .iter()
        .map(|(s, (c, _, _))| (s.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("AAPL", "updated"),
            ("MSFT", "reweighted"),
            ("NWS", "removed"),
            ("ZZZT", "added"),
        ])
    );
    assert_eq!(spy["AAPL"].1.as_ref().expect("old")["name"], "APPLE INC");
    assert_eq!(spy["AAPL"].2.as_ref().expect("new")["name"], "APPLE INC.");
    assert!(spy["NWS"].1.is_some() && spy["NWS"].2.is_none());
    // An addition keeps no metadata: the membership holds it, and undoing it removes it.
    assert!(spy["ZZZT"].1.is_none() && spy["ZZZT"].2.is_none());
    assert_eq!(
        group_changes_of(&app, run).await,
        vec![("ZZQ".to_owned(), "created".to_owned())]
    );
    let version_before = run_record(&app, run).await.data_version.expect("version");

    let report = rollback(&app, &request(run)).await.expect("rollback");
    assert_eq!(
        app.stored_graph().await,
        before,
        "the graph is as before the load"
    );
    assert!(!report.dry_run);
    assert_eq!(report.files.len(), 2, "one entry per group the run touched");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(file(&json, "SPY")["status"], "loaded");
    assert_eq!(file(&json, "SPY")["file_name"], format!("run {run}"));
    assert_eq!(
        file(&json, "SPY")["counts"],
        json!({"created": 1, "updated": 2, "reweighted": 1, "deleted": 1, "unchanged": 500})
    );
    assert_eq!(file(&json, "ZZQ")["counts"]["deleted"], 2);

    // The rollback is a run of its own, with its own records and data version.
    let undo = report.run_id.expect("the rollback is recorded");
    let record = run_record(&app, undo).await;
    assert_eq!(record.kind, "rollback");
    assert_eq!(record.state, "succeeded");
    assert_eq!(record.scope.as_deref(), Some(format!("run {run}").as_str()));
    assert_eq!(record.source, format!("run {run}"));
    assert!(record.data_version.expect("a data version") > version_before);
    assert_eq!(report.data_version, record.data_version);
    assert_eq!(
        changes_of(&app, undo, "SPY").await.len(),
        4,
        "the rollback recorded its own changes"
    );
    assert_eq!(
        group_changes_of(&app, undo).await,
        vec![("ZZQ".to_owned(), "removed".to_owned())]
    );

    // And it can be rolled back in turn: the load's result comes back.
    let after_load = {
        let again = rollback(&app, &request(undo)).await.expect("undo the undo");
        assert_eq!(again.run_id.map(|id| id > undo), Some(true));
        app.stored_graph().await
    };
    assert_ne!(after_load, before);
    assert_eq!(
        stored_holdings(&app, GroupType::Etf, "ZZQ")
            .await
            .expect("ZZQ is back")
            .len(),
        2
    );
    let spy = stored_holdings(&app, GroupType::Etf, "SPY")
        .await
        .expect("SPY");
    let msft = spy.iter().find(|h| h.symbol == "MSFT").expect("MSFT");
    assert_eq!(msft.weight, Some(6.5));
}

#[tokio::test]
async fn a_rollback_behind_a_later_run_on_the_same_group_is_refused_and_force_applies_it() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    load(&app, &dir, &["--rebuild"]).await;
    let before = app.stored_graph().await;

    change_spy(&dir);
    let run = load(&app, &dir, &[]).await;
    // A later run on another group is no obstacle...
    edit(
        &dir.join("xle_holdings.csv"),
        |l| Some(l.replace("EXXON MOBIL CORP,23.630379", "EXXON MOBIL CORP,23.5")),
        &[],
    );
    let other = load(&app, &dir, &[]).await;
    // ...a later run on SPY is.
    edit(
        &dir.join("spy_holdings.csv"),
        |l| Some(l.replace("MICROSOFT CORP,6.5", "MICROSOFT CORP,6.6")),
        &[],
    );
    let later = load(&app, &dir, &[]).await;
    let stored = app.dump().await;

    match rollback(&app, &request(run)).await {
        Err(LoadError::RollbackRefused(RollbackRefused::LaterRuns {
            run_id,
            later: runs,
            groups,
        })) => {
            assert_eq!(run_id, run);
            assert_eq!(runs, vec![later], "{other} changed XLE only");
            assert_eq!(groups, vec![(GroupType::Etf, "SPY".to_owned())]);
        }
        other => panic!("refused because of run {later}, got {other:?}"),
    }
    assert_eq!(app.dump().await, stored, "a refusal writes nothing");
    let dry = RollbackRequest {
        dry_run: true,
        ..request(run)
    };
    assert!(
        matches!(
            rollback(&app, &dry).await,
            Err(LoadError::RollbackRefused(
                RollbackRefused::LaterRuns { .. }
            ))
        ),
        "a dry run is refused the same way"
    );

    let forced = RollbackRequest {
        force: true,
        ..request(run)
    };
    let report = rollback(&app, &forced).await.expect("forced rollback");
    assert_eq!(
        report.files.len(),
        1,
        "only SPY: run {run} touched nothing else"
    );
    let (groups, members) = app.stored_graph().await;
    let xle_now: Vec<&String> = members.iter().filter(|m| m.contains(" XLE ")).collect();
    assert!(
        xle_now.iter().any(|m| m.contains(" XOM Some(23.5)")),
        "XLE keeps run {other}'s change"
    );
    // SPY is as before run {run}: the later change to MSFT is undone too.
    let spy = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|m| m.contains(" SPY "))
            .cloned()
            .collect()
    };
    assert_eq!(spy(&members), spy(&before.1));
    assert_eq!(groups, before.0);
}

#[tokio::test]
async fn holdings_at_a_run_are_the_members_as_they_were_right_after_it() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    let first = load(&app, &dir, &["--rebuild"]).await;
    let spy_first = stored_holdings(&app, GroupType::Etf, "SPY").await;
    let xle_first = stored_holdings(&app, GroupType::Etf, "XLE").await;

    change_spy(&dir);
    let second = load(&app, &dir, &[]).await;
    let spy_second = stored_holdings(&app, GroupType::Etf, "SPY").await;
    let second_finished = run_record(&app, second)
        .await
        .finished_at
        .expect("finished");

    // A third run changes SPY again and removes XLE.
    edit(
        &dir.join("spy_holdings.csv"),
        |l| (!l.starts_with("NVDA,")).then(|| l.replace("APPLE INC.", "APPLE")),
        &[],
    );
    std::fs::remove_file(dir.join("xle_holdings.csv")).expect("remove");
    let third = load(&app, &dir, &["--rebuild"]).await;
    assert!(stored_holdings(&app, GroupType::Etf, "XLE").await.is_none());
    assert_ne!(
        stored_holdings(&app, GroupType::Etf, "SPY").await,
        spy_second
    );

    let at = |group: &'static str, at: At| {
        let db = &app.db;
        async move {
            history::holdings_at(db, "DEFAULT", GroupType::Etf, group, at)
                .await
                .expect("holdings_at")
        }
    };
    assert_eq!(at("SPY", At::Run(first)).await, spy_first);
    assert_eq!(at("spy", At::Run(second)).await, spy_second, "any case");
    assert_eq!(at("SPY", At::Time(second_finished)).await, spy_second);
    assert_eq!(
        at("SPY", At::Run(third)).await,
        stored_holdings(&app, GroupType::Etf, "SPY").await
    );
    assert_eq!(at("XLE", At::Run(second)).await, xle_first);
    assert_eq!(at("XLE", At::Run(third)).await, None, "XLE was removed");
    assert!(
        history::holdings_at(
            &app.db,
            "DEFAULT",
            GroupType::Etf,
            "SPY",
            At::Run(third + 100)
        )
        .await
        .is_err(),
        "an unknown run"
    );

    let diff = history::diff_runs(&app.db, "DEFAULT", GroupType::Etf, "SPY", first, second)
        .await
        .expect("diff");
    let old = |s: &str| {
        spy_first
            .as_ref()
            .and_then(|h| h.iter().find(|h| h.symbol == s))
            .and_then(|h| h.weight)
    };
    assert_eq!(
        diff,
        vec![
            DiffEntry {
                symbol: "AAPL".into(),
                change: entity::ChangeKind::Updated,
                old_weight: old("AAPL"),
                new_weight: old("AAPL"),
            },
            DiffEntry {
                symbol: "MSFT".into(),
                change: entity::ChangeKind::Reweighted,
                old_weight: old("MSFT"),
                new_weight: Some(6.5),
            },
            DiffEntry {
                symbol: "NWS".into(),
                change: entity::ChangeKind::Removed,
                old_weight: old("NWS"),
                new_weight: None,
            },
            DiffEntry {
                symbol: "ZZZT".into(),
                change: entity::ChangeKind::Added,
                old_weight: None,
                new_weight: Some(0.01),
            },
        ]
    );

    // The feed: newest first across groups, paged below an id.
    let feed = history::changes_feed(&app.db, "DEFAULT", ChangeFilter::default(), None, 1000)
        .await
        .expect("feed");
    assert!(feed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(feed[0].run_id, third);
    assert!(
        feed.iter()
            .any(|c| c.group_name == "XLE" && c.change == entity::ChangeKind::Removed),
        "a removed group's members are removed changes"
    );
    let second_only = history::changes_feed(
        &app.db,
        "DEFAULT",
        ChangeFilter {
            run_id: Some(second),
            group: Some((GroupType::Etf, "spy".into())),
            since: None,
        },
        None,
        2,
    )
    .await
    .expect("feed");
    assert_eq!(second_only.len(), 2);
    let rest = history::changes_feed(
        &app.db,
        "DEFAULT",
        ChangeFilter {
            run_id: Some(second),
            ..ChangeFilter::default()
        },
        Some(second_only[1].id),
        100,
    )
    .await
    .expect("feed");
    assert_eq!(rest.len(), 2, "four changes in run {second}");

    // Runs page by page, newest first, with the count of all that match.
    let (page, total) = history::runs_page(&app.db, "DEFAULT", RunFilter::default(), None, 2)
        .await
        .expect("runs");
    assert_eq!(total, 3);
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [third, second]
    );
    let (page, _) = history::runs_page(&app.db, "DEFAULT", RunFilter::default(), Some(second), 2)
        .await
        .expect("runs");
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
    let (none, total) = history::runs_page(
        &app.db,
        "DEFAULT",
        RunFilter {
            kind: Some("rollback".into()),
            state: None,
        },
        None,
        10,
    )
    .await
    .expect("runs");
    assert_eq!((none.len(), total), (0, 0));
    let files = history::run_files(&app.db, "DEFAULT", third)
        .await
        .expect("files");
    assert_eq!(files.len(), 1, "SPY's file; XLE's is gone");
    assert!(
        history::run_files(&app.db, "OTHER", third)
            .await
            .expect("files")
            .is_empty()
    );
}

#[tokio::test]
async fn a_rollback_of_a_full_run_that_removed_a_group_brings_it_back_with_its_members_and_metadata()
 {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    load(&app, &dir, &["--rebuild"]).await;
    let before = app.stored_graph().await;
    let xle = stored_holdings(&app, GroupType::Etf, "XLE")
        .await
        .expect("XLE");

    std::fs::remove_file(dir.join("xle_holdings.csv")).expect("remove");
    let run = load(&app, &dir, &["--rebuild"]).await;
    assert!(stored_holdings(&app, GroupType::Etf, "XLE").await.is_none());
    assert_eq!(
        group_changes_of(&app, run).await,
        vec![("XLE".to_owned(), "removed".to_owned())]
    );
    let removed = changes_of(&app, run, "XLE").await;
    assert_eq!(removed.len(), xle.len());
    assert!(
        removed
            .values()
            .all(|(c, old, new)| c == "removed" && old.is_some() && new.is_none())
    );

    let report = rollback(&app, &request(run)).await.expect("rollback");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].group_name, "XLE");
    assert_eq!(report.files[0].counts.created, xle.len());
    assert_eq!(app.stored_graph().await, before, "XLE is back as it was");
    assert_eq!(
        stored_holdings(&app, GroupType::Etf, "XLE").await,
        Some(xle)
    );
}

#[tokio::test]
async fn the_next_incremental_load_after_a_rollback_reloads_the_file() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    load(&app, &dir, &["--rebuild"]).await;
    let good = std::fs::read(dir.join("spy_holdings.csv")).expect("read");
    let before = app.stored_graph().await;

    change_spy(&dir);
    let bad = std::fs::read(dir.join("spy_holdings.csv")).expect("read");
    let run = load(&app, &dir, &[]).await;
    let after_bad = app.stored_graph().await;
    rollback(&app, &request(run)).await.expect("rollback");
    assert_eq!(app.stored_graph().await, before);

    // The bad file is still on disk: it is read and loaded again, not skipped as unchanged.
    let out = load_out(&app, &dir, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let again = report(&out);
    assert_eq!(file(&again, "SPY")["status"], "loaded", "{again}");
    assert_eq!(file(&again, "XLE")["status"], "unchanged");
    assert_eq!(app.stored_graph().await, after_bad);

    // Rolled back once more with the good file back in place: that file is the one loaded.
    rollback(&app, &request(run_id(&again)))
        .await
        .expect("rollback");
    std::fs::write(dir.join("spy_holdings.csv"), &good).expect("write");
    let out = load_out(&app, &dir, &[]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(file(&report(&out), "SPY")["status"], "unchanged");
    assert_eq!(app.stored_graph().await, before);
    std::fs::write(dir.join("spy_holdings.csv"), &bad).expect("write");
    let out = load_out(&app, &dir, &[]).await;
    assert_eq!(file(&report(&out), "SPY")["status"], "loaded");
}

#[tokio::test]
async fn the_cli_dry_run_changes_nothing_and_its_json_numbers_match_the_real_run() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    load(&app, &dir, &["--rebuild"]).await;
    let before = app.stored_graph().await;
    change_spy(&dir);
    std::fs::remove_file(dir.join("xle_holdings.csv")).expect("remove");
    let run = load(&app, &dir, &["--rebuild"]).await;
    let id = run.to_string();

    let stored = app.dump().await;
    let dry = app
        .run(&["rollback", "--run", &id, "--dry-run", "--json"])
        .await;
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let dry = report(&dry);
    let text = app.run(&["rollback", "--run", &id, "--dry-run"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("[DRY RUN]") && text.stdout.contains("Nothing written"),
        "{}",
        text.stdout
    );
    assert_eq!(app.dump().await, stored, "a dry run writes nothing");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["run_id"], Value::Null);

    let real = app.run(&["rollback", "--run", &id, "--json"]).await;
    assert_eq!(real.code, 0, "{}{}", real.stdout, real.stderr);
    let real = report(&real);
    assert_eq!(what_it_does(&dry), what_it_does(&real));
    assert_eq!(real["totals"]["files"], 2, "SPY and XLE");
    assert_eq!(real["scope"], format!("run {id}"));
    assert!(real["data_version"].as_i64().is_some());
    assert_eq!(app.stored_graph().await, before);

    // Again: the rollback itself is a later run on the same groups.
    let undo = real["run_id"].as_i64().expect("run id");
    let stored = app.dump().await;
    let refused = app.run(&["rollback", "--run", &id]).await;
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(&format!("#{undo}")) && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    let unknown = app.run(&["rollback", "--run", "999999"]).await;
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("999999"), "{}", unknown.stderr);
    assert_eq!(app.dump().await, stored, "refusals write nothing");

    // With --force the groups are put back as before run {id}, which they already are.
    let forced = app
        .run(&["rollback", "--run", &id, "--force", "--json"])
        .await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let forced = report(&forced);
    assert_eq!(forced["totals"]["files_unchanged"], 2, "{forced}");
    assert_eq!(app.stored_graph().await, before);
}

#[tokio::test]
async fn a_rollback_is_refused_for_runs_it_cannot_undo() {
    let app = TestApp::new().await;
    let dir = holdings_of(&app, &["spy_holdings.csv", "xle_holdings.csv"]);
    let loaded = load(&app, &dir, &["--rebuild"]).await;
    let unchanged = load(&app, &dir, &[]).await;
    std::fs::write(dir.join("xle_holdings.csv"), "just,some,words\n1,2,3\n").expect("write");
    let out = load_out(&app, &dir, &["--etf", "XLE"]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let rejected = run_id(&report(&out));
    let dir_s = dir.display().to_string();
    let out = app
        .run(&[
            "--environment",
            "OTHER",
            "--holdings-dir",
            &dir_s,
            "load-etf-holdings",
            "--etf",
            "SPY",
            "--json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let other = run_id(&report(&out));
    let stored = app.dump().await;

    let refusal = |run: i32| {
        let app = &app;
        async move {
            match rollback(app, &request(run)).await {
                Err(LoadError::RollbackRefused(r)) => r,
                other => panic!("run {run} must be refused, got {other:?}"),
            }
        }
    };
    assert!(matches!(
        refusal(999_999).await,
        RollbackRefused::UnknownRun { run_id: 999_999 }
    ));
    assert!(matches!(
        refusal(other).await,
        RollbackRefused::OtherEnvironment { ref environment, .. } if environment == "OTHER"
    ));
    assert!(matches!(
        refusal(rejected).await,
        RollbackRefused::NotCommitted { ref state, .. } if state == "rejected"
    ));
    assert!(matches!(
        refusal(unchanged).await,
        RollbackRefused::NothingChanged { .. }
    ));
    assert_eq!(app.dump().await, stored, "refusals write nothing");

    // A run in the other environment is that environment's to roll back.
    let theirs = RollbackRequest {
        environment: "OTHER".to_owned(),
        ..request(other)
    };
    rollback(&app, &theirs).await.expect("rolled back in OTHER");
    assert!(
        app.stored_graph()
            .await
            .0
            .iter()
            .all(|g| !g.starts_with("OTHER ")),
        "OTHER's SPY was its run's creation"
    );
    assert_eq!(
        stored_holdings(&app, GroupType::Etf, "SPY")
            .await
            .map(|h| h.len()),
        Some(503),
        "DEFAULT's SPY untouched"
    );
    let _ = loaded;
}
