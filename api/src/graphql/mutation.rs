//! Mutations for admin tools: each calls the operation its CLI twin calls ([`crate::ops`]) and
//! returns that operation's result as a typed object. They need the admin token, and writes
//! run one at a time.

use std::sync::Arc;

use async_graphql::{Context, Enum, Object, SimpleObject, Upload};
use entity::GroupType;
use loader::Mode;

use super::analytics::{CacheStats, ValidationResult, run_validation};
use super::error::{bad_input, code, coded, internal};
use super::group::GroupKind;
use super::ops::{EnrichResult, LoadResult, MetadataResult, SetSectorResult};
use super::{Caller, state};
use crate::cache::CacheStat;
use crate::ops::{self, LoadOptions, OpError, SetSector, UploadOptions};
use crate::state::{AppState, RefreshOutcome};

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

impl From<LoadMode> for Mode {
    fn from(mode: LoadMode) -> Self {
        match mode {
            LoadMode::Full => Mode::Full,
            LoadMode::Incremental => Mode::Incremental,
            LoadMode::DryRun => Mode::DryRun,
        }
    }
}

/// A file load's options: `mode`, then `dry_run` and `force` on top.
fn load_options(
    group_type: GroupType,
    only: Option<String>,
    mode: LoadMode,
    dry_run: bool,
    force: bool,
) -> LoadOptions {
    LoadOptions {
        group_type,
        only,
        mode: mode.into(),
        dry_run,
        force,
    }
}

/// What `uploadHoldings` did.
#[derive(SimpleObject)]
pub struct UploadResult {
    /// The load of the uploaded file.
    pub load: LoadResult,
    /// The file's name in the holdings folder (`xlk_holdings.csv`) now that it is kept there;
    /// null when it was not kept (rejected, held back, or a dry run).
    pub stored_as: Option<String>,
    /// Whether it replaced the group's previous file.
    pub replaced: bool,
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

/// The state for a write: the caller is an admin, the database is up and no other write of
/// this server is running (others, from other processes, wait for the database-wide lock).
async fn begin_write<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a AppState, tokio::sync::MutexGuard<'a, ()>)> {
    require_admin(ctx)?;
    let state = state(ctx)?;
    if !state.database_health().0 {
        return Err(coded(
            code::SERVICE_UNAVAILABLE,
            "the database is unreachable: writes are refused until it is back (queries are \
             still answered from the last snapshot)",
        ));
    }
    let Ok(guard) = state.load_lock.try_lock() else {
        return Err(coded(
            code::CONFLICT,
            "another load is running; try again when it has finished",
        ));
    };
    Ok((state, guard))
}

/// Serves what an operation committed before answering it, and maps its error to a code:
/// loader errors name files and lines, never SQL; database errors are logged only.
async fn finish_write<T>(state: &AppState, result: Result<T, OpError>) -> async_graphql::Result<T> {
    state.sync_version(false).await.map_err(internal)?;
    result.map_err(|e| match e {
        OpError::Busy(message) => coded(code::CONFLICT, message),
        OpError::Invalid(message) => bad_input(message),
        OpError::Refused(message) => coded(code::REFUSED, message),
        e if e.is_database() => internal(format!("{e:#}")),
        OpError::Failed(e) => bad_input(format!("{e:#}")),
    })
}

/// Runs a file load.
async fn load(ctx: &Context<'_>, options: LoadOptions) -> async_graphql::Result<LoadResult> {
    let (state, _guard) = begin_write(ctx).await?;
    // Subscribers of `runProgress` see each file as it is read, then the result, sent once
    // the new data is served.
    let sink = state
        .events
        .progress(loader::run::kind_key(options.group_type));
    let result = ops::load(&state.config, &state.db, &options, &sink).await;
    let report = Arc::new(finish_write(state, result).await?);
    sink.finish(&report);
    Ok((&*report).into())
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
    ) -> async_graphql::Result<LoadResult> {
        load(ctx, load_options(GroupType::Etf, etf, mode, dry_run, force)).await
    }

    /// Sends a provider file and loads it as one group's input (the GraphQL multipart request
    /// spec: `operations`, `map`, then the file). It is checked exactly like a file in the
    /// holdings folder. Rejected, held back or a dry run: nothing changes, neither the data nor
    /// the holdings folder. Accepted: it replaces the group's file there (written beside it,
    /// then renamed) and is loaded in the same call.
    #[allow(clippy::too_many_arguments)]
    async fn upload_holdings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The CSV file, in any shape a load reads.")] file: Upload,
        #[graphql(desc = "ETF (default) or UNIVERSE.", default_with = "GroupKind::Etf")]
        kind: GroupKind,
        #[graphql(desc = "The group the file is the input of (`SPY`, `sp500`).")] group: String,
        #[graphql(default, desc = "How to load (default INCREMENTAL).")] mode: LoadMode,
        #[graphql(
            default,
            desc = "Check and report what the load would do; keep nothing."
        )]
        dry_run: bool,
        #[graphql(default, desc = "Apply it even if a guard holds it back.")] force: bool,
    ) -> async_graphql::Result<UploadResult> {
        let value = file
            .value(ctx)
            .map_err(|e| bad_input(format!("no file: {e}")))?;
        let options = UploadOptions {
            group_type: kind.into(),
            group,
            file_name: Some(value.filename.clone()),
            mode: mode.into(),
            dry_run,
            force,
        };
        let (state, _guard) = begin_write(ctx).await?;
        let sink = state
            .events
            .progress(loader::run::kind_key(options.group_type));
        let result =
            ops::upload(&state.config, &state.db, &options, value.into_read(), &sink).await;
        let uploaded = finish_write(state, result).await?;
        sink.finish(&Arc::new(uploaded.report.clone()));
        Ok(UploadResult {
            load: (&uploaded.report).into(),
            stored_as: uploaded.stored_as,
            replaced: uploaded.replaced,
        })
    }

    /// `holdgraph rollback`: every group a run touched goes back to its state before it
    /// (members, weights, metadata; a group it created is removed, one it removed comes back),
    /// recorded as a new run of kind `rollback`. Refused (`REFUSED`) when a later run changed
    /// the same groups, unless `force`, which undoes those later changes too.
    async fn rollback_run(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The run to undo (`loadRuns`, or a load's `runId`).")] id: i32,
        #[graphql(default, desc = "Report what the rollback would do; write nothing.")]
        dry_run: bool,
        #[graphql(
            default,
            desc = "Roll back even when later runs changed the same groups."
        )]
        force: bool,
    ) -> async_graphql::Result<LoadResult> {
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::rollback(&state.config, &state.db, id, dry_run, force).await;
        Ok((&finish_write(state, result).await?).into())
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
    ) -> async_graphql::Result<LoadResult> {
        let options = load_options(GroupType::Universe, universe, mode, dry_run, force);
        load(ctx, options).await
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
    ) -> async_graphql::Result<EnrichResult> {
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::enrich(&state.config, &state.db, mode.into()).await;
        Ok((&finish_write(state, result).await?).into())
    }

    /// `holdgraph organize-sectors`.
    async fn organize_sectors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "Report what would change; write nothing.")] dry_run: bool,
    ) -> async_graphql::Result<LoadResult> {
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::organize_sectors(&state.config, &state.db, dry_run).await;
        Ok((&finish_write(state, result).await?).into())
    }

    /// `holdgraph organize-themes`.
    async fn organize_themes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "How to load (default INCREMENTAL).")] mode: LoadMode,
    ) -> async_graphql::Result<LoadResult> {
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::organize_themes(&state.config, &state.db, mode.into()).await;
        Ok((&finish_write(state, result).await?).into())
    }

    /// `holdgraph build-stock-metadata`.
    async fn build_stock_metadata(
        &self,
        ctx: &Context<'_>,
        #[graphql(default, desc = "Report what would change; write nothing.")] dry_run: bool,
    ) -> async_graphql::Result<MetadataResult> {
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::build_stock_metadata(&state.config, &state.db, dry_run).await;
        Ok((&finish_write(state, result).await?).into())
    }

    /// `holdgraph set-sector`: a manual sector for a stock (or `clear: true` to forget it).
    /// A symbol no group holds is refused unless `force`; a sector name or alias is stored as
    /// its key, and the result says so.
    #[allow(clippy::too_many_arguments)]
    async fn set_stock_sector(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The stock, in any spelling.")] symbol: String,
        #[graphql(
            desc = "A sector key, name or alias (`health_care`, `Health Care`, `Tech`); required \
                    unless `clear`."
        )]
        sector: Option<String>,
        #[graphql(desc = "The industry to record with it.")] industry: Option<String>,
        #[graphql(desc = "Why (kept in the overrides file; default `setStockSector`).")]
        note: Option<String>,
        #[graphql(default, desc = "Forget the manual sector instead of setting one.")] clear: bool,
        #[graphql(
            default,
            desc = "Set it even though no group holds the symbol (a stock about to be loaded)."
        )]
        force: bool,
    ) -> async_graphql::Result<SetSectorResult> {
        if sector.is_none() && !clear {
            return Err(bad_input("give a `sector`, or `clear: true`"));
        }
        let request = SetSector {
            symbol,
            sector: if clear { None } else { sector },
            industry,
            note: note.or_else(|| Some("setStockSector".to_owned())),
            clear,
            force,
        };
        let (state, _guard) = begin_write(ctx).await?;
        let result = ops::set_sector(&state.config, &state.db, &request).await;
        finish_write(state, result).await
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
