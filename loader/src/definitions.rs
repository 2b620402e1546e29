//! The definition files the project ships and users edit (`definitions/`): sectors, themes,
//! the classification-to-GICS map and manual sector overrides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::symbol::{Symbol, trim_cell};

/// The sector every stock without a classification belongs to.
pub const UNKNOWN: &str = "unknown";

/// The 11 sector SPDR funds and the sector each one stands for.
pub const SECTOR_ETFS: [(&str, &str); 11] = [
    ("XLK", "information_technology"),
    ("XLF", "financials"),
    ("XLV", "health_care"),
    ("XLE", "energy"),
    ("XLI", "industrials"),
    ("XLY", "consumer_discretionary"),
    ("XLP", "consumer_staples"),
    ("XLU", "utilities"),
    ("XLB", "materials"),
    ("XLRE", "real_estate"),
    ("XLC", "communication_services"),
];

/// A definition file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn invalid(path: &Path, reason: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<String, DefinitionError> {
    std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
        path: path.to_owned(),
        source,
    })
}

/// One sector from `sectors.json`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct SectorDef {
    pub key: String,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub industries: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// The sector taxonomy: the definitions and a lookup from any provider spelling to a key.
#[derive(Clone, Debug)]
pub struct Sectors {
    pub defs: Vec<SectorDef>,
    by_alias: HashMap<String, String>,
}

impl Sectors {
    /// Reads and checks `sectors.json`: unique keys, `unknown` present, no alias under two
    /// sectors.
    pub fn load(path: &Path) -> Result<Self, DefinitionError> {
        let defs: Vec<SectorDef> = serde_json::from_str(&read(path)?)
            .map_err(|e| invalid(path, format!("not a list of sectors: {e}")))?;
        let mut by_alias: HashMap<String, String> = HashMap::new();
        for def in &defs {
            if def.key.trim().is_empty() {
                return Err(invalid(path, "a sector has an empty key"));
            }
            for spelling in def
                .aliases
                .iter()
                .chain([&def.key, &def.name])
                .map(|a| alias_key(a))
            {
                if let Some(other) = by_alias.insert(spelling.clone(), def.key.clone())
                    && other != def.key
                {
                    return Err(invalid(
                        path,
                        format!("{spelling:?} names both {other} and {}", def.key),
                    ));
                }
            }
        }
        let mut keys: Vec<&str> = defs.iter().map(|d| d.key.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(path, "two sectors share a key"));
        }
        if !keys.contains(&UNKNOWN) {
            return Err(invalid(path, "the `unknown` sector is missing"));
        }
        Ok(Self { defs, by_alias })
    }

    /// The key a provider's label means (`Information Technology`, `Communication`, the key
    /// itself), if any.
    pub fn key_for(&self, label: &str) -> Option<&str> {
        self.by_alias.get(&alias_key(label)).map(String::as_str)
    }

    /// The definition of a key.
    pub fn get(&self, key: &str) -> Option<&SectorDef> {
        self.defs.iter().find(|d| d.key == key)
    }
}

fn alias_key(label: &str) -> String {
    trim_cell(label).to_lowercase()
}

/// One theme from `themes.json`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct ThemeDef {
    pub key: String,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub criteria: String,
    pub members: Vec<ThemeMember>,
}

/// A member of a theme.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct ThemeMember {
    pub symbol: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Reads `themes.json`.
pub fn load_themes(path: &Path) -> Result<Vec<ThemeDef>, DefinitionError> {
    let themes: Vec<ThemeDef> = serde_json::from_str(&read(path)?)
        .map_err(|e| invalid(path, format!("not a list of themes: {e}")))?;
    let mut keys: Vec<&str> = themes.iter().map(|t| t.key.as_str()).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(path, format!("theme {} is defined twice", w[0])));
    }
    for theme in &themes {
        for member in &theme.members {
            Symbol::parse(&member.symbol).map_err(|e| {
                invalid(
                    path,
                    format!("theme {}: member {:?}: {e}", theme.key, member.symbol),
                )
            })?;
        }
    }
    Ok(themes)
}

/// A fund as `funds.json` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct FundDef {
    /// The ETF's ticker, as its group is named (`SPY`).
    pub symbol: String,
    /// The fund's name (`SPDR S&P 500 ETF Trust`); a title in the provider's export wins.
    pub name: String,
    pub issuer: Option<String>,
    /// The market of every holding whose row names none (ISO country code; `US` for the
    /// bundled US funds); `null` when the fund holds many markets.
    pub market: Option<String>,
}

/// Every fund of `funds.json`, by ETF ticker.
#[derive(Clone, Debug, Default)]
pub struct Funds {
    by_symbol: HashMap<String, FundDef>,
}

impl Funds {
    /// Reads `funds.json`; refuses an unknown market code and a fund defined twice.
    pub fn load(path: &Path) -> Result<Self, DefinitionError> {
        let defs: Vec<FundDef> = serde_json::from_str(&read(path)?)
            .map_err(|e| invalid(path, format!("not a list of funds: {e}")))?;
        let mut by_symbol = HashMap::new();
        for def in defs {
            if let Some(market) = &def.market
                && crate::market::country_name(market).is_none()
            {
                return Err(invalid(
                    path,
                    format!("fund {}: unknown market {market:?}", def.symbol),
                ));
            }
            let key = def.symbol.to_ascii_uppercase();
            if by_symbol.insert(key, def).is_some() {
                return Err(invalid(path, "a fund is defined twice"));
            }
        }
        Ok(Self { by_symbol })
    }

    /// The definition of the fund whose group is `group` (any case).
    pub fn get(&self, group: &str) -> Option<&FundDef> {
        self.by_symbol.get(&group.to_ascii_uppercase())
    }

    /// The market of the fund's holdings, as a static code.
    pub fn market(&self, group: &str) -> Option<&'static str> {
        crate::market::country_code(self.get(group)?.market.as_deref()?)
    }
}

/// A classification taxonomy (the NASDAQ screener's sectors and industries) mapped to sector
/// keys: an industry row wins over its sector's default row.
#[derive(Clone, Debug, Default)]
pub struct ClassificationMap {
    by_industry: HashMap<(String, String), String>,
    by_sector: HashMap<String, String>,
}

impl ClassificationMap {
    /// Reads `source_sector,source_industry,sector` rows, checking every key against the
    /// sector taxonomy.
    pub fn load(path: &Path, sectors: &Sectors) -> Result<Self, DefinitionError> {
        let text = read(path)?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut map = Self::default();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| invalid(path, format!("line {line}: {e}")))?;
            let source_sector = alias_key(record.get(0).unwrap_or(""));
            let source_industry = alias_key(record.get(1).unwrap_or(""));
            let target = trim_cell(record.get(2).unwrap_or(""));
            let Some(key) = sectors.key_for(target) else {
                return Err(invalid(
                    path,
                    format!("line {line}: {target:?} is not a sector key"),
                ));
            };
            if source_sector.is_empty() {
                return Err(invalid(path, format!("line {line}: empty source_sector")));
            }
            if source_industry.is_empty() {
                map.by_sector.insert(source_sector, key.to_owned());
            } else {
                map.by_industry
                    .insert((source_sector, source_industry), key.to_owned());
            }
        }
        Ok(map)
    }

    /// The sector key for a (sector, industry) pair of the source taxonomy.
    pub fn key_for(&self, sector: &str, industry: &str) -> Option<&str> {
        let sector = alias_key(sector);
        if sector.is_empty() {
            return None;
        }
        self.by_industry
            .get(&(sector.clone(), alias_key(industry)))
            .or_else(|| self.by_sector.get(&sector))
            .map(String::as_str)
    }
}

/// One manual sector choice.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Override {
    pub symbol: String,
    pub sector: String,
    pub industry: Option<String>,
    pub note: Option<String>,
}

/// Reads `sector_overrides.csv` (`symbol,sector,industry,note`); a missing file is no
/// overrides. Every sector must be a key (or alias) of the taxonomy.
pub fn load_overrides(path: &Path, sectors: &Sectors) -> Result<Vec<Override>, DefinitionError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = read(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out: Vec<Override> = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| invalid(path, format!("line {line}: {e}")))?;
        let cell = |n: usize| {
            let c = trim_cell(record.get(n).unwrap_or(""));
            (!c.is_empty()).then(|| c.to_owned())
        };
        let Some(raw_symbol) = cell(0) else { continue };
        let symbol =
            Symbol::parse(&raw_symbol).map_err(|e| invalid(path, format!("line {line}: {e}")))?;
        let sector = cell(1).unwrap_or_default();
        let key = sectors
            .key_for(&sector)
            .ok_or_else(|| invalid(path, format!("line {line}: {sector:?} is not a sector")))?;
        out.retain(|o| o.symbol != symbol.as_str());
        out.push(Override {
            symbol: symbol.as_str().to_owned(),
            sector: key.to_owned(),
            industry: cell(2),
            note: cell(3),
        });
    }
    Ok(out)
}

/// Writes the overrides back, one row per symbol, sorted.
pub fn save_overrides(path: &Path, overrides: &[Override]) -> Result<(), DefinitionError> {
    let mut sorted = overrides.to_vec();
    sorted.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| invalid(path, e.to_string());
    writer
        .write_record(["symbol", "sector", "industry", "note"])
        .map_err(io)?;
    for o in &sorted {
        writer
            .write_record([
                o.symbol.as_str(),
                o.sector.as_str(),
                o.industry.as_deref().unwrap_or(""),
                o.note.as_deref().unwrap_or(""),
            ])
            .map_err(io)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| invalid(path, e.to_string()))?;
    std::fs::write(path, bytes).map_err(|source| DefinitionError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Where each definition file lives in a definitions folder.
#[derive(Clone, Debug)]
pub struct DefinitionPaths {
    pub sectors: PathBuf,
    pub themes: PathBuf,
    pub classification_map: PathBuf,
    pub overrides: PathBuf,
    pub share_classes: PathBuf,
    pub funds: PathBuf,
}

impl DefinitionPaths {
    /// The standard file names inside `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            sectors: dir.join("sectors.json"),
            themes: dir.join("themes.json"),
            classification_map: dir.join("nasdaq_sector_map.csv"),
            overrides: dir.join("sector_overrides.csv"),
            share_classes: dir.join("share_classes.csv"),
            funds: dir.join("funds.json"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../definitions")
    }

    #[test]
    fn shipped_definitions_are_complete_and_consistent() {
        let paths = DefinitionPaths::new(&shipped());
        let sectors = Sectors::load(&paths.sectors).expect("sectors");
        assert_eq!(sectors.defs.len(), 12);
        assert_eq!(
            sectors.key_for("Communication"),
            Some("communication_services")
        );
        assert_eq!(
            sectors.key_for(" information technology "),
            Some("information_technology")
        );
        assert_eq!(sectors.key_for("Cash and/or Derivatives"), None);
        for (_, key) in SECTOR_ETFS {
            assert!(sectors.get(key).is_some(), "{key}");
        }
        let themes = load_themes(&paths.themes).expect("themes");
        assert_eq!(themes.len(), 20);
        assert!(themes.iter().all(|t| t.members.len() >= 5));
        let map = ClassificationMap::load(&paths.classification_map, &sectors).expect("map");
        assert_eq!(
            map.key_for("Technology", "Nothing Listed"),
            Some("information_technology")
        );
        assert_eq!(map.key_for("", "Anything"), None);
        let funds = Funds::load(&paths.funds).expect("funds");
        assert_eq!(funds.market("spy"), Some("US"));
        assert_eq!(funds.market("VWO"), None);
        assert_eq!(
            funds.get("XLK").map(|f| f.name.as_str()),
            Some("The Technology Select Sector SPDR Fund")
        );
    }

    #[test]
    fn overrides_round_trip_and_refuse_unknown_sectors() {
        let sectors = Sectors::load(&DefinitionPaths::new(&shipped()).sectors).expect("sectors");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("o.csv");
        let rows = vec![Override {
            symbol: "BRK.B".into(),
            sector: "financials".into(),
            industry: Some("Insurance, Multi-line".into()),
            note: None,
        }];
        save_overrides(&path, &rows).expect("save");
        assert_eq!(load_overrides(&path, &sectors).expect("load"), rows);
        std::fs::write(&path, "symbol,sector\nAAPL,fruit\n").expect("write");
        let err = load_overrides(&path, &sectors).expect_err("bad sector");
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
