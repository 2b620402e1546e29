//! The `holdgraph` command line: one module per subcommand, each thin, calling the library.

pub mod load;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod query;
pub mod rollback;
pub mod serve;
pub mod setup;

use std::fmt;
use std::io::Write;

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::config::Config;
pub use load::{EtfArgs, ModeArgs, UniverseArgs};
pub use progress::ProgressStyle;

/// Holdings Graph: ETF, stock, sector, theme and universe relationships, loaded from provider
/// CSV files and served over GraphQL.
#[derive(Parser, Debug)]
#[command(name = "holdgraph", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Command,
}

/// The maintenance commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create or update the 12 sector groups from `sectors.json` (idempotent).
    OrganizeSectors(pipeline::DryRunArgs),
    /// Create, update or (full mode) remove the theme groups of `themes.json`.
    OrganizeThemes(ModeArgs),
    /// Load ETF holdings (`{ticker}_holdings.csv` and provider exports) with their weights.
    LoadEtfHoldings(EtfArgs),
    /// Load index universes (`sp500.csv`, `nasdaq100.csv`, `dow30.csv`, `russell3000.csv`,
    /// `{key}_universe.csv`).
    LoadUniverses(UniverseArgs),
    /// Give every stock exactly one sector from its best source, recording which one.
    EnrichSectors(ModeArgs),
    /// Set a stock's sector by hand (kept in `sector_overrides.csv`, survives every run).
    SetSector(pipeline::SetSectorArgs),
    /// Refresh each stock's name, names and spellings.
    BuildStockMetadata(pipeline::DryRunArgs),
    /// Run the data-quality checks; exit 1 when one fails.
    Validate(pipeline::ValidateArgs),
    /// The data-quality report.
    Report(pipeline::ReportArgs),
    /// Look up a stock, ETF, sector, industry, theme or universe, or print counts.
    Query(query::QueryArgs),
    /// From an empty database to a loaded, enriched, validated and reported one.
    Setup(setup::SetupArgs),
    /// The GraphQL server (runs setup first when the database is empty).
    Serve(serve::ServeArgs),
    /// Undo one run's changes (as a new run); refused when later runs changed the same groups
    /// unless `--force`.
    Rollback(rollback::RollbackArgs),
}

/// What a command asks the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Success,
    /// The command ran but something failed (a rejected file, a failed check).
    Failure,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
        }
    }
}

/// Where a command writes: its report to `out`, problems to `err`.
pub struct Io<'a> {
    pub out: &'a mut (dyn Write + Send),
    pub err: &'a mut (dyn Write + Send),
    pub progress: ProgressStyle,
}

impl Io<'_> {
    /// Says what the command is doing, beside its report (`serving on ...`, `report written
    /// to ...`): a line on `out`, or an `info` event when the logs are JSON, since a
    /// collector reading stdout and stderr together would find plain text among them.
    pub fn notice(&mut self, text: impl fmt::Display) -> std::io::Result<()> {
        if self.progress == ProgressStyle::Log {
            tracing::info!("{text}");
            Ok(())
        } else {
            writeln!(self.out, "{text}")
        }
    }
}

/// Runs one command against a connected, migrated database.
pub async fn dispatch(
    command: &Command,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    loader::lock::with_timeout(config.lock_timeout(), run_command(command, config, db, io)).await
}

async fn run_command(
    command: &Command,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    use entity::GroupType;
    match command {
        Command::OrganizeSectors(args) => pipeline::organize_sectors(args, config, db, io).await,
        Command::OrganizeThemes(args) => pipeline::organize_themes(args, config, db, io).await,
        Command::LoadEtfHoldings(args) => {
            load::run(
                GroupType::Etf,
                args.etf.clone(),
                &args.common,
                config,
                db,
                io,
            )
            .await
        }
        Command::LoadUniverses(args) => {
            let only = args.universe.clone();
            load::run(GroupType::Universe, only, &args.common, config, db, io).await
        }
        Command::EnrichSectors(args) => pipeline::enrich(args, config, db, io).await,
        Command::SetSector(args) => pipeline::set_sector(args, config, db, io).await,
        Command::BuildStockMetadata(args) => {
            pipeline::build_stock_metadata(args, config, db, io).await
        }
        Command::Validate(args) => pipeline::validate(args, config, db, io).await,
        Command::Report(args) => pipeline::report_command(args, config, db, io).await,
        Command::Query(args) => query::run(args, config, db, io).await,
        Command::Setup(args) => setup::run(args, config, db, io).await,
        Command::Serve(args) => serve::run(args, config, db, io).await,
        Command::Rollback(args) => rollback::run(args, config, db, io).await,
    }
}
