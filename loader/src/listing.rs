//! Listing keys: what identifies a security in `group_memberships.symbol` and in the API.
//!
//! A ticker is not an identity: `7203` is Toyota in Tokyo and Elm Co. in Riyadh, `SAN` is
//! Banco Santander in Madrid and Sanofi in Paris. The key is built from the ticker and, when a
//! file says it, the market:
//!
//! - `AAPL`: a US listing, or one whose market no file gives. US keys are plain tickers, as
//!   they always were.
//! - `SAN:ES`, `7203:JP`, `RR.:GB`: the ticker and the ISO country code of a non-US market,
//!   from a location, country or exchange column, or an ISIN.
//! - `2330~ADVANCED-PETROCHEMICAL`: one of several companies a file with no market column
//!   lists under one ticker. Every one of them gets its name, so none takes the bare ticker
//!   and none is lost or silently preferred.
//!
//! The same company in two files is one stock when both give the same ticker and market.

use crate::symbol::Symbol;

/// The separator between a ticker and its market.
pub const MARKET_SEPARATOR: char = ':';
/// The separator between a ticker and the name that tells its companies apart.
pub const NAME_SEPARATOR: char = '~';
/// Longest name part of a disambiguated key.
const NAME_PART_MAX: usize = 28;

/// The key of a listing of `ticker` on `market` (an ISO country code; `None` or `US`: plain).
pub fn key(ticker: &Symbol, market: Option<&str>) -> Symbol {
    match market {
        Some(m) if m != "US" => Symbol::from_normalised(format!("{ticker}{MARKET_SEPARATOR}{m}")),
        _ => ticker.clone(),
    }
}

/// The key of one of several companies under `ticker` in a file with no market: the ticker
/// and the company's name (upper-case words joined by `-`, at most 28 characters).
pub fn by_name(ticker: &Symbol, name: &str) -> Symbol {
    let mut part = String::new();
    for word in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_uppercase();
        let extra = word.chars().count() + usize::from(!part.is_empty());
        if !part.is_empty() && part.chars().count() + extra > NAME_PART_MAX {
            break;
        }
        if !part.is_empty() {
            part.push('-');
        }
        part.push_str(&word);
    }
    if part.is_empty() {
        part.push('X');
    }
    Symbol::from_normalised(format!("{ticker}{NAME_SEPARATOR}{part}"))
}

/// The ticker of a key (`SAN:ES` → `SAN`, `2330~ADVANCED-PETROCHEMICAL` → `2330`).
pub fn ticker(key: &str) -> &str {
    key.split([MARKET_SEPARATOR, NAME_SEPARATOR])
        .next()
        .unwrap_or(key)
}

/// The market a key names (`SAN:ES` → `ES`), if it names one.
pub fn market(key: &str) -> Option<&str> {
    key.split_once(MARKET_SEPARATOR).map(|(_, m)| m)
}

/// Whether a key is a bare ticker (no market, no name part).
pub fn is_plain(key: &str) -> bool {
    !key.contains([MARKET_SEPARATOR, NAME_SEPARATOR])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("symbol")
    }

    #[test]
    fn us_and_unknown_markets_keep_the_plain_ticker() {
        assert_eq!(key(&sym("AAPL"), Some("US")).as_str(), "AAPL");
        assert_eq!(key(&sym("BRK.B"), None).as_str(), "BRK.B");
        assert_eq!(key(&sym("SAN"), Some("ES")).as_str(), "SAN:ES");
        assert_eq!(key(&sym("RR."), Some("GB")).as_str(), "RR.:GB");
    }

    #[test]
    fn companies_under_one_ticker_are_told_apart_by_name() {
        let a = by_name(&sym("2330"), "Taiwan Semiconductor Manufacturing Co. Ltd.");
        let b = by_name(&sym("2330"), "Advanced Petrochemical Co.");
        assert_eq!(b.as_str(), "2330~ADVANCED-PETROCHEMICAL-CO");
        assert_ne!(a, b);
        assert!(a.as_str().len() <= "2330~".len() + NAME_PART_MAX);
        assert_eq!(ticker(a.as_str()), "2330");
        assert_eq!(ticker("SAN:ES"), "SAN");
        assert_eq!(market("SAN:ES"), Some("ES"));
        assert_eq!(market("2330~X"), None);
        assert!(is_plain("BRK.B"));
        assert!(!is_plain("SAN:FR"));
    }
}
