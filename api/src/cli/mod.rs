//! The `holdgraph` command line: one module per subcommand, each thin, calling the library.

mod load;
pub mod progress;

use std::io::Write;

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use crate::config::Config;
pub use load::LoadArgs;
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
    /// Load ETF holdings (`{ticker}_holdings.csv` and provider exports) with their weights.
    LoadEtfHoldings(LoadArgs),
    /// Load index universes (`sp500.csv`, `nasdaq100.csv`, `dow30.csv`, `russell3000.csv`,
    /// `{key}_universe.csv`).
    LoadUniverses(LoadArgs),
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
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub progress: ProgressStyle,
}

/// Runs one command against a connected, migrated database.
pub async fn dispatch(
    command: &Command,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    match command {
        Command::LoadEtfHoldings(args) => {
            load::run(entity::GroupType::Etf, args, config, db, io).await
        }
        Command::LoadUniverses(args) => {
            load::run(entity::GroupType::Universe, args, config, db, io).await
        }
    }
}
