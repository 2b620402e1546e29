//! `organize-sectors`, `organize-themes`, `enrich-sectors`, `set-sector`,
//! `build-stock-metadata`, `validate` and `report`: thin wrappers over the loader library.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use loader::quality::Format;
use sea_orm::DatabaseConnection;

use super::load::{ModeArgs, print_load};
use super::{Exit, Io};
use crate::config::Config;
use crate::ops::{self, OpError, SetSector};

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
    let report = ops::organize_sectors(config, db, args.dry_run).await?;
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
    let report = ops::organize_themes(config, db, args.mode()).await?;
    print_load(&report, args, io)
}

pub async fn enrich(
    args: &ModeArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let report = ops::enrich(config, db, args.mode()).await?;
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
    /// Set it even though no group holds the symbol (a stock about to be loaded).
    #[arg(long)]
    pub force: bool,
    /// Print what was stored as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn set_sector(
    args: &SetSectorArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let request = SetSector {
        symbol: args.symbol.clone(),
        sector: args.sector.clone(),
        industry: args.industry.clone(),
        note: args.note.clone(),
        clear: args.clear,
        force: args.force,
    };
    match ops::set_sector(config, db, &request).await {
        Ok(report) if args.json => {
            serde_json::to_writer_pretty(&mut *io.out, &report)?;
            writeln!(io.out)?;
            Ok(Exit::Success)
        }
        Ok(report) => {
            write!(io.out, "{}", report.render())?;
            Ok(Exit::Success)
        }
        Err(OpError::Invalid(why)) => {
            writeln!(io.err, "error: {why}")?;
            Ok(Exit::Failure)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn build_stock_metadata(
    args: &DryRunArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let result = ops::build_stock_metadata(config, db, args.dry_run).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, &result)?;
        writeln!(io.out)?;
    } else {
        let c = &result.report.totals.counts;
        writeln!(
            io.out,
            "{}Stock metadata: {} stocks updated, {} unchanged",
            if args.dry_run { "[DRY RUN] " } else { "" },
            c.updated,
            c.unchanged
        )?;
        let without = result.stocks_without_sector;
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
    let result = ops::validate(config, db).await?;
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
    let report = ops::report(config, db, args.detail).await?;
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
