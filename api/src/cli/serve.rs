//! `serve`: the GraphQL server. On an empty database it runs `setup` first, so a fresh
//! machine serves real data; the port is open meanwhile, `/health` answering and `/ready`
//! saying the server is starting, so an orchestrator sees a live process that is not ready.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use sea_orm::DatabaseConnection;

use super::{Exit, Io, setup};
use crate::config::Config;
use crate::state::{AppState, ServerSettings};

/// `serve` options.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token that mutations and /admin/* require; without one they are refused.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Deepest query accepted.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Most complex query accepted (a list field costs `first` × its selection).
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 50_000)]
    pub max_complexity: usize,
    /// Largest page (`first`) accepted.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 5_000)]
    pub max_page_size: usize,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a request may run; a query still running then is stopped with a TIMEOUT error.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Milliseconds between checks of the data version, which is how loads made by other
    /// processes reach this server (0: the default, a `stat` of the files every 10 ms on
    /// SQLite, a read every second on PostgreSQL behind LISTEN/NOTIFY, which is immediate).
    #[arg(long, env = "VERSION_CHECK_MS", default_value_t = 0)]
    pub version_check_ms: u64,
    /// Origins browsers may call the API from: `*` (any; the default, since queries are open
    /// and mutations need a bearer token, never a cookie), or a comma-separated list
    /// (`https://dash.example.com,http://localhost:3000`).
    #[arg(long, env = "CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,
    /// Entries the analytics cache (overlaps, exposures) holds at most per data version.
    #[arg(long, env = "CACHE_CAPACITY", default_value_t = 50_000)]
    pub cache_capacity: u64,
    /// Most requests one batch (a JSON array posted to /graphql) may hold; a larger batch is
    /// refused with BATCH_TOO_LARGE.
    #[arg(long, env = "MAX_BATCH", default_value_t = 20)]
    pub max_batch: usize,
    /// Seconds HTTP caches may keep a GET /graphql answer (`Cache-Control: public,
    /// max-age=N`); its ETag lets them revalidate after that.
    #[arg(long, env = "CACHE_MAX_AGE_SECS", default_value_t = 5)]
    pub cache_max_age_secs: u64,
    /// Threads serving HTTP connections, each keeping the connections it accepted (0: one
    /// per CPU core).
    #[arg(long, env = "HTTP_THREADS", default_value_t = 0)]
    pub http_threads: usize,
    /// With one HTTP thread per core (the default), keep each thread on its core and hand it
    /// the connections whose packets that core handles (`false`: let the threads move).
    #[arg(long, env = "PIN_HTTP_THREADS", default_value_t = true, action = clap::ArgAction::Set)]
    pub pin_http_threads: bool,
}

impl ServeArgs {
    /// The server settings these flags ask for.
    pub fn settings(&self) -> ServerSettings {
        ServerSettings {
            admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_page_size: self.max_page_size,
            body_limit_bytes: self.max_body_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            version_check: Duration::from_millis(self.version_check_ms),
            cache_capacity: self.cache_capacity,
            cors_origins: self.cors_origins.clone(),
            max_batch: self.max_batch,
            http_max_age: Duration::from_secs(self.cache_max_age_secs),
            http_threads: match self.http_threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            },
            pin_http_threads: self.pin_http_threads,
        }
    }
}

/// Binds the address, then on an empty database runs setup while `/health` and `/ready`
/// answer (the rest waits for it), then serves until Ctrl-C or SIGTERM.
pub async fn run(
    args: &ServeArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let empty = loader::graph::groups(db, &config.environment, None)
        .await?
        .is_empty();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let state = if empty {
        AppState::starting(db.clone(), config.clone(), args.settings()).await?
    } else {
        AppState::new(db.clone(), config.clone(), args.settings()).await?
    };
    let mut server = tokio::spawn(crate::serve::serve(
        listener,
        state.clone(),
        crate::serve::shutdown_signal(),
    ));
    if empty {
        io.notice(format_args!(
            "The database is empty: running setup on {}",
            config.holdings_dir.display()
        ))?;
        // Not "serving on": scripts wait for that line to send queries.
        io.notice(format_args!(
            "Listening on http://{addr} during setup: /health answers, /ready says starting"
        ))?;
        io.out.flush()?;
        let setup_args = setup::SetupArgs::default();
        let setup = setup::run(&setup_args, config, db, io);
        tokio::select! {
            done = setup => {
                done?;
                state.finish_starting().await?;
            }
            // Stopped (Ctrl-C, SIGTERM) during setup: the load in progress rolls back.
            stopped = &mut server => {
                stopped.context("the server task failed")??;
                return Ok(Exit::Success);
            }
        }
    }
    io.notice(format_args!(
        "Holdings Graph serving on http://{addr} (GraphiQL at /, API at /graphql)"
    ))?;
    if state.settings.admin_token.is_none() {
        io.notice("Admin mutations and /admin/* are disabled (set --admin-token or ADMIN_TOKEN)")?;
    }
    io.out.flush()?;
    server.await.context("the server task failed")??;
    Ok(Exit::Success)
}
