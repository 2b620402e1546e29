//! The operations: one typed function per pipeline command (loads, organize, enrich, stock
//! metadata, set-sector, validate, report). Each returns what it did as a struct; the CLI
//! renders that struct (console or `--json`) and the GraphQL mutations expose the same struct
//! as typed objects, so a command and its mutation cannot disagree and nothing parses printed
//! text.
//!
//! Writes wait for the database-wide write lock at most the configured `--lock-timeout-ms`.

use std::path::Path;

use entity::GroupType;
use loader::definitions::{DefinitionPaths, Override, Sectors, load_overrides, save_overrides};
use loader::enrich::{EnrichReport, EnrichRequest, enrich_sectors};
use loader::quality::Report;
use loader::symbol::Symbol;
use loader::validate::Validation;
use loader::{LoadReport, LoadRequest, Mode, Progress};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;

use crate::config::Config;

/// Why an operation did not run. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The input names nothing that exists or is not well formed (an unknown sector, a symbol
    /// no group holds, a malformed symbol).
    #[error("{0}")]
    Invalid(String),
    /// Another writer holds the write lock beyond the timeout.
    #[error("{0}")]
    Busy(String),
    /// The operation is not allowed as asked (a rollback behind later runs without `force`,
    /// of a run that changed nothing, of an unknown run).
    #[error("{0}")]
    Refused(String),
    /// The loader refused the run as a whole (a missing folder, an unknown group, definitions
    /// that do not parse) or the database failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<loader::LoadError> for OpError {
    fn from(e: loader::LoadError) -> Self {
        match e {
            loader::LoadError::Lock(loader::lock::LockError::Busy { .. }) => {
                Self::Busy(e.to_string())
            }
            loader::LoadError::RollbackRefused(refused) => Self::Refused(refused.to_string()),
            e => Self::Failed(e.into()),
        }
    }
}

impl From<loader::organize::OrganizeError> for OpError {
    fn from(e: loader::organize::OrganizeError) -> Self {
        match e {
            loader::organize::OrganizeError::Load(e) => e.into(),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<loader::enrich::EnrichError> for OpError {
    fn from(e: loader::enrich::EnrichError) -> Self {
        match e {
            loader::enrich::EnrichError::Load(e) => e.into(),
            other => Self::Failed(other.into()),
        }
    }
}

impl From<sea_orm::DbErr> for OpError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Failed(e.into())
    }
}

impl OpError {
    /// Whether the cause is the database (whose messages are for the logs, not for callers).
    pub fn is_database(&self) -> bool {
        match self {
            Self::Failed(e) => e.chain().any(|c| c.is::<sea_orm::DbErr>()),
            _ => false,
        }
    }
}

/// Runs `work` under the configured lock timeout. The work is boxed: a load's future is large,
/// and inlined into a resolver's it would overflow the stack of a debug build's thread.
async fn locked<T, E: Into<OpError>>(
    config: &Config,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, OpError> {
    loader::lock::with_timeout(config.lock_timeout(), Box::pin(work))
        .await
        .map_err(Into::into)
}

/// Definition files of the configured folder.
pub fn paths(config: &Config) -> DefinitionPaths {
    DefinitionPaths::new(&config.definitions_dir)
}

/// The sector taxonomy of the configured definitions.
pub fn sectors(config: &Config) -> anyhow::Result<Sectors> {
    Ok(Sectors::load(&paths(config).sectors)?)
}

/// What a file load is asked to do.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// ETFs or universes.
    pub group_type: GroupType,
    /// Only this group's file (`SPY`, `sp500`).
    pub only: Option<String>,
    /// `Full` or `Incremental` (a `DryRun` mode is an incremental dry run).
    pub mode: Mode,
    /// Report what the run in `mode` would do; write nothing.
    pub dry_run: bool,
    /// Apply files the guards hold back.
    pub force: bool,
}

impl LoadOptions {
    /// The loader's request for these options under `config`, reading from `dir`.
    pub fn request(&self, config: &Config, dir: &Path) -> LoadRequest {
        let (mode, dry_run) = match self.mode {
            Mode::DryRun => (Mode::Incremental, true),
            mode => (mode, self.dry_run),
        };
        LoadRequest {
            group_type: self.group_type,
            mode,
            dry_run,
            only: self.only.clone(),
            dir: dir.to_path_buf(),
            environment: config.environment.clone(),
            share_classes: Some(loader::run::share_class_list(&config.definitions_dir)),
            funds: Some(loader::run::fund_list(&config.definitions_dir)),
            guards: config.guards(self.force),
            max_file_bytes: config.max_file_bytes,
        }
    }
}

/// `load-etf-holdings` / `load-universes`: the load's report, rejected and held-back files
/// included (an `Err` means the run did not happen at all).
pub async fn load(
    config: &Config,
    db: &DatabaseConnection,
    options: &LoadOptions,
    progress: &dyn Progress,
) -> Result<LoadReport, OpError> {
    let request = options.request(config, &config.holdings_dir);
    locked(config, loader::load(db, &request, progress)).await
}

/// `organize-sectors`: the 12 sector groups from `sectors.json`.
pub async fn organize_sectors(
    config: &Config,
    db: &DatabaseConnection,
    dry_run: bool,
) -> Result<LoadReport, OpError> {
    let sectors = sectors(config)?;
    let mode = if dry_run {
        Mode::DryRun
    } else {
        Mode::Incremental
    };
    let source = paths(config).sectors.display().to_string();
    locked(
        config,
        loader::organize::organize_sectors(db, &config.environment, &sectors, &source, mode),
    )
    .await
}

/// `organize-themes`: the theme groups of `themes.json` (`Mode::Full` removes the others).
pub async fn organize_themes(
    config: &Config,
    db: &DatabaseConnection,
    mode: Mode,
) -> Result<LoadReport, OpError> {
    let themes = paths(config).themes;
    locked(
        config,
        loader::organize::organize_themes(db, &config.environment, &themes, mode),
    )
    .await
}

/// The enrichment request for a configuration.
pub fn enrich_request(config: &Config, mode: Mode, forget_manual: Vec<String>) -> EnrichRequest {
    EnrichRequest {
        environment: config.environment.clone(),
        mode,
        definitions: paths(config),
        holdings_dir: config.holdings_dir.clone(),
        forget_manual,
    }
}

/// `enrich-sectors`: one sector per stock from its best source.
pub async fn enrich(
    config: &Config,
    db: &DatabaseConnection,
    mode: Mode,
) -> Result<EnrichReport, OpError> {
    let request = enrich_request(config, mode, Vec::new());
    locked(config, enrich_sectors(db, &request)).await
}

/// What `build-stock-metadata` did.
#[derive(Clone, Debug, Serialize)]
pub struct MetadataReport {
    /// The run's report (memberships of the sector groups whose metadata changed).
    pub report: LoadReport,
    /// Stocks with no sector membership to hold their metadata (enrich first).
    pub stocks_without_sector: usize,
}

/// `build-stock-metadata`: each stock's name, names and spellings.
pub async fn build_stock_metadata(
    config: &Config,
    db: &DatabaseConnection,
    dry_run: bool,
) -> Result<MetadataReport, OpError> {
    let (report, stocks_without_sector) = locked(
        config,
        loader::profile::build_stock_metadata(db, &config.environment, dry_run),
    )
    .await?;
    Ok(MetadataReport {
        report,
        stocks_without_sector,
    })
}

/// A manual sector to set or forget.
#[derive(Clone, Debug, Default)]
pub struct SetSector {
    /// The stock, in any spelling the loaders accept (`brk-b`).
    pub symbol: String,
    /// A sector key, name or alias; `None` with `clear`.
    pub sector: Option<String>,
    /// The industry to record with it.
    pub industry: Option<String>,
    /// Why (kept in the overrides file).
    pub note: Option<String>,
    /// Forget the manual sector instead.
    pub clear: bool,
    /// Set it even when no group holds the symbol (a stock about to be loaded).
    pub force: bool,
}

/// What `set-sector` stored (GraphQL: `SetSectorResult`).
#[derive(Clone, Debug, Serialize, async_graphql::SimpleObject)]
#[graphql(complex, name = "SetSectorResult")]
pub struct SetSectorReport {
    /// The stock, normalised (`BRK.B`).
    pub symbol: String,
    /// The canonical sector key stored (`information_technology`); none when cleared.
    pub sector: Option<String>,
    /// The sector's display name.
    pub sector_name: Option<String>,
    /// The text asked for when it was a name or alias rather than the key (`Tech`): it was
    /// resolved to `sector`.
    pub resolved_from: Option<String>,
    /// The industry stored with it.
    pub industry: Option<String>,
    /// The note stored with it.
    pub note: Option<String>,
    /// The manual sector was forgotten.
    pub cleared: bool,
    /// Whether a group holds the symbol (false only with `force`).
    pub held: bool,
    /// The overrides file written (a server path: not in the API).
    #[graphql(skip)]
    pub overrides_file: String,
    /// The enrichment that applied it.
    #[graphql(skip)]
    pub enrichment: EnrichReport,
}

impl SetSectorReport {
    /// The console rendering: one line for the choice, then the enrichment report.
    pub fn render(&self) -> String {
        let head = match (&self.sector, &self.resolved_from) {
            (Some(key), Some(asked)) => format!(
                "{} set to {key} ({asked:?} resolved to the key {key}; kept in {})",
                self.symbol, self.overrides_file
            ),
            (Some(key), None) => format!(
                "{} set to {key} (kept in {})",
                self.symbol, self.overrides_file
            ),
            (None, _) => format!("{}: manual sector cleared", self.symbol),
        };
        format!("{head}\n{}", self.enrichment.render(false))
    }
}

/// Whether any group of the environment holds `symbol`.
async fn is_held(db: &DatabaseConnection, environment: &str, symbol: &str) -> anyhow::Result<bool> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 AS one FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
             WHERE g.environment = $1 AND m.symbol = $2 LIMIT 1"
        }
        _ => {
            "SELECT 1 AS one FROM group_memberships m JOIN definition_groups g ON g.id = m.group_id \
             WHERE g.environment = ? AND m.symbol = ? LIMIT 1"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [environment.into(), symbol.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// `set-sector`: a manual sector kept in `sector_overrides.csv`, applied by an incremental
/// enrichment. A symbol no group holds is refused unless `force`; an alias is resolved to its
/// key and the report says so.
pub async fn set_sector(
    config: &Config,
    db: &DatabaseConnection,
    args: &SetSector,
) -> Result<SetSectorReport, OpError> {
    let sectors = sectors(config)?;
    let paths = paths(config);
    let symbol = Symbol::parse(&args.symbol)
        .map_err(|e| OpError::Invalid(format!("{:?} is not a symbol: {e}", args.symbol)))?;
    let held = is_held(db, &config.environment, symbol.as_str()).await?;
    if !held && !args.force && !args.clear {
        return Err(OpError::Invalid(format!(
            "no group holds {symbol}: check the symbol, or set it anyway with --force \
             (`force: true`) for a stock about to be loaded"
        )));
    }
    let mut overrides = load_overrides(&paths.overrides, &sectors).map_err(anyhow::Error::from)?;
    overrides.retain(|o| o.symbol != symbol.as_str());
    let (key, resolved_from, forget, note) = if args.clear {
        (None, None, vec![symbol.as_str().to_owned()], None)
    } else {
        let wanted = args.sector.as_deref().unwrap_or_default();
        let Some(key) = sectors.key_for(wanted) else {
            let keys: Vec<&str> = sectors.defs.iter().map(|d| d.key.as_str()).collect();
            return Err(OpError::Invalid(format!(
                "{wanted:?} is not a sector; use one of {}",
                keys.join(", ")
            )));
        };
        let note = args.note.clone().or_else(|| Some("set-sector".to_owned()));
        overrides.push(Override {
            symbol: symbol.as_str().to_owned(),
            sector: key.to_owned(),
            industry: args.industry.clone(),
            note: note.clone(),
        });
        let resolved_from = (wanted != key).then(|| wanted.to_owned());
        (Some(key.to_owned()), resolved_from, Vec::new(), note)
    };
    // The file is the record of manual choices: written first, so an enrichment that cannot
    // run now (the lock busy) applies it next time.
    save_overrides(&paths.overrides, &overrides).map_err(anyhow::Error::from)?;
    let request = enrich_request(config, Mode::Incremental, forget);
    let enrichment = locked(config, enrich_sectors(db, &request)).await?;
    let sector_name = key
        .as_deref()
        .and_then(|k| sectors.get(k))
        .map(|d| d.name.clone());
    Ok(SetSectorReport {
        symbol: symbol.as_str().to_owned(),
        sector: key,
        sector_name,
        resolved_from,
        industry: if args.clear {
            None
        } else {
            args.industry.clone()
        },
        note,
        cleared: args.clear,
        held,
        overrides_file: paths.overrides.display().to_string(),
        enrichment,
    })
}

/// `validate`: the data-quality checks.
pub async fn validate(config: &Config, db: &DatabaseConnection) -> Result<Validation, OpError> {
    let sectors = sectors(config)?;
    Ok(loader::validate::validate(db, &config.environment, &sectors).await?)
}

/// `report`: the data-quality report, with each ETF's top holdings when `detail`.
pub async fn report(
    config: &Config,
    db: &DatabaseConnection,
    detail: bool,
) -> Result<Report, OpError> {
    let sectors = sectors(config)?;
    let (report, _) = loader::quality::report(db, &config.environment, &sectors, detail).await?;
    Ok(report)
}

/// A provider file sent to the server, to be checked and loaded as one group's input.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// ETF or universe.
    pub group_type: GroupType,
    /// The group it is the input of (`SPY`, `sp500`).
    pub group: String,
    /// The name the sender gave the file, if any (`holdings-daily-us-en-spy.csv`).
    pub file_name: Option<String>,
    /// `Full` or `Incremental` (`DryRun`: an incremental dry run).
    pub mode: Mode,
    /// Check and report; keep nothing.
    pub dry_run: bool,
    /// Apply it even if a guard holds it back.
    pub force: bool,
}

/// What an upload did.
#[derive(Clone, Debug, Serialize)]
pub struct UploadReport {
    /// The load of the uploaded file (one file).
    pub report: LoadReport,
    /// The file's name in the holdings folder (`xlk_holdings.csv`) now that it is kept there;
    /// `None` when it was not kept (rejected, held back, or a dry run).
    pub stored_as: Option<String>,
    /// Whether it replaced a file already there.
    pub replaced: bool,
}

/// The file name an upload is kept under: the sender's name when it names the same group,
/// else the canonical one (`spy_holdings.csv`, `sp500.csv`, `midcap_universe.csv`).
fn upload_name(options: &UploadOptions) -> Result<(String, String), OpError> {
    use loader::source::{NAMED_UNIVERSES, classify};
    let canonical = match options.group_type {
        GroupType::Etf => format!("{}_holdings.csv", options.group.to_ascii_lowercase()),
        GroupType::Universe => {
            let key = options.group.to_ascii_lowercase();
            if NAMED_UNIVERSES.contains(&key.as_str()) {
                format!("{key}.csv")
            } else {
                format!("{key}_universe.csv")
            }
        }
        other => {
            return Err(OpError::Invalid(format!(
                "only ETF and universe files are uploaded, not {}",
                other.as_str()
            )));
        }
    };
    let Some((kind, group)) = classify(&canonical) else {
        return Err(OpError::Invalid(format!(
            "{:?} is not a group name (letters, digits, `_` and `.`, at most 32)",
            options.group
        )));
    };
    let sent = options.file_name.as_deref().map(|n| {
        Path::new(n)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    match sent.as_deref().and_then(|n| classify(n).map(|g| (n, g))) {
        Some((name, (k, g))) if k == kind && g == group => Ok((name.to_owned(), group)),
        Some((name, (_, g))) => Err(OpError::Invalid(format!(
            "the file is named {name:?}, the input of {g}, not of {group}; rename it or \
             upload it for {g}"
        ))),
        None => Ok((canonical, group)),
    }
}

/// Checks an uploaded file exactly as a load checks the holdings folder, then loads it. The
/// file is first written to a staging folder inside the holdings folder and loaded from there:
/// when it is rejected or held back (or in a dry run) nothing changes, neither the database
/// nor the holdings folder; when it is accepted it replaces the group's file by a rename
/// (atomic, same file system) once its load has committed.
pub async fn upload(
    config: &Config,
    db: &DatabaseConnection,
    options: &UploadOptions,
    content: impl std::io::Read + Send + 'static,
    progress: &dyn Progress,
) -> Result<UploadReport, OpError> {
    let (file_name, group) = upload_name(options)?;
    let holdings = config.holdings_dir.clone();
    let existing = loader::source::discover(&holdings, options.group_type)
        .map_err(anyhow::Error::from)?
        .into_iter()
        .find(|f| f.group_name == group);
    let target = existing
        .as_ref()
        .map_or_else(|| holdings.join(&file_name), |f| f.path.clone());
    let staging_root = holdings.join(".uploads");
    let limit = config.max_file_bytes;
    let staged_name = file_name.clone();
    let root = staging_root.clone();
    let staged = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root)?;
        let staging = tempfile::Builder::new()
            .prefix("upload-")
            .tempdir_in(&root)?;
        let staged = staging.path().join(&staged_name);
        let mut out = std::fs::File::create(&staged)?;
        // One byte past the limit tells an oversized file without reading all of it.
        let mut content = std::io::Read::take(content, limit + 1);
        let copied = std::io::copy(&mut content, &mut out)?;
        out.sync_all()?;
        Ok::<_, std::io::Error>((staging, staged, copied))
    })
    .await
    .map_err(anyhow::Error::from)?;
    let result = match staged {
        Ok((staging, staged, copied)) => {
            let result = if copied > limit {
                Err(OpError::Invalid(format!(
                    "{file_name}: the upload is larger than {limit} bytes (--max-file-bytes); \
                     nothing was changed"
                )))
            } else {
                let load = LoadOptions {
                    group_type: options.group_type,
                    only: Some(group),
                    mode: options.mode,
                    dry_run: options.dry_run,
                    force: options.force,
                };
                load_staged(
                    config,
                    db,
                    &load,
                    staging.path(),
                    &staged,
                    &target,
                    progress,
                )
                .await
            };
            drop(staging);
            result
        }
        Err(e) => Err(OpError::Failed(anyhow::anyhow!(
            "cannot stage the upload in {}: {e}",
            staging_root.display()
        ))),
    };
    // Leave the holdings folder as it was, whatever happened: the staging folder goes when
    // nothing else uses it.
    std::fs::remove_dir(&staging_root).ok();
    let (report, stored_as) = result?;
    Ok(UploadReport {
        replaced: stored_as.is_some() && existing.is_some(),
        report,
        stored_as,
    })
}

/// Loads a staged upload from its staging folder; when it is accepted (loaded or unchanged,
/// not a dry run), renames it over `target` and answers the name it is kept under.
async fn load_staged(
    config: &Config,
    db: &DatabaseConnection,
    load: &LoadOptions,
    folder: &Path,
    staged: &Path,
    target: &Path,
    progress: &dyn Progress,
) -> Result<(LoadReport, Option<String>), OpError> {
    let request = load.request(config, folder);
    let report = locked(config, loader::load(db, &request, progress)).await?;
    let accepted = !request.dry_run
        && report.files.len() == 1
        && matches!(
            report.files[0].status,
            loader::report::FileStatus::Loaded | loader::report::FileStatus::Unchanged
        );
    if !accepted {
        return Ok((report, None));
    }
    std::fs::rename(staged, target).map_err(|e| {
        OpError::Failed(anyhow::anyhow!(
            "the upload was loaded (run {:?}) but could not replace {}: {e}",
            report.run_id,
            target.display()
        ))
    })?;
    // The name in the holdings folder: callers see where it is kept, not the server's paths.
    let stored_as = target.file_name().map(|n| n.to_string_lossy().into_owned());
    Ok((report, stored_as))
}

/// `rollback`: every group run `run_id` touched goes back to its state before that run, as a
/// new run of kind `rollback`. Refused when later runs changed the same groups, unless `force`.
pub async fn rollback(
    config: &Config,
    db: &DatabaseConnection,
    run_id: i32,
    dry_run: bool,
    force: bool,
) -> Result<LoadReport, OpError> {
    let request = loader::history::RollbackRequest {
        environment: config.environment.clone(),
        run_id,
        dry_run,
        force,
    };
    locked(config, loader::history::rollback(db, &request)).await
}
