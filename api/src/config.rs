//! The one typed configuration, from flags or environment variables (`.env.example` lists
//! them). Nothing else in the binary reads the environment.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Where the data lives and which slice of it to use.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Database URL: `sqlite://path?mode=rwc` (the file and its folder are created) or
    /// `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/holdgraph.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

    /// Folder of ETF holdings and universe files.
    #[arg(long, env = "HOLDINGS_DIR", default_value = "holdings", global = true)]
    pub holdings_dir: PathBuf,

    /// Folder of the project's definition files (sectors, themes, share classes, mappings).
    #[arg(
        long,
        env = "DEFINITIONS_DIR",
        default_value = "definitions",
        global = true
    )]
    pub definitions_dir: PathBuf,

    /// Environment every read and write is scoped to.
    #[arg(long, env = "ENVIRONMENT", default_value = "DEFAULT", global = true)]
    pub environment: String,

    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}
