//! Ticker symbols, normalised so that one security has one spelling.
//!
//! Tickers are taken as markets write them: letters and digits, leading zeros, `&` (`M&M`),
//! `*` (`WALMEX*`), a trailing dot (London's `RR.`), `-` suffixes (`DELTA-F`). Only what cannot
//! be a ticker is refused: a blank cell, control characters, `:` and `~` (they separate a
//! ticker from its market in a listing key, see [`crate::listing`]), or more than 20
//! characters.
//!
//! One rule makes the spellings of a share class agree: a letter-and-digit base, one separator
//! (`-`, `/`, space, `.`) and a class of one or two letters or digits is upper-cased with the
//! separator written `.`, so `brk-b`, `BRK/B` and `BRK B` all become `BRK.B`. Any other ticker
//! is kept as written, upper-cased (`RR.`, `M&M`, `PE&OLES*`, `BAJAJ-AUTO`).
//!
//! iShares writes some share classes with no separator at all (`BRKB`, `BFB`, `HEIA`). Adding a
//! dot by a class-letter rule alone would be wrong: `META`, `CMCSA`, `FOXA` or `ZBRA` end in a
//! class letter and their names say "Class A", yet they are NASDAQ tickers that include it. So a
//! compact symbol becomes dotted only when both hold:
//! 1. its name names the class that is its last letter (`BERKSHIRE HATHAWAY INC CLASS B`), and
//! 2. the dotted spelling (`BRK.B`) is a known listing: in a file of the same load, already
//!    stored, or in the shipped `share_classes.csv` list.
//!
//! Two different companies are never merged: the dotted form must exist *and* the name must say
//! it is that class.

use std::collections::HashSet;
use std::fmt;

/// Longest symbol accepted (option-style and foreign tickers run to about 12).
const MAX_LEN: usize = 20;

/// A normalised ticker symbol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(String);

/// Why a cell is not a symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("empty symbol")]
    Empty,
    #[error("symbol {0:?} is longer than {MAX_LEN} characters")]
    TooLong(String),
    #[error("symbol {0:?} has control characters, `:` or `~`, which no ticker has")]
    BadCharacters(String),
}

impl Symbol {
    /// Normalises a raw cell into a symbol (see the module docs for the rule).
    pub fn parse(raw: &str) -> Result<Self, SymbolError> {
        let trimmed = trim_cell(raw);
        if trimmed.is_empty() || trimmed == "-" {
            return Err(SymbolError::Empty);
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() || c == ':' || c == '~')
        {
            return Err(SymbolError::BadCharacters(trimmed.to_owned()));
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(SymbolError::TooLong(trimmed.to_owned()));
        }
        Ok(Self(
            share_class_spelling(trimmed).unwrap_or_else(|| verbatim(trimmed)),
        ))
    }

    /// Wraps a string that is already normalised (read back from the database).
    pub fn from_normalised(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The compact spelling iShares uses for a dotted share class (`BRK.B` → `BRKB`), if this
    /// symbol is one.
    fn compact(&self) -> Option<String> {
        let (base, class) = self.0.split_once('.')?;
        (class.len() == 1 && !base.is_empty()).then(|| format!("{base}{class}"))
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `BRK-B` → `BRK.B`: a base and a one- or two-character class joined by one separator,
/// upper-cased and joined by a dot; `None` for any other shape.
fn share_class_spelling(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut after_separator = false;
    for c in text.chars() {
        match c {
            '.' | '-' | '/' | ' ' | '\u{a0}' => {
                if out.is_empty() || after_separator {
                    return None;
                }
                after_separator = true;
            }
            c if c.is_ascii_alphanumeric() => {
                if after_separator {
                    out.push('.');
                    after_separator = false;
                }
                out.push(c.to_ascii_uppercase());
            }
            _ => return None,
        }
    }
    // A class is one or two letters after the base (`BRK.B`, `MPTI.WS`); a longer part is
    // part of the ticker (`BAJAJ-AUTO`) and keeps its spelling.
    let class_like = out
        .split_once('.')
        .is_none_or(|(_, class)| class.len() <= 2 && !class.contains('.'));
    (!after_separator && class_like).then_some(out)
}

/// Any other ticker: upper-cased, each run of white space one space.
fn verbatim(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Trims ASCII white space and non-breaking spaces from a CSV cell.
pub fn trim_cell(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}' || c == '\u{feff}')
}

/// The dotted share classes known to a load, used to resolve compact spellings.
#[derive(Debug, Default, Clone)]
pub struct ShareClasses {
    /// Compact spelling → dotted symbol (`BRKB` → `BRK.B`).
    by_compact: std::collections::HashMap<String, Symbol>,
}

impl ShareClasses {
    /// Builds the book from every dotted symbol known (files, database, shipped list).
    pub fn new<'a>(known: impl IntoIterator<Item = &'a Symbol>) -> Self {
        let mut book = Self::default();
        for symbol in known {
            book.insert(symbol);
        }
        book
    }

    /// Adds one known symbol; symbols without a one-letter class are ignored.
    pub fn insert(&mut self, symbol: &Symbol) {
        if let Some(compact) = symbol.compact() {
            self.by_compact.insert(compact, symbol.clone());
        }
    }

    /// How many dotted share classes are known.
    pub fn len(&self) -> usize {
        self.by_compact.len()
    }

    /// Whether no share class is known.
    pub fn is_empty(&self) -> bool {
        self.by_compact.is_empty()
    }

    /// The dotted symbol a compact spelling stands for, when the name confirms the class.
    pub fn resolve(&self, symbol: Symbol, name: &str) -> Symbol {
        if symbol.0.contains('.') {
            return symbol;
        }
        let Some(dotted) = self.by_compact.get(&symbol.0) else {
            return symbol;
        };
        let class = symbol.0.chars().last().unwrap_or(' ');
        if name_says_class(name, class) {
            dotted.clone()
        } else {
            symbol
        }
    }
}

/// Whether a security name says it is share class `class` ("CLASS B", "Cl B", "CL-B").
pub fn name_says_class(name: &str, class: char) -> bool {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|pair| {
        (pair[0] == "CLASS" || pair[0] == "CL") && pair[1].len() == 1 && pair[1].starts_with(class)
    })
}

/// Collects the dotted symbols among `symbols` (the known listings a book is built from).
pub fn dotted<'a>(symbols: impl IntoIterator<Item = &'a Symbol>) -> HashSet<Symbol> {
    symbols
        .into_iter()
        .filter(|s| s.compact().is_some())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("valid symbol")
    }

    #[test]
    fn separators_and_case_become_one_spelling() {
        for raw in ["BRK.B", "brk-b", "BRK/B", " BRK B ", "\u{a0}brk.b\u{a0}"] {
            assert_eq!(sym(raw).as_str(), "BRK.B", "{raw:?}");
        }
        assert_eq!(sym("MPTI WS").as_str(), "MPTI.WS");
        assert_eq!(sym("aapl").as_str(), "AAPL");
    }

    #[test]
    fn tickers_are_kept_as_markets_write_them() {
        for (raw, kept) in [
            ("RR.", "RR."),
            ("M&M", "M&M"),
            ("walmex*", "WALMEX*"),
            ("PE&OLES*", "PE&OLES*"),
            ("DELTA-F", "DELTA.F"),
            ("BAJAJ-AUTO", "BAJAJ-AUTO"),
            ("0050", "0050"),
            ("2330", "2330"),
            ("ABR^D", "ABR^D"),
        ] {
            assert_eq!(sym(raw).as_str(), kept, "{raw:?}");
        }
    }

    #[test]
    fn only_what_cannot_be_a_ticker_is_refused() {
        assert_eq!(Symbol::parse("  "), Err(SymbolError::Empty));
        assert_eq!(Symbol::parse("-"), Err(SymbolError::Empty));
        for bad in ["AB\u{7}C", "LSE:RR", "2330~X"] {
            assert!(
                matches!(Symbol::parse(bad), Err(SymbolError::BadCharacters(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Symbol::parse("THIS IS A DISCLAIMER SENTENCE"),
            Err(SymbolError::TooLong(_))
        ));
    }

    #[test]
    fn compact_class_resolves_only_with_name_and_known_listing() {
        let book = ShareClasses::new(&[sym("BRK.B"), sym("BF.B"), sym("HEI.A")]);
        assert_eq!(
            book.resolve(sym("BRKB"), "BERKSHIRE HATHAWAY INC CLASS B")
                .as_str(),
            "BRK.B"
        );
        assert_eq!(
            book.resolve(sym("HEIA"), "HEICO CORP CLASS A").as_str(),
            "HEI.A"
        );
        // The name does not say class B: keep what the file said.
        assert_eq!(book.resolve(sym("BRKB"), "BRKB HOLDINGS").as_str(), "BRKB");
        // Class letter and name agree, but no dotted listing exists: a NASDAQ ticker.
        assert_eq!(
            book.resolve(sym("META"), "META PLATFORMS INC CLASS A")
                .as_str(),
            "META"
        );
        assert_eq!(
            book.resolve(sym("CMCSA"), "COMCAST CORP CLASS A").as_str(),
            "CMCSA"
        );
    }

    #[test]
    fn class_words_are_found_in_provider_spellings() {
        assert!(name_says_class("Brown-Forman Corp. Class B", 'B'));
        assert!(name_says_class("UNITED PARCEL SERVICE CL B", 'B'));
        assert!(!name_says_class("UNITED PARCEL SERVICE CL B", 'A'));
        assert!(!name_says_class("CLASSIC BANCORP", 'B'));
    }
}
