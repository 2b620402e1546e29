//! Finding the header row by its column names, and what it says about the file's shape.

use serde::Serialize;

use super::{Expect, HEADER_SEARCH_ROWS, Record, Rejection};
use crate::symbol::{Symbol, trim_cell};

/// The input shape a file was recognised as, by its header row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `symbol,name,weight[,sector]` in any order.
    Canonical,
    /// iShares export: `Ticker,Name,Sector,Asset Class,Weight (%),...`.
    #[serde(rename = "ishares")]
    IShares,
    /// SPDR export: `Name,Ticker,Identifier,SEDOL,Weight,Sector,...`.
    Spdr,
    /// Vanguard export: `Ticker,Holdings,% of funds,...`.
    Vanguard,
    /// A universe with a header row.
    Universe,
    /// A universe with one symbol per line and no header.
    UniverseList,
}

impl Shape {
    /// The name shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canonical => "canonical",
            Self::IShares => "ishares",
            Self::Spdr => "spdr",
            Self::Vanguard => "vanguard",
            Self::Universe => "universe",
            Self::UniverseList => "universe_list",
        }
    }
}

/// Column positions in the header row.
#[derive(Clone, Debug, Default)]
pub struct Columns {
    pub symbol: usize,
    pub name: Option<usize>,
    pub weight: Option<usize>,
    pub sector: Option<usize>,
    pub asset_class: Option<usize>,
    /// Where the security is listed or domiciled: iShares' `Location`, a country column.
    pub country: Option<usize>,
    pub exchange: Option<usize>,
    pub isin: Option<usize>,
}

/// The header row found, if any, and what it maps.
pub struct Found {
    pub header_index: Option<usize>,
    pub columns: Columns,
    pub shape: Shape,
}

const SYMBOL: &[&str] = &["symbol", "ticker", "ticker symbol"];
const NAME: &[&str] = &[
    "name",
    "holdings",
    "holding",
    "holding name",
    "security name",
    "security",
    "company",
    "company name",
    "description",
];
const SECTOR: &[&str] = &["sector", "gics sector"];
const ASSET_CLASS: &[&str] = &["asset class", "asset type", "security type"];
const COUNTRY: &[&str] = &[
    "location",
    "country",
    "market",
    "country of risk",
    "country of listing",
    "listing country",
];
const EXCHANGE: &[&str] = &["exchange", "primary exchange", "listing exchange"];
const ISIN: &[&str] = &["isin"];

fn is_weight(cell: &str) -> bool {
    cell.starts_with("weight") || cell.starts_with("% of") || cell == "%" || cell == "weighting"
}

fn position(cells: &[String], names: &[&str]) -> Option<usize> {
    cells.iter().position(|c| names.contains(&c.as_str()))
}

/// Finds the header row among the first rows of the file.
pub fn find(records: &[Record], expect: Expect) -> Result<Found, Rejection> {
    for (index, (line, record)) in records.iter().take(HEADER_SEARCH_ROWS).enumerate() {
        let cells: Vec<String> = record
            .iter()
            .map(|c| trim_cell(c).to_ascii_lowercase())
            .collect();
        let weight = cells.iter().position(|c| is_weight(c));
        let name = position(&cells, NAME);
        let Some(symbol) = position(&cells, SYMBOL) else {
            if weight.is_some() && name.is_some() {
                return Err(Rejection::new(
                    Some(*line),
                    "the header row has no symbol or ticker column",
                ));
            }
            continue;
        };
        if expect == Expect::Holdings && weight.is_none() {
            return Err(Rejection::new(
                Some(*line),
                "the header row has no weight column (weight, Weight (%), % of funds)",
            ));
        }
        let columns = Columns {
            symbol,
            name,
            weight,
            sector: position(&cells, SECTOR),
            asset_class: position(&cells, ASSET_CLASS),
            country: position(&cells, COUNTRY),
            exchange: position(&cells, EXCHANGE),
            isin: position(&cells, ISIN),
        };
        let shape = match expect {
            Expect::Universe => Shape::Universe,
            Expect::Holdings if columns.asset_class.is_some() => Shape::IShares,
            Expect::Holdings if cells.iter().any(|c| c == "identifier" || c == "sedol") => {
                Shape::Spdr
            }
            Expect::Holdings if weight.is_some_and(|w| cells[w].starts_with("% of")) => {
                Shape::Vanguard
            }
            Expect::Holdings => Shape::Canonical,
        };
        return Ok(Found {
            header_index: Some(index),
            columns,
            shape,
        });
    }
    if expect == Expect::Universe {
        // No header: one symbol per line, and the first row must be one.
        if let Some((line, first)) = records
            .iter()
            .find(|(_, r)| r.iter().any(|c| !trim_cell(c).is_empty()))
        {
            if Symbol::parse(first.get(0).unwrap_or("")).is_ok() {
                return Ok(Found {
                    header_index: None,
                    columns: Columns::default(),
                    shape: Shape::UniverseList,
                });
            }
            return Err(Rejection::new(
                Some(*line),
                "no header row with a symbol or ticker column, and the first row is not a symbol",
            ));
        }
    }
    Err(Rejection::new(
        None,
        format!(
            "no header row found in the first {HEADER_SEARCH_ROWS} rows \
             (expected a `symbol` or `ticker` column and a weight column)"
        ),
    ))
}

/// The fund's name from the lines above the header: SPDR's `Fund Name:` value, else a lone
/// title cell such as iShares' `iShares Core S&P 500 ETF`.
pub fn title(preamble: &[Record]) -> Option<String> {
    for (_, record) in preamble {
        let first = trim_cell(record.get(0).unwrap_or(""));
        if first.eq_ignore_ascii_case("fund name:") {
            return record
                .get(1)
                .map(trim_cell)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
        }
    }
    preamble.iter().find_map(|(_, record)| {
        let cells: Vec<&str> = record
            .iter()
            .map(trim_cell)
            .filter(|c| !c.is_empty())
            .collect();
        let lower = cells.first()?.to_ascii_lowercase();
        let is_title = cells.len() == 1
            && !lower.contains("as of")
            && !lower.contains("holdings details")
            && !lower.ends_with(':');
        is_title.then(|| cells[0].to_owned())
    })
}
