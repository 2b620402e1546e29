//! Readers: file bytes → holdings rows and typed skip reasons, nothing else.
//!
//! One table reader serves every shape, because the shapes differ only in their column names
//! and their junk rows: the header row is found by its column names (not by the file name),
//! title lines before it are skipped, and each row after it is either a holding or a
//! [`SkipReason`]. The shape recognised (`canonical`, `ishares`, `spdr`, `vanguard`,
//! `universe`) is reported so an operator can see what the reader took the file for.

mod header;
mod text;

use serde::Serialize;

use crate::market;
use crate::symbol::{Symbol, trim_cell};
use crate::weight;
use header::{Columns, Shape};

pub use header::Shape as FileShape;

/// What a file is expected to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// ETF holdings: a symbol and a weight per row.
    Holdings,
    /// A universe: a symbol per row, with or without a header.
    Universe,
}

/// Why a row was not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A title or date line before the header row.
    Title,
    /// An empty row (white space and non-breaking spaces count as empty).
    Blank,
    /// Cash, money-market or collateral positions.
    Cash,
    /// Futures, swaps, options and other derivatives.
    Derivative,
    /// Disclaimers and notes after the holdings.
    Footer,
    /// A symbol cell that is not a ticker.
    InvalidSymbol,
    /// A weight cell that is not a percentage.
    InvalidWeight,
    /// The same security again: merged into the first row, weights summed.
    Duplicate,
    /// Another security under a symbol already used: the lighter one is dropped.
    Collision,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 9] = [
        Self::Title,
        Self::Blank,
        Self::Cash,
        Self::Derivative,
        Self::Footer,
        Self::InvalidSymbol,
        Self::InvalidWeight,
        Self::Duplicate,
        Self::Collision,
    ];

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Blank => "blank",
            Self::Cash => "cash",
            Self::Derivative => "derivative",
            Self::Footer => "footer",
            Self::InvalidSymbol => "invalid_symbol",
            Self::InvalidWeight => "invalid_weight",
            Self::Duplicate => "duplicate",
            Self::Collision => "collision",
        }
    }
}

/// One row that was not loaded, with where it was and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    pub line: u64,
    pub reason: SkipReason,
    pub detail: String,
}

/// One holding as the file gave it (symbol normalised, share class not yet resolved).
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub line: u64,
    pub symbol: Symbol,
    /// The symbol exactly as the file wrote it.
    pub spelling: String,
    pub name: Option<String>,
    pub weight: Option<f64>,
    /// The provider's sector label, when the file has one.
    pub sector: Option<String>,
    /// The market (ISO country code) the row names: its location, country or exchange
    /// column, or its ISIN.
    pub market: Option<&'static str>,
    pub isin: Option<String>,
}

/// A file read as holdings.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    pub shape: Shape,
    /// The fund's name from the title lines, when there is one.
    pub title: Option<String>,
    pub holdings: Vec<Holding>,
    pub skipped: Vec<Skipped>,
    /// Rows read, title lines included: every one is a holding or a skip.
    pub rows_read: usize,
}

/// Why a whole file cannot be read as holdings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub line: Option<u64>,
    pub reason: String,
}

impl Rejection {
    fn new(line: Option<u64>, reason: impl Into<String>) -> Self {
        Self {
            line,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// How many rows from the top are searched for the header row.
const HEADER_SEARCH_ROWS: usize = 50;

/// Reads a file's bytes as holdings or a universe. Records are parsed one at a time: only the
/// first rows (where the header is looked for) are held, so memory follows the holdings kept,
/// not the file's rows.
pub fn read(expect: Expect, bytes: &[u8]) -> Result<ParsedFile, Rejection> {
    let text = text::decode(bytes)?;
    let mut records = Records::new(text);
    let mut head = Vec::with_capacity(HEADER_SEARCH_ROWS);
    while head.len() < HEADER_SEARCH_ROWS {
        match records.next() {
            Some(record) => head.push(record?),
            None => break,
        }
    }
    let found = header::find(&head, expect)?;
    let mut parsed = ParsedFile {
        shape: found.shape,
        title: None,
        holdings: Vec::new(),
        skipped: Vec::new(),
        rows_read: 0,
    };
    let data_start = match found.header_index {
        Some(index) => {
            parsed.title = header::title(&head[..index]);
            for (line, record) in &head[..index] {
                parsed.skipped.push(Skipped {
                    line: *line,
                    reason: SkipReason::Title,
                    detail: record.iter().map(trim_cell).collect::<Vec<_>>().join(" "),
                });
            }
            // The header row itself is neither a holding nor a skip.
            parsed.rows_read = index;
            index + 1
        }
        None => 0,
    };
    let header_line = found.header_index.map(|i| head[i].0);
    let mut rows = RowReader {
        expect,
        columns: &found.columns,
        seen_data: false,
        seen_blank_after_data: false,
    };
    let rest = head.drain(data_start..).map(Ok).collect::<Vec<_>>();
    for record in rest.into_iter().chain(records) {
        let (line, record) = record?;
        parsed.rows_read += 1;
        match rows.classify(line, &record) {
            Ok(holding) => parsed.holdings.push(holding),
            Err((reason, detail)) => parsed.skipped.push(Skipped {
                line,
                reason,
                detail,
            }),
        }
    }
    if parsed.holdings.is_empty() {
        return Err(Rejection::new(
            header_line,
            format!(
                "no valid {} rows ({} rows skipped: {})",
                match expect {
                    Expect::Holdings => "holdings",
                    Expect::Universe => "symbol",
                },
                parsed.skipped.len(),
                summarise(&parsed.skipped)
            ),
        ));
    }
    Ok(parsed)
}

/// Counts skips per reason as `reason N, reason N`.
pub fn summarise(skipped: &[Skipped]) -> String {
    let mut parts = Vec::new();
    for reason in SkipReason::ALL {
        let n = skipped.iter().filter(|s| s.reason == reason).count();
        if n > 0 {
            parts.push(format!("{} {n}", reason.as_str()));
        }
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

type Record = (u64, csv::StringRecord);

/// The records of a text, one at a time, each with its 1-based line.
struct Records<'a> {
    reader: csv::Reader<&'a [u8]>,
    lines: LineIndex<'a>,
    done: bool,
}

impl<'a> Records<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_bytes()),
            lines: LineIndex::new(text),
            done: false,
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, Rejection>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(true) => {
                let line = record
                    .position()
                    .map_or(0, |p| self.lines.line_at(p.byte()));
                Some(Ok((line, record)))
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(Rejection::new(
                    e.position().map(|p| self.lines.line_at(p.byte())),
                    format!("not readable as CSV: {e}"),
                )))
            }
        }
    }
}

/// Byte offsets → 1-based line numbers. The csv crate's own line count drifts after CRLF line
/// ends (a record's position can point at the `\n` that ends the previous one), so lines are
/// counted here from the byte offset, skipping any line-end bytes it points at.
struct LineIndex<'a> {
    text: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.as_bytes();
        let newlines = text
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'\n').then_some(i))
            .collect();
        Self { text, newlines }
    }

    fn line_at(&self, byte: u64) -> u64 {
        let mut at = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        while at < self.text.len() && matches!(self.text[at], b'\r' | b'\n') {
            at += 1;
        }
        1 + self.newlines.partition_point(|&n| n < at) as u64
    }
}

/// Classifies the rows after the header.
struct RowReader<'a> {
    expect: Expect,
    columns: &'a Columns,
    seen_data: bool,
    seen_blank_after_data: bool,
}

impl RowReader<'_> {
    fn classify(
        &mut self,
        line: u64,
        record: &csv::StringRecord,
    ) -> Result<Holding, (SkipReason, String)> {
        let cell = |index: Option<usize>| index.and_then(|i| record.get(i)).map(trim_cell);
        if record.iter().all(|c| trim_cell(c).is_empty()) {
            if self.seen_data {
                self.seen_blank_after_data = true;
            }
            return Err((SkipReason::Blank, String::new()));
        }
        let raw_symbol = cell(Some(self.columns.symbol)).unwrap_or("");
        let name = cell(self.columns.name).filter(|n| !n.is_empty());
        let detail = || {
            let mut d = raw_symbol.to_owned();
            if let Some(n) = name {
                d.push(' ');
                d.push_str(n);
            }
            shorten(&d)
        };
        // A disclaimer paragraph in the name column (SPDR) with no ticker beside it.
        if raw_symbol.is_empty() && name.is_some_and(|n| is_prose(n) && n.len() > 60) {
            return Err((SkipReason::Footer, detail()));
        }
        if let Some(reason) = non_equity(
            cell(self.columns.asset_class),
            cell(self.columns.sector),
            raw_symbol,
            name,
        ) {
            return Err((reason, detail()));
        }
        // Without an asset class to say so, a futures row is known by its name and its
        // ticker together (`XAE ENERGY DEC25` / `IXPZ5`).
        if cell(self.columns.asset_class).is_none_or(str::is_empty)
            && name.is_some_and(|n| is_future(raw_symbol, n))
        {
            return Err((SkipReason::Derivative, detail()));
        }
        let prose = is_prose(raw_symbol) || (raw_symbol.is_empty() && self.seen_data);
        let symbol = match Symbol::parse(raw_symbol) {
            Ok(symbol) => symbol,
            Err(_) if prose || self.seen_blank_after_data => {
                return Err((SkipReason::Footer, detail()));
            }
            Err(e) => return Err((SkipReason::InvalidSymbol, format!("{}: {e}", detail()))),
        };
        let weight = match (self.expect, self.columns.weight) {
            (Expect::Holdings, Some(index)) => match weight::parse(cell(Some(index)).unwrap_or(""))
            {
                Ok(w) => Some(w),
                Err(_) if self.seen_blank_after_data => {
                    return Err((SkipReason::Footer, detail()));
                }
                Err(e) => return Err((SkipReason::InvalidWeight, format!("{}: {e}", detail()))),
            },
            _ => None,
        };
        self.seen_data = true;
        Ok(Holding {
            line,
            symbol,
            spelling: raw_symbol.to_owned(),
            name: name.map(str::to_owned),
            weight,
            sector: cell(self.columns.sector)
                .filter(|s| !s.is_empty() && *s != "-")
                .map(str::to_owned),
            market: cell(self.columns.country)
                .and_then(market::country_code)
                .or_else(|| cell(self.columns.exchange).and_then(market::exchange_country))
                .or_else(|| cell(self.columns.isin).and_then(market::isin_country)),
            isin: cell(self.columns.isin)
                .filter(|i| market::isin_country(i).is_some())
                .map(str::to_owned),
        })
    }
}

/// Cash and derivative rows, recognised by asset class, sector label or a cash placeholder.
fn non_equity(
    asset_class: Option<&str>,
    sector: Option<&str>,
    symbol: &str,
    name: Option<&str>,
) -> Option<SkipReason> {
    if let Some(class) = asset_class.map(str::to_ascii_lowercase) {
        if class.contains("cash") || class.contains("money market") {
            return Some(SkipReason::Cash);
        }
        if [
            "future",
            "swap",
            "option",
            "forward",
            "fx",
            "currency",
            "derivative",
        ]
        .iter()
        .any(|k| class.contains(k))
        {
            return Some(SkipReason::Derivative);
        }
    }
    if sector.is_some_and(|s| s.eq_ignore_ascii_case("Cash and/or Derivatives")) {
        return Some(SkipReason::Cash);
    }
    let upper = symbol.to_ascii_uppercase();
    // MDY's `CASH_USD`; a real ticker such as `CASH` (Pathward Financial) stays a stock.
    if upper.starts_with("CASH_") {
        return Some(SkipReason::Cash);
    }
    if (upper.is_empty() || upper == "-")
        && name.is_some_and(|n| {
            let n = n.to_ascii_uppercase();
            ["DOLLAR", "CASH", "CURRENCY", "MONEY MARKET"]
                .iter()
                .any(|k| n.contains(k))
        })
    {
        return Some(SkipReason::Cash);
    }
    None
}

/// A futures row without an asset class: a name with a contract month and two-digit year
/// (`DEC25`, `DEC 25`) or a futures, swap or forward word, and a ticker that is a root, a
/// month code and a year digit or two (`IXPZ5`, `ESZ25`). Both must hold, so a company whose
/// name ends in a month-like word keeps its row.
fn is_future(symbol: &str, name: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const WORDS: [&str; 8] = [
        "FUT", "FUTURE", "FUTURES", "SWAP", "SWAPS", "FWD", "FORWARD", "FORWARDS",
    ];
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let two_digits = |w: &str| w.len() == 2 && w.bytes().all(|b| b.is_ascii_digit());
    let dated = words.iter().enumerate().any(|(i, w)| {
        let month_year = w.len() == 5 && MONTHS.contains(&&w[..3]) && two_digits(&w[3..]);
        let month_then_year =
            MONTHS.contains(w) && words.get(i + 1).is_some_and(|next| two_digits(next));
        month_year || month_then_year
    });
    let named = dated || words.iter().any(|w| WORDS.contains(w));
    let ticker = symbol.trim().to_ascii_uppercase();
    let digits = ticker.bytes().rev().take_while(u8::is_ascii_digit).count();
    let contract = (1..=2).contains(&digits) && ticker.len() > digits + 1 && {
        let rest = &ticker[..ticker.len() - digits];
        let (root, month) = rest.split_at(rest.len() - 1);
        "FGHJKMNQUVXZ".contains(month)
            && !root.is_empty()
            && root.len() <= 5
            && root.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    named && contract
}

/// Disclaimer text rather than a ticker: three words or more.
fn is_prose(cell: &str) -> bool {
    cell.split_whitespace().count() >= 3
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    let text = text.split(['\n', '\r']).next().unwrap_or("");
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(parsed: &ParsedFile) -> Vec<SkipReason> {
        parsed.skipped.iter().map(|s| s.reason).collect()
    }

    #[test]
    fn canonical_columns_in_any_order_and_case() {
        let csv = "Weight,SYMBOL,extra,Name\n7.5,aapl,x,Apple Inc\n2,MSFT,y,Microsoft\n";
        let parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::Canonical);
        assert_eq!(parsed.holdings.len(), 2);
        assert_eq!(parsed.holdings[0].symbol.as_str(), "AAPL");
        assert_eq!(parsed.holdings[0].weight, Some(7.5));
        assert_eq!(parsed.holdings[0].name.as_deref(), Some("Apple Inc"));
        assert_eq!(parsed.holdings[0].line, 2);
    }

    #[test]
    fn ishares_shape_skips_title_cash_futures_and_disclaimer() {
        let csv = "iShares Core S&P 500 ETF\r\nFund Holdings as of,\"Nov 18, 2025\"\r\n \r\n\
            Ticker,Name,Sector,Asset Class,Weight (%),Location\r\n\
            NVDA,NVIDIA CORP,Information Technology,Equity,7.82,United States\r\n\
            USD,USD CASH,Cash and/or Derivatives,Cash,0.06,United States\r\n\
            ESZ5,S&P500 EMINI DEC 25,Cash and/or Derivatives,Futures,0,-\r\n\
            \u{a0}\r\n\
            \"The content contained herein is owned or licensed by BlackRock.\"\r\n";
        let parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::IShares);
        assert_eq!(parsed.title.as_deref(), Some("iShares Core S&P 500 ETF"));
        assert_eq!(parsed.holdings.len(), 1);
        assert_eq!(
            parsed.holdings[0].sector.as_deref(),
            Some("Information Technology")
        );
        assert_eq!(
            reasons(&parsed),
            vec![
                SkipReason::Title,
                SkipReason::Title,
                SkipReason::Title,
                SkipReason::Cash,
                SkipReason::Derivative,
                SkipReason::Blank,
                SkipReason::Footer
            ]
        );
        assert_eq!(
            parsed.rows_read,
            parsed.holdings.len() + parsed.skipped.len()
        );
    }

    #[test]
    fn vanguard_percent_weights_and_spdr_dash_tickers() {
        let vanguard = "VTI Holdings details\nas of 10/31/2025\n\n\
            Ticker,Holdings,% of funds,Shares\nNVDA,NVIDIA Corp.,7.13%,\n";
        let parsed = read(Expect::Holdings, vanguard.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::Vanguard);
        assert_eq!(parsed.title, None);
        assert_eq!(parsed.holdings[0].weight, Some(7.13));
        assert_eq!(parsed.holdings[0].name.as_deref(), Some("NVIDIA Corp."));

        let spdr = "Fund Name:,SPY\nHoldings:,As of 18-Nov-2025\n\n\
            Name,Ticker,Identifier,SEDOL,Weight,Sector\n\
            NVIDIA CORP,NVDA,,,7.830057,-\nUS DOLLAR,-,,,0.10759,-\n\n\
            \"Past performance is not a reliable indicator.\nSecond line\",,,,,\n";
        let parsed = read(Expect::Holdings, spdr.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::Spdr);
        assert_eq!(parsed.holdings.len(), 1);
        assert_eq!(parsed.holdings[0].sector, None);
        // Empty lines are not records at all; the title lines are the two before the header.
        assert_eq!(
            reasons(&parsed),
            [
                SkipReason::Title,
                SkipReason::Title,
                SkipReason::Cash,
                SkipReason::Footer
            ]
        );
    }

    #[test]
    fn futures_rows_are_derivatives_in_every_shape_and_month_named_stocks_stay() {
        // An SPDR-shaped export: no asset class column.
        let csv = "Name,Ticker,Identifier,SEDOL,Weight,Sector,Shares Held,Local Currency\n\
            EXXON MOBIL CORP,XOM,30231G102,2326618,23.1,Energy,1,USD\n\
            XAE ENERGY DEC25,IXPZ5,,,0.4,-,1,USD\n\
            XAK TECHNOLOGY DEC 25,XAKZ25,,,0.1,-,1,USD\n\
            ACME HOLDINGS DEC25,ACME,000000000,0000000,0.3,Energy,1,USD\n\
            MAY FUTURES CORP,MAYF,000000001,0000001,0.2,Energy,1,USD\n";
        let parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        let kept: Vec<&str> = parsed.holdings.iter().map(|h| h.symbol.as_str()).collect();
        assert_eq!(kept, ["XOM", "ACME", "MAYF"]);
        assert_eq!(
            reasons(&parsed),
            vec![SkipReason::Derivative, SkipReason::Derivative]
        );
    }

    #[test]
    fn a_location_column_gives_each_row_its_market() {
        let csv = "Ticker,Name,Sector,Asset Class,Weight (%),Location,Exchange,Currency\n\
            SAN,BANCO SANTANDER SA,Financials,Equity,0.78,Spain,,USD\n\
            SAN,SANOFI SA,Health Care,Equity,0.57,France,,USD\n\
            RR.,ROLLS-ROYCE HOLDINGS PLC,Industrials,Equity,0.61,United Kingdom,,USD\n";
        let parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        let rows: Vec<(&str, Option<&str>)> = parsed
            .holdings
            .iter()
            .map(|h| (h.symbol.as_str(), h.market))
            .collect();
        assert_eq!(
            rows,
            [
                ("SAN", Some("ES")),
                ("SAN", Some("FR")),
                ("RR.", Some("GB"))
            ]
        );
    }

    #[test]
    fn bad_rows_are_typed_and_bad_files_rejected_with_a_line() {
        let csv = "symbol,name,weight\nAAPL,Apple,7\nABCDEFGHIJKLMNOPQRSTUVWXYZ,Junk,1\nMSFT,Microsoft,abc\n";
        let parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        assert_eq!(
            reasons(&parsed),
            vec![SkipReason::InvalidSymbol, SkipReason::InvalidWeight]
        );
        assert_eq!(parsed.skipped[1].line, 4);

        let all_bad = "symbol,name,weight\nAAPL,Apple,x\n";
        let err = read(Expect::Holdings, all_bad.as_bytes()).expect_err("rejected");
        assert_eq!(err.line, Some(1));
        assert!(err.reason.contains("invalid_weight 1"), "{}", err.reason);

        let no_header = "foo,bar\n1,2\n";
        let err = read(Expect::Holdings, no_header.as_bytes()).expect_err("rejected");
        assert!(err.reason.contains("header"), "{}", err.reason);

        let no_symbol = "name,weight\nApple,7\n";
        let err = read(Expect::Holdings, no_symbol.as_bytes()).expect_err("rejected");
        assert_eq!(err.line, Some(1));
        assert!(err.reason.contains("symbol"), "{}", err.reason);
    }

    #[test]
    fn universes_with_and_without_header() {
        let plain = "MMM\naos\n\nABT\n";
        let parsed = read(Expect::Universe, plain.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::UniverseList);
        assert_eq!(parsed.holdings.len(), 3);
        assert_eq!(parsed.holdings[1].symbol.as_str(), "AOS");
        assert_eq!(parsed.holdings[0].weight, None);

        let with_header = "Name,TICKER,Sector\nApple,AAPL,Information Technology\n";
        let parsed = read(Expect::Universe, with_header.as_bytes()).expect("reads");
        assert_eq!(parsed.shape, Shape::Universe);
        assert_eq!(parsed.holdings[0].symbol.as_str(), "AAPL");
        assert_eq!(parsed.rows_read, 1);
    }
}
