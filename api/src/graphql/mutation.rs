//! Mutations for admin tools: each runs the same code as its CLI twin and returns the report
//! that command prints. They need the admin token, and writes run one at a time.

use async_graphql::{Context, Enum, Object, SimpleObject};

use super::analytics::{CacheStats, ValidationResult, run_validation};
use super::error::{bad_input, code, coded, internal};
use super::{Caller, state};
use crate::cache::CacheStat;
use crate::cli::load::{EtfArgs, ModeArg, ModeArgs, UniverseArgs};
use crate::cli::pipeline::{DryRunArgs, SetSectorArgs};
use crate::cli::{Command, Exit, Io, ProgressStyle, dispatch};
use crate::state::RefreshOutcome;

/// A load mode.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Stored groups become exactly the input; groups whose input is gone are removed.
    Full,
    /// Unchanged inputs are skipped; changed ones are diffed row by row.
    #[default]
    Incremental,
    /// Compute and report the diff; write nothing.
    DryRun,
}

impl From<LoadMode> for ModeArgs {
    fn from(mode: LoadMode) -> Self {
        ModeArgs {
            mode: match mode {
                LoadMode::Full => ModeArg::Full,
                LoadMode::Incremental => ModeArg::Incremental,
                LoadMode::DryRun => ModeArg::DryRun,
            },
            ..ModeArgs::default()
        }
    }
}

/// A file load's flags: `mode`, then `dry_run` and `force` on top.
fn load_args(mode: LoadMode, dry_run: bool, force: bool) -> ModeArgs {
    ModeArgs {
        dry_run,
        force,
        ..mode.into()
    }
}

/// What a command printed.
#[derive(SimpleObject)]
pub struct CommandResult {
    /// The command succeeded (exit code 0).
    pub ok: bool,
    /// The CLI's exit code: 0 success, 1 a file rejected or a check failed.
    pub exit_code: i32,
    /// The report, exactly as the CLI prints it (errors after it).
    pub text: String,
    /// The data version served after the command.
    pub data_version: i64,
}

/// The result of refreshing caches.
#[derive(SimpleObject)]
pub struct RefreshResult {
    /// Cache entries dropped.
    pub invalidated: u64,
    /// Whether the dropped entries were read again.
    pub warmed: bool,
    /// The caches after the refresh.
    pub caches: Vec<CacheStat>,
}

/// The result of warming the caches.
#[derive(SimpleObject)]
pub struct WarmResult {
    /// Groups whose members are now cached.
    pub groups: usize,
    /// Stocks whose memberships are now cached.
    pub stocks: usize,
    /// How long warming took, in milliseconds.
    pub elapsed_ms: f64,
    /// The caches after warming.
    pub stats: CacheStats,
}

/// The root mutation.
pub struct Mutation;

fn require_admin(ctx: &Context<'_>) -> async_graphql::Result<()> {
    let state = state(ctx)?;
    if state.settings.admin_token.is_none() {
        return Err(coded(
            code::FORBIDDEN,
            "admin operations are disabled: start the server with --admin-token <TOKEN> \
             (or ADMIN_TOKEN) and send `Authorization: Bearer <TOKEN>`",
        ));
    }
    if !ctx.data_opt::<Caller>().is_some_and(|c| c.admin) {
        return Err(coded(
            code::UNAUTHENTICATED,
            "this operation needs `Authorization: Bearer <admin token>`",
        ));
    }
    Ok(())
}

/// Runs a CLI command in process, one write at a time, and serves its result at once.
async fn run(ctx: &Context<'_>, command: Command) -> async_graphql::Result<CommandResult> {
    require_admin(ctx)?;
    let state = state(ctx)?;
    if !state.database_health().0 {
        return Err(coded(
            code::SERVICE_UNAVAILABLE,
            "the database is unreachable: writes are refused until it is back (queries are \
             still answered from the last snapshot)",
        ));
    }
    let Ok(_guard) = state.load_lock.try_lock() else {
        return Err(coded(
            code::CONFLICT,
            "another load is running; try again when it has finished",
        ));
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let result = {
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            progress: ProgressStyle::Quiet,
        };
        dispatch(&command, &state.config, &state.db, &mut io).await
    };
    // Serve what the command committed before answering it.
    state.sync_version(false).await.map_err(internal)?;
    let exit = result.map_err(|e| {
        // Loader errors name files and lines, never SQL; database errors are logged only.
        let busy = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<loader::LoadError>(),
                Some(loader::LoadError::Lock(
                    loader::lock::LockError::Busy { .. }
                ))
            )
        });
        if busy {
            coded(code::CONFLICT, format!("{e:#}"))
        } else if e.chain().any(|c| c.is::<sea_orm::DbErr>()) {
            internal(format!("{e:#}"))
        } else {
            bad_input(format!("{e:#}"))
        }
    })?;
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(&String::from_utf8_lossy(&err));
    Ok(CommandResult {
        ok: exit == Exit::Success,
        exit_code: i32::from(exit.code()),
        text,
        data_version: state.version(),
    })
}

/// Admin operations: each needs `Authorization: Bearer <admin token>`, and writes run one at a
/// time (a second gets a CONFLICT error).
#[Object(cache_control(no_cache))]
impl Mutation {
    /// `holdgraph load-etf-holdings`: every ETF file, or one with `etf`.
    async fn load_etf_holdings(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "How to load (default INCREMENTAL).")] mode: LoadMode,
        #[graphql(desc = "Only this ETF's file (`SPY`); default every ETF file.")] etf: Option<
            String,
        >,
        #[graphql(
            default,
            desc = "Show what the run in `mode` would do (FULL or INCREMENTAL); write nothing."
        )]
        dry_run: bool,
        #[graphql(
            default,
            desc = "Apply files the guards hold back (mostly invalid rows, most of a group \
                    replaced, its total weight moved)."
        )]
        force: bool,
    ) -> async_graphql::Result<CommandResult> {
        let args = EtfArgs {
            common: load_args(mode, dry_run, force),
            etf,
        };
        run(ctx, Command::LoadEtfHoldings(args)).await
    }

    /// `holdgraph load-universes`: every universe file, or one with `universe`.
    async fn load_universes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "How to load (default INCREMENTAL).")] mode: LoadMode,
        #[graphql(desc = "Only this universe's file (`sp500`); default every universe file.")]
        universe: Option<String>,
        #[graphql(
            default,
            desc = "Show what the run in `mode` would do (FULL or INCREMENTAL); write nothing."
        )]
        dry_run: bool,
        #[graphql(
            default,
            desc = "Apply files the guards hold back (mostly invalid rows, most of a group \
                    replaced)."
        )]
        force: bool,
    ) -> async_graphql::Result<CommandResult> {
        let args = UniverseArgs {
            common: load_args(mode, dry_run, force),
            universe,
        };
        run(ctx, Command::LoadUniverses(args)).await
    }

    /// `holdgraph enrich-sectors`.
    async fn enrich_sectors(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default,
            desc = "How to enrich (default INCREMENTAL; DRY_RUN writes nothing)."
        )]
        mode: LoadMode,
    ) -> async_graphql::Result<CommandResult> {
        run(ctx, Command::EnrichSectors(mode.into())).await
    }

    /// `holdgraph organize-sectors`.
    async fn organize_sectors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "Report what would change; write nothing.")] dry_run: bool,
    ) -> async_graphql::Result<CommandResult> {
        let args = DryRunArgs {
            dry_run,
            json: false,
        };
        run(ctx, Command::OrganizeSectors(args)).await
    }

    /// `holdgraph organize-themes`.
    async fn organize_themes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "How to load (default INCREMENTAL).")] mode: LoadMode,
    ) -> async_graphql::Result<CommandResult> {
        run(ctx, Command::OrganizeThemes(mode.into())).await
    }

    /// `holdgraph build-stock-metadata`.
    async fn build_stock_metadata(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "Report what would change; write nothing.")] dry_run: bool,
    ) -> async_graphql::Result<CommandResult> {
        let args = DryRunArgs {
            dry_run,
            json: false,
        };
        run(ctx, Command::BuildStockMetadata(args)).await
    }

    /// `holdgraph set-sector`: a manual sector for a stock (or `clear: true` to forget it).
    async fn set_stock_sector(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The stock, in any spelling.")] symbol: String,
        #[graphql(
            desc = "A sector key or name (`health_care`, `Health Care`); required unless `clear`."
        )]
        sector: Option<String>,
        #[graphql(desc = "The industry to record with it.")] industry: Option<String>,
        #[graphql(default, desc = "Forget the manual sector instead of setting one.")] clear: bool,
    ) -> async_graphql::Result<CommandResult> {
        if sector.is_none() && !clear {
            return Err(bad_input("give a `sector`, or `clear: true`"));
        }
        let args = SetSectorArgs {
            symbol,
            sector: if clear { None } else { sector },
            industry,
            note: Some("setStockSector".to_owned()),
            clear,
        };
        run(ctx, Command::SetSector(args)).await
    }

    /// `holdgraph validate`.
    async fn validate(&self, ctx: &Context<'_>) -> async_graphql::Result<ValidationResult> {
        require_admin(ctx)?;
        run_validation(ctx).await
    }

    /// Drops cached entries of one kind (`etf`, `sector`, `theme`, `universe`, `all`), or one
    /// group with `key`, and reads them again when `warm` is true.
    async fn refresh_cache(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`etf`, `sector`, `theme`, `universe` or `all`.")] cache_type: String,
        #[graphql(desc = "One group of that type (`SPY`); default every group of the type.")]
        key: Option<String>,
        #[graphql(default, desc = "Read the dropped entries again at once.")] warm: bool,
    ) -> async_graphql::Result<RefreshResult> {
        require_admin(ctx)?;
        let state = state(ctx)?;
        let RefreshOutcome {
            invalidated,
            warmed,
        } = state
            .refresh(&cache_type, key.as_deref(), warm)
            .await
            .map_err(|e| match e {
                crate::state::RefreshError::BadInput(m) => bad_input(m),
                crate::state::RefreshError::Db(e) => internal(e),
            })?;
        Ok(RefreshResult {
            invalidated,
            warmed,
            caches: state.cache_stats(),
        })
    }

    /// Reads the graph again from the database into a new snapshot (every group's members and
    /// every stock's memberships), with empty caches.
    async fn warm_cache(&self, ctx: &Context<'_>) -> async_graphql::Result<WarmResult> {
        require_admin(ctx)?;
        let state = state(ctx)?;
        let clock = std::time::Instant::now();
        let (groups, stocks) = state.warm().await.map_err(internal)?;
        Ok(WarmResult {
            groups,
            stocks,
            elapsed_ms: clock.elapsed().as_secs_f64() * 1e3,
            stats: CacheStats {
                data_version: state.version(),
                caches: state.cache_stats(),
                db_queries: state.queries(),
            },
        })
    }
}
