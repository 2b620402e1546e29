//! `report`: totals, sector distribution, quality metrics and (with detail) each ETF's top 10
//! holdings by weight and each universe's size. The numbers are computed once here and every
//! format (console, Markdown, JSON) prints the same struct, so they cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use entity::GroupType;
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::definitions::{Sectors, UNKNOWN};
use crate::graph;
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
        let mut rows: Vec<[String; 2]> = vec![
            ["ETFs".into(), t.etfs.to_string()],
            ["Stocks".into(), t.stocks.to_string()],
            ["Sectors".into(), t.sectors.to_string()],
            ["Themes".into(), t.themes.to_string()],
            ["Universes".into(), t.universes.to_string()],
        ];
        for (kind, n) in &t.relationships {
            rows.push([format!("{kind} relationships"), n.to_string()]);
        }
        rows.push([
            "All relationships".into(),
            t.relationships_total.to_string(),
        ]);
        table(&mut out, markdown, &["what", "count"], &rows);

        heading(&mut out, "Sector distribution");
        let rows: Vec<[String; 3]> = self
            .sector_distribution
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    s.stocks.to_string(),
                    format!("{:.2} %", s.pct),
                ]
            })
            .collect();
        table(&mut out, markdown, &["sector", "stocks", "share"], &rows);

        heading(&mut out, "Quality");
        let q = &self.quality;
        let ratio = |r: &Ratio| format!("{:.2} % ({} of {})", r.pct, r.count, r.of);
        let mut rows = vec![
            [
                "ETF coverage (ETFs with holdings)".to_owned(),
                ratio(&q.etf_coverage),
            ],
            [
                "Sector coverage (stocks with a sector)".to_owned(),
                ratio(&q.sector_coverage),
            ],
            [
                "Integrity (validation checks not failing)".to_owned(),
                ratio(&q.integrity),
            ],
        ];
        for issue in &q.issues {
            rows.push(["Issue".to_owned(), issue.clone()]);
        }
        table(&mut out, markdown, &["metric", "value"], &rows);

        if let Some(detail) = &self.detail {
            for etf in &detail.etfs {
                heading(
                    &mut out,
                    &format!(
                        "{} — {} holdings, {:.2} % total weight, top 10 by weight",
                        etf.etf, etf.holdings, etf.total_weight
                    ),
                );
                let rows: Vec<[String; 3]> = etf
                    .top10
                    .iter()
                    .map(|h| {
                        [
                            h.symbol.clone(),
                            h.name.clone().unwrap_or_default(),
                            h.weight.map(|w| format!("{w}")).unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&mut out, markdown, &["symbol", "name", "weight %"], &rows);
            }
            heading(&mut out, "Universes");
            let rows: Vec<[String; 2]> = detail
                .universes
                .iter()
                .map(|u| [u.universe.clone(), u.size.to_string()])
                .collect();
            table(&mut out, markdown, &["universe", "size"], &rows);
        }
        out
    }
}

fn table<const N: usize>(
    out: &mut String,
    markdown: bool,
    header: &[&str; N],
    rows: &[[String; N]],
) {
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(N));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(out);
    } else {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_header(header.to_vec());
        for row in rows {
            t.add_row(row.to_vec());
        }
        let _ = writeln!(out, "{t}\n");
    }
}
