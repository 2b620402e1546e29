//! Finding things: search, filtered and ordered lists, one connection shape, global ids, and
//! the display fields (current names, sector groups, display names, rounded sums).

use serde_json::Value;
use tests::{TestApp, dataset_holdings};

use super::graphql::{code, gql, server, setup};

/// The symbols (stocks) and keys (groups) of a `search` answer, in order.
fn found(r: &Value) -> Vec<String> {
    r["data"]["search"]
        .as_array()
        .unwrap_or_else(|| panic!("no search results in {r}"))
        .iter()
        .map(|hit| {
            let node = &hit["node"];
            node["symbol"]
                .as_str()
                .or_else(|| node["name"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

const HIT: &str = "node { __typename ... on Stock { symbol name } ... on Group { name type } } \
                   matched field";

#[tokio::test]
async fn search_ranks_exact_symbols_then_prefixes_then_name_words_then_substrings() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;

    let r = gql(
        &router,
        &format!(r#"{{ search(text: "apple") {{ {HIT} }} }}"#),
        None,
    )
    .await;
    let hits = found(&r);
    assert_eq!(hits.first().map(String::as_str), Some("AAPL"), "{r}");
    assert!(
        hits.iter().any(|s| s == "APLE"),
        "Apple Hospitality too: {r}"
    );
    assert_eq!(r["data"]["search"][0]["matched"], "NAME_WORD", "{r}");
    assert_eq!(r["data"]["search"][0]["node"]["__typename"], "Stock");

    // Any case; the exact symbol first, then symbols that start with the text.
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "Aapl", first: 3) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    assert_eq!(found(&r)[0], "AAPL", "{r}");
    assert_eq!(r["data"]["search"][0]["matched"], "EXACT");
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "nvd", first: 5) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    assert_eq!(found(&r)[0], "NVDA", "{r}");
    assert_eq!(r["data"]["search"][0]["matched"], "SYMBOL_PREFIX");

    // Word prefixes of names, case-insensitive: every semiconductor maker the data names.
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "semicon", first: 50) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    let hits = found(&r);
    for symbol in ["ON", "NXPI", "LSCC", "AOSL"] {
        assert!(hits.iter().any(|s| s == symbol), "{symbol} in {r}");
    }
    let names = r["data"]["search"].as_array().expect("hits");
    assert!(
        names
            .iter()
            .filter(|h| h["node"]["__typename"] == "Stock")
            .all(|h| h["node"]["name"]
                .as_str()
                .is_some_and(|n| n.to_lowercase().contains("semicon"))),
        "{r}"
    );
    // The information technology sector, whose description names semiconductors, comes after
    // the names.
    assert_eq!(
        names.last().map(|h| (&h["node"]["name"], &h["matched"])),
        Some((
            &Value::from("information_technology"),
            &Value::from("DESCRIPTION")
        )),
        "{r}"
    );

    // Groups: an ETF by ticker, a sector by key, and kinds left out on request.
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "energy", first: 5) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    assert_eq!(r["data"]["search"][0]["node"]["name"], "energy", "{r}");
    assert_eq!(r["data"]["search"][0]["node"]["type"], "SECTOR", "{r}");
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "spy", types: [ETF]) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    assert_eq!(found(&r).first().map(String::as_str), Some("SPY"), "{r}");
    assert!(
        r["data"]["search"]
            .as_array()
            .is_some_and(|h| h.iter().all(|h| h["node"]["type"] == "ETF")),
        "{r}"
    );
    let r = gql(
        &router,
        &format!(r#"{{ search(text: "energy", types: [STOCK], first: 3) {{ {HIT} }} }}"#),
        None,
    )
    .await;
    assert!(
        r["data"]["search"]
            .as_array()
            .is_some_and(|h| h.len() == 3 && h.iter().all(|h| h["node"]["__typename"] == "Stock")),
        "{r}"
    );
    let r = gql(&router, r#"{ search(text: "  ") { matched } }"#, None).await;
    assert_eq!(r["data"]["search"], Value::Array(vec![]), "{r}");
    let r = gql(
        &router,
        r#"{ search(text: "a", first: -1) { matched } }"#,
        None,
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
}

#[tokio::test]
async fn stocks_and_groups_are_filtered_and_ordered_and_page_by_key() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;

    let r = gql(
        &router,
        r#"{ stocks(filter: { name: "apple" }, first: 50) { totalCount nodes { symbol name } } }"#,
        None,
    )
    .await;
    let symbols: Vec<&str> = r["data"]["stocks"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["symbol"].as_str().expect("symbol"))
        .collect();
    assert!(
        symbols.contains(&"AAPL") && symbols.contains(&"APLE"),
        "{r}"
    );

    // Filters combine: a sector by display name, a group, a symbol prefix.
    let r = gql(
        &router,
        r#"{ stocks(filter: { sector: "Information Technology", group: "SPY", symbolPrefix: "a" }, first: 100) {
            totalCount nodes { symbol sectorKey } } }"#,
        None,
    )
    .await;
    let nodes = r["data"]["stocks"]["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty(), "{r}");
    assert!(
        nodes
            .iter()
            .all(|n| n["sectorKey"] == "information_technology"
                && n["symbol"].as_str().is_some_and(|s| s.starts_with('A'))),
        "{r}"
    );
    assert!(nodes.iter().any(|n| n["symbol"] == "AAPL"), "{r}");
    let r = gql(
        &router,
        r#"{ stocks(filter: { sector: "no such sector" }) { totalCount } }"#,
        None,
    )
    .await;
    assert_eq!(code(&r), "NOT_FOUND", "{r}");

    // By name, paged: every page follows the last, no stock twice.
    let mut names = Vec::new();
    let mut after = Value::Null;
    for _ in 0..3 {
        let r = gql(
            &router,
            &format!(
                r#"{{ stocks(filter: {{ group: "dow30" }}, orderBy: NAME, first: 12, after: {after}) {{
                    totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ name }} }} }}"#
            ),
            None,
        )
        .await;
        let page = &r["data"]["stocks"];
        assert_eq!(page["totalCount"], 30, "{r}");
        names.extend(
            page["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| n["name"].as_str().expect("name").to_lowercase()),
        );
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(names.len(), 30);
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");

    // Most ETFs first.
    let r = gql(
        &router,
        r#"{ stocks(orderBy: ETF_COUNT, first: 3) { nodes { symbol etfCount } } }"#,
        None,
    )
    .await;
    let counts: Vec<u64> = r["data"]["stocks"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["etfCount"].as_u64().expect("count"))
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]) && counts[0] >= 10,
        "{r}"
    );

    // Groups by description or name, any case, and by member count.
    let r = gql(
        &router,
        r#"{ groups(filter: { description: "SEMICONDUCTOR" }) { totalCount nodes { name type } } }"#,
        None,
    )
    .await;
    assert!(
        r["data"]["groups"]["nodes"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g["name"] == "information_technology")),
        "{r}"
    );
    let r = gql(
        &router,
        r#"{ groups(type: THEME, filter: { name: "energy" }) { nodes { name displayName } } }"#,
        None,
    )
    .await;
    let themes: Vec<&str> = r["data"]["groups"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    assert!(
        themes.contains(&"clean_energy") && themes.contains(&"nuclear_energy"),
        "{r}"
    );
    let r = gql(
        &router,
        r#"{ groups(orderBy: MEMBER_COUNT, first: 2) { nodes { name memberCount } pageInfo { endCursor } } }"#,
        None,
    )
    .await;
    assert_eq!(r["data"]["groups"]["nodes"][0]["name"], "VTI", "{r}");
    let cursor = &r["data"]["groups"]["pageInfo"]["endCursor"];
    let next = gql(
        &router,
        &format!(r#"{{ groups(orderBy: MEMBER_COUNT, first: 1, after: {cursor}) {{ nodes {{ memberCount }} }} }}"#),
        None,
    )
    .await;
    assert!(
        next["data"]["groups"]["nodes"][0]["memberCount"].as_u64()
            <= r["data"]["groups"]["nodes"][1]["memberCount"].as_u64(),
        "{next}"
    );
    // A cursor of one list is refused by another.
    let wrong = gql(
        &router,
        &format!(r#"{{ stocks(after: {cursor}) {{ totalCount }} }}"#),
        None,
    )
    .await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
}

#[tokio::test]
async fn every_connection_has_edges_nodes_page_info_and_total_count() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let shape = "totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
                 edges { cursor node { id } } nodes { id }";
    let member_shape = "totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
                        edges { cursor node { symbol } } nodes { symbol }";
    let r = gql(
        &router,
        &format!(
            r#"{{ stocks(first: 3) {{ {shape} }} groups(first: 3) {{ {shape} }}
                etf(name: "SPY") {{ members(first: 3) {{ {member_shape} }} }} }}"#
        ),
        None,
    )
    .await;
    assert!(r["errors"].is_null(), "{r}");
    for connection in [
        &r["data"]["stocks"],
        &r["data"]["groups"],
        &r["data"]["etf"]["members"],
    ] {
        let edges = connection["edges"].as_array().expect("edges");
        let nodes = connection["nodes"].as_array().expect("nodes");
        assert_eq!(edges.len(), 3, "{connection}");
        let from_edges: Vec<&Value> = edges.iter().map(|e| &e["node"]).collect();
        assert_eq!(from_edges, nodes.iter().collect::<Vec<_>>(), "{connection}");
        let info = &connection["pageInfo"];
        assert_eq!(info["hasNextPage"], true);
        assert_eq!(info["hasPreviousPage"], false);
        assert_eq!(info["startCursor"], edges[0]["cursor"]);
        assert_eq!(info["endCursor"], edges[2]["cursor"]);
        assert!(connection["totalCount"].as_u64().is_some_and(|n| n > 3));
    }
    // The second page knows it has one before it.
    let cursor = &r["data"]["stocks"]["pageInfo"]["endCursor"];
    let r = gql(
        &router,
        &format!(r#"{{ stocks(first: 3, after: {cursor}) {{ pageInfo {{ hasPreviousPage }} }} }}"#),
        None,
    )
    .await;
    assert_eq!(
        r["data"]["stocks"]["pageInfo"]["hasPreviousPage"], true,
        "{r}"
    );
}

#[tokio::test]
async fn node_answers_the_global_id_of_a_stock_and_a_group() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let r = gql(
        &router,
        r#"{ stock(symbol: "AAPL") { id } etf(name: "SPY") { id databaseId } }"#,
        None,
    )
    .await;
    let (stock_id, group_id) = (&r["data"]["stock"]["id"], &r["data"]["etf"]["id"]);
    assert!(stock_id.is_string() && group_id.is_string(), "{r}");
    assert!(r["data"]["etf"]["databaseId"].is_i64(), "{r}");
    let r = gql(
        &router,
        &format!(
            r#"{{ a: node(id: {stock_id}) {{ id __typename ... on Stock {{ symbol }} }}
                b: node(id: {group_id}) {{ id __typename ... on Group {{ name type }} }}
                both: nodes(ids: [{stock_id}, {group_id}]) {{ id }} }}"#
        ),
        None,
    )
    .await;
    assert_eq!(r["data"]["a"]["symbol"], "AAPL", "{r}");
    assert_eq!(&r["data"]["a"]["id"], stock_id);
    assert_eq!(r["data"]["b"]["name"], "SPY", "{r}");
    assert_eq!(r["data"]["b"]["type"], "ETF");
    assert_eq!(&r["data"]["b"]["id"], group_id);
    assert_eq!(r["data"]["both"][1]["id"], *group_id);
    // An id of nothing served now is null; one that is not ours is the caller's mistake.
    let gone = holdgraph_id("Stock:ZZZZZ");
    let r = gql(
        &router,
        &format!(r#"{{ node(id: "{gone}") {{ id }} }}"#),
        None,
    )
    .await;
    assert_eq!(r["data"]["node"], Value::Null, "{r}");
    let r = gql(&router, r#"{ node(id: "not-an-id") { id } }"#, None).await;
    assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
}

/// A global id as the API makes it: base64url (no padding) of the text.
fn holdgraph_id(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits: String = text.bytes().map(|b| format!("{b:08b}")).collect();
    bits.as_bytes()
        .chunks(6)
        .map(|six| {
            let mut v = 0usize;
            for (i, b) in six.iter().enumerate() {
                v |= usize::from(*b == b'1') << (5 - i);
            }
            char::from(ALPHABET[v])
        })
        .collect()
}

#[tokio::test]
async fn display_fields_name_stocks_sectors_and_round_sums() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;

    // META is named as the latest files name it, not as Vanguard's older files still do.
    let r = gql(
        &router,
        r#"{ stock(symbol: "META") { name sectorKey sector { name displayName type } } }"#,
        None,
    )
    .await;
    let meta = &r["data"]["stock"];
    assert!(
        meta["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Meta Platforms")),
        "{r}"
    );
    assert_eq!(meta["sectorKey"], "communication_services", "{r}");
    assert_eq!(meta["sector"]["name"], "communication_services");
    assert_eq!(meta["sector"]["displayName"], "Communication Services");
    assert_eq!(meta["sector"]["type"], "SECTOR");

    // Exposure entries lead to their sector, with its display name.
    let r = gql(
        &router,
        r#"{ exposure(group: "SPY", by: SECTOR) { key displayName weight group { name displayName } } }"#,
        None,
    )
    .await;
    let rows = r["data"]["exposure"].as_array().expect("exposure");
    let it = rows
        .iter()
        .find(|e| e["key"] == "information_technology")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(it["displayName"], "Information Technology", "{r}");
    assert_eq!(it["group"]["displayName"], "Information Technology");
    assert!(rows.iter().all(|e| e["displayName"].is_string()), "{r}");

    // Sums are rounded to six decimals; overlap holdings lead to their stocks.
    let r = gql(
        &router,
        r#"{ etf(name: "SPY") { totalWeight }
            overlap(a: "SPY", b: "QQQ", first: 3) { overlapWeight aCoverage holdings { symbol stock { symbol name } } } }"#,
        None,
    )
    .await;
    let six_decimals = |v: &Value| {
        let x = v.as_f64().unwrap_or_else(|| panic!("{v} in {r}"));
        ((x * 1e6).round() / 1e6 - x).abs() < 1e-12
            && v.to_string().split('.').nth(1).is_none_or(|d| d.len() <= 6)
    };
    assert!(six_decimals(&r["data"]["etf"]["totalWeight"]), "{r}");
    assert!(six_decimals(&r["data"]["overlap"]["overlapWeight"]), "{r}");
    assert!(rows.iter().all(|e| six_decimals(&e["weight"])), "{rows:?}");
    let holding = &r["data"]["overlap"]["holdings"][0];
    assert_eq!(holding["stock"]["symbol"], holding["symbol"], "{r}");
    assert!(holding["stock"]["name"].is_string(), "{r}");
}

#[tokio::test]
async fn every_etf_is_described_by_its_fund_name_and_issuer() {
    let app = TestApp::new().await;
    let holdings = dataset_holdings();
    setup(&app, &holdings).await;
    let (_, router) = server(&app, &holdings, None).await;
    let funds: Value = serde_json::from_str(
        &std::fs::read_to_string(tests::project_dir().join("definitions/funds.json"))
            .expect("definitions/funds.json"),
    )
    .expect("funds.json is JSON");
    let fund = |ticker: &str| {
        funds
            .as_array()
            .expect("a list of funds")
            .iter()
            .find(|f| f["symbol"] == ticker)
            .cloned()
    };

    let r = gql(&router, "{ etfs { name description metadata } }", None).await;
    let etfs = r["data"]["etfs"].as_array().expect("etfs");
    assert_eq!(etfs.len(), 37, "{r}");
    for etf in etfs {
        let ticker = etf["name"].as_str().expect("name");
        let description = etf["description"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty() && description != ticker,
            "{ticker} is described by its ticker: {etf}"
        );
        assert_eq!(etf["metadata"]["fund_name"], description, "{etf}");
        let known = fund(ticker).unwrap_or_else(|| panic!("{ticker} is not in funds.json"));
        assert_eq!(etf["metadata"]["issuer"], known["issuer"], "{etf}");
        // A provider export that states the fund's name wins over the definitions file; the
        // canonical shape states none.
        if etf["metadata"]["shape"] == "canonical" {
            assert_eq!(description, known["name"], "{etf}");
        }
    }
    let spy = gql(&router, r#"{ etf(name: "spy") { description } }"#, None).await;
    assert_eq!(
        spy["data"]["etf"]["description"],
        fund("SPY").expect("SPY in funds.json")["name"],
        "{spy}"
    );
}
