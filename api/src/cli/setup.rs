//! `setup`: from an empty database to sectors, themes, ETFs, universes, enrichment, metadata,
//! validation and a summary report, in one command. Idempotent: a second run changes nothing
//! that the files do not.

use clap::Args;
use entity::GroupType;
use loader::LoadError;
use sea_orm::DatabaseConnection;

use super::load::{self, ModeArgs};
use super::{Exit, Io, pipeline};
use crate::config::Config;

/// `setup` options.
#[derive(Args, Debug, Clone, Default)]
pub struct SetupArgs {
    /// List skipped rows and disagreements in full.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs every step; the exit code fails when a file was rejected or validation failed.
pub async fn run(
    args: &SetupArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let mut exit = Exit::Success;
    let mut worst = |e: Exit| {
        if e == Exit::Failure {
            exit = Exit::Failure;
        }
    };
    let full = ModeArgs {
        mode: load::ModeArg::Full,
        verbose: args.verbose,
        ..ModeArgs::default()
    };
    writeln!(io.out, "== organize-sectors")?;
    worst(pipeline::organize_sectors(&pipeline::DryRunArgs::default(), config, db, io).await?);
    writeln!(io.out, "== organize-themes")?;
    worst(pipeline::organize_themes(&full, config, db, io).await?);
    writeln!(io.out, "== load-etf-holdings --mode full")?;
    worst(load::run(GroupType::Etf, None, &full, config, db, io).await?);
    writeln!(io.out, "== load-universes --mode full")?;
    match load::run(GroupType::Universe, None, &full, config, db, io).await {
        Ok(e) => worst(e),
        Err(e)
            if matches!(
                e.downcast_ref::<LoadError>(),
                Some(LoadError::NoFiles { .. })
            ) =>
        {
            io.notice(format_args!(
                "no universe files in {}; skipped",
                config.holdings_dir.display()
            ))?;
        }
        Err(e) => return Err(e),
    }
    writeln!(io.out, "== enrich-sectors")?;
    let enrich = ModeArgs {
        mode: load::ModeArg::Full,
        verbose: args.verbose,
        ..ModeArgs::default()
    };
    worst(pipeline::enrich(&enrich, config, db, io).await?);
    writeln!(io.out, "== build-stock-metadata")?;
    worst(pipeline::build_stock_metadata(&pipeline::DryRunArgs::default(), config, db, io).await?);
    writeln!(io.out, "== validate")?;
    let validate = pipeline::ValidateArgs {
        verbose: args.verbose,
        json: false,
    };
    worst(pipeline::validate(&validate, config, db, io).await?);
    writeln!(io.out, "== report --summary")?;
    worst(pipeline::report_command(&pipeline::ReportArgs::default(), config, db, io).await?);
    Ok(exit)
}
