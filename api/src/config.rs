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

    /// How long a command that writes waits for the database-wide write lock held by another
    /// writer (another command, process or server) before it gives up, in milliseconds.
    #[arg(long, env = "LOCK_TIMEOUT_MS", default_value_t = 5_000, global = true)]
    pub lock_timeout_ms: u64,

    /// Holdings files larger than this many bytes are refused before they are read.
    #[arg(long, env = "MAX_FILE_BYTES", default_value_t = loader::run::DEFAULT_MAX_FILE_BYTES, global = true)]
    pub max_file_bytes: u64,

    /// Guard: a file whose data rows are invalid beyond this percentage is rejected
    /// (`--force` loads it anyway).
    #[arg(
        long,
        env = "MAX_SKIPPED_PERCENT",
        default_value_t = 20.0,
        global = true
    )]
    pub max_skipped_percent: f64,

    /// Guard: a load that would remove more than this percentage of a group's members is
    /// held back (`--force` applies it).
    #[arg(
        long,
        env = "MAX_REPLACED_PERCENT",
        default_value_t = 50.0,
        global = true
    )]
    pub max_replaced_percent: f64,

    /// Guard: a load that would move a group's total weight by more than this many points is
    /// held back (`--force` applies it).
    #[arg(long, env = "MAX_WEIGHT_SHIFT", default_value_t = 20.0, global = true)]
    pub max_weight_shift: f64,

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

impl Config {
    /// The write lock's wait.
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lock_timeout_ms)
    }

    /// The guards against wrong files, unless a load is forced.
    pub fn guards(&self, force: bool) -> Option<loader::guard::Guards> {
        (!force).then_some(loader::guard::Guards {
            max_skipped_percent: self.max_skipped_percent,
            max_replaced_percent: self.max_replaced_percent,
            max_weight_shift: self.max_weight_shift,
        })
    }
}
