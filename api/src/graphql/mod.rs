//! The GraphQL schema: one module per type family, the root `Query` a merge of per-family
//! objects, resolvers thin over the in-memory [`Snapshot`] of one data version, taken when the
//! request is prepared and held to its end. Only run history and change records are read from
//! the database, through the request's dataloader.

pub mod analytics;
pub mod connection;
pub mod dataloader;
pub mod error;
pub mod group;
pub mod history;
pub mod look_through;
pub mod membership;
pub mod mutation;
pub mod node;
mod opaque;
pub mod ops;
pub mod parse;
pub mod search;
pub mod stock;
pub mod subscription;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, MergedObject, Schema};

use crate::snapshot::Snapshot;
use crate::state::AppState;
use dataloader::RunLoader;
use error::internal;
use subscription::Subscription;

/// The root query.
#[derive(MergedObject, Default)]
pub struct Query(
    stock::StockQuery,
    group::GroupQuery,
    search::SearchQuery,
    node::NodeQuery,
    analytics::AnalyticsQuery,
    history::HistoryQuery,
    look_through::LookThroughQuery,
);

/// The served schema.
pub type GraphSchema = Schema<Query, mutation::Mutation, Subscription>;

/// Who is asking: set per request from the `Authorization` header.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The request carried the configured admin token.
    pub admin: bool,
}

/// Builds the schema over the state, with its depth and complexity limits.
pub fn schema(state: Arc<AppState>) -> GraphSchema {
    let settings = &state.settings;
    Schema::build(Query::default(), mutation::Mutation, Subscription)
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity)
        .data(state.clone())
        .finish()
}

/// The schema for introspection-only queries: no complexity limit and a deeper depth limit,
/// so the standard introspection query GraphiQL and code generators send is always accepted.
pub fn introspection_schema(state: Arc<AppState>) -> GraphSchema {
    Schema::build(Query::default(), mutation::Mutation, Subscription)
        .limit_depth(INTROSPECTION_DEPTH)
        .data(state)
        .finish()
}

/// How deep an introspection query may nest (the standard one reaches 13).
const INTROSPECTION_DEPTH: usize = 32;

/// Whether every operation of a query asks only for `__schema`, `__type` and `__typename`.
pub fn is_introspection(query: &str) -> bool {
    use async_graphql::parser::types::Selection;
    if !query.contains("__schema") && !query.contains("__type") {
        return false;
    }
    let Ok(document) = parse::parse(query) else {
        return false;
    };
    let mut operations = document.operations.iter().peekable();
    operations.peek().is_some()
        && operations.all(|(_, op)| {
            op.node
                .selection_set
                .node
                .items
                .iter()
                .all(|item| match &item.node {
                    Selection::Field(f) => {
                        matches!(
                            f.node.name.node.as_str(),
                            "__schema" | "__type" | "__typename"
                        )
                    }
                    _ => false,
                })
        })
}

/// The schema without a server behind it: its SDL and introspection answer, every resolver
/// that reads data fails.
pub fn bare_schema() -> GraphSchema {
    Schema::build(Query::default(), mutation::Mutation, Subscription).finish()
}

/// The schema as SDL, as `schema.graphql` holds it.
pub fn sdl() -> String {
    bare_schema().sdl()
}

/// Adds the per-request data (caller, the snapshot of the version served now, dataloader) to
/// a request.
pub fn prepare(
    request: async_graphql::Request,
    state: &Arc<AppState>,
    caller: Caller,
) -> async_graphql::Request {
    prepare_at(request, state, state.snapshot(), caller)
}

/// [`prepare`] at a given snapshot (the HTTP handler takes it before its response-cache
/// look-up, so both rest on the same version).
pub fn prepare_at(
    request: async_graphql::Request,
    state: &Arc<AppState>,
    snapshot: Arc<Snapshot>,
    caller: Caller,
) -> async_graphql::Request {
    request.data(caller).data(snapshot).data(DataLoader::new(
        RunLoader {
            state: state.clone(),
        },
        tokio::spawn,
    ))
}

/// Executes a prepared request; errors that async-graphql raises itself (parse, validation,
/// depth and complexity limits) get a code too, so every error carries `extensions.code`.
pub async fn execute(
    schema: &GraphSchema,
    mut request: async_graphql::Request,
) -> async_graphql::Response {
    // Parsed here, fast; a text that does not parse is left to the executor, which reports
    // the error. (A parsed document is not kept: parsing a text anew costs about what
    // copying a kept document did, and a response cached for a repeated text skips both.)
    if let Ok(document) = parse::parse(&request.query) {
        request.set_parsed_query(document);
    }
    let mut response = schema.execute(request).await;
    for e in &mut response.errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let code = if e.message.contains("nested too deep") {
                "QUERY_TOO_DEEP"
            } else if e.message.contains("too complex") {
                "QUERY_TOO_COMPLEX"
            } else {
                "GRAPHQL_VALIDATION_FAILED"
            };
            e.extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
    }
    response
}

/// Whether a query text is one asked again and again, so its response is worth caching:
/// true from its third sighting on (counting this one), so texts sent once or twice, a
/// stream of new texts above all, cost the response cache nothing and do not crowd out the
/// texts dashboards repeat.
///
/// A fixed table of 65,536 slots (512 KiB), one text's hash and count per slot: a stream of
/// new texts costs no allocation and no more memory. Two texts that share a slot push each
/// other out, which only delays caching one of them.
pub fn repeated(query: &str) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    const SLOTS: u64 = 1 << 16;
    /// The low two bits of a slot count sightings (1 to 3); the rest is the text's hash.
    const COUNT: u64 = 0b11;
    static TABLE: std::sync::OnceLock<Box<[AtomicU64]>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..SLOTS).map(|_| AtomicU64::new(0)).collect());
    let hash = text_hash(query);
    let slot = &table[usize::try_from(hash % SLOTS).unwrap_or(0)];
    // Never zero, which marks an empty slot.
    let tag = (hash & !COUNT).max(COUNT + 1);
    let held = slot.load(Ordering::Relaxed);
    // Sightings before this one: two threads may count the same sighting once between them,
    // which only delays caching.
    let before = if held & !COUNT == tag {
        held & COUNT
    } else {
        0
    };
    slot.store(tag | (before + 1).min(COUNT), Ordering::Relaxed);
    before >= 2
}

fn text_hash(query: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(query)
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Arc<AppState>> {
    ctx.data::<Arc<AppState>>()
        .map_err(|_| internal("state missing"))
}

/// The snapshot this request answers from: the one [`prepare`] took, else (a request executed
/// without it) the current one.
pub(crate) fn snapshot(ctx: &Context<'_>) -> async_graphql::Result<Arc<Snapshot>> {
    match ctx.data_opt::<Arc<Snapshot>>() {
        Some(s) => Ok(s.clone()),
        None => Ok(state(ctx)?.snapshot()),
    }
}

/// Checks a page size against the configured maximum.
pub(crate) fn page_size(
    ctx: &Context<'_>,
    first: Option<i32>,
    default: usize,
) -> async_graphql::Result<usize> {
    let max = state(ctx)?.settings.max_page_size;
    match first {
        None => Ok(default.min(max)),
        Some(n) if n < 0 => Err(error::bad_input("`first` must not be negative")),
        Some(n) if n as usize > max => Err(error::bad_input(format!(
            "`first` is at most {max} (page through with `after`)"
        ))),
        Some(n) => Ok(n as usize),
    }
}

/// A sum of weights rounded to the providers' precision (six decimals), so float noise from
/// adding (`99.84389500000009`) does not reach clients (`99.843895`).
pub(crate) fn round_sum(sum: f64) -> f64 {
    (sum * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_rounded_to_six_decimals() {
        assert_eq!(round_sum(99.843_895_000_000_09), 99.843_895);
        assert_eq!(round_sum(12.678_167), 12.678_167);
        assert_eq!(round_sum(0.0), 0.0);
    }
}
