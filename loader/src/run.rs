//! A file load: which files, which mode, reading them, then [`crate::sync`] for the diff, the
//! one transaction and the report.
//!
//! A load first takes the database-wide write lock and records its run as `running`
//! ([`crate::lock`]), then reads what is stored. A rejected or held-back file never touches the
//! database and a dry run writes nothing at all, not even a run record. Everything a run
//! changes (memberships, groups, its file records and membership changes, the data version,
//! its final state) is committed together or not at all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use entity::GroupType;
use md5::{Digest, Md5};
use sea_orm::{DatabaseConnection, DbErr};

use crate::definitions::{FundDef, Funds};
use crate::error::LoadError;
use crate::guard::Guards;
use crate::members;
use crate::read::{self, Expect, ParsedFile};
use crate::report::{LoadReport, Mode};
use crate::source::{self, SourceFile};
use crate::store;
use crate::symbol::ShareClasses;
use crate::sync::{Input, Members, Outcome, Parsed, SyncRequest, Writer, sync_with};

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadRequest {
    /// `Etf` or `Universe`.
    pub group_type: GroupType,
    /// `Full` or `Incremental` (`DryRun` is shorthand for an incremental dry run).
    pub mode: Mode,
    /// Show what the run in `mode` would do; write nothing.
    pub dry_run: bool,
    /// Touch this one group only (`SPY`, `sp500`).
    pub only: Option<String>,
    /// The holdings folder.
    pub dir: PathBuf,
    pub environment: String,
    /// A list of dotted share classes (`symbol,name`) that resolves compact spellings such as
    /// iShares' `BRKB` even when no other file names `BRK.B`. Optional.
    pub share_classes: Option<PathBuf>,
    /// `funds.json`: each ETF's name, issuer and market (the market of holdings whose row
    /// names none). Optional.
    pub funds: Option<PathBuf>,
    /// The guards against wrong files; `None` (`--force`) applies every file that reads.
    pub guards: Option<Guards>,
    /// Files larger than this are refused before they are read.
    pub max_file_bytes: u64,
}

/// The default `--max-file-bytes`: 256 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Told about progress through the files; the CLI draws a bar, the server broadcasts it to
/// subscribers, tests stay quiet.
///
/// The calls of one load come in this order: [`started`](Self::started), [`begin`](Self::begin),
/// then [`file`](Self::file) and [`file_read`](Self::file_read) for each file (from several
/// threads at once: files are read in parallel), then [`end`](Self::end).
pub trait Progress: Send + Sync {
    /// The run is recorded as `running` (with this id) and holds the write lock; `None` for a
    /// dry run, which records nothing.
    fn started(&self, _run_id: Option<i32>) {}
    /// The number of files about to be read.
    fn begin(&self, _files: usize) {}
    /// One file is being read.
    fn file(&self, _file_name: &str) {}
    /// A file's first read is done: `rows_read` rows after its header, 0 when it is unchanged
    /// (an incremental load skips it) or rejected.
    fn file_read(&self, _file_name: &str, _rows_read: usize) {}
    /// Reading is over; what remains is the database work.
    fn end(&self) {}
}

/// Progress that says nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// One file after its first read: unchanged, rejected, or to be parsed again in the run.
enum Checked {
    Changed,
    Unchanged,
    /// Why, and the line it names when the reader names one.
    Rejected(String, Option<u64>),
}

/// Runs a load and returns its report. Rejected and held-back files are in the report (and
/// make [`LoadReport::failed`] true); an `Err` means nothing was changed at all.
///
/// Each file is read twice, one file at a time: first to fingerprint and check it and to learn
/// the share classes it names (which decide how other files' compact spellings resolve), then
/// inside the run's transaction to be diffed and applied. Memory holds one file's rows at
/// once, whatever the number of files.
pub async fn load(
    db: &DatabaseConnection,
    req: &LoadRequest,
    progress: &dyn Progress,
) -> Result<LoadReport, LoadError> {
    let clock = Instant::now();
    let started_at = Utc::now();
    let files = select_files(req)?;
    let sync_req = SyncRequest {
        group_type: req.group_type,
        mode: req.mode,
        environment: req.environment.clone(),
        kind: kind_key(req.group_type),
        source: req.dir.display().to_string(),
        scope: req.only.clone(),
        remove_gone: true,
        dry_run: req.dry_run,
        guards: req.guards,
    };
    // Everything compared with the files is read under the write lock.
    let writer = Writer::begin(db, &sync_req, started_at).await?;
    progress.started(writer.as_ref().map(Writer::run_id));
    let prepared = prepare(db, req, &sync_req, files, progress).await;
    let inputs = match prepared {
        Ok(inputs) => inputs,
        Err(e) => {
            if let Some(writer) = writer {
                writer.fail(db, &sync_req, &e).await;
            }
            return Err(e.into());
        }
    };
    sync_with(db, &sync_req, writer, inputs, clock).await
}

/// The first pass: fingerprints, checks, share classes; then the inputs that read each
/// changed file again when the run reaches it.
async fn prepare(
    db: &DatabaseConnection,
    req: &LoadRequest,
    sync_req: &SyncRequest,
    files: Vec<SourceFile>,
    progress: &dyn Progress,
) -> Result<Vec<Input>, DbErr> {
    let env = req.environment.as_str();
    let stored_groups = store::groups(db, env, req.group_type).await?;
    let last_md5 = if sync_req.effective_mode() == Mode::Incremental {
        store::last_loaded_md5(db, env, req.group_type).await?
    } else {
        HashMap::new()
    };
    let mut known = HashSet::new();

    progress.begin(files.len());
    // Fingerprints and first reads, on every core: nothing else can happen until they are
    // done (the database waits for the run's first statement). Each file stays in its place.
    let check = |source: &SourceFile| {
        progress.file(&source.file_name);
        let mut dotted = HashSet::new();
        let mut rows_read = 0;
        let (md5, state) = match read_bytes(source, req) {
            Err(why) => (String::new(), Checked::Rejected(why, None)),
            Ok(bytes) => {
                let md5 = hex(&Md5::digest(&bytes));
                let unchanged = last_md5.get(&source.group_name) == Some(&md5)
                    && stored_groups.contains_key(&source.group_name);
                let state = if unchanged {
                    Checked::Unchanged
                } else {
                    match read::read(expect(req.group_type), &bytes) {
                        Ok(parsed) => {
                            rows_read = parsed.rows_read;
                            dotted =
                                crate::symbol::dotted(parsed.holdings.iter().map(|h| &h.symbol));
                            Checked::Changed
                        }
                        Err(rejection) => Checked::Rejected(
                            format!("{}: {rejection}", source.file_name),
                            rejection.line,
                        ),
                    }
                };
                (md5, state)
            }
        };
        progress.file_read(&source.file_name, rows_read);
        (md5, state, dotted)
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, files.len().max(1));
    let results: Vec<_> = if workers == 1 {
        files.iter().map(check).collect()
    } else {
        let part = files.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(part)
                .map(|chunk| scope.spawn(|| chunk.iter().map(check).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut checked = Vec::with_capacity(files.len());
    for (source, (md5, state, dotted)) in files.into_iter().zip(results) {
        known.extend(dotted);
        checked.push((source, md5, state));
    }
    progress.end();

    // The stored and shipped share classes matter only to files that will be read again.
    if checked
        .iter()
        .any(|(_, _, c)| matches!(c, Checked::Changed))
    {
        known.extend(store::dotted_symbols(db, env).await?);
        if let Some(path) = &req.share_classes
            && let Ok(bytes) = std::fs::read(path)
        {
            match read::read(Expect::Universe, &bytes) {
                Ok(list) => known.extend(list.holdings.into_iter().map(|h| h.symbol)),
                Err(e) => tracing::warn!(file = %path.display(), "share class list ignored: {e}"),
            }
        }
    }
    let book = Arc::new(ShareClasses::new(&known));
    let funds = Arc::new(match &req.funds {
        Some(path) if path.exists() => match Funds::load(path) {
            Ok(funds) => funds,
            Err(e) => {
                tracing::warn!(file = %path.display(), "fund definitions ignored: {e}");
                Funds::default()
            }
        },
        _ => Funds::default(),
    });
    let inputs = checked
        .into_iter()
        .map(|(source, md5, state)| {
            let outcome = match state {
                Checked::Unchanged => Outcome::Unchanged,
                Checked::Rejected(why, line) => Outcome::Rejected(why, line),
                Checked::Changed => {
                    let (book, funds) = (Arc::clone(&book), Arc::clone(&funds));
                    let req = req.clone();
                    let source = source.clone();
                    let md5 = md5.clone();
                    Outcome::Deferred(Box::new(move || reread(&source, &req, &md5, &book, &funds)))
                }
            };
            Input {
                file_name: source.file_name,
                group_name: source.group_name,
                md5,
                outcome,
            }
        })
        .collect();
    Ok(inputs)
}

/// The second read of a changed file, inside the run: the same bytes (or a rejection if the
/// file changed in between), parsed into the memberships it asks for.
fn reread(
    source: &SourceFile,
    req: &LoadRequest,
    md5: &str,
    book: &ShareClasses,
    funds: &Funds,
) -> Outcome {
    let bytes = match read_bytes(source, req) {
        Ok(bytes) => bytes,
        Err(why) => return Outcome::Rejected(why, None),
    };
    if hex(&Md5::digest(&bytes)) != md5 {
        return Outcome::Rejected(
            format!(
                "{}: the file changed while it was being loaded; load it again",
                source.file_name
            ),
            None,
        );
    }
    let mut parsed = match read::read(expect(req.group_type), &bytes) {
        Ok(parsed) => parsed,
        Err(rejection) => {
            return Outcome::Rejected(format!("{}: {rejection}", source.file_name), rejection.line);
        }
    };
    drop(bytes);
    let fund = funds.get(&source.group_name);
    let members = members::desired(&mut parsed, book, funds.market(&source.group_name));
    let mut metadata = serde_json::json!({
        "source_file": source.file_name,
        "shape": parsed.shape.as_str(),
    });
    if let Some(fund) = fund {
        metadata["fund_name"] = fund.name.clone().into();
        if let Some(issuer) = &fund.issuer {
            metadata["issuer"] = issuer.clone().into();
        }
        if let Some(market) = &fund.market {
            metadata["market"] = market.clone().into();
        }
    }
    Outcome::Parsed(Parsed {
        shape: parsed.shape.as_str(),
        description: Some(describe(&source.group_name, &parsed, fund)),
        metadata: Some(metadata),
        rows_read: parsed.rows_read,
        skipped: parsed.skipped,
        members: Members::Exactly(members),
    })
}

fn expect(group_type: GroupType) -> Expect {
    match group_type {
        GroupType::Etf => Expect::Holdings,
        _ => Expect::Universe,
    }
}

/// A group file's bytes, or why it cannot be one: not a regular file (a directory, a broken
/// or looping symlink, a socket), larger than the limit, or unreadable.
fn read_bytes(source: &SourceFile, req: &LoadRequest) -> Result<Vec<u8>, String> {
    let name = &source.file_name;
    let meta = std::fs::metadata(&source.path).map_err(|e| match e.raw_os_error() {
        Some(40) => format!("{name}: a symbolic link loop, not a file"),
        _ if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{name}: a broken symbolic link (its target does not exist)")
        }
        _ => format!("{name}: cannot read the file: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!("{name}: a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(format!(
            "{name}: not a regular file (a socket, pipe or device)"
        ));
    }
    if meta.len() > req.max_file_bytes {
        return Err(format!(
            "{name}: {} bytes, larger than the {} bytes allowed (--max-file-bytes); nothing \
             was read",
            meta.len(),
            req.max_file_bytes
        ));
    }
    std::fs::read(&source.path).map_err(|e| format!("{name}: cannot read the file: {e}"))
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

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A group's description: the fund's name as its export states it, else as `funds.json`
/// gives it (funds and index universes), else the group's name.
fn describe(name: &str, parsed: &ParsedFile, fund: Option<&FundDef>) -> String {
    if let Some(title) = &parsed.title {
        return title.clone();
    }
    if let Some(fund) = fund {
        return fund.name.clone();
    }
    name.to_owned()
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

/// The path of the shipped fund definitions inside a definitions folder.
pub fn fund_list(definitions: &Path) -> PathBuf {
    definitions.join("funds.json")
}

/// The path of the shipped share-class list inside a definitions folder.
pub fn share_class_list(definitions: &Path) -> PathBuf {
    definitions.join("share_classes.csv")
}
