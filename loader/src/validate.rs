//! `validate`: the data-quality checks, each PASS, WARN or FAIL with what offends it. Every
//! check reads the database as it is (nothing is assumed from how the data was loaded).

use std::collections::{BTreeMap, BTreeSet};

use entity::{GroupType, definition_group, group_membership};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait,
};
use serde::Serialize;

use crate::definitions::{Sectors, UNKNOWN};
use crate::graph;
use crate::symbol::Symbol;
use crate::table::{Kind, Table};

/// A check's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    /// `PASS`, `WARN` or `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub description: &'static str,
    pub status: Status,
    /// How many groups, stocks or memberships offend it.
    pub count: usize,
    /// What was examined (groups, stocks, relationships).
    pub examined: usize,
    /// The offending groups or symbols (with details).
    pub items: Vec<String>,
}

/// Every check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Validation {
    pub environment: String,
    pub checks: Vec<Check>,
}

impl Validation {
    /// Whether any check failed (the command then exits 1).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The check of that name.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Counts of PASS, WARN and FAIL.
    pub fn tally(&self) -> (usize, usize, usize) {
        let n = |s| self.checks.iter().filter(|c| c.status == s).count();
        (n(Status::Pass), n(Status::Warn), n(Status::Fail))
    }

    /// The console rendering; `verbose` lists the offenders.
    pub fn render(&self, verbose: bool) -> String {
        use std::fmt::Write as _;
        let mut table = Table::new([
            ("status", Kind::Text),
            ("check", Kind::Text),
            ("offending", Kind::Count),
            ("examined", Kind::Count),
            ("what it checks", Kind::Text),
        ]);
        for c in &self.checks {
            table.row([
                c.status.as_str().into(),
                c.name.into(),
                c.count.into(),
                c.examined.into(),
                c.description.into(),
            ]);
        }
        let mut out = format!("{table}\n");
        if verbose {
            for c in self.checks.iter().filter(|c| !c.items.is_empty()) {
                let _ = writeln!(out, "{} {}:", c.status.as_str(), c.name);
                for item in &c.items {
                    let _ = writeln!(out, "  {item}");
                }
            }
        } else if self.checks.iter().any(|c| !c.items.is_empty()) {
            let _ = writeln!(out, "(--verbose lists the offending groups and symbols)");
        }
        let (pass, warn, fail) = self.tally();
        let _ = writeln!(
            out,
            "{pass} passed, {warn} warned, {fail} failed: {}",
            if fail > 0 { "FAIL" } else { "OK" }
        );
        out
    }
}

fn check(
    name: &'static str,
    description: &'static str,
    bad: Status,
    examined: usize,
    items: Vec<String>,
) -> Check {
    Check {
        name,
        description,
        status: if items.is_empty() { Status::Pass } else { bad },
        count: items.len(),
        examined,
        items,
    }
}

/// Lowest and highest acceptable sum of an ETF's weights.
pub const WEIGHT_SUM_RANGE: (f64, f64) = (97.0, 101.0);

/// Runs every check.
pub async fn validate(
    db: &impl ConnectionTrait,
    environment: &str,
    sectors: &Sectors,
) -> Result<Validation, DbErr> {
    let groups = graph::groups(db, environment, None).await?;
    let ids: Vec<i32> = groups.iter().map(|g| g.id).collect();
    let members = graph::members_of_groups(db, &ids).await?;
    let of_type = |t: GroupType| groups.iter().filter(move |g| g.group_type == t.as_str());
    let mut checks = Vec::new();

    let etfs: Vec<&definition_group::Model> = of_type(GroupType::Etf).collect();
    checks.push(check(
        "etfs_have_holdings",
        "every ETF has at least one holding",
        Status::Fail,
        etfs.len(),
        etfs.iter()
            .filter(|g| members.get(&g.id).is_none_or(Vec::is_empty))
            .map(|g| g.name.clone())
            .collect(),
    ));

    let mut stocks: BTreeSet<&str> = BTreeSet::new();
    let mut sectors_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in &groups {
        for m in members.get(&g.id).into_iter().flatten() {
            if g.group_type == GroupType::Sector.as_str() {
                sectors_of
                    .entry(m.symbol.as_str())
                    .or_default()
                    .push(g.name.as_str());
            } else {
                stocks.insert(m.symbol.as_str());
            }
        }
    }
    checks.push(check(
        "every_stock_has_a_sector",
        "every stock has a sector membership (`unknown` counts)",
        Status::Fail,
        stocks.len(),
        stocks
            .iter()
            .filter(|s| !sectors_of.contains_key(*s))
            .map(|s| (*s).to_owned())
            .collect(),
    ));
    checks.push(check(
        "one_sector_per_stock",
        "no stock is in two sectors",
        Status::Fail,
        sectors_of.len(),
        sectors_of
            .iter()
            .filter(|(_, list)| list.len() > 1)
            .map(|(s, list)| format!("{s}: {}", list.join(", ")))
            .collect(),
    ));

    checks.push(orphans(db).await?);
    checks.push(symmetry(db, environment, &etfs, &members).await?);

    let stored_sectors: BTreeSet<&str> = of_type(GroupType::Sector)
        .map(|g| g.name.as_str())
        .collect();
    let mut missing: Vec<String> = sectors
        .defs
        .iter()
        .filter(|d| !stored_sectors.contains(d.key.as_str()))
        .map(|d| format!("missing: {}", d.key))
        .collect();
    if !stored_sectors.contains(UNKNOWN) && !missing.iter().any(|m| m.ends_with(UNKNOWN)) {
        missing.push(format!("missing: {UNKNOWN}"));
    }
    missing.extend(
        stored_sectors
            .iter()
            .filter(|s| sectors.get(s).is_none())
            .map(|s| format!("not defined in sectors.json: {s}")),
    );
    checks.push(check(
        "sector_definitions_complete",
        "all 12 sector groups (11 GICS sectors and `unknown`) exist",
        Status::Fail,
        sectors.defs.len(),
        missing,
    ));

    let themes: Vec<&definition_group::Model> = of_type(GroupType::Theme).collect();
    let mut empty_themes: Vec<String> = themes
        .iter()
        .filter(|g| members.get(&g.id).is_none_or(Vec::is_empty))
        .map(|g| g.name.clone())
        .collect();
    if themes.is_empty() {
        empty_themes.push("no theme groups at all (run organize-themes)".to_owned());
    }
    checks.push(check(
        "themes_not_empty",
        "every theme has members",
        Status::Fail,
        themes.len(),
        empty_themes,
    ));

    let (low, high) = WEIGHT_SUM_RANGE;
    checks.push(check(
        "etf_weights_sum_to_100",
        "each ETF's weights sum to 97–101 %",
        Status::Warn,
        etfs.len(),
        etfs.iter()
            .filter_map(|g| {
                let list = members.get(&g.id)?;
                let sum: f64 = list.iter().filter_map(|m| m.weight).sum();
                (!list.is_empty() && !(low..=high).contains(&sum))
                    .then(|| format!("{}: {sum:.2} %", g.name))
            })
            .collect(),
    ));

    let mut by_compact: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for list in members.values() {
        for m in list {
            by_compact
                .entry(m.symbol.replace(['.', '-', '/', ' '], ""))
                .or_default()
                .insert(m.symbol.as_str());
        }
    }
    checks.push(check(
        "one_spelling_per_security",
        "no security is stored under two spellings (BRKB and BRK.B)",
        Status::Warn,
        by_compact.len(),
        by_compact
            .values()
            .filter(|spellings| spellings.len() > 1)
            .map(|s| s.iter().copied().collect::<Vec<_>>().join(" / "))
            .collect(),
    ));

    Ok(Validation {
        environment: environment.to_owned(),
        checks,
    })
}

/// Memberships whose group does not exist (possible where foreign keys were off). The
/// anti-join runs in SQL so only offenders cross the wire.
async fn orphans(db: &impl ConnectionTrait) -> Result<Check, DbErr> {
    let live = definition_group::Entity::find()
        .select_only()
        .column(definition_group::Column::Id)
        .into_query();
    let offenders: Vec<(i32, i32, String)> = group_membership::Entity::find()
        .select_only()
        .column(group_membership::Column::Id)
        .column(group_membership::Column::GroupId)
        .column(group_membership::Column::Symbol)
        .filter(group_membership::Column::GroupId.not_in_subquery(live))
        .into_tuple()
        .all(db)
        .await?;
    let examined = group_membership::Entity::find().count(db).await?;
    Ok(check(
        "memberships_point_at_live_groups",
        "every membership belongs to an existing group",
        Status::Fail,
        usize::try_from(examined).unwrap_or(usize::MAX),
        offenders
            .into_iter()
            .map(|(id, g, s)| format!("membership {id}: {s} in missing group {g}"))
            .collect(),
    ))
}

/// ETF → holdings and stock → ETFs, each read the way the API reads it (a stock is looked up
/// by its normalised symbol), must give the same relationships.
async fn symmetry(
    db: &impl ConnectionTrait,
    environment: &str,
    etfs: &[&definition_group::Model],
    members: &std::collections::HashMap<i32, Vec<group_membership::Model>>,
) -> Result<Check, DbErr> {
    let mut from_etfs: BTreeSet<(String, String)> = BTreeSet::new();
    for g in etfs {
        for m in members.get(&g.id).into_iter().flatten() {
            from_etfs.insert((g.name.clone(), m.symbol.clone()));
        }
    }
    let looked_up: BTreeSet<String> = from_etfs
        .iter()
        .map(|(_, s)| Symbol::parse(s).map_or_else(|_| s.clone(), |p| p.as_str().to_owned()))
        .collect();
    let looked_up: Vec<String> = looked_up.into_iter().collect();
    let by_symbol = graph::memberships_of_symbols(db, environment, &looked_up).await?;
    let from_stocks: BTreeSet<(String, String)> = by_symbol
        .iter()
        .flat_map(|(symbol, list)| {
            list.iter()
                .filter(|(_, g)| g.group_type == GroupType::Etf.as_str())
                .map(move |(_, g)| (g.name.clone(), symbol.clone()))
        })
        .collect();
    let mut items: Vec<String> = from_etfs
        .difference(&from_stocks)
        .map(|(etf, s)| format!("{etf} holds {s:?}, but stock {s:?} does not list {etf}"))
        .collect();
    items.extend(
        from_stocks
            .difference(&from_etfs)
            .map(|(etf, s)| format!("stock {s} lists {etf}, but {etf} does not hold it")),
    );
    Ok(check(
        "etf_stock_relationships_agree",
        "ETF → holdings and stock → ETFs give the same relationships",
        Status::Fail,
        from_etfs.len(),
        items,
    ))
}

/// Stocks: symbols in an ETF, universe or theme.
pub async fn stock_count(db: &impl ConnectionTrait, environment: &str) -> Result<usize, DbErr> {
    Ok(graph::symbols_in(
        db,
        environment,
        &[GroupType::Etf, GroupType::Universe, GroupType::Theme],
    )
    .await?
    .len())
}
