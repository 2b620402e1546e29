//! History as queries: runs paged and filtered, one run with its files, report and changes, a
//! cross-group change feed, a group's members as they were after any run, and the difference
//! between two runs. All of it is read from the run log and the change records
//! ([`loader::history`]), not from the snapshot, so removed groups have a history too.

use async_graphql::dataloader::DataLoader;
use async_graphql::{ComplexObject, Context, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::GroupType;
use loader::history::{self, At, ChangeFilter, RunFilter};

use super::analytics::LoadRun;
use super::connection::{Cursor, connection, page};
use super::dataloader::{RunById, RunLoader};
use super::error::{bad_input, code, coded, internal};
use super::group::{GroupKind, resolve_reference};
use super::{page_size, state};

connection!(
    LoadRunConnection,
    LoadRunEdge,
    LoadRun,
    "Recorded runs, newest first.",
    "A run and its cursor.",
    "Runs that match the filter, all pages together."
);

connection!(
    ChangeConnection,
    ChangeEdge,
    FeedChange,
    "Membership changes, newest first.",
    "A change and its cursor.",
    "Changes that match the filter on this page and before it (the feed is not counted \
     beyond what was read)."
);

/// One membership change a committed run made.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct FeedChange {
    /// The change record's id (the feed's order).
    pub id: i32,
    /// The run that made it.
    pub run_id: i32,
    /// When that run committed.
    pub at: Option<DateTime<Utc>>,
    /// The kind of the group.
    pub group_type: GroupKind,
    /// The group's name.
    pub group: String,
    /// The member.
    pub symbol: String,
    /// `added`, `removed`, `reweighted` or `updated` (metadata only).
    pub change: String,
    /// The weight before; null when added or unweighted.
    pub old_weight: Option<f64>,
    /// The weight after; null when removed or unweighted.
    pub new_weight: Option<f64>,
}

impl From<history::FeedChange> for FeedChange {
    fn from(c: history::FeedChange) -> Self {
        Self {
            id: c.id,
            run_id: c.run_id,
            at: c.finished_at,
            group_type: c.group_type.into(),
            group: c.group_name,
            symbol: c.symbol,
            change: c.change.as_str().to_owned(),
            old_weight: c.old_weight,
            new_weight: c.new_weight,
        }
    }
}

#[ComplexObject]
impl FeedChange {
    /// The run that made the change (read with every other change's run in one batch).
    async fn run(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<LoadRun>> {
        let loader = ctx.data::<DataLoader<RunLoader>>()?;
        Ok(loader
            .load_one(RunById(self.run_id))
            .await
            .map_err(internal)?
            .map(LoadRun::from))
    }
}

/// A member as it was at a point of a group's past.
#[derive(SimpleObject, Clone, Debug)]
pub struct PastHolding {
    /// The member.
    pub symbol: String,
    /// Its weight then (percent); null for unweighted groups.
    pub weight: Option<f64>,
    /// Its stored metadata then (name, sector source, ...).
    pub metadata: Option<Json<serde_json::Value>>,
}

/// One symbol's difference between two points of a group's past.
#[derive(SimpleObject, Clone, Debug)]
pub struct DiffEntry {
    /// The member.
    pub symbol: String,
    /// `added` (only in `toRun`), `removed` (only in `fromRun`), `reweighted`, or `updated`
    /// (same weight, other metadata).
    pub change: String,
    /// Its weight after `fromRun`.
    pub old_weight: Option<f64>,
    /// Its weight after `toRun`.
    pub new_weight: Option<f64>,
}

/// A file a run considered, as recorded.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordedFile {
    /// The file's name.
    pub file_name: String,
    /// The kind of group it fed.
    pub group_type: String,
    /// The group it fed.
    pub group: String,
    /// The layout recognised.
    pub shape: Option<String>,
    /// Its MD5.
    pub md5: Option<String>,
    /// `loaded`, `unchanged`, `rejected`, `held_back`, `rolled_back`.
    pub status: String,
    /// Rows read.
    pub rows_read: i32,
    /// Rows that became memberships.
    pub rows_loaded: i32,
    /// Rows skipped.
    pub rows_skipped: i32,
    /// Memberships added.
    pub created: i32,
    /// Memberships whose weight or metadata changed.
    pub updated: i32,
    /// Memberships removed.
    pub deleted: i32,
    /// Memberships left as they were.
    pub unchanged: i32,
    /// Why it was rejected or held back.
    pub error: Option<String>,
}

impl From<entity::load_run_file::Model> for RecordedFile {
    fn from(f: entity::load_run_file::Model) -> Self {
        Self {
            file_name: f.file_name,
            group_type: f.group_type,
            group: f.group_name,
            shape: f.shape,
            md5: f.md5,
            status: f.status,
            rows_read: f.rows_read,
            rows_loaded: f.rows_loaded,
            rows_skipped: f.rows_skipped,
            created: f.created,
            updated: f.updated,
            deleted: f.deleted,
            unchanged: f.unchanged,
            error: f.error,
        }
    }
}

#[ComplexObject]
impl LoadRun {
    /// Whether the run changed any data (it committed a data version). Runs that found
    /// nothing to do, or applied nothing, are kept too, marked `false`.
    async fn changed_data(&self) -> bool {
        self.data_version.is_some()
    }

    /// The files it considered, as recorded.
    async fn files(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RecordedFile>> {
        let state = state(ctx)?;
        state.count_query();
        let files = history::run_files(&state.db, state.environment(), self.id)
            .await
            .map_err(internal)?;
        Ok(files.into_iter().map(RecordedFile::from).collect())
    }

    /// The run's full report as JSON (per-file numbers, skip counts by reason), the same as
    /// the CLI's `--json`; null for runs that stored none.
    async fn report(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Json<serde_json::Value>>> {
        use sea_orm::EntityTrait;
        let state = state(ctx)?;
        state.count_query();
        let run = entity::load_run::Entity::find_by_id(self.id)
            .one(&state.db)
            .await
            .map_err(internal)?;
        Ok(run.and_then(|r| r.report).map(Json))
    }

    /// The membership changes it made, newest first.
    #[graphql(complexity = "first.unwrap_or(100).max(0) as usize * child_complexity")]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only changes to this group (`SPY`, `universe:sp500`).")] group: Option<
            String,
        >,
        #[graphql(desc = "At most this many (default 100).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<ChangeConnection> {
        let filter = ChangeFilter {
            run_id: Some(self.id),
            group: group.map(|g| history_group(ctx, &g)).transpose()?,
            ..ChangeFilter::default()
        };
        feed(ctx, filter, first, after).await
    }
}

/// A group named for history: `TYPE:name`, or a name the served data knows. A group that no
/// longer exists is named with its type (`ETF:IJH`).
fn history_group(ctx: &Context<'_>, reference: &str) -> async_graphql::Result<(GroupType, String)> {
    if let Ok(group) = resolve_reference(ctx, reference) {
        let (_, data) = group.snapshot_group();
        return Ok((data.kind, data.model.name.clone()));
    }
    match reference.split_once(':') {
        Some((t, name)) => {
            let group_type: GroupType = t
                .parse()
                .map_err(|e: entity::UnknownGroupType| bad_input(e.to_string()))?;
            Ok((
                group_type,
                loader::graph::normalise_group_name(group_type, name),
            ))
        }
        None => Err(coded(
            code::NOT_FOUND,
            format!(
                "no group named {reference:?} is served; name a removed group with its type \
                 (`ETF:{reference}`)"
            ),
        )),
    }
}

/// A page of the change feed.
async fn feed(
    ctx: &Context<'_>,
    filter: ChangeFilter,
    first: Option<i32>,
    after: Option<String>,
) -> async_graphql::Result<ChangeConnection> {
    let size = page_size(ctx, first, 100)?;
    let after_id = Cursor::decode(after.as_deref(), "changes", "ID")?
        .map(|c| c.key.parse::<i32>())
        .transpose()
        .map_err(|_| bad_input("not a cursor of the change feed"))?;
    let state = state(ctx)?;
    state.count_query();
    // One more than asked tells whether a page follows.
    let mut rows = history::changes_feed(
        &state.db,
        state.environment(),
        filter,
        after_id,
        size as u64 + 1,
    )
    .await
    .map_err(internal)?;
    let more = rows.len() > size;
    rows.truncate(size);
    let cursor = |id: i32| {
        Cursor {
            list: "changes".into(),
            order: "ID".into(),
            key: id.to_string(),
            ..Cursor::default()
        }
        .encode()
    };
    let ids: Vec<i32> = rows.iter().map(|r| r.id).collect();
    let (_, mut info) = page(rows.len(), 0, size, |i| cursor(ids[i]));
    info.has_next_page = more;
    info.has_previous_page = after_id.is_some();
    Ok(ChangeConnection {
        total_count: rows.len(),
        page_info: info,
        edges: rows
            .into_iter()
            .map(|r| ChangeEdge {
                cursor: cursor(r.id),
                node: r.into(),
            })
            .collect(),
    })
}

/// History root fields.
#[derive(Default)]
pub struct HistoryQuery;

#[Object]
impl HistoryQuery {
    /// Recorded runs, newest first, filtered by kind and state. Every run is kept, those that
    /// changed nothing too (`changedData: false`).
    #[graphql(
        cache_control(no_cache),
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn load_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many (default 20).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor.")] after: Option<String>,
        #[graphql(
            desc = "Only runs of this kind: `etf`, `universe`, `theme`, `sector`, `enrichment`, \
                    `stock_metadata`, `rollback`."
        )]
        kind: Option<String>,
        #[graphql(
            desc = "Only runs in this state: `running`, `succeeded`, `partial`, `rejected`, \
                    `failed`, `abandoned`."
        )]
        state: Option<String>,
    ) -> async_graphql::Result<LoadRunConnection> {
        let size = page_size(ctx, first, 20)?;
        let before_id = Cursor::decode(after.as_deref(), "loadRuns", "ID")?
            .map(|c| c.key.parse::<i32>())
            .transpose()
            .map_err(|_| bad_input("not a cursor of loadRuns"))?;
        let app = super::state(ctx)?;
        app.count_query();
        let (runs, total) = history::runs_page(
            &app.db,
            app.environment(),
            RunFilter { kind, state },
            before_id,
            size as u64 + 1,
        )
        .await
        .map_err(internal)?;
        let more = runs.len() > size;
        let runs: Vec<LoadRun> = runs.into_iter().take(size).map(LoadRun::from).collect();
        let cursor = |id: i32| {
            Cursor {
                list: "loadRuns".into(),
                order: "ID".into(),
                key: id.to_string(),
                ..Cursor::default()
            }
            .encode()
        };
        let ids: Vec<i32> = runs.iter().map(|r| r.id).collect();
        let (_, mut info) = page(runs.len(), 0, size, |i| cursor(ids[i]));
        info.has_next_page = more;
        info.has_previous_page = before_id.is_some();
        Ok(LoadRunConnection {
            total_count: usize::try_from(total).unwrap_or(usize::MAX),
            page_info: info,
            edges: runs
                .into_iter()
                .map(|r| LoadRunEdge {
                    cursor: cursor(r.id),
                    node: r,
                })
                .collect(),
        })
    }

    /// One recorded run, with its files, report and changes; null when there is none.
    #[graphql(cache_control(no_cache))]
    async fn load_run(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The run's id.")] id: i32,
    ) -> async_graphql::Result<Option<LoadRun>> {
        let state = state(ctx)?;
        state.count_query();
        let runs = loader::graph::runs_by_id(&state.db, state.environment(), &[id])
            .await
            .map_err(internal)?;
        Ok(runs.into_iter().next().map(LoadRun::from))
    }

    /// Membership changes across groups, newest first: since a time, of one run, of one group,
    /// or all of them.
    #[graphql(
        cache_control(no_cache),
        complexity = "first.unwrap_or(100).max(0) as usize * child_complexity"
    )]
    async fn changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only changes of runs that committed at or after this time.")]
        since: Option<DateTime<Utc>>,
        #[graphql(desc = "Only changes of this run.")] run_id: Option<i32>,
        #[graphql(desc = "Only changes to this group (`SPY`, `universe:sp500`, `ETF:IJH`).")]
        group: Option<String>,
        #[graphql(desc = "At most this many (default 100).")] first: Option<i32>,
        #[graphql(desc = "Continue after this cursor.")] after: Option<String>,
    ) -> async_graphql::Result<ChangeConnection> {
        let filter = ChangeFilter {
            since,
            run_id,
            group: group.map(|g| history_group(ctx, &g)).transpose()?,
        };
        feed(ctx, filter, first, after).await
    }

    /// A group's members as they were right after a run, or at a time, rebuilt from the
    /// recorded changes; null when the group did not exist then.
    #[graphql(cache_control(no_cache), complexity = 1_000)]
    async fn holdings_at(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group (`SPY`, `universe:sp500`, `ETF:IJH` for a removed one).")]
        group: String,
        #[graphql(desc = "Right after this run.")] run_id: Option<i32>,
        #[graphql(desc = "At this time (after every run that committed by then).")] time: Option<
            DateTime<Utc>,
        >,
    ) -> async_graphql::Result<Option<Vec<PastHolding>>> {
        let at = match (run_id, time) {
            (Some(id), None) => At::Run(id),
            (None, Some(t)) => At::Time(t),
            _ => return Err(bad_input("give exactly one of `runId` and `time`")),
        };
        let (group_type, name) = history_group(ctx, &group)?;
        let state = state(ctx)?;
        state.count_query();
        let holdings = history::holdings_at(&state.db, state.environment(), group_type, &name, at)
            .await
            .map_err(internal)?;
        Ok(holdings.map(|list| {
            list.into_iter()
                .map(|h| PastHolding {
                    symbol: h.symbol,
                    weight: h.weight,
                    metadata: h.metadata.map(Json),
                })
                .collect()
        }))
    }

    /// What changed in a group between right after one run and right after another, by
    /// symbol (`fromRun` may be the later one: the changes then go backwards).
    #[graphql(cache_control(no_cache), complexity = 1_000)]
    async fn diff(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group (`SPY`, `universe:sp500`, `ETF:IJH`).")] group: String,
        #[graphql(desc = "The earlier point: right after this run.")] from_run: i32,
        #[graphql(desc = "The later point: right after this run.")] to_run: i32,
    ) -> async_graphql::Result<Vec<DiffEntry>> {
        let (group_type, name) = history_group(ctx, &group)?;
        let state = state(ctx)?;
        state.count_query();
        let entries = history::diff_runs(
            &state.db,
            state.environment(),
            group_type,
            &name,
            from_run,
            to_run,
        )
        .await
        .map_err(internal)?;
        Ok(entries
            .into_iter()
            .map(|e| DiffEntry {
                symbol: e.symbol,
                change: e.change.as_str().to_owned(),
                old_weight: e.old_weight,
                new_weight: e.new_weight,
            })
            .collect())
    }
}
