//! `load-etf-holdings` and `load-universes`.

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use entity::GroupType;
use loader::{LoadReport, Mode};
use sea_orm::DatabaseConnection;

use super::{Exit, Io};
use crate::config::Config;
use crate::ops::{self, LoadOptions};

/// The mode and output options every data-changing command shares.
#[derive(Args, Debug, Clone, Default)]
pub struct ModeArgs {
    /// full: stored groups become exactly the input; incremental: skip inputs whose MD5 is
    /// unchanged and diff the rest; dry-run: same as `--dry-run` (an incremental dry run).
    #[arg(long, value_enum, default_value_t = ModeArg::Incremental)]
    pub mode: ModeArg,
    /// Same as `--mode full`.
    #[arg(long)]
    pub rebuild: bool,
    /// Print what the run in the chosen mode would do (`--rebuild --dry-run`: a full run);
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply files the guards hold back (mostly invalid rows, most of a group replaced, its
    /// total weight moved).
    #[arg(long)]
    pub force: bool,
    /// List every skipped row (or disagreement) with where it came from.
    #[arg(long, short)]
    pub verbose: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `load-etf-holdings` options.
#[derive(Args, Debug, Clone, Default)]
pub struct EtfArgs {
    #[command(flatten)]
    pub common: ModeArgs,
    /// Load this ETF only (`--etf SPY`).
    #[arg(long, value_name = "TICKER")]
    pub etf: Option<String>,
}

/// `load-universes` options.
#[derive(Args, Debug, Clone, Default)]
pub struct UniverseArgs {
    #[command(flatten)]
    pub common: ModeArgs,
    /// Load this universe only (`--universe sp500`).
    #[arg(long, value_name = "KEY")]
    pub universe: Option<String>,
}

/// `--mode` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Full,
    #[default]
    Incremental,
    DryRun,
}

impl ModeArgs {
    /// The mode these flags ask for: `--dry-run` wins, then `--rebuild`, then `--mode`.
    /// Commands other than the file loads take a dry run in this single value.
    pub fn mode(&self) -> Mode {
        if self.is_dry_run() {
            Mode::DryRun
        } else {
            self.run_mode()
        }
    }

    /// The mode of the run made or shown: `--rebuild` or `--mode full`, else incremental.
    pub fn run_mode(&self) -> Mode {
        if self.rebuild || self.mode == ModeArg::Full {
            Mode::Full
        } else {
            Mode::Incremental
        }
    }

    /// Whether nothing is to be written.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run || self.mode == ModeArg::DryRun
    }
}

/// Runs a file load and prints its report.
pub async fn run(
    group_type: GroupType,
    only: Option<String>,
    args: &ModeArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let options = LoadOptions {
        group_type,
        only,
        mode: args.run_mode(),
        dry_run: args.is_dry_run(),
        force: args.force,
    };
    let progress = io.progress.start();
    let report = ops::load(config, db, &options, progress.as_ref())
        .await
        .context("the load did not run")?;
    print_load(&report, args, io)
}

/// Prints a load report as text or JSON, rejections also on stderr.
pub fn print_load(report: &LoadReport, args: &ModeArgs, io: &mut Io<'_>) -> anyhow::Result<Exit> {
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, report)?;
        writeln!(io.out)?;
    } else {
        write!(io.out, "{}", report.render(args.verbose))?;
    }
    for file in &report.files {
        if let Some(error) = &file.error {
            writeln!(io.err, "error: {error}")?;
        }
    }
    Ok(if report.failed() {
        Exit::Failure
    } else {
        Exit::Success
    })
}
