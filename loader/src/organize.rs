//! `organize-sectors` and `organize-themes`: the sector and theme groups from the definition
//! files, through the same sync (diff, one transaction, run record) as the file loaders.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use entity::GroupType;
use md5::{Digest, Md5};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::definitions::{DefinitionError, Sectors, load_themes};
use crate::diff::Desired;
use crate::error::LoadError;
use crate::report::{LoadReport, Mode};
use crate::run::hex;
use crate::store;
use crate::symbol::Symbol;
use crate::sync::{Input, Members, Outcome, Parsed, SyncRequest, begin_and_read, sync, sync_with};

/// Creates or updates the sector groups (description and metadata only: their members are
/// enrichment's). Sector groups are never removed here, since stocks point at them.
pub async fn organize_sectors(
    db: &DatabaseConnection,
    environment: &str,
    sectors: &Sectors,
    source: &str,
    mode: Mode,
) -> Result<LoadReport, LoadError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let inputs = sectors
        .defs
        .iter()
        .map(|def| {
            let metadata = json!({
                "display_name": def.name,
                "industries": def.industries,
                "aliases": def.aliases,
            });
            Input {
                file_name: format!("sectors.json#{}", def.key),
                group_name: def.key.clone(),
                md5: fingerprint(&metadata, &def.description),
                outcome: Outcome::Parsed(Parsed {
                    shape: "sector",
                    description: Some(def.description.clone()),
                    metadata: Some(metadata),
                    rows_read: 1,
                    skipped: Vec::new(),
                    members: Members::Keep,
                }),
            }
        })
        .collect();
    let req = SyncRequest {
        group_type: GroupType::Sector,
        mode: if mode == Mode::DryRun {
            Mode::DryRun
        } else {
            Mode::Incremental
        },
        environment: environment.to_owned(),
        kind: "sector",
        source: source.to_owned(),
        scope: None,
        remove_gone: false,
        dry_run: false,
        guards: None,
    };
    sync(db, &req, inputs, clock, started_at).await
}

/// Creates, updates and (in full mode) removes theme groups so they match `themes.json`.
/// Incremental runs skip themes whose definition is unchanged since their last load.
pub async fn organize_themes(
    db: &DatabaseConnection,
    environment: &str,
    themes_path: &std::path::Path,
    mode: Mode,
) -> Result<LoadReport, OrganizeError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let themes = load_themes(themes_path)?;
    let req = SyncRequest {
        group_type: GroupType::Theme,
        mode,
        environment: environment.to_owned(),
        kind: "theme",
        source: themes_path.display().to_string(),
        scope: None,
        remove_gone: true,
        dry_run: false,
        guards: None,
    };
    // The state the themes are compared with is read under the write lock.
    let read = async {
        let last = if req.effective_mode() == Mode::Incremental {
            store::last_loaded_md5(db, environment, GroupType::Theme).await?
        } else {
            Default::default()
        };
        let stored = store::groups(db, environment, GroupType::Theme).await?;
        Ok((last, stored))
    };
    let (writer, (last, stored)) = begin_and_read(db, &req, started_at, read).await?;
    let inputs = themes
        .iter()
        .map(|theme| {
            let metadata = json!({
                "display_name": theme.name,
                "criteria": theme.criteria,
            });
            let md5 = fingerprint(&json!([metadata, theme.members]), &theme.description);
            let unchanged = last.get(&theme.key) == Some(&md5) && stored.contains_key(&theme.key);
            let outcome = if unchanged {
                Outcome::Unchanged
            } else {
                let members: BTreeMap<Symbol, Desired> = theme
                    .members
                    .iter()
                    .filter_map(|m| {
                        let symbol = Symbol::parse(&m.symbol).ok()?;
                        let mut meta = serde_json::Map::new();
                        if let Some(name) = &m.name {
                            meta.insert("name".into(), json!(name));
                        }
                        meta.insert("spelling".into(), json!(m.symbol));
                        Some((
                            symbol,
                            Desired {
                                weight: None,
                                metadata: serde_json::Value::Object(meta),
                            },
                        ))
                    })
                    .collect();
                Outcome::Parsed(Parsed {
                    shape: "theme",
                    description: Some(theme.description.clone()),
                    metadata: Some(metadata),
                    rows_read: theme.members.len(),
                    skipped: Vec::new(),
                    members: Members::Exactly(members),
                })
            };
            Input {
                file_name: format!("themes.json#{}", theme.key),
                group_name: theme.key.clone(),
                md5,
                outcome,
            }
        })
        .collect();
    Ok(sync_with(db, &req, writer, inputs, clock).await?)
}

/// Why organizing could not run.
#[derive(Debug, thiserror::Error)]
pub enum OrganizeError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn fingerprint(value: &serde_json::Value, description: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(value.to_string().as_bytes());
    hasher.update(description.as_bytes());
    hex(&hasher.finalize())
}
