//! The `holdgraph` binary's library: configuration, database connection and the command
//! line. Kept as a library so tests drive every command without spawning a process.

pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod events;
mod graphiql;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod search;
pub mod serve;
pub mod snapshot;
pub mod state;

use std::io::Write;

pub use cli::{Cli, Exit, Io, ProgressStyle};

/// Parses `args`, connects, migrates and runs the command, writing to `out` and `err`.
/// Returns the exit code (2 when the command could not run at all).
pub async fn run_with_args<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = write!(err, "{e}");
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    run(&cli, out, err, ProgressStyle::Quiet).await
}

/// Connects, migrates and runs a parsed command line.
pub async fn run(
    cli: &Cli,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    progress: ProgressStyle,
) -> u8 {
    let result = async {
        let db = db::connect(&cli.config.database_url).await?;
        let mut io = Io { out, err, progress };
        // Boxed: the largest command's future is big, and on the caller's stack it would
        // overflow a debug build's test thread.
        let exit = Box::pin(cli::dispatch(&cli.command, &cli.config, &db, &mut io)).await;
        db.close().await.ok();
        exit
    }
    .await;
    match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            2
        }
    }
}
