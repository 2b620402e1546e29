//! `report`: totals, sector distribution, quality metrics and (with detail) each ETF's top 10
//! holdings by weight and each universe's size. The numbers are computed once here and every
//! format (console, Markdown, JSON) prints the same struct, so they cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use entity::GroupType;
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::definitions::{Sectors, UNKNOWN};
use crate::graph;
use crate::table::{Cell, Kind, Table};
use crate::validate::{Status, Validation, validate};

/// Counts of groups and relationships.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub etfs: usize,
    /// Distinct symbols in an ETF, universe or theme.
    pub stocks: usize,
    pub sectors: usize,
    pub themes: usize,
    pub universes: usize,
    /// Memberships by group type (`ETF`, `SECTOR`, `THEME`, `UNIVERSE`).
    pub relationships: BTreeMap<String, usize>,
    pub relationships_total: usize,
}

/// One sector's share of the stocks.
#[derive(Clone, Debug, Serialize)]
pub struct SectorShare {
    pub sector: String,
    pub name: String,
    pub stocks: usize,
    pub pct: f64,
}

/// A ratio with its parts.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub count: usize,
    pub of: usize,
    pub pct: f64,
}

impl Ratio {
    fn new(count: usize, of: usize) -> Self {
        let pct = if of == 0 {
            100.0
        } else {
            count as f64 * 100.0 / of as f64
        };
        Self {
            count,
            of,
            pct: (pct * 100.0).round() / 100.0,
        }
    }
}

/// Quality metrics.
#[derive(Clone, Debug, Serialize)]
pub struct Quality {
    /// ETFs with at least one holding.
    pub etf_coverage: Ratio,
    /// Stocks whose sector is not `unknown`, each stock counted once.
    pub sector_coverage: Ratio,
    /// Validation checks that did not fail.
    pub integrity: Ratio,
    /// The checks that failed or warned, by name.
    pub issues: Vec<String>,
}

/// One holding in a top-10 list.
#[derive(Clone, Debug, Serialize)]
pub struct Holding {
    pub symbol: String,
    pub name: Option<String>,
    pub weight: Option<f64>,
}

/// One ETF in the detail section.
#[derive(Clone, Debug, Serialize)]
pub struct EtfDetail {
    pub etf: String,
    pub description: Option<String>,
    pub holdings: usize,
    pub total_weight: f64,
    pub top10: Vec<Holding>,
}

/// One universe in the detail section.
#[derive(Clone, Debug, Serialize)]
pub struct UniverseDetail {
    pub universe: String,
    pub description: Option<String>,
    pub size: usize,
}

/// The detail section.
#[derive(Clone, Debug, Serialize)]
pub struct Detail {
    pub etfs: Vec<EtfDetail>,
    pub universes: Vec<UniverseDetail>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub environment: String,
    pub totals: Totals,
    pub sector_distribution: Vec<SectorShare>,
    pub quality: Quality,
    pub detail: Option<Detail>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Console,
    Markdown,
    Json,
}

/// Computes the report (and the validation it rests on).
pub async fn report(
    db: &impl ConnectionTrait,
    environment: &str,
    sectors: &Sectors,
    detail: bool,
) -> Result<(Report, Validation), DbErr> {
    let groups = graph::groups(db, environment, None).await?;
    let ids: Vec<i32> = groups.iter().map(|g| g.id).collect();
    let members = graph::members_of_groups(db, &ids).await?;
    let mut totals = Totals::default();
    let mut stocks = std::collections::BTreeSet::new();
    let mut sector_of: BTreeMap<&str, &str> = BTreeMap::new();
    for g in &groups {
        let list = members.get(&g.id).map(Vec::as_slice).unwrap_or_default();
        match g.group_type.parse::<GroupType>() {
            Ok(GroupType::Etf) => totals.etfs += 1,
            Ok(GroupType::Sector) => totals.sectors += 1,
            Ok(GroupType::Theme) => totals.themes += 1,
            Ok(GroupType::Universe) => totals.universes += 1,
            Err(_) => {}
        }
        *totals
            .relationships
            .entry(g.group_type.clone())
            .or_default() += list.len();
        totals.relationships_total += list.len();
        for m in list {
            if g.group_type == GroupType::Sector.as_str() {
                sector_of.insert(m.symbol.as_str(), g.name.as_str());
            } else {
                stocks.insert(m.symbol.as_str());
            }
        }
    }
    totals.stocks = stocks.len();

    let mut per_sector: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &stocks {
        *per_sector
            .entry(sector_of.get(s).copied().unwrap_or(UNKNOWN))
            .or_default() += 1;
    }
    let mut sector_distribution: Vec<SectorShare> = sectors
        .defs
        .iter()
        .map(|d| {
            let n = per_sector.get(d.key.as_str()).copied().unwrap_or(0);
            SectorShare {
                sector: d.key.clone(),
                name: d.name.clone(),
                stocks: n,
                pct: Ratio::new(n, stocks.len()).pct,
            }
        })
        .collect();
    sector_distribution.sort_by(|a, b| b.stocks.cmp(&a.stocks).then(a.sector.cmp(&b.sector)));
    let classified = stocks
        .iter()
        .filter(|s| sector_of.get(*s).is_some_and(|k| *k != UNKNOWN))
        .count();

    let validation = validate(db, environment, sectors).await?;
    let etf_groups: Vec<_> = groups
        .iter()
        .filter(|g| g.group_type == GroupType::Etf.as_str())
        .collect();
    let with_holdings = etf_groups
        .iter()
        .filter(|g| members.get(&g.id).is_some_and(|l| !l.is_empty()))
        .count();
    let passing = validation
        .checks
        .iter()
        .filter(|c| c.status != Status::Fail)
        .count();
    let quality = Quality {
        etf_coverage: Ratio::new(with_holdings, etf_groups.len()),
        sector_coverage: Ratio::new(classified, stocks.len()),
        integrity: Ratio::new(passing, validation.checks.len()),
        issues: validation
            .checks
            .iter()
            .filter(|c| c.status != Status::Pass)
            .map(|c| format!("{} {} ({})", c.status.as_str(), c.name, c.count))
            .collect(),
    };

    let detail = detail.then(|| Detail {
        etfs: etf_groups
            .iter()
            .map(|g| {
                // members_of_groups orders each group heaviest first.
                let list = members.get(&g.id).map(Vec::as_slice).unwrap_or_default();
                EtfDetail {
                    etf: g.name.clone(),
                    description: g.description.clone(),
                    holdings: list.len(),
                    total_weight: round(list.iter().filter_map(|m| m.weight).sum()),
                    top10: list
                        .iter()
                        .take(10)
                        .map(|m| Holding {
                            symbol: m.symbol.clone(),
                            name: m
                                .metadata
                                .as_ref()
                                .and_then(|meta| meta["name"].as_str())
                                .map(str::to_owned),
                            weight: m.weight,
                        })
                        .collect(),
                }
            })
            .collect(),
        universes: groups
            .iter()
            .filter(|g| g.group_type == GroupType::Universe.as_str())
            .map(|g| UniverseDetail {
                universe: g.name.clone(),
                description: g.description.clone(),
                size: members.get(&g.id).map_or(0, Vec::len),
            })
            .collect(),
    });

    Ok((
        Report {
            environment: environment.to_owned(),
            totals,
            sector_distribution,
            quality,
            detail,
        },
        validation,
    ))
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl Report {
    /// The report in a format.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            Format::Console | Format::Markdown => self.render_text(format == Format::Markdown),
        }
    }

    fn render_text(&self, markdown: bool) -> String {
        let mut out = String::new();
        let heading = |out: &mut String, text: &str| {
            if markdown {
                let _ = writeln!(out, "## {text}\n");
            } else {
                let _ = writeln!(out, "{text}");
            }
        };
        if markdown {
            let _ = writeln!(out, "# Holdings Graph report ({})\n", self.environment);
        } else {
            let _ = writeln!(out, "Holdings Graph report ({})\n", self.environment);
        }
        let t = &self.totals;
        heading(&mut out, "Totals");
        let mut totals = Table::new([("what", Kind::Text), ("count", Kind::Count)]);
        totals.rows([
            ["ETFs".into(), t.etfs.into()],
            ["Stocks".into(), t.stocks.into()],
            ["Sectors".into(), t.sectors.into()],
            ["Themes".into(), t.themes.into()],
            ["Universes".into(), t.universes.into()],
        ]);
        for (kind, n) in &t.relationships {
            totals.row([format!("{kind} relationships").into(), (*n).into()]);
        }
        totals.row(["All relationships".into(), t.relationships_total.into()]);
        print(&mut out, markdown, &totals);

        heading(&mut out, "Sector distribution");
        let mut sectors = Table::new([
            ("sector", Kind::Text),
            ("stocks", Kind::Count),
            ("share %", Kind::PERCENT),
        ]);
        sectors.rows(
            self.sector_distribution
                .iter()
                .map(|s| [Cell::from(&s.name), s.stocks.into(), s.pct.into()]),
        );
        print(&mut out, markdown, &sectors);

        heading(&mut out, "Quality");
        let q = &self.quality;
        let ratio = |r: &Ratio| format!("{:.2} % ({} of {})", r.pct, r.count, r.of);
        let mut metrics = Table::new([("metric", Kind::Text), ("value", Kind::Text)]);
        metrics.rows([
            [
                "ETF coverage (ETFs with holdings)".into(),
                ratio(&q.etf_coverage).into(),
            ],
            [
                "Sector coverage (stocks with a sector)".into(),
                ratio(&q.sector_coverage).into(),
            ],
            [
                "Integrity (validation checks not failing)".into(),
                ratio(&q.integrity).into(),
            ],
        ]);
        for issue in &q.issues {
            metrics.row(["Issue".into(), issue.into()]);
        }
        print(&mut out, markdown, &metrics);

        if let Some(detail) = &self.detail {
            for etf in &detail.etfs {
                heading(
                    &mut out,
                    &format!(
                        "{} — {} holdings, {:.2} % total weight, top 10 by weight",
                        etf.etf, etf.holdings, etf.total_weight
                    ),
                );
                let mut top10 = Table::new([
                    ("symbol", Kind::Text),
                    ("name", Kind::Text),
                    ("weight %", Kind::WEIGHT),
                ]);
                top10.rows(etf.top10.iter().map(|h| {
                    [
                        Cell::from(&h.symbol),
                        h.name.as_ref().into(),
                        h.weight.into(),
                    ]
                }));
                print(&mut out, markdown, &top10);
            }
            heading(&mut out, "Universes");
            let mut universes = Table::new([("universe", Kind::Text), ("size", Kind::Count)]);
            universes.rows(
                detail
                    .universes
                    .iter()
                    .map(|u| [Cell::from(&u.universe), u.size.into()]),
            );
            print(&mut out, markdown, &universes);
        }
        out
    }
}

/// A table and the blank line after it.
fn print(out: &mut String, markdown: bool, table: &Table) {
    if markdown {
        let _ = writeln!(out, "{}", table.to_markdown());
    } else {
        let _ = writeln!(out, "{table}\n");
    }
}
