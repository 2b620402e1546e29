//! `holdgraph`: parse the command line, set up tracing, run the command.

use std::process::ExitCode;

use clap::Parser;
use holdgraph::{Cli, ProgressStyle, config::LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.config.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    let code = holdgraph::run(
        &cli,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        ProgressStyle::detect(),
    )
    .await;
    ExitCode::from(code)
}
