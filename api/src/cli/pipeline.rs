//! `organize-sectors`, `organize-themes`, `enrich-sectors`, `set-sector`,
//! `build-stock-metadata`, `validate` and `report`: thin wrappers over the loader library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use loader::definitions::{DefinitionPaths, Override, Sectors, load_overrides, save_overrides};
use loader::enrich::{EnrichRequest, enrich_sectors};
use loader::quality::{Format, report};
use loader::symbol::Symbol;
use loader::{Mode, organize, validate};
use sea_orm::DatabaseConnection;

use super::load::{ModeArgs, print_load};
use super::{Exit, Io};
use crate::config::Config;

/// Definition files of the configured folder.
pub fn paths(config: &Config) -> DefinitionPaths {
    DefinitionPaths::new(&config.definitions_dir)
}

/// The sector taxonomy of the configured definitions.
pub fn sectors(config: &Config) -> anyhow::Result<Sectors> {
    Ok(Sectors::load(&paths(config).sectors)?)
}

/// `--dry-run` and `--json`, for commands without modes.
#[derive(Args, Debug, Clone, Default)]
pub struct DryRunArgs {
    /// Print what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn organize_sectors(
    args: &DryRunArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let sectors = sectors(config)?;
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Incremental
    };
    let report = organize::organize_sectors(
        db,
        &config.environment,
        &sectors,
        &paths(config).sectors.display().to_string(),
        mode,
    )
    .await?;
    let common = ModeArgs {
        json: args.json,
        ..ModeArgs::default()
    };
    print_load(&report, &common, io)
}

pub async fn organize_themes(
    args: &ModeArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let report =
        organize::organize_themes(db, &config.environment, &paths(config).themes, args.mode())
            .await?;
    print_load(&report, args, io)
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

pub async fn enrich(
    args: &ModeArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let report = enrich_sectors(db, &enrich_request(config, args.mode(), Vec::new())).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, &report)?;
        writeln!(io.out)?;
    } else {
        write!(io.out, "{}", report.render(args.verbose))?;
    }
    Ok(Exit::Success)
}

/// `set-sector` options.
#[derive(Args, Debug, Clone)]
pub struct SetSectorArgs {
    /// The stock (`BRK.B`, `brk-b`: normalised like the loaders do).
    pub symbol: String,
    /// A sector key or name (`information_technology`, `Health Care`); not needed with
    /// `--clear`.
    #[arg(required_unless_present = "clear")]
    pub sector: Option<String>,
    /// The industry to record.
    #[arg(long)]
    pub industry: Option<String>,
    /// Why (kept in the overrides file).
    #[arg(long)]
    pub note: Option<String>,
    /// Forget the manual choice: the best other source decides again.
    #[arg(long, conflicts_with = "sector")]
    pub clear: bool,
}

pub async fn set_sector(
    args: &SetSectorArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let sectors = sectors(config)?;
    let paths = paths(config);
    let symbol = Symbol::parse(&args.symbol)
        .with_context(|| format!("{:?} is not a symbol", args.symbol))?;
    let mut overrides = load_overrides(&paths.overrides, &sectors)?;
    overrides.retain(|o| o.symbol != symbol.as_str());
    let forget = if args.clear {
        vec![symbol.as_str().to_owned()]
    } else {
        let wanted = args.sector.as_deref().unwrap_or_default();
        let Some(key) = sectors.key_for(wanted) else {
            let keys: Vec<&str> = sectors.defs.iter().map(|d| d.key.as_str()).collect();
            writeln!(
                io.err,
                "error: {wanted:?} is not a sector; use one of {}",
                keys.join(", ")
            )?;
            return Ok(Exit::Failure);
        };
        overrides.push(Override {
            symbol: symbol.as_str().to_owned(),
            sector: key.to_owned(),
            industry: args.industry.clone(),
            note: args.note.clone().or_else(|| Some("set-sector".to_owned())),
        });
        Vec::new()
    };
    save_overrides(&paths.overrides, &overrides)?;
    let report = enrich_sectors(db, &enrich_request(config, Mode::Incremental, forget)).await?;
    match &args.sector {
        Some(sector) if !args.clear => writeln!(
            io.out,
            "{symbol} set to {sector} (kept in {})",
            paths.overrides.display()
        )?,
        _ => writeln!(io.out, "{symbol}: manual sector cleared")?,
    }
    write!(io.out, "{}", report.render(false))?;
    Ok(Exit::Success)
}

pub async fn build_stock_metadata(
    args: &DryRunArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let (report, without) =
        loader::profile::build_stock_metadata(db, &config.environment, args.dry_run).await?;
    if args.json {
        let value = serde_json::json!({ "report": report, "stocks_without_sector": without });
        serde_json::to_writer_pretty(&mut *io.out, &value)?;
        writeln!(io.out)?;
    } else {
        let c = &report.totals.counts;
        writeln!(
            io.out,
            "{}Stock metadata: {} stocks updated, {} unchanged",
            if args.dry_run { "[DRY RUN] " } else { "" },
            c.updated,
            c.unchanged
        )?;
        if without > 0 {
            writeln!(
                io.out,
                "{without} stocks have no sector membership to hold their metadata: run enrich-sectors"
            )?;
        }
    }
    Ok(Exit::Success)
}

/// `validate` options.
#[derive(Args, Debug, Clone, Default)]
pub struct ValidateArgs {
    /// List the offending groups and symbols.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn validate(
    args: &ValidateArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let result = validate::validate(db, &config.environment, &sectors(config)?).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, &result)?;
        writeln!(io.out)?;
    } else {
        write!(io.out, "{}", result.render(args.verbose))?;
    }
    Ok(if result.failed() {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// `report` formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    #[default]
    Console,
    Markdown,
    Json,
}

/// `report` options.
#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Totals, sector distribution and quality only (the default).
    #[arg(long, conflicts_with = "detail")]
    pub summary: bool,
    /// Also each ETF's top 10 holdings by weight and each universe's size.
    #[arg(long)]
    pub detail: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Console)]
    pub format: FormatArg,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn report_command(
    args: &ReportArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let (report, _) = report(db, &config.environment, &sectors(config)?, args.detail).await?;
    let format = match args.format {
        FormatArg::Console => Format::Console,
        FormatArg::Markdown => Format::Markdown,
        FormatArg::Json => Format::Json,
    };
    let text = report.render(format);
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            io.notice(format_args!("Report written to {}", path.display()))?;
        }
        None => write!(io.out, "{text}")?,
    }
    Ok(Exit::Success)
}
