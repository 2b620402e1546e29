//! The GraphQL schema: one module per type family, the root `Query` a merge of per-family
//! objects, resolvers thin over the in-memory [`Snapshot`] of one data version, taken when the
//! request is prepared and held to its end. Only run history and change records are read from
//! the database, through the request's dataloader.

pub mod analytics;
pub mod dataloader;
pub mod error;
pub mod group;
pub mod membership;
pub mod mutation;
pub mod stock;

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Context, EmptySubscription, MergedObject, Schema};

use crate::snapshot::Snapshot;
use crate::state::AppState;
use dataloader::RunLoader;
use error::internal;

/// The root query.
#[derive(MergedObject, Default)]
pub struct Query(
    stock::StockQuery,
    group::GroupQuery,
    analytics::AnalyticsQuery,
);

/// The served schema.
pub type GraphSchema = Schema<Query, mutation::Mutation, EmptySubscription>;

/// Who is asking: set per request from the `Authorization` header.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The request carried the configured admin token.
    pub admin: bool,
}

/// Builds the schema over the state, with its depth and complexity limits.
pub fn schema(state: Arc<AppState>) -> GraphSchema {
    let settings = &state.settings;
    Schema::build(Query::default(), mutation::Mutation, EmptySubscription)
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity)
        .data(state.clone())
        .finish()
}

/// The schema for introspection-only queries: no complexity limit and a deeper depth limit,
/// so the standard introspection query GraphiQL and code generators send is always accepted.
pub fn introspection_schema(state: Arc<AppState>) -> GraphSchema {
    Schema::build(Query::default(), mutation::Mutation, EmptySubscription)
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
    let Ok(document) = async_graphql::parser::parse_query(query) else {
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
    Schema::build(Query::default(), mutation::Mutation, EmptySubscription).finish()
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
    if let Some(doc) = parsed(&request.query).await {
        request.set_parsed_query(doc);
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

/// Parsed documents by query text (dashboards send the same few texts many times a second).
fn documents() -> &'static moka::future::Cache<String, Arc<ExecutableDocument>> {
    static DOCUMENTS: std::sync::OnceLock<moka::future::Cache<String, Arc<ExecutableDocument>>> =
        std::sync::OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        moka::future::Cache::builder()
            // A document takes several times its text in memory: weigh it so.
            .weigher(|k: &String, _: &Arc<ExecutableDocument>| {
                u32::try_from(k.len() * 8 + 512).unwrap_or(u32::MAX)
            })
            .max_capacity(4 * 1024 * 1024)
            .build()
    })
}

/// Texts seen once, by hash: a document is kept from a text's second sighting on, so one-off
/// texts cost no copy into the cache.
fn sightings() -> &'static moka::future::Cache<u64, ()> {
    static SEEN: std::sync::OnceLock<moka::future::Cache<u64, ()>> = std::sync::OnceLock::new();
    SEEN.get_or_init(|| moka::future::Cache::new(100_000))
}

fn text_hash(query: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(query)
}

/// Whether this query text is one that is asked again and again (its document is cached):
/// only such queries' responses are worth caching, so one-off texts do not crowd out the ones
/// dashboards repeat.
pub fn seen_before(query: &str) -> bool {
    documents().contains_key(query)
}

/// A query's parsed document, from the cache or parsed now; `None` when it does not parse,
/// so the executor reports the error.
async fn parsed(query: &str) -> Option<ExecutableDocument> {
    let cache = documents();
    if let Some(doc) = cache.get(query).await {
        return Some((*doc).clone());
    }
    let doc = async_graphql::parser::parse_query(query).ok()?;
    let hash = text_hash(query);
    if sightings().contains_key(&hash) {
        cache.insert(query.to_owned(), Arc::new(doc.clone())).await;
    } else {
        sightings().insert(hash, ()).await;
    }
    Some(doc)
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

/// Cursors of one data version. A cursor is a position in an ordered list (`v7o24`: the 25th
/// item at version 7); after a load the same position may hold another item, so a cursor from
/// another version is refused rather than silently skipping or repeating items.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursors {
    version: i64,
}

impl Cursors {
    /// The cursors of the version this request answers from.
    pub(crate) fn of(ctx: &Context<'_>) -> async_graphql::Result<Self> {
        Ok(Self {
            version: snapshot(ctx)?.version,
        })
    }

    /// The offset of the item after the `after` cursor (0 without one).
    pub(crate) fn after(&self, after: Option<&str>) -> async_graphql::Result<usize> {
        let Some(c) = after else {
            return Ok(0);
        };
        let (version, offset) = c
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('o'))
            .and_then(|(v, o)| Some((v.parse::<i64>().ok()?, o.parse::<usize>().ok()?)))
            .ok_or_else(|| error::bad_input(format!("{c:?} is not a cursor from this API")))?;
        if version != self.version {
            return Err(error::bad_input(format!(
                "the data changed since cursor {c:?} was made (a load committed): \
                 start again without `after`"
            )));
        }
        Ok(offset + 1)
    }

    /// The cursor of the item at `offset`.
    pub(crate) fn at(&self, offset: usize) -> String {
        format!("v{}o{offset}", self.version)
    }

    /// The slice of `len` items a page covers, and its page info.
    pub(crate) fn page(
        &self,
        len: usize,
        offset: usize,
        size: usize,
    ) -> (std::ops::Range<usize>, PageInfo) {
        let start = offset.min(len);
        let end = (start + size).min(len);
        let info = PageInfo {
            has_next_page: end < len,
            end_cursor: (end > start).then(|| self.at(end - 1)),
        };
        (start..end, info)
    }
}

/// Paging information of a connection.
#[derive(async_graphql::SimpleObject, Clone, Debug)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// The cursor of the last item of this page (pass it as `after`); null for an empty page.
    /// It is valid until the next load: a cursor from older data is refused (BAD_USER_INPUT),
    /// never read as a position in the new data.
    pub end_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_leads_to_the_next_item_at_its_own_version_only() {
        let v3 = Cursors { version: 3 };
        assert_eq!(v3.after(None).ok(), Some(0));
        assert_eq!(v3.after(Some(&v3.at(24))).ok(), Some(25));
        let v4 = Cursors { version: 4 };
        let stale = v4.after(Some(&v3.at(24))).err().map(|e| e.message);
        assert!(stale.is_some_and(|m| m.contains("start again")));
        for junk in ["", "o24", "v3o", "v3x24", "vxo1", "v3o-1"] {
            assert!(v3.after(Some(junk)).is_err(), "{junk:?} is refused");
        }
    }

    #[test]
    fn pages_cover_every_item_once() {
        let c = Cursors { version: 1 };
        let (mut offset, mut seen) = (0, Vec::new());
        loop {
            let (range, info) = c.page(10, offset, 4);
            seen.extend(range);
            if !info.has_next_page {
                assert!(info.end_cursor.is_some());
                break;
            }
            offset = c.after(info.end_cursor.as_deref()).unwrap_or(usize::MAX);
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let (range, info) = c.page(10, 10, 4);
        assert!(range.is_empty() && info.end_cursor.is_none() && !info.has_next_page);
    }
}
