//! Prometheus metrics, served by `GET /metrics` in the text exposition format.
//!
//! The `metrics` facade records from wherever the work happens (the HTTP layer, the caches, the
//! version watcher); a process-wide Prometheus recorder holds the values and the handler
//! renders them. The exporter runs no listener of its own: the server's router serves it.
//!
//! Label values come from closed sets, so the number of series stays bounded: an operation
//! name is kept only when it is a short GraphQL identifier, and only for the first
//! [`MAX_OPERATIONS`] distinct names; others count as `other`, requests without one as
//! `anonymous`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::DbBackend;

use crate::state::AppState;

/// GraphQL operations by operation name and outcome.
pub const GRAPHQL_REQUESTS: &str = "holdgraph_graphql_requests_total";
/// Time to answer one GraphQL operation, by operation name.
pub const GRAPHQL_DURATION: &str = "holdgraph_graphql_request_duration_seconds";
/// HTTP requests by method, route and status.
pub const HTTP_REQUESTS: &str = "holdgraph_http_requests_total";
/// Time to answer one HTTP request, by route.
pub const HTTP_DURATION: &str = "holdgraph_http_request_duration_seconds";
/// Cache look-ups answered from a cache, by cache.
pub const CACHE_HITS: &str = "holdgraph_cache_hits_total";
/// Cache look-ups that found nothing, by cache.
pub const CACHE_MISSES: &str = "holdgraph_cache_misses_total";
/// The data version served.
pub const DATA_VERSION: &str = "holdgraph_data_version";
/// Load runs that finished while the server ran, by kind and outcome.
pub const LOAD_RUNS: &str = "holdgraph_load_runs_total";
/// How long those runs took, by kind and outcome.
pub const LOAD_RUN_DURATION: &str = "holdgraph_load_run_duration_seconds";
/// Connections the database pool holds.
pub const POOL_CONNECTIONS: &str = "holdgraph_db_pool_connections";
/// Of those, connections idle in the pool.
pub const POOL_IDLE: &str = "holdgraph_db_pool_idle_connections";
/// Connections open on each HTTP thread.
pub const HTTP_CONNECTIONS: &str = "holdgraph_http_connections";

/// Distinct operation names that get series of their own.
pub const MAX_OPERATIONS: usize = 100;

/// The label of requests without an operation name.
const ANONYMOUS: &str = "anonymous";

/// Longest operation name kept as a label.
const MAX_OPERATION_LEN: usize = 64;

/// Histogram buckets of request durations, in seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Histogram buckets of load durations, in seconds.
const LOAD_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// The process's recorder, installed on first use (the first router built). When another
/// recorder was installed first, the handle still renders, but nothing records into it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(LOAD_RUN_DURATION.to_owned()), LOAD_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), REQUEST_BUCKETS)
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: default histogram buckets");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        GRAPHQL_REQUESTS,
        "GraphQL operations (each item of a batch counts) by operation name and outcome \
         (ok, error, timeout, not_modified)"
    );
    describe_histogram!(
        GRAPHQL_DURATION,
        Unit::Seconds,
        "Time to answer one GraphQL operation, by operation name"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer one HTTP request, by route"
    );
    describe_counter!(
        CACHE_HITS,
        "Look-ups answered from a cache (response, analytics, checks, persisted_query)"
    );
    describe_counter!(CACHE_MISSES, "Look-ups a cache could not answer");
    describe_gauge!(DATA_VERSION, "The data version the server answers from");
    describe_counter!(
        LOAD_RUNS,
        "Load runs that finished while the server ran (from any process), by kind and outcome"
    );
    describe_histogram!(
        LOAD_RUN_DURATION,
        Unit::Seconds,
        "How long the load runs took, by kind and outcome"
    );
    describe_gauge!(POOL_CONNECTIONS, "Connections the database pool holds");
    describe_gauge!(POOL_IDLE, "Connections idle in the database pool");
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Connections open on each HTTP thread (with --http-threads above one)"
    );
}

/// Renders every metric, with the pool gauges read now.
pub fn render(state: &AppState) -> String {
    let handle = handle();
    let (size, idle) = match state.db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = state.db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = state.db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    metrics::gauge!(POOL_CONNECTIONS).set(f64::from(size));
    metrics::gauge!(POOL_IDLE).set(idle as f64);
    handle.render()
}

/// Drains recorded histogram samples, so memory stays bounded between scrapes.
pub fn upkeep() {
    handle().run_upkeep();
}

/// How a GraphQL operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered without errors (from the response cache or executed).
    Ok,
    /// Answered with errors (validation, limits, resolvers, an unknown persisted query).
    Error,
    /// Stopped at the request timeout.
    Timeout,
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
}

impl Outcome {
    /// How many outcomes there are.
    const COUNT: usize = 4;

    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::NotModified => "not_modified",
        }
    }
}

/// Counts one GraphQL operation and its time.
pub fn graphql_request(operation: &str, outcome: Outcome, elapsed: Duration) {
    thread_local! {
        static SERIES: RefCell<HashMap<Box<str>, OperationSeries>> = RefCell::default();
    }
    SERIES.with_borrow_mut(|series| {
        let series = series.entry_ref(operation, || OperationSeries {
            outcomes: Default::default(),
            duration: metrics::histogram!(GRAPHQL_DURATION, "operation" => operation.to_owned()),
        });
        series.outcomes[outcome as usize]
            .get_or_insert_with(|| {
                metrics::counter!(GRAPHQL_REQUESTS, "operation" => operation.to_owned(), "outcome" => outcome.label())
            })
            .increment(1);
        series.duration.record(elapsed.as_secs_f64());
    });
}

/// One operation's series: a counter per outcome met so far and its durations.
struct OperationSeries {
    outcomes: [Option<metrics::Counter>; Outcome::COUNT],
    duration: metrics::Histogram,
}

/// Counts one HTTP request and its time. `route` is the matched route (`/graphql`), never
/// the raw path, so unknown paths do not make series.
pub fn http_request(method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
    use axum::http::Method;
    thread_local! {
        static SERIES: RefCell<HashMap<Box<str>, RouteSeries>> = RefCell::default();
    }
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    SERIES.with_borrow_mut(|series| {
        let series = series.entry_ref(route, || RouteSeries {
            requests: HashMap::new(),
            duration: metrics::histogram!(HTTP_DURATION, "route" => route.to_owned()),
        });
        series
            .requests
            .entry((method, status))
            .or_insert_with(|| {
                metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_owned(), "status" => status.to_string())
            })
            .increment(1);
        series.duration.record(elapsed.as_secs_f64());
    });
}

/// One route's series: a counter per method and status met so far and its durations.
struct RouteSeries {
    requests: HashMap<(&'static str, u16), metrics::Counter>,
    duration: metrics::Histogram,
}

/// Counts a look-up in a cache.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    thread_local! {
        static SERIES: RefCell<HashMap<(&'static str, bool), metrics::Counter>> = RefCell::default();
    }
    SERIES.with_borrow_mut(|series| {
        series
            .entry((cache, hit))
            .or_insert_with(|| {
                handle();
                let name = if hit { CACHE_HITS } else { CACHE_MISSES };
                metrics::counter!(name, "cache" => cache)
            })
            .increment(1);
    });
}

/// A map of series handles by label, kept per thread: the `metrics` macros build a key and
/// search the recorder's registry on every call, so the request path looks its handles up
/// here instead, by a borrowed label, with no lock and no allocation once a series exists.
trait EntryRef<V> {
    fn entry_ref(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V;
}

impl<V> EntryRef<V> for HashMap<Box<str>, V> {
    fn entry_ref(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        if !self.contains_key(key) {
            // A handle made before the recorder is installed would record nowhere, for good.
            handle();
            self.insert(key.into(), make());
        }
        self.get_mut(key).expect("just inserted")
    }
}

/// Records how many connections an HTTP thread holds open.
pub fn http_connections(thread: usize, open: usize) {
    handle();
    metrics::gauge!(HTTP_CONNECTIONS, "thread" => thread.to_string()).set(open as f64);
}

/// Records the data version served.
pub fn data_version(version: i64) {
    metrics::gauge!(DATA_VERSION).set(version as f64);
}

/// Counts a load run that finished.
pub fn load_run(kind: &str, outcome: &str, took: Duration) {
    metrics::counter!(LOAD_RUNS, "kind" => kind.to_owned(), "outcome" => outcome.to_owned())
        .increment(1);
    metrics::histogram!(LOAD_RUN_DURATION, "kind" => kind.to_owned(), "outcome" => outcome.to_owned())
        .record(took.as_secs_f64());
}

/// The label of a request's operation name: the name when it is a short GraphQL identifier
/// and one of the first [`MAX_OPERATIONS`] seen, `other` past them or when it is not a name,
/// `anonymous` without one.
pub fn operation_label(name: Option<&str>) -> String {
    if name.is_none_or(str::is_empty) {
        // Most requests: no lock needed.
        return ANONYMOUS.to_owned();
    }
    static SEEN: OnceLock<Mutex<OperationNames>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(OperationNames::new(MAX_OPERATIONS)))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .label(name)
}

/// The operation names that have series of their own.
struct OperationNames {
    seen: HashSet<String>,
    cap: usize,
}

impl OperationNames {
    fn new(cap: usize) -> Self {
        Self {
            seen: HashSet::new(),
            cap,
        }
    }

    fn label(&mut self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return ANONYMOUS.to_owned();
        };
        if !is_identifier(name) {
            return "other".to_owned();
        }
        if self.seen.contains(name) {
            return name.to_owned();
        }
        if self.seen.len() < self.cap {
            self.seen.insert(name.to_owned());
            return name.to_owned();
        }
        "other".to_owned()
    }
}

/// A GraphQL name (`[_A-Za-z][_0-9A-Za-z]*`) of at most 64 characters.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_OPERATION_LEN
        && chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_short_identifiers_or_a_fallback() {
        let mut names = OperationNames::new(10);
        assert_eq!(names.label(None), "anonymous");
        assert_eq!(names.label(Some("")), "anonymous");
        assert_eq!(names.label(Some("StockPage")), "StockPage");
        assert_eq!(names.label(Some("_private2")), "_private2");
        for junk in ["2fast", "with space", "dash-ed", "ünï", &"x".repeat(65)] {
            assert_eq!(names.label(Some(junk)), "other", "{junk:?}");
        }
    }

    #[test]
    fn operation_names_past_the_cap_count_as_other_and_kept_ones_stay() {
        let mut names = OperationNames::new(2);
        assert_eq!(names.label(Some("A")), "A");
        assert_eq!(names.label(Some("B")), "B");
        assert_eq!(names.label(Some("C")), "other");
        assert_eq!(names.label(Some("A")), "A");
    }
}
