//! Desired state against stored state → the changes that make one the other. Pure: no
//! database, so every rule here is unit-tested.

use std::collections::BTreeMap;

use crate::symbol::Symbol;

/// A membership as a file wants it.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub weight: Option<f64>,
    pub metadata: serde_json::Value,
}

/// A membership as it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub id: i32,
    pub weight: Option<f64>,
    pub metadata: Option<serde_json::Value>,
}

/// A membership whose weight or metadata changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub id: i32,
    pub symbol: Symbol,
    pub old_weight: Option<f64>,
    pub new_weight: Option<f64>,
    /// The stored metadata (kept in the change record, so the change can be undone).
    pub old_metadata: Option<serde_json::Value>,
    pub metadata: serde_json::Value,
}

/// A stored membership that goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Removal {
    pub id: i32,
    pub symbol: Symbol,
    pub weight: Option<f64>,
    /// The stored metadata (kept in the change record, so the member can come back).
    pub metadata: Option<serde_json::Value>,
}

impl Update {
    /// Whether the weight changed (a metadata-only update is not a reweight).
    pub fn is_reweight(&self) -> bool {
        self.old_weight != self.new_weight
    }
}

/// What must happen to one group's memberships.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupDiff {
    pub added: Vec<(Symbol, Desired)>,
    pub removed: Vec<Removal>,
    pub updated: Vec<Update>,
    pub unchanged: usize,
}

impl GroupDiff {
    /// Whether applying it would change nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }

    /// How many memberships are reweighted.
    pub fn reweighted(&self) -> usize {
        self.updated.iter().filter(|u| u.is_reweight()).count()
    }
}

/// Computes the changes that turn `stored` into `desired`.
pub fn diff(desired: &BTreeMap<Symbol, Desired>, stored: &BTreeMap<Symbol, Stored>) -> GroupDiff {
    let mut out = GroupDiff::over(stored);
    for (symbol, want) in desired {
        out.step(symbol, stored.get(symbol), Some(want));
    }
    for (symbol, have) in stored {
        if !desired.contains_key(symbol) {
            out.step(symbol, Some(have), None);
        }
    }
    out
}

/// Computes the changes that put back some of `stored`'s members as `wanted` says (`None`:
/// the symbol must not be a member), leaving every other stored member as it is. A rollback
/// diffs this way: its work is proportional to the changes it undoes, not to the group.
pub fn patch(
    wanted: &BTreeMap<Symbol, Option<Desired>>,
    stored: &BTreeMap<Symbol, Stored>,
) -> GroupDiff {
    let mut out = GroupDiff::over(stored);
    for (symbol, want) in wanted {
        out.step(symbol, stored.get(symbol), want.as_ref());
    }
    out
}

impl GroupDiff {
    /// No change yet: every stored member unchanged.
    fn over(stored: &BTreeMap<Symbol, Stored>) -> Self {
        Self {
            unchanged: stored.len(),
            ..Self::default()
        }
    }

    /// Records what turns one symbol's stored membership (`have`) into the wanted one
    /// (`want`; `None`: not a member).
    fn step(&mut self, symbol: &Symbol, have: Option<&Stored>, want: Option<&Desired>) {
        match (have, want) {
            (None, None) => {}
            (None, Some(want)) => self.added.push((symbol.clone(), want.clone())),
            (Some(have), None) => {
                self.unchanged -= 1;
                self.removed.push(Removal {
                    id: have.id,
                    symbol: symbol.clone(),
                    weight: have.weight,
                    metadata: have.metadata.clone(),
                });
            }
            (Some(have), Some(want))
                if have.weight == want.weight && have.metadata.as_ref() == Some(&want.metadata) => {
            }
            (Some(have), Some(want)) => {
                self.unchanged -= 1;
                self.updated.push(Update {
                    id: have.id,
                    symbol: symbol.clone(),
                    old_weight: have.weight,
                    new_weight: want.weight,
                    old_metadata: have.metadata.clone(),
                    metadata: want.metadata.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("symbol")
    }

    /// Stored members `(id, symbol, weight)`, each with `meta`.
    fn stored_rows(
        rows: &[(i32, &str, Option<f64>)],
        meta: &serde_json::Value,
    ) -> BTreeMap<Symbol, Stored> {
        rows.iter()
            .map(|&(id, s, weight)| {
                (
                    sym(s),
                    Stored {
                        id,
                        weight,
                        metadata: Some(meta.clone()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn adds_removes_reweights_and_keeps_the_rest() {
        let meta = json!({"name": "x"});
        let desired: BTreeMap<_, _> = [
            ("AAPL", Some(7.0)),
            ("MSFT", Some(6.5)),
            ("NVDA", Some(8.0)),
        ]
        .into_iter()
        .map(|(s, w)| {
            (
                sym(s),
                Desired {
                    weight: w,
                    metadata: meta.clone(),
                },
            )
        })
        .collect();
        let stored = stored_rows(
            &[
                (1, "AAPL", Some(7.0)),
                (2, "MSFT", Some(6.0)),
                (3, "IBM", Some(1.0)),
            ],
            &meta,
        );
        let d = diff(&desired, &stored);
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].0, sym("NVDA"));
        assert_eq!(
            d.removed,
            vec![Removal {
                id: 3,
                symbol: sym("IBM"),
                weight: Some(1.0),
                metadata: Some(meta.clone()),
            }]
        );
        assert_eq!(d.updated.len(), 1);
        assert_eq!(d.updated[0].old_weight, Some(6.0));
        assert_eq!(d.updated[0].new_weight, Some(6.5));
        assert_eq!(d.reweighted(), 1);
    }

    #[test]
    fn metadata_change_alone_is_an_update_but_not_a_reweight() {
        let desired: BTreeMap<_, _> = [(
            sym("AAPL"),
            Desired {
                weight: Some(7.0),
                metadata: json!({"name": "Apple Inc."}),
            },
        )]
        .into_iter()
        .collect();
        let stored: BTreeMap<_, _> = [(
            sym("AAPL"),
            Stored {
                id: 1,
                weight: Some(7.0),
                metadata: Some(json!({"name": "APPLE INC"})),
            },
        )]
        .into_iter()
        .collect();
        let d = diff(&desired, &stored);
        assert_eq!(d.updated.len(), 1);
        assert_eq!(d.reweighted(), 0);
        assert_eq!(
            d.updated[0].old_metadata,
            Some(json!({"name": "APPLE INC"}))
        );
        assert!(!d.is_empty());
    }

    #[test]
    fn a_patch_touches_only_the_symbols_it_names() {
        let meta = json!({"name": "x"});
        let stored = stored_rows(
            &[
                (1, "AAPL", Some(7.0)),
                (2, "MSFT", Some(6.0)),
                (3, "IBM", Some(1.0)),
                (4, "NVDA", Some(5.0)),
            ],
            &meta,
        );
        let want = |w: f64| {
            Some(Desired {
                weight: Some(w),
                metadata: meta.clone(),
            })
        };
        let wanted: BTreeMap<_, _> = [
            (sym("AAPL"), want(7.0)),
            (sym("MSFT"), want(6.5)),
            (sym("IBM"), None),
            (sym("ORCL"), want(2.0)),
            (sym("GONE"), None),
        ]
        .into_iter()
        .collect();
        let d = patch(&wanted, &stored);
        assert_eq!(d.unchanged, 2, "AAPL as wanted, NVDA not named");
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].0, sym("ORCL"));
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].symbol, sym("IBM"));
        assert_eq!(d.removed[0].metadata, Some(meta.clone()));
        assert_eq!(d.updated.len(), 1);
        assert_eq!(d.updated[0].old_weight, Some(6.0));
        assert_eq!(d.updated[0].new_weight, Some(6.5));
    }
}
