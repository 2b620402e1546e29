//! `enrich-sectors`: every stock (any symbol in an ETF, universe or theme) gets exactly one
//! sector membership, from the best source it has, and the membership records which source
//! decided. Sources, best first:
//!
//! 1. a manual choice: `sector_overrides.csv`, or one made earlier with `set-sector` and kept
//!    in the database;
//! 2. the provider's sector column in an ETF or universe file (the label most of its files
//!    give, mapped through the aliases of `sectors.json`);
//! 3. membership in one of the 11 sector SPDR funds (XLK, XLF, ...);
//! 4. a security-master classification file in `classifications/` under the holdings folder,
//!    mapped to sector keys through `nasdaq_sector_map.csv` (a file that already uses GICS
//!    sector names is read through the aliases of `sectors.json`);
//! 5. else `unknown`.
//!
//! Where a lower source disagrees with the one that decided, the disagreement is listed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use entity::GroupType;
use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::definitions::{
    ClassificationMap, DefinitionError, DefinitionPaths, Override, SECTOR_ETFS, Sectors, UNKNOWN,
    load_overrides,
};
use crate::diff::Desired;
use crate::error::LoadError;
use crate::organize::organize_sectors;
use crate::profile::{Profile, profiles};
use crate::report::{LoadReport, Mode};
use crate::store::{self, MembershipRow};
use crate::symbol::{Symbol, trim_cell};
use crate::sync::{SyncRequest, begin_and_read, member_inputs, sync_with};

/// Where a stock's sector came from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Manual,
    Provider,
    SectorEtf,
    Classification,
    None,
}

impl Source {
    /// The value stored in the membership's `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Provider => "provider",
            Self::SectorEtf => "sector_etf",
            Self::Classification => "classification",
            Self::None => "none",
        }
    }
}

/// One source's answer for a stock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub source: Source,
    pub sector: String,
    /// What within the source said so (`IVV, IWM`, `XLK`, the override's note).
    pub detail: String,
    pub industry: Option<String>,
}

/// A lower source that disagrees with the one that decided.
#[derive(Clone, Debug, Serialize)]
pub struct Disagreement {
    pub symbol: String,
    pub chosen: Candidate,
    pub other: Candidate,
}

/// How often the classification map agrees with a GICS source where a stock has both.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Agreement {
    pub compared: usize,
    pub agreeing: usize,
}

impl Agreement {
    /// Agreeing share in percent (100 when nothing was compared).
    pub fn pct(&self) -> f64 {
        pct(self.agreeing, self.compared)
    }
}

/// The enrichment report: the sync report plus where the sectors came from.
#[derive(Clone, Debug, Serialize)]
pub struct EnrichReport {
    pub sync: LoadReport,
    pub stocks: usize,
    pub by_source: BTreeMap<Source, usize>,
    /// Stocks with a sector other than `unknown`.
    pub classified: usize,
    pub classification_files: Vec<String>,
    pub agreement: Agreement,
    pub disagreements: Vec<Disagreement>,
    /// Sector groups that had to be created first.
    pub organized_sectors: bool,
}

impl EnrichReport {
    /// Share of stocks with a real sector, in percent.
    pub fn coverage_pct(&self) -> f64 {
        pct(self.classified, self.stocks)
    }

    /// The report as the CLI prints it.
    pub fn render(&self, verbose: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let moves = &self.sync.totals.counts;
        let _ = writeln!(
            out,
            "{}Sectors for {} stocks: {} classified ({:.2} %), {} unknown",
            if self.sync.mode == Mode::DryRun {
                "[DRY RUN] "
            } else {
                ""
            },
            self.stocks,
            self.classified,
            self.coverage_pct(),
            self.stocks - self.classified
        );
        let sources: Vec<String> = self
            .by_source
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        let _ = writeln!(out, "  decided by: {}", sources.join(", "));
        if self.classification_files.is_empty() {
            let _ = writeln!(out, "  classification files: none");
        } else {
            let _ = writeln!(
                out,
                "  classification files: {}; the map agrees with the GICS sources for {} of {} stocks ({:.2} %)",
                self.classification_files.join(", "),
                self.agreement.agreeing,
                self.agreement.compared,
                self.agreement.pct()
            );
        }
        let verb = if self.sync.mode == Mode::DryRun {
            "would move"
        } else {
            "moved"
        };
        let _ = writeln!(
            out,
            "  memberships {verb}: {} added, {} removed, {} metadata updated, {} unchanged",
            moves.created, moves.deleted, moves.updated, moves.unchanged
        );
        let _ = writeln!(
            out,
            "  {} disagreements between sources (the better source won){}",
            self.disagreements.len(),
            if verbose || self.disagreements.is_empty() {
                ""
            } else {
                "; --verbose lists them"
            }
        );
        if verbose {
            for d in &self.disagreements {
                let _ = writeln!(
                    out,
                    "    {}: {} ({}) over {} ({})",
                    d.symbol,
                    d.chosen.sector,
                    d.chosen.source.as_str(),
                    d.other.sector,
                    d.other.source.as_str()
                );
            }
        }
        if let Some(run) = self.sync.run_id {
            let _ = writeln!(out, "Run #{run} recorded in {:.1} ms", self.sync.elapsed_ms);
        }
        out
    }
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        100.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

/// What enrichment needs besides the database.
#[derive(Clone, Debug)]
pub struct EnrichRequest {
    pub environment: String,
    pub mode: Mode,
    pub definitions: DefinitionPaths,
    /// The holdings folder; its `classifications/` sub-folder is read when present.
    pub holdings_dir: PathBuf,
    /// Symbols whose stored manual choice is to be forgotten (`set-sector --clear`).
    pub forget_manual: Vec<String>,
}

/// Why enrichment could not run.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{path}: {reason}")]
    Classification { path: PathBuf, reason: String },
}

impl From<sea_orm::DbErr> for EnrichError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Load(LoadError::Db(e))
    }
}

/// A row of a classification file.
#[derive(Clone, Debug)]
struct Classified {
    sector: String,
    industry: String,
}

/// Reads every CSV file of `dir` as a security master (`Symbol`, `Sector`, `Industry` columns,
/// any case and order). A missing folder is no classification.
fn read_classifications(
    dir: &Path,
) -> Result<(HashMap<String, Classified>, Vec<String>), EnrichError> {
    let mut out = HashMap::new();
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok((out, files));
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
        .collect();
    paths.sort();
    for path in paths {
        let bad = |reason: String| EnrichError::Classification {
            path: path.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|h| trim_cell(h).to_ascii_lowercase())
            .collect();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (Some(symbol), Some(sector)) = (col("symbol"), col("sector")) else {
            return Err(bad(
                "line 1: expected `Symbol` and `Sector` columns".to_owned()
            ));
        };
        let industry = col("industry");
        for record in reader.records() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            let Ok(sym) = Symbol::parse(record.get(symbol).unwrap_or("")) else {
                continue;
            };
            let sector = trim_cell(record.get(sector).unwrap_or("")).to_owned();
            if sector.is_empty() {
                continue;
            }
            let industry = industry
                .and_then(|i| record.get(i))
                .map(|s| trim_cell(s).to_owned())
                .unwrap_or_default();
            out.entry(sym.as_str().to_owned())
                .or_insert(Classified { sector, industry });
        }
        files.push(
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    Ok((out, files))
}

/// Every source's answer for every stock, best first.
fn candidates(
    rows: &[MembershipRow],
    sectors: &Sectors,
    overrides: &[Override],
    stored_manual: &HashMap<String, Candidate>,
    classified: &HashMap<String, Classified>,
    map: &ClassificationMap,
) -> BTreeMap<String, Vec<Candidate>> {
    let stocks: HashSet<&str> = rows
        .iter()
        .filter(|r| r.group_type != GroupType::Sector)
        .map(|r| r.symbol.as_str())
        .collect();
    // Classification files list US tickers: they speak for a US listing only, never for a
    // foreign company that shares a ticker. A listing is taken as US when a provider file
    // says so, or when a row of it names no market at all (themes list US listings; rows
    // loaded before markets existed).
    let us_listings: HashSet<&str> = rows
        .iter()
        .filter(|r| r.group_type != GroupType::Sector)
        .filter(|r| crate::listing::is_plain(&r.symbol))
        .filter(|r| match r.metadata.as_ref().map(|m| m.get("country")) {
            Some(Some(country)) => country == "US",
            _ => true,
        })
        .map(|r| r.symbol.as_str())
        .collect();
    let sector_etfs: HashMap<&str, &str> = SECTOR_ETFS.into_iter().collect();
    let mut votes: HashMap<&str, BTreeMap<&str, Vec<&str>>> = HashMap::new();
    let mut in_sector_etf: HashMap<&str, (f64, &str, &str)> = HashMap::new();
    for row in rows {
        let provider_files = matches!(row.group_type, GroupType::Etf | GroupType::Universe);
        if provider_files
            && let Some(label) = row.metadata.as_ref().and_then(|m| m["sector"].as_str())
            && let Some(key) = sectors.key_for(label)
            && key != UNKNOWN
        {
            votes
                .entry(row.symbol.as_str())
                .or_default()
                .entry(key)
                .or_default()
                .push(row.group_name.as_str());
        }
        if row.group_type == GroupType::Etf
            && let Some(key) = sector_etfs.get(row.group_name.as_str())
        {
            let weight = row.weight.unwrap_or(0.0);
            let entry = in_sector_etf.entry(row.symbol.as_str()).or_insert((
                weight,
                key,
                row.group_name.as_str(),
            ));
            if weight > entry.0 {
                *entry = (weight, key, row.group_name.as_str());
            }
        }
    }
    let overrides: HashMap<&str, &Override> =
        overrides.iter().map(|o| (o.symbol.as_str(), o)).collect();

    let mut out = BTreeMap::new();
    for symbol in stocks {
        let mut list = Vec::new();
        if let Some(o) = overrides.get(symbol) {
            list.push(Candidate {
                source: Source::Manual,
                sector: o.sector.clone(),
                detail: o
                    .note
                    .clone()
                    .unwrap_or_else(|| "sector_overrides.csv".to_owned()),
                industry: o.industry.clone(),
            });
        } else if let Some(c) = stored_manual.get(symbol) {
            list.push(c.clone());
        }
        if let Some(v) = votes.get(symbol) {
            // The label most files give; ties go to the alphabetically first key.
            if let Some((key, files)) = v
                .iter()
                .max_by(|(ka, fa), (kb, fb)| fa.len().cmp(&fb.len()).then(kb.cmp(ka)))
            {
                let mut files = files.clone();
                files.sort_unstable();
                files.dedup();
                list.push(Candidate {
                    source: Source::Provider,
                    sector: (*key).to_owned(),
                    detail: files.join(", "),
                    industry: None,
                });
            }
        }
        if let Some((_, key, etf)) = in_sector_etf.get(symbol) {
            list.push(Candidate {
                source: Source::SectorEtf,
                sector: (*key).to_owned(),
                detail: (*etf).to_owned(),
                industry: None,
            });
        }
        // The map translates a foreign taxonomy; a file already in GICS names needs none.
        if let Some(c) = classified.get(symbol)
            && us_listings.contains(symbol)
            && let Some(key) = map
                .key_for(&c.sector, &c.industry)
                .or_else(|| sectors.key_for(&c.sector).filter(|k| *k != UNKNOWN))
        {
            list.push(Candidate {
                source: Source::Classification,
                sector: key.to_owned(),
                detail: format!("{} / {}", c.sector, c.industry),
                industry: (!c.industry.is_empty()).then(|| c.industry.clone()),
            });
        }
        out.insert(symbol.to_owned(), list);
    }
    out
}

/// The sector membership metadata of a stock.
fn membership_metadata(
    chosen: Option<&Candidate>,
    industry: Option<(&str, Source)>,
    profile: Option<&Profile>,
) -> Value {
    let mut meta = Map::new();
    meta.insert(
        "source".into(),
        json!(chosen.map_or(Source::None, |c| c.source).as_str()),
    );
    if let Some(c) = chosen {
        meta.insert("detail".into(), json!(c.detail));
    }
    if let Some((industry, source)) = industry {
        meta.insert("industry".into(), json!(industry));
        meta.insert("industry_source".into(), json!(source.as_str()));
    }
    if let Some(p) = profile {
        for (k, v) in p.fields() {
            meta.insert(k.into(), v);
        }
    }
    Value::Object(meta)
}

/// Runs enrichment.
pub async fn enrich_sectors(
    db: &DatabaseConnection,
    req: &EnrichRequest,
) -> Result<EnrichReport, EnrichError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let env = req.environment.as_str();
    let sectors = Sectors::load(&req.definitions.sectors)?;
    let map = ClassificationMap::load(&req.definitions.classification_map, &sectors)?;
    let overrides = load_overrides(&req.definitions.overrides, &sectors)?;
    let (classified, classification_files) =
        read_classifications(&req.holdings_dir.join("classifications"))?;

    let stored_sectors = store::groups(db, env, GroupType::Sector).await?;
    let organized_sectors = sectors
        .defs
        .iter()
        .any(|d| !stored_sectors.contains_key(&d.key));
    if organized_sectors && req.mode != Mode::DryRun {
        organize_sectors(
            db,
            env,
            &sectors,
            &req.definitions.sectors.display().to_string(),
            Mode::Incremental,
        )
        .await?;
    }

    // Every stock and its stored sector are read under the write lock, so no other writer
    // changes them between this read and the run's commit.
    let sync_req = SyncRequest {
        group_type: GroupType::Sector,
        mode: req.mode,
        environment: env.to_owned(),
        kind: "enrichment",
        source: req.holdings_dir.display().to_string(),
        scope: None,
        remove_gone: false,
        dry_run: false,
        guards: None,
    };
    let (writer, rows) =
        begin_and_read(db, &sync_req, started_at, store::all_memberships(db, env)).await?;
    let forget: HashSet<&str> = req.forget_manual.iter().map(String::as_str).collect();
    let stored_manual: HashMap<String, Candidate> = rows
        .iter()
        .filter(|r| r.group_type == GroupType::Sector && !forget.contains(r.symbol.as_str()))
        .filter_map(|r| {
            let meta = r.metadata.as_ref()?;
            (meta["source"] == "manual").then(|| {
                (
                    r.symbol.clone(),
                    Candidate {
                        source: Source::Manual,
                        sector: r.group_name.clone(),
                        detail: meta["detail"].as_str().unwrap_or("set-sector").to_owned(),
                        industry: meta["industry"].as_str().map(str::to_owned),
                    },
                )
            })
        })
        .collect();
    let all = candidates(
        &rows,
        &sectors,
        &overrides,
        &stored_manual,
        &classified,
        &map,
    );
    let profiles = profiles(&rows);

    let mut members: BTreeMap<String, BTreeMap<Symbol, Desired>> = sectors
        .defs
        .iter()
        .map(|d| (d.key.clone(), BTreeMap::new()))
        .collect();
    let mut by_source: BTreeMap<Source, usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut agreement = Agreement::default();
    let mut classified_count = 0;
    for (symbol, list) in &all {
        let chosen = list.first();
        let sector = chosen.map_or(UNKNOWN, |c| c.sector.as_str());
        *by_source
            .entry(chosen.map_or(Source::None, |c| c.source))
            .or_default() += 1;
        if sector != UNKNOWN {
            classified_count += 1;
        }
        if let Some(c) = chosen {
            for other in &list[1..] {
                if other.sector != c.sector {
                    disagreements.push(Disagreement {
                        symbol: symbol.clone(),
                        chosen: c.clone(),
                        other: other.clone(),
                    });
                }
            }
        }
        let gics = list
            .iter()
            .find(|c| matches!(c.source, Source::Provider | Source::SectorEtf));
        let classification = list.iter().find(|c| c.source == Source::Classification);
        if let (Some(g), Some(c)) = (gics, classification) {
            agreement.compared += 1;
            if g.sector == c.sector {
                agreement.agreeing += 1;
            }
        }
        let industry = list
            .iter()
            .find_map(|c| c.industry.as_deref().map(|i| (i, c.source)));
        let metadata = membership_metadata(chosen, industry, profiles.get(symbol));
        let target = if members.contains_key(sector) {
            sector
        } else {
            UNKNOWN
        };
        if let Some(group) = members.get_mut(target) {
            group.insert(
                Symbol::from_normalised(symbol.clone()),
                Desired {
                    weight: None,
                    metadata,
                },
            );
        }
    }

    let inputs = member_inputs("enrichment", "sector", members);
    let report = sync_with(db, &sync_req, writer, inputs, clock).await?;
    Ok(EnrichReport {
        sync: report,
        stocks: all.len(),
        by_source,
        classified: classified_count,
        classification_files,
        agreement,
        disagreements,
        organized_sectors,
    })
}
