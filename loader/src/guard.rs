//! Guards against wrong files: a file that reads but is not what it claims to be (last week's
//! export cut short, another fund's file under this fund's name) is stopped before it replaces
//! a group's data. Pure functions over what a load has already computed, so a dry run shows
//! exactly what the real run would hold back.

use crate::diff::{Desired, GroupDiff, Stored};
use crate::read::{SkipReason, Skipped};
use crate::symbol::Symbol;
use std::collections::BTreeMap;

/// A guard a file tripped, with its figures: what the file would do against the limit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Tripped {
    /// The limit's flag: `max-skipped-percent`, `max-replaced-percent` or `max-weight-shift`.
    pub guard: &'static str,
    /// What the file would do, in the limit's unit: percent of data rows invalid, percent of
    /// the group's members removed, or points of total weight moved (signed).
    pub value: f64,
    /// The limit it passed.
    pub limit: f64,
    /// Invalid rows, or members removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Data rows, or the group's stored members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<usize>,
    /// Members added (the replacement guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<usize>,
    /// Total weight before and after (the weight guard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<f64>,
    /// The figures in a sentence, with the way past the guard.
    pub message: String,
}

/// The limits; `--force` (`force: true`) turns them all off for one load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guards {
    /// A file whose data rows are skipped as bad beyond this share (percent) is rejected.
    pub max_skipped_percent: f64,
    /// A load that would remove more than this share (percent) of a group's stored members is
    /// held back.
    pub max_replaced_percent: f64,
    /// A load that would move a group's total weight by more than this many points is held
    /// back.
    pub max_weight_shift: f64,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            max_skipped_percent: 20.0,
            max_replaced_percent: 50.0,
            max_weight_shift: 20.0,
        }
    }
}

/// Whether a skip reason means the row was bad, rather than a row that is not a holding by
/// nature (titles, blanks, footers) or a position the fund really has but is not a stock
/// (cash, derivatives), or a row merged into another (duplicates).
fn is_bad(reason: SkipReason) -> bool {
    matches!(
        reason,
        SkipReason::InvalidSymbol | SkipReason::InvalidWeight | SkipReason::Collision
    )
}

fn is_layout(reason: SkipReason) -> bool {
    matches!(
        reason,
        SkipReason::Title | SkipReason::Blank | SkipReason::Footer
    )
}

/// A file rejected because too many of its data rows were bad: `rows_read` counts every row
/// (each a holding or a skip). Data rows are the rows that are not titles, blanks or footers.
pub fn skipped_rows(guards: &Guards, rows_read: usize, skipped: &[Skipped]) -> Option<Tripped> {
    let layout = skipped.iter().filter(|s| is_layout(s.reason)).count();
    let bad = skipped.iter().filter(|s| is_bad(s.reason)).count();
    let data = rows_read.saturating_sub(layout);
    if data == 0 || bad == 0 {
        return None;
    }
    let percent = bad as f64 * 100.0 / data as f64;
    let max = guards.max_skipped_percent;
    (percent > max).then(|| Tripped {
        guard: "max-skipped-percent",
        value: percent,
        limit: max,
        count: Some(bad),
        of: Some(data),
        added: None,
        before: None,
        after: None,
        message: format!(
            "{bad} of its {data} data rows ({percent:.1} %) are invalid, more than the \
             {max} % allowed (--max-skipped-percent); load it with --force if it is right"
        ),
    })
}

/// A load held back because it would replace most of a group or move its total weight.
pub fn replacement(
    guards: &Guards,
    stored: &BTreeMap<Symbol, Stored>,
    desired: &BTreeMap<Symbol, Desired>,
    diff: &GroupDiff,
) -> Option<Tripped> {
    if stored.is_empty() {
        return None;
    }
    let removed = diff.removed.len();
    let percent = removed as f64 * 100.0 / stored.len() as f64;
    let max = guards.max_replaced_percent;
    if percent > max {
        return Some(Tripped {
            guard: "max-replaced-percent",
            value: percent,
            limit: max,
            count: Some(removed),
            of: Some(stored.len()),
            added: Some(diff.added.len()),
            before: None,
            after: None,
            message: format!(
                "it would remove {removed} of the group's {} members ({percent:.1} %, more \
                 than the {max} % allowed by --max-replaced-percent) and add {}; load it with \
                 --force if it is right",
                stored.len(),
                diff.added.len(),
            ),
        });
    }
    let before: Option<f64> = stored
        .values()
        .filter_map(|s| s.weight)
        .reduce(|a, b| a + b);
    let after: Option<f64> = desired
        .values()
        .filter_map(|d| d.weight)
        .reduce(|a, b| a + b);
    let (Some(before), Some(after)) = (before, after) else {
        return None;
    };
    let shift = after - before;
    let max = guards.max_weight_shift;
    (shift.abs() > max).then(|| Tripped {
        guard: "max-weight-shift",
        value: shift,
        limit: max,
        count: None,
        of: None,
        added: None,
        before: Some(before),
        after: Some(after),
        message: format!(
            "it would move the group's total weight from {before:.2} to {after:.2} \
             ({shift:+.2} points, more than the {max} allowed by --max-weight-shift); load \
             it with --force if it is right"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;

    fn skip(reason: SkipReason) -> Skipped {
        Skipped {
            line: 1,
            reason,
            detail: String::new(),
        }
    }

    #[test]
    fn a_file_of_mostly_bad_rows_is_refused_but_titles_and_cash_do_not_count() {
        let g = Guards::default();
        // 1 holding, 5 invalid rows, 3 title lines: 5 of 6 data rows bad.
        let mut skipped = vec![skip(SkipReason::Title); 3];
        skipped.extend(vec![skip(SkipReason::InvalidWeight); 5]);
        let why = skipped_rows(&g, 9, &skipped).expect("refused").message;
        assert!(why.contains("5 of its 6 data rows"), "{why}");
        // 100 holdings, 10 cash and derivative rows, 5 title lines, 2 invalid: allowed.
        let mut skipped = vec![skip(SkipReason::Title); 5];
        skipped.extend(vec![skip(SkipReason::Cash); 10]);
        skipped.extend(vec![skip(SkipReason::InvalidSymbol); 2]);
        assert_eq!(skipped_rows(&g, 117, &skipped), None);
    }

    fn group(weights: &[(&str, f64)]) -> (BTreeMap<Symbol, Stored>, BTreeMap<Symbol, Desired>) {
        let stored = weights
            .iter()
            .enumerate()
            .map(|(i, (s, w))| {
                (
                    Symbol::from_normalised(*s),
                    Stored {
                        id: i32::try_from(i).unwrap_or(0),
                        weight: Some(*w),
                        metadata: None,
                    },
                )
            })
            .collect();
        let desired = weights
            .iter()
            .map(|(s, w)| {
                (
                    Symbol::from_normalised(*s),
                    Desired {
                        weight: Some(*w),
                        metadata: serde_json::Value::Null,
                    },
                )
            })
            .collect();
        (stored, desired)
    }

    #[test]
    fn replacing_most_members_or_moving_the_total_weight_is_held_back() {
        let g = Guards::default();
        let (stored, _) = group(&[("A", 25.0), ("B", 25.0), ("C", 25.0), ("D", 25.0)]);
        let (_, other) = group(&[("A", 40.0), ("X", 30.0), ("Y", 30.0)]);
        let d = diff(&other, &stored);
        let tripped = replacement(&g, &stored, &other, &d).expect("held back");
        assert_eq!(
            (tripped.guard, tripped.count, tripped.of, tripped.value),
            ("max-replaced-percent", Some(3), Some(4), 75.0)
        );
        let why = tripped.message;
        assert!(why.contains("remove 3 of the group's 4 members"), "{why}");

        let (_, halved) = group(&[("A", 12.5), ("B", 12.5), ("C", 12.5), ("D", 12.5)]);
        let d = diff(&halved, &stored);
        let tripped = replacement(&g, &stored, &halved, &d).expect("held back");
        assert_eq!((tripped.before, tripped.after), (Some(100.0), Some(50.0)));
        assert_eq!(tripped.value, -50.0);
        let why = tripped.message;
        assert!(why.contains("from 100.00 to 50.00"), "{why}");

        let (_, same) = group(&[("A", 26.0), ("B", 24.0), ("C", 25.0), ("D", 25.0)]);
        let d = diff(&same, &stored);
        assert_eq!(replacement(&g, &stored, &same, &d), None);
        // A new group has nothing to replace.
        assert_eq!(replacement(&g, &BTreeMap::new(), &other, &d), None);
    }
}
