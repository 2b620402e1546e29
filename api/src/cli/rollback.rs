//! `rollback`: undo one run's changes, as a run of its own.

use clap::Args;
use sea_orm::DatabaseConnection;

use super::{Exit, Io};
use crate::config::Config;
use crate::ops::{self, OpError};

/// `rollback` options.
#[derive(Args, Debug, Clone)]
pub struct RollbackArgs {
    /// The run to roll back: its id, as a load prints it (`Run #9 recorded`).
    #[arg(long = "run", value_name = "ID")]
    pub run: i32,
    /// Print what the rollback would do; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Roll back even when later runs changed the same groups: they go back to their state
    /// before the run, the later changes undone too.
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Rolls back a run and prints its report. A refusal (an unknown run, nothing to undo, later
/// runs in the way without `--force`) is printed on stderr and exits 1; a busy write lock or a
/// database error is an `Err` (exit 2).
pub async fn run(
    args: &RollbackArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let report = match ops::rollback(config, db, args.run, args.dry_run, args.force).await {
        Ok(report) => report,
        Err(OpError::Refused(why) | OpError::Invalid(why)) => {
            writeln!(io.err, "error: {why}")?;
            return Ok(Exit::Failure);
        }
        Err(e) => return Err(anyhow::Error::new(e).context("the rollback did not run")),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, &report)?;
        writeln!(io.out)?;
    } else {
        write!(io.out, "{}", report.render(false))?;
    }
    Ok(Exit::Success)
}
