//! A parsed file → the memberships it asks for: share classes resolved, listing keys made
//! (see [`crate::listing`]), and the same key twice in one file settled:
//! - the same security again (same name, or no name to tell): one membership, weights summed;
//! - another company, in a file that gives the market (a column, or the fund's market): the
//!   heavier one kept, the other reported as a collision, since one market lists one company
//!   under a ticker and the file contradicts itself;
//! - another company, in a file that gives no market: every company under that ticker is
//!   kept, each under a key that adds its name (`2330~ADVANCED-PETROCHEMICAL-CO`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::diff::Desired;
use crate::listing;
use crate::read::{Holding, ParsedFile, SkipReason, Skipped};
use crate::symbol::{ShareClasses, Symbol};

/// Builds the desired memberships of one file, appending duplicate and collision skips to
/// `parsed.skipped`. `fund_market` is the market of every row that names none (a US fund's
/// `US`), when the fund's definition gives one.
pub fn desired(
    parsed: &mut ParsedFile,
    book: &ShareClasses,
    fund_market: Option<&'static str>,
) -> BTreeMap<Symbol, Desired> {
    // Key → the distinct securities under it, in file order.
    let mut by_key: BTreeMap<Symbol, Vec<Holding>> = BTreeMap::new();
    let mut extra = Vec::new();
    for holding in parsed.holdings.drain(..) {
        let symbol = book.resolve(
            holding.symbol.clone(),
            holding.name.as_deref().unwrap_or(""),
        );
        let market = holding.market.or(fund_market);
        let key = listing::key(&symbol, market);
        let holding = Holding {
            symbol,
            market,
            ..holding
        };
        let securities = by_key.entry(key).or_default();
        match securities.iter_mut().find(|s| same_security(s, &holding)) {
            Some(first) => {
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
            None => securities.push(holding),
        }
    }
    let mut kept: BTreeMap<Symbol, Holding> = BTreeMap::new();
    for (key, mut securities) in by_key {
        if securities.len() == 1 {
            kept.extend(securities.pop().map(|h| (key, h)));
        } else if securities[0].market.is_some() {
            let heaviest = (0..securities.len())
                .max_by(|&a, &b| {
                    let (wa, wb) = (securities[a].weight, securities[b].weight);
                    wa.unwrap_or(0.0)
                        .total_cmp(&wb.unwrap_or(0.0))
                        .then(b.cmp(&a))
                })
                .unwrap_or(0);
            let keep = securities.swap_remove(heaviest);
            for drop in securities {
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
            }
            kept.insert(key, keep);
        } else {
            for security in securities {
                let mut named =
                    listing::by_name(&security.symbol, security.name.as_deref().unwrap_or(""));
                if kept.contains_key(&named) {
                    // Two names that shorten alike: the line tells them apart.
                    named = Symbol::from_normalised(format!("{named}-L{}", security.line));
                }
                kept.insert(named, security);
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

/// The membership metadata kept from a row: the name, the provider's sector, the spelling the
/// file used, and the market's country and the ISIN when known.
fn metadata(h: &Holding) -> Value {
    let mut map = Map::new();
    if let Some(name) = &h.name {
        map.insert("name".into(), json!(name));
    }
    if let Some(sector) = &h.sector {
        map.insert("sector".into(), json!(sector));
    }
    map.insert("spelling".into(), json!(h.spelling));
    // `null` says the file and its fund named no market (not that nobody asked).
    map.insert("country".into(), h.market.map_or(Value::Null, |c| json!(c)));
    if let Some(isin) = &h.isin {
        map.insert("isin".into(), json!(isin));
    }
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
        let desired = desired(&mut parsed, &ShareClasses::default(), Some("US"));
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
        let desired = desired(&mut parsed, &book, Some("US"));
        let brk = &desired[&Symbol::parse("BRK.B").expect("symbol")];
        assert_eq!(brk.metadata["spelling"], "BRKB");
        assert_eq!(brk.weight, Some(1.64));
    }
}
