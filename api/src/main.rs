//! `holdgraph`: parse the command line, set up tracing, run the command.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use holdgraph::cli::output::{ErrorEvents, Stdout};
use holdgraph::{Cli, ProgressStyle, config::LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // With JSON logs, nothing but JSON reaches stderr: problems become error events, progress
    // and notices info events. Reports stay on stdout either way.
    let (mut err, progress): (Box<dyn Write + Send>, ProgressStyle) = match cli.config.log_format {
        LogFormat::Json => {
            subscriber.json().init();
            (Box::new(ErrorEvents::default()), ProgressStyle::Log)
        }
        LogFormat::Text => {
            subscriber.init();
            (Box::new(std::io::stderr()), ProgressStyle::detect())
        }
    };
    let code = holdgraph::run(&cli, &mut Stdout::new(), &mut *err, progress).await;
    // Emits a last unfinished line of `ErrorEvents`.
    drop(err);
    ExitCode::from(code)
}
