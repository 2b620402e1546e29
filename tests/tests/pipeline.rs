//! Sectors, themes, enrichment, validation, the report, query and setup.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use entity::{definition_group, group_membership};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use tests::{TestApp, dataset, dataset_holdings};

/// A small holdings folder: two ETFs (one a sector ETF), a universe and a classification file.
fn fixture(app: &TestApp) -> PathBuf {
    let dir = app.dir.path().join("fixture");
    std::fs::create_dir_all(dir.join("classifications")).expect("dir");
    let files = [
        (
            "xlk_holdings.csv",
            "symbol,name,weight,sector\nAAPL,Apple Inc.,50,Information Technology\n\
             MSFT,Microsoft Corp,30,Information Technology\nNVDA,NVIDIA Corp,20,\n",
        ),
        (
            "spy_holdings.csv",
            "symbol,name,weight\nAAPL,APPLE INC,40\nMSFT,MICROSOFT CORP,35\nJPM,JPMORGAN CHASE & CO,25\n",
        ),
        (
            "dow30.csv",
            "symbol,name\nAAPL,Apple Inc.\nJPM,JPMorgan Chase & Co.\nKO,Coca-Cola Co.\n",
        ),
        (
            "classifications/screen.csv",
            "Symbol,Name,Sector,Industry\nJPM,JPMorgan,Finance,Major Banks\n\
             KO,Coca-Cola,Consumer Staples,Beverages (Production/Distribution)\n\
             NVDA,NVIDIA,Technology,Semiconductors\nAAPL,Apple,Technology,Computer Manufacturing\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    let defs = app.copy_definitions();
    std::fs::write(
        defs.join("themes.json"),
        r#"[{"key": "ai_machine_learning", "name": "AI", "description": "AI leaders",
            "criteria": "AI revenue", "members": [{"symbol": "NVDA", "name": "NVIDIA"},
            {"symbol": "MSFT", "name": "Microsoft"}]},
           {"key": "beverages", "name": "Drinks", "description": "Soft drinks",
            "criteria": "sells drinks", "members": [{"symbol": "KO", "name": "Coca-Cola"}]}]"#,
    )
    .expect("themes");
    dir
}

async fn setup(app: &TestApp, holdings: &str) -> String {
    let out = app.run(&["--holdings-dir", holdings, "setup"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.stdout
}

async fn json(app: &TestApp, args: &[&str]) -> Value {
    let out = app.run(args).await;
    assert!(out.code <= 1, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// Each stock's sector groups, read straight from the tables.
async fn sectors_by_stock(app: &TestApp) -> BTreeMap<String, Vec<String>> {
    let groups: BTreeMap<i32, definition_group::Model> = definition_group::Entity::find()
        .all(&app.db)
        .await
        .expect("groups")
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in group_membership::Entity::find()
        .all(&app.db)
        .await
        .expect("members")
    {
        let g = &groups[&m.group_id];
        let entry = out.entry(m.symbol.clone()).or_default();
        if g.group_type == "SECTOR" {
            entry.push(g.name.clone());
        }
    }
    out
}

#[tokio::test]
async fn setup_on_the_shared_dataset_validates_and_every_report_number_matches_sql() {
    let app = TestApp::new().await;
    setup(&app, &dataset_holdings()).await;
    let validation = json(&app, &["validate", "--json"]).await;
    for check in validation["checks"].as_array().expect("checks") {
        assert_ne!(check["status"], "FAIL", "{check}");
    }
    let report = json(&app, &["report", "--detail", "--format", "json"]).await;
    let t = &report["totals"];
    let count = |sql: String| {
        let app = &app;
        async move { app.count(&sql).await }
    };
    for (field, kind) in [
        ("etfs", "ETF"),
        ("sectors", "SECTOR"),
        ("themes", "THEME"),
        ("universes", "UNIVERSE"),
    ] {
        assert_eq!(
            t[field].as_i64(),
            Some(
                count(format!(
                    "SELECT COUNT(*) FROM definition_groups WHERE type = '{kind}'"
                ))
                .await
            ),
            "{field}"
        );
        assert_eq!(
            t["relationships"][kind].as_i64(),
            Some(
                count(format!(
                    "SELECT COUNT(*) FROM group_memberships m JOIN definition_groups g \
                     ON g.id = m.group_id WHERE g.type = '{kind}'"
                ))
                .await
            ),
            "{kind} relationships"
        );
    }
    let stocks = count(
        "SELECT COUNT(DISTINCT m.symbol) FROM group_memberships m JOIN definition_groups g \
         ON g.id = m.group_id WHERE g.type <> 'SECTOR'"
            .into(),
    )
    .await;
    assert_eq!(t["stocks"].as_i64(), Some(stocks));
    assert_eq!(
        t["relationships_total"].as_i64(),
        Some(count("SELECT COUNT(*) FROM group_memberships".into()).await)
    );
    // Every stock has exactly one sector.
    let by_stock = sectors_by_stock(&app).await;
    assert!(by_stock.values().all(|s| s.len() == 1), "one sector each");
    // Sector distribution and coverage, counted per stock.
    for share in report["sector_distribution"]
        .as_array()
        .expect("distribution")
    {
        let key = share["sector"].as_str().expect("key");
        let n = by_stock.values().filter(|s| s[0] == key).count();
        assert_eq!(share["stocks"].as_u64(), Some(n as u64), "{key}");
    }
    let classified = by_stock.values().filter(|s| s[0] != "unknown").count();
    let coverage = &report["quality"]["sector_coverage"];
    assert_eq!(coverage["count"].as_u64(), Some(classified as u64));
    assert!(coverage["pct"].as_f64().expect("pct") >= 99.0, "{coverage}");
    // Top 10 by weight, and universe sizes.
    for etf in report["detail"]["etfs"].as_array().expect("etfs") {
        let name = etf["etf"].as_str().expect("etf");
        let rows = app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                app.db.get_database_backend(),
                format!(
                    "SELECT m.weight FROM group_memberships m JOIN definition_groups g \
                     ON g.id = m.group_id WHERE g.type = 'ETF' AND g.name = '{name}' \
                     ORDER BY m.weight DESC LIMIT 10"
                ),
            ))
            .await
            .expect("top 10");
        let expected: Vec<f64> = rows
            .iter()
            .map(|r| r.try_get_by_index::<f64>(0).expect("weight"))
            .collect();
        let got: Vec<f64> = etf["top10"]
            .as_array()
            .expect("top10")
            .iter()
            .map(|h| h["weight"].as_f64().expect("weight"))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
    for u in report["detail"]["universes"].as_array().expect("universes") {
        let name = u["universe"].as_str().expect("name");
        assert_eq!(
            u["size"].as_i64(),
            Some(
                count(format!(
                    "SELECT COUNT(*) FROM group_memberships m JOIN definition_groups g \
                     ON g.id = m.group_id WHERE g.type = 'UNIVERSE' AND g.name = '{name}'"
                ))
                .await
            )
        );
    }
}

#[tokio::test]
async fn without_the_classification_file_every_provider_or_sector_etf_stock_is_classified() {
    let app = TestApp::new().await;
    let dir = app.copy_holdings();
    assert!(
        !dir.join("classifications").exists(),
        "copy_holdings copies files only"
    );
    setup(&app, &dir.display().to_string()).await;
    let labelled: BTreeSet<String> = group_membership::Entity::find()
        .all(&app.db)
        .await
        .expect("members")
        .into_iter()
        .filter(|m| {
            m.metadata
                .as_ref()
                .and_then(|v| v["sector"].as_str())
                .is_some_and(|s| {
                    !s.is_empty() && s != "-" && s != "Unassigned" && !s.starts_with("Cash")
                })
        })
        .map(|m| m.symbol)
        .collect();
    let sector_etfs = [
        "XLK", "XLF", "XLV", "XLE", "XLI", "XLY", "XLP", "XLU", "XLB", "XLRE", "XLC",
    ];
    let etf_ids: Vec<i32> = definition_group::Entity::find()
        .filter(definition_group::Column::Name.is_in(sector_etfs))
        .all(&app.db)
        .await
        .expect("etfs")
        .into_iter()
        .map(|g| g.id)
        .collect();
    let in_sector_etf: BTreeSet<String> = group_membership::Entity::find()
        .filter(group_membership::Column::GroupId.is_in(etf_ids))
        .all(&app.db)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.symbol)
        .collect();
    let by_stock = sectors_by_stock(&app).await;
    let sourced: BTreeSet<&String> = labelled.iter().chain(&in_sector_etf).collect();
    assert!(sourced.len() > 3000);
    for symbol in &sourced {
        assert_ne!(by_stock[*symbol], vec!["unknown".to_owned()], "{symbol}");
    }
}

#[tokio::test]
async fn a_manual_sector_survives_setup_and_every_other_command() {
    let app = TestApp::new().await;
    let holdings = fixture(&app);
    let h = holdings.display().to_string();
    setup(&app, &h).await;
    assert_eq!(
        sectors_by_stock(&app).await["AAPL"],
        vec!["information_technology"]
    );
    let out = app
        .run(&[
            "--holdings-dir",
            &h,
            "set-sector",
            "aapl",
            "Health Care",
            "--industry",
            "Devices",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(sectors_by_stock(&app).await["AAPL"], vec!["health_care"]);
    for args in [
        vec!["setup"],
        vec!["enrich-sectors", "--mode", "full"],
        vec!["load-etf-holdings", "--rebuild"],
        vec!["organize-sectors"],
        vec!["build-stock-metadata"],
    ] {
        let mut full = vec!["--holdings-dir", h.as_str()];
        full.extend(args.iter().copied());
        let out = app.run(&full).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(
            sectors_by_stock(&app).await["AAPL"],
            vec!["health_care"],
            "{args:?}"
        );
    }
    let stock = json(&app, &["query", "--stock", "AAPL", "--json"]).await;
    assert_eq!(stock["sector_source"], "manual");
    assert_eq!(stock["industry"], "Devices");
    // Clearing hands the stock back to its best other source.
    let out = app
        .run(&["--holdings-dir", &h, "set-sector", "AAPL", "--clear"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        sectors_by_stock(&app).await["AAPL"],
        vec!["information_technology"]
    );
}

#[tokio::test]
async fn enrichment_takes_the_best_source_and_lists_disagreements() {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    let by_stock = sectors_by_stock(&app).await;
    // Provider column (XLK file), sector ETF (NVDA in XLK has no label), classification (JPM, KO).
    assert_eq!(by_stock["AAPL"], vec!["information_technology"]);
    assert_eq!(by_stock["NVDA"], vec!["information_technology"]);
    assert_eq!(by_stock["JPM"], vec!["financials"]);
    assert_eq!(by_stock["KO"], vec!["consumer_staples"]);
    let report = json(&app, &["--holdings-dir", &h, "enrich-sectors", "--json"]).await;
    assert_eq!(report["by_source"]["provider"], 2, "{report}");
    assert_eq!(report["by_source"]["sector_etf"], 1);
    assert_eq!(report["by_source"]["classification"], 2);
    // A dry run shows the move a changed label would make, and writes nothing.
    std::fs::write(
        PathBuf::from(&h).join("xlk_holdings.csv"),
        "symbol,name,weight,sector\nAAPL,Apple Inc.,50,Health Care\nMSFT,Microsoft Corp,30,Information Technology\nNVDA,NVIDIA Corp,20,\n",
    )
    .expect("write");
    let out = app.run(&["--holdings-dir", &h, "load-etf-holdings"]).await;
    assert_eq!(out.code, 0);
    let before = app.dump().await;
    let dry = json(
        &app,
        &[
            "--holdings-dir",
            &h,
            "enrich-sectors",
            "--dry-run",
            "--json",
        ],
    )
    .await;
    assert_eq!(app.dump().await, before);
    assert_eq!(dry["sync"]["totals"]["counts"]["created"], 1, "{dry}");
    let disagreements = dry["disagreements"].as_array().expect("list");
    assert!(
        disagreements.iter().any(|d| d["symbol"] == "AAPL"
            && d["chosen"]["sector"] == "health_care"
            && d["other"]["sector"] == "information_technology"),
        "{disagreements:?}"
    );
}

#[tokio::test]
async fn setup_run_again_changes_nothing() {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    let before = app.dump_graph().await;
    setup(&app, &h).await;
    assert_eq!(app.dump_graph().await, before);
}

#[tokio::test]
async fn console_and_markdown_reports_match_their_snapshots() {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    let console = app.run(&["report", "--detail"]).await;
    assert_eq!(console.code, 0);
    insta::assert_snapshot!("report_console", console.stdout);
    let path = app.dir.path().join("report.md");
    let md = app
        .run(&[
            "report",
            "--detail",
            "--format",
            "markdown",
            "--output",
            &path.display().to_string(),
        ])
        .await;
    assert_eq!(md.code, 0, "{}", md.stderr);
    insta::assert_snapshot!(
        "report_markdown",
        std::fs::read_to_string(&path).expect("report")
    );
    // JSON carries the same numbers.
    let report = json(&app, &["report", "--detail", "--format", "json"]).await;
    assert_eq!(report["totals"]["stocks"], 5);
    assert!(
        console.stdout.contains("│ Stocks                 ┆     5"),
        "{}",
        console.stdout
    );
}

#[tokio::test]
async fn every_query_mode_answers_and_unknown_names_exit_1() {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    let stock = json(&app, &["query", "--stock", "aapl", "--json"]).await;
    assert_eq!(stock["etfs"][0]["etf"], "XLK");
    assert_eq!(stock["etfs"][0]["weight"], 50.0);
    assert_eq!(stock["universes"], serde_json::json!(["dow30"]));
    let etf = json(&app, &["query", "--etf", "spy", "--json"]).await;
    assert_eq!(etf["members"], 3);
    assert_eq!(
        etf["listed"][0]["symbol"],
        "MSFT".to_owned().replace("MSFT", "AAPL")
    );
    let sectors = json(&app, &["query", "--sector", "technology", "--json"]).await;
    assert_eq!(sectors[0]["name"], "information_technology");
    let staples = json(&app, &["query", "--sector", "consumer staples", "--json"]).await;
    assert_eq!(staples[0]["listed"][0]["symbol"], "KO");
    let industry = json(&app, &["query", "--industry", "banks", "--json"]).await;
    assert_eq!(industry["listed"][0]["symbol"], "JPM");
    let theme = json(&app, &["query", "--theme", "beverages", "--json"]).await;
    assert_eq!(theme["members"], 1);
    let universe = json(&app, &["query", "--universe", "DOW30", "--json"]).await;
    assert_eq!(universe["members"], 3);
    let stats = json(&app, &["query", "--stats", "--json"]).await;
    assert_eq!(stats["stocks"], 5);
    // A sector whose members have no industry still answers.
    let tech = app.run(&["query", "--sector", "information"]).await;
    assert_eq!(tech.code, 0);
    assert!(tech.stdout.contains("MSFT"), "{}", tech.stdout);
    for args in [
        ["query", "--stock", "ZZZZ"],
        ["query", "--etf", "QQQ"],
        ["query", "--sector", "astrology"],
        ["query", "--theme", "nope"],
    ] {
        let out = app.run(&args).await;
        assert_eq!(out.code, 1, "{args:?}");
        assert!(out.stderr.contains("no "), "{}", out.stderr);
    }
}

// --- validation: one database per defect, each caught by its check.

async fn validated(app: &TestApp) -> Value {
    json(app, &["validate", "--json", "--verbose"]).await
}

fn status<'a>(v: &'a Value, check: &str) -> &'a str {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == check)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("check {check}"))
}

async fn defect(sql: &[&str], check: &str, expected: &str) {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    let clean = validated(&app).await;
    assert_eq!(status(&clean, check), "PASS", "{clean}");
    for statement in sql {
        app.db.execute_unprepared(statement).await.expect(statement);
    }
    let v = validated(&app).await;
    assert_eq!(status(&v, check), expected, "{v}");
    let out = app.run(&["validate"]).await;
    assert_eq!(
        out.code,
        if expected == "FAIL" { 1 } else { 0 },
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn validation_fails_an_etf_without_holdings() {
    defect(
        &["INSERT INTO definition_groups (name, type, environment) VALUES ('EMPTY', 'ETF', 'DEFAULT')"],
        "etfs_have_holdings",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_fails_a_stock_without_a_sector() {
    defect(
        &[
            "DELETE FROM group_memberships WHERE symbol = 'KO' AND group_id IN \
           (SELECT id FROM definition_groups WHERE type = 'SECTOR')",
        ],
        "every_stock_has_a_sector",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_fails_a_stock_in_two_sectors() {
    defect(
        &[
            "INSERT INTO group_memberships (group_id, symbol) SELECT id, 'AAPL' \
           FROM definition_groups WHERE type = 'SECTOR' AND name = 'energy'",
        ],
        "one_sector_per_stock",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_fails_a_membership_of_a_missing_group() {
    let app = TestApp::new().await;
    let h = fixture(&app).display().to_string();
    setup(&app, &h).await;
    assert_eq!(
        status(&validated(&app).await, "memberships_point_at_live_groups"),
        "PASS"
    );
    // No foreign key refuses this row (the bulk tables have none): a careless script can
    // write it, and validation is what notices.
    let sql = "INSERT INTO group_memberships (group_id, symbol) VALUES (99999, 'GHOST')";
    app.db.execute_unprepared(sql).await.expect(sql);
    let v = validated(&app).await;
    assert_eq!(
        status(&v, "memberships_point_at_live_groups"),
        "FAIL",
        "{v}"
    );
}

#[tokio::test]
async fn validation_fails_an_etf_holding_the_api_cannot_find_from_the_stock() {
    defect(
        &[
            "INSERT INTO group_memberships (group_id, symbol, weight) SELECT id, ' ko', 1 \
           FROM definition_groups WHERE type = 'ETF' AND name = 'SPY'",
        ],
        "etf_stock_relationships_agree",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_fails_a_missing_sector_definition() {
    defect(
        &["DELETE FROM definition_groups WHERE type = 'SECTOR' AND name = 'utilities'"],
        "sector_definitions_complete",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_fails_an_empty_theme() {
    defect(
        &["DELETE FROM group_memberships WHERE group_id IN \
           (SELECT id FROM definition_groups WHERE type = 'THEME' AND name = 'beverages')"],
        "themes_not_empty",
        "FAIL",
    )
    .await;
}

#[tokio::test]
async fn validation_warns_when_an_etfs_weights_do_not_sum_to_100() {
    defect(
        &[
            "UPDATE group_memberships SET weight = weight / 2 WHERE group_id IN \
           (SELECT id FROM definition_groups WHERE type = 'ETF' AND name = 'SPY')",
        ],
        "etf_weights_sum_to_100",
        "WARN",
    )
    .await;
}

#[tokio::test]
async fn validation_warns_about_one_security_under_two_spellings() {
    let mut sql = Vec::new();
    for (etf, symbol) in [("SPY", "BRKB"), ("XLK", "BRK.B")] {
        sql.push(format!(
            "INSERT INTO group_memberships (group_id, symbol, weight) SELECT id, '{symbol}', 0 \
             FROM definition_groups WHERE type = 'ETF' AND name = '{etf}'"
        ));
        sql.push(format!(
            "INSERT INTO group_memberships (group_id, symbol) SELECT id, '{symbol}' \
             FROM definition_groups WHERE type = 'SECTOR' AND name = 'financials'"
        ));
    }
    let sql: Vec<&str> = sql.iter().map(String::as_str).collect();
    defect(&sql, "one_spelling_per_security", "WARN").await;
}

#[test]
fn the_shared_dataset_is_where_the_tests_expect_it() {
    assert!(dataset().join("holdings/classifications").is_dir());
}
