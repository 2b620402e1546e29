//! What the files say about each stock besides its memberships: the names they gave it, the
//! spellings they used, and the one name shown.
//!
//! The name shown is the one most files agree on among names written in mixed case (companies
//! write their names that way; `NVIDIA Corp.` reads better than `NVIDIA CORP`), else the most
//! common upper-case one; ties go to the longer name, then alphabetical order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use entity::GroupType;
use serde_json::{Value, json};

use crate::store::MembershipRow;

/// The names and spellings seen for one stock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub name: Option<String>,
    /// Every distinct name, with how many memberships gave it.
    pub names: BTreeMap<String, usize>,
    pub spellings: BTreeSet<String>,
}

impl Profile {
    /// The metadata fields this profile contributes to a stock's sector membership.
    pub fn fields(&self) -> [(&'static str, Value); 3] {
        [
            ("name", json!(self.name)),
            ("names", json!(self.names.keys().collect::<Vec<_>>())),
            ("spellings", json!(self.spellings)),
        ]
    }
}

/// Profiles of every symbol with an ETF, universe or theme membership.
pub fn profiles(rows: &[MembershipRow]) -> HashMap<String, Profile> {
    let mut out: HashMap<String, Profile> = HashMap::new();
    for row in rows {
        if row.group_type == GroupType::Sector {
            continue;
        }
        let profile = out.entry(row.symbol.clone()).or_default();
        let meta = row.metadata.as_ref();
        if let Some(name) = meta.and_then(|m| m["name"].as_str()) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            if !name.is_empty() {
                *profile.names.entry(name).or_default() += 1;
            }
        }
        if let Some(spelling) = meta.and_then(|m| m["spelling"].as_str()) {
            profile.spellings.insert(spelling.to_owned());
        }
    }
    for profile in out.values_mut() {
        profile.name = choose_name(&profile.names);
    }
    out
}

fn choose_name(names: &BTreeMap<String, usize>) -> Option<String> {
    let mixed = |n: &str| n.chars().any(|c| c.is_lowercase());
    names
        .iter()
        .max_by(|(a, ca), (b, cb)| {
            mixed(a)
                .cmp(&mixed(b))
                .then(ca.cmp(cb))
                .then(a.len().cmp(&b.len()))
                .then(b.cmp(a))
        })
        .map(|(n, _)| n.clone())
}

/// `build-stock-metadata`: refreshes each stock's name, names and spellings in its sector
/// membership (where enrichment keeps what is known of a stock), moving nothing. Returns the
/// sync report and how many stocks have no sector membership yet.
pub async fn build_stock_metadata(
    db: &sea_orm::DatabaseConnection,
    environment: &str,
    dry_run: bool,
) -> Result<(crate::LoadReport, usize), crate::LoadError> {
    use crate::sync::{SyncRequest, begin_and_read, member_inputs, sync_with};
    let clock = std::time::Instant::now();
    let started_at = chrono::Utc::now();
    let req = SyncRequest {
        group_type: GroupType::Sector,
        mode: if dry_run {
            crate::Mode::DryRun
        } else {
            crate::Mode::Incremental
        },
        environment: environment.to_owned(),
        kind: "stock_metadata",
        source: "memberships".to_owned(),
        scope: None,
        remove_gone: false,
        dry_run: false,
        guards: None,
    };
    let (writer, rows) = begin_and_read(
        db,
        &req,
        started_at,
        crate::store::all_memberships(db, environment),
    )
    .await?;
    let profiles = profiles(&rows);
    let mut by_sector: BTreeMap<String, BTreeMap<crate::symbol::Symbol, crate::diff::Desired>> =
        BTreeMap::new();
    let mut with_sector = BTreeSet::new();
    for row in rows.iter().filter(|r| r.group_type == GroupType::Sector) {
        let mut meta = match &row.metadata {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(p) = profiles.get(&row.symbol) {
            for (k, v) in p.fields() {
                meta.insert(k.into(), v);
            }
        }
        with_sector.insert(row.symbol.as_str());
        by_sector.entry(row.group_name.clone()).or_default().insert(
            crate::symbol::Symbol::from_normalised(row.symbol.clone()),
            crate::diff::Desired {
                weight: row.weight,
                metadata: Value::Object(meta),
            },
        );
    }
    let without = profiles
        .keys()
        .filter(|s| !with_sector.contains(s.as_str()))
        .count();
    let inputs = member_inputs("stock-metadata", "stock_metadata", by_sector);
    Ok((sync_with(db, &req, writer, inputs, clock).await?, without))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, symbol: &str, name: &str, spelling: &str) -> MembershipRow {
        MembershipRow {
            group_type: GroupType::Etf,
            group_name: group.into(),
            symbol: symbol.into(),
            weight: Some(1.0),
            metadata: Some(json!({"name": name, "spelling": spelling})),
        }
    }

    #[test]
    fn mixed_case_names_win_then_the_most_common() {
        let rows = vec![
            row("IVV", "NVDA", "NVIDIA CORP", "NVDA"),
            row("SPY", "NVDA", "NVIDIA CORP", "NVDA"),
            row("VTI", "NVDA", "NVIDIA Corp.", "NVDA"),
            row("IVV", "BRK.B", "BERKSHIRE HATHAWAY INC CLASS B", "BRKB"),
            row("SPY", "BRK.B", "BERKSHIRE HATHAWAY INC CL B", "BRK.B"),
            row("QQQ", "BRK.B", "BERKSHIRE HATHAWAY INC CLASS B", "BRK.B"),
        ];
        let p = profiles(&rows);
        assert_eq!(p["NVDA"].name.as_deref(), Some("NVIDIA Corp."));
        assert_eq!(p["NVDA"].names.len(), 2);
        assert_eq!(
            p["BRK.B"].name.as_deref(),
            Some("BERKSHIRE HATHAWAY INC CLASS B")
        );
        assert_eq!(
            p["BRK.B"].spellings,
            BTreeSet::from(["BRK.B".to_owned(), "BRKB".to_owned()])
        );
    }
}
