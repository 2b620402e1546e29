//! A parsed file → the memberships it asks for: share classes resolved, and the same symbol
//! twice in one file settled (same security: weights summed; another security under the same
//! ticker: the heavier one kept, the other reported as a collision).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::diff::Desired;
use crate::read::{Holding, ParsedFile, SkipReason, Skipped};
use crate::symbol::{ShareClasses, Symbol};

/// Builds the desired memberships of one file, appending duplicate and collision skips to
/// `parsed.skipped`.
pub fn desired(parsed: &mut ParsedFile, book: &ShareClasses) -> BTreeMap<Symbol, Desired> {
    let mut kept: BTreeMap<Symbol, Holding> = BTreeMap::new();
    let mut extra = Vec::new();
    for holding in parsed.holdings.drain(..) {
        let symbol = book.resolve(
            holding.symbol.clone(),
            holding.name.as_deref().unwrap_or(""),
        );
        let holding = Holding { symbol, ..holding };
        match kept.get_mut(&holding.symbol) {
            None => {
                kept.insert(holding.symbol.clone(), holding);
            }
            Some(first) if same_security(first, &holding) => {
                first.weight = match (first.weight, holding.weight) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                extra.push(Skipped {
                    line: holding.line,
                    reason: SkipReason::Duplicate,
                    detail: format!(
                        "{} again (merged into line {}, weights summed)",
                        holding.spelling, first.line
                    ),
                });
            }
            Some(first) => {
                let (keep, drop) = if holding.weight.unwrap_or(0.0) > first.weight.unwrap_or(0.0) {
                    (holding, first.clone())
                } else {
                    (first.clone(), holding)
                };
                extra.push(Skipped {
                    line: drop.line,
                    reason: SkipReason::Collision,
                    detail: format!(
                        "{} {:?} shares its symbol with {:?} (line {}), which is heavier and kept",
                        drop.spelling,
                        drop.name.as_deref().unwrap_or(""),
                        keep.name.as_deref().unwrap_or(""),
                        keep.line
                    ),
                });
                kept.insert(keep.symbol.clone(), keep);
            }
        }
    }
    parsed.skipped.extend(extra);
    parsed.skipped.sort_by_key(|s| s.line);
    let desired = kept
        .into_iter()
        .map(|(symbol, h)| {
            let metadata = metadata(&h);
            (
                symbol,
                Desired {
                    weight: h.weight,
                    metadata,
                },
            )
        })
        .collect();
    parsed.holdings.clear();
    desired
}

/// The membership metadata kept from a row: the name, the provider's sector and the spelling
/// the file used.
fn metadata(h: &Holding) -> Value {
    let mut map = Map::new();
    if let Some(name) = &h.name {
        map.insert("name".into(), json!(name));
    }
    if let Some(sector) = &h.sector {
        map.insert("sector".into(), json!(sector));
    }
    map.insert("spelling".into(), json!(h.spelling));
    Value::Object(map)
}

/// Two rows with one symbol are the same security unless both name it and the names differ.
fn same_security(a: &Holding, b: &Holding) -> bool {
    match (&a.name, &b.name) {
        (Some(x), Some(y)) => comparable(x) == comparable(y),
        _ => true,
    }
}

fn comparable(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{Expect, read};

    #[test]
    fn same_security_twice_is_merged_and_another_security_collides() {
        let csv = "symbol,name,weight\n\
            EQH,EQUITABLE HOLDINGS INC,0.5\nSOC,SABLE OFFSHORE CORP,0.02\n\
            EQH,Equitable Holdings Inc,0\nSOC,SRAX INC,0.01\n";
        let mut parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        let desired = desired(&mut parsed, &ShareClasses::default());
        assert_eq!(desired.len(), 2);
        let soc = &desired[&Symbol::parse("SOC").expect("symbol")];
        assert_eq!(soc.weight, Some(0.02));
        assert_eq!(soc.metadata["name"], "SABLE OFFSHORE CORP");
        let reasons: Vec<_> = parsed.skipped.iter().map(|s| (s.line, s.reason)).collect();
        assert_eq!(
            reasons,
            vec![(4, SkipReason::Duplicate), (5, SkipReason::Collision)]
        );
    }

    #[test]
    fn compact_share_class_is_stored_under_the_dotted_symbol_with_its_spelling() {
        let csv = "symbol,name,weight\nBRKB,BERKSHIRE HATHAWAY INC CLASS B,1.64\n";
        let mut parsed = read(Expect::Holdings, csv.as_bytes()).expect("reads");
        let book = ShareClasses::new(&[Symbol::parse("BRK.B").expect("symbol")]);
        let desired = desired(&mut parsed, &book);
        let brk = &desired[&Symbol::parse("BRK.B").expect("symbol")];
        assert_eq!(brk.metadata["spelling"], "BRKB");
        assert_eq!(brk.weight, Some(1.64));
    }
}
