//! A file load: which files, which mode, reading them, then [`crate::sync`] for the diff, the
//! one transaction and the report.
//!
//! Files are read and diffed before the transaction opens, so a rejected file never touches
//! the database and a dry run writes nothing at all. Everything a run writes (memberships,
//! groups, the run record, its file records and membership changes, the data version) is
//! committed together or not at all.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use entity::{GroupType, definition_group};
use md5::{Digest, Md5};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};

use crate::error::LoadError;
use crate::members;
use crate::read::{self, Expect, ParsedFile};
use crate::report::{LoadReport, Mode};
use crate::source::{self, SourceFile};
use crate::store;
use crate::symbol::ShareClasses;
use crate::sync::{Input, Members, Outcome, Parsed, SyncRequest, sync};

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// `Etf` or `Universe`.
    pub group_type: GroupType,
    pub mode: Mode,
    /// Touch this one group only (`SPY`, `sp500`).
    pub only: Option<String>,
    /// The holdings folder.
    pub dir: PathBuf,
    pub environment: String,
    /// A list of dotted share classes (`symbol,name`) that resolves compact spellings such as
    /// iShares' `BRKB` even when no other file names `BRK.B`. Optional.
    pub share_classes: Option<PathBuf>,
}

/// Told about progress through the files; the CLI draws a bar, tests stay quiet.
pub trait Progress: Send + Sync {
    /// The number of files about to be read.
    fn begin(&self, _files: usize) {}
    /// One file is being read.
    fn file(&self, _file_name: &str) {}
    /// Reading is over; what remains is the database work.
    fn end(&self) {}
}

/// Progress that says nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// One file after reading.
struct Pending {
    source: SourceFile,
    md5: String,
    read: Read,
}

enum Read {
    Parsed(ParsedFile),
    Unchanged,
    Rejected(String),
}

/// Runs a load and returns its report. Rejected files are in the report (and make
/// [`LoadReport::failed`] true); an `Err` means nothing was changed at all.
pub async fn load(
    db: &DatabaseConnection,
    req: &LoadRequest,
    progress: &dyn Progress,
) -> Result<LoadReport, LoadError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let env = req.environment.as_str();
    let files = select_files(req)?;
    let stored_groups = store::groups(db, env, req.group_type).await?;
    let last_md5 = if req.mode == Mode::Incremental {
        store::last_loaded_md5(db, env, req.group_type).await?
    } else {
        HashMap::new()
    };

    progress.begin(files.len());
    let mut pending = Vec::with_capacity(files.len());
    for source in files {
        progress.file(&source.file_name);
        pending.push(read_one(source, req, &last_md5, &stored_groups));
    }
    progress.end();

    let book = share_classes(db, req, &pending).await?;
    let inputs = pending
        .into_iter()
        .map(|p| {
            let outcome = match p.read {
                Read::Unchanged => Outcome::Unchanged,
                Read::Rejected(why) => Outcome::Rejected(why),
                Read::Parsed(mut parsed) => {
                    let members = members::desired(&mut parsed, &book);
                    Outcome::Parsed(Parsed {
                        shape: parsed.shape.as_str(),
                        description: Some(describe(req.group_type, &p.source.group_name, &parsed)),
                        metadata: Some(serde_json::json!({
                            "source_file": p.source.file_name,
                            "shape": parsed.shape.as_str(),
                        })),
                        rows_read: parsed.rows_read,
                        skipped: parsed.skipped,
                        members: Members::Exactly(members),
                    })
                }
            };
            Input {
                file_name: p.source.file_name,
                group_name: p.source.group_name,
                md5: p.md5,
                outcome,
            }
        })
        .collect();
    let sync_req = SyncRequest {
        group_type: req.group_type,
        mode: req.mode,
        environment: req.environment.clone(),
        kind: kind_key(req.group_type),
        source: req.dir.display().to_string(),
        scope: req.only.clone(),
        remove_gone: true,
    };
    sync(db, &sync_req, inputs, clock, started_at).await
}

/// The group files this request covers.
fn select_files(req: &LoadRequest) -> Result<Vec<SourceFile>, LoadError> {
    let (kind, expected) = match req.group_type {
        GroupType::Etf => (
            "ETF holdings",
            "{ticker}_holdings.csv or holdings-daily-us-en-{ticker}.csv",
        ),
        _ => (
            "universe",
            "nasdaq100.csv, sp500.csv, dow30.csv, russell3000.csv or {key}_universe.csv",
        ),
    };
    let mut files = source::discover(&req.dir, req.group_type)?;
    if let Some(only) = &req.only {
        let wanted = match req.group_type {
            GroupType::Etf => only.trim().to_ascii_uppercase(),
            _ => only.trim().to_ascii_lowercase(),
        };
        files.retain(|f| f.group_name == wanted);
        if files.is_empty() {
            return Err(LoadError::NotFound {
                kind,
                name: wanted,
                dir: req.dir.clone(),
            });
        }
    } else if files.is_empty() {
        return Err(LoadError::NoFiles {
            kind,
            dir: req.dir.clone(),
            expected,
        });
    }
    Ok(files)
}

fn read_one(
    source: SourceFile,
    req: &LoadRequest,
    last_md5: &HashMap<String, String>,
    stored_groups: &BTreeMap<String, definition_group::Model>,
) -> Pending {
    let bytes = match std::fs::read(&source.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let why = format!("{}: cannot read the file: {e}", source.file_name);
            return Pending {
                source,
                md5: String::new(),
                read: Read::Rejected(why),
            };
        }
    };
    let md5 = hex(&Md5::digest(&bytes));
    let unchanged = req.mode == Mode::Incremental
        && last_md5.get(&source.group_name) == Some(&md5)
        && stored_groups.contains_key(&source.group_name);
    let expect = match req.group_type {
        GroupType::Etf => Expect::Holdings,
        _ => Expect::Universe,
    };
    let read = if unchanged {
        Read::Unchanged
    } else {
        match read::read(expect, &bytes) {
            Ok(parsed) => Read::Parsed(parsed),
            Err(rejection) => Read::Rejected(format!("{}: {rejection}", source.file_name)),
        }
    };
    Pending { source, md5, read }
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every dotted share class this load knows: the shipped list, the database, the files.
async fn share_classes(
    db: &impl ConnectionTrait,
    req: &LoadRequest,
    pending: &[Pending],
) -> Result<ShareClasses, DbErr> {
    let mut known = store::dotted_symbols(db, &req.environment).await?;
    if let Some(path) = &req.share_classes
        && let Ok(bytes) = std::fs::read(path)
    {
        match read::read(Expect::Universe, &bytes) {
            Ok(list) => known.extend(list.holdings.into_iter().map(|h| h.symbol)),
            Err(e) => tracing::warn!(file = %path.display(), "share class list ignored: {e}"),
        }
    }
    for p in pending {
        if let Read::Parsed(parsed) = &p.read {
            known.extend(crate::symbol::dotted(
                parsed.holdings.iter().map(|h| &h.symbol),
            ));
        }
    }
    Ok(ShareClasses::new(&known))
}

/// A group's description: the fund name a provider file gives, a universe's index name, else
/// the group's own name.
fn describe(group_type: GroupType, name: &str, parsed: &ParsedFile) -> String {
    if let Some(title) = &parsed.title {
        return title.clone();
    }
    match (group_type, name) {
        (GroupType::Universe, "nasdaq100") => "Nasdaq-100".to_owned(),
        (GroupType::Universe, "sp500") => "S&P 500".to_owned(),
        (GroupType::Universe, "dow30") => "Dow Jones Industrial Average".to_owned(),
        (GroupType::Universe, "russell3000") => "Russell 3000".to_owned(),
        _ => name.to_owned(),
    }
}

/// The `load_runs.kind` of a group type.
pub fn kind_key(group_type: GroupType) -> &'static str {
    match group_type {
        GroupType::Etf => "etf",
        GroupType::Universe => "universe",
        GroupType::Sector => "sector",
        GroupType::Theme => "theme",
    }
}

/// The path of the shipped share-class list inside a definitions folder.
pub fn share_class_list(definitions: &Path) -> PathBuf {
    definitions.join("share_classes.csv")
}
