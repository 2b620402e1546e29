//! Typed in-process caches (moka) of what is computed from a snapshot: whole responses,
//! overlaps, exposures, the report and the validation, with hit and miss counters.
//!
//! One [`Caches`] belongs to one [`crate::snapshot::Snapshot`]: when the data version moves
//! the server builds a new snapshot with empty caches, and the old ones go with the last
//! request that still uses them, so nothing computed at one version is ever served at another.
//! Concurrent requests for the same missing entry share one computation (moka's
//! `try_get_with`), so a thousand aliases of `validation` cost one run. The counters outlive
//! the versions, so statistics cover the server's whole life; every look-up also counts in the
//! Prometheus metrics (`holdgraph_cache_hits_total{cache}`, `..._misses_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::future::Cache;
use serde::Serialize;

/// Hits, misses and fills of one cache, across data versions.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
}

/// The counters of every cache, kept by the server for its whole life.
#[derive(Debug, Default)]
pub struct CacheCounters {
    responses: Arc<Counters>,
    analytics: Arc<Counters>,
    checks: Arc<Counters>,
}

/// One cache and its counters.
pub struct Counted<K, V> {
    cache: Cache<K, V>,
    counters: Arc<Counters>,
    /// Its name in statistics and in the `cache` label of the Prometheus counters.
    name: &'static str,
}

impl<K, V> Counted<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cached value, counting a hit or a miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        let found = self.cache.get(key).await;
        self.count(found.is_some());
        found
    }

    /// The cached value, or the one `compute` makes (once, however many ask at the same time).
    pub async fn get_or_try<E, F>(&self, key: K, compute: F) -> Result<V, Arc<E>>
    where
        F: std::future::Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.count(self.cache.contains_key(&key));
        let loads = &self.counters.loads;
        self.cache
            .try_get_with(key, async {
                loads.fetch_add(1, Ordering::Relaxed);
                compute.await
            })
            .await
    }

    /// Counts a look-up here and in the process's metrics.
    fn count(&self, hit: bool) {
        let counter = if hit {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cache_lookup(self.name, hit);
    }

    /// Stores values computed in one batch.
    pub async fn fill(&self, entries: impl IntoIterator<Item = (K, V)>) {
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        for (k, v) in entries {
            self.cache.insert(k, v).await;
        }
        // Settle moka's bookkeeping so sizes in the statistics are current.
        self.cache.run_pending_tasks().await;
    }

    /// Whether `key` is cached (not counted as a look-up).
    pub fn contains(&self, key: &K) -> bool {
        self.cache.contains_key(key)
    }

    /// Drops one entry.
    pub async fn invalidate(&self, key: &K) {
        self.cache.invalidate(key).await;
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Entries held now.
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn stats(&self) -> CacheStat {
        let name = self.name;
        let hits = self.counters.hits.load(Ordering::Relaxed);
        let misses = self.counters.misses.load(Ordering::Relaxed);
        CacheStat {
            name,
            hits,
            misses,
            hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            size: self.cache.entry_count(),
            loads: self.counters.loads.load(Ordering::Relaxed),
        }
    }
}

/// Statistics of one cache.
#[derive(Clone, Debug, Serialize, async_graphql::SimpleObject)]
pub struct CacheStat {
    /// `response` (whole query responses), `analytics` (overlaps and exposures) or `checks`
    /// (the report and the validation).
    pub name: &'static str,
    /// Look-ups answered from the cache since the server started.
    pub hits: u64,
    /// Look-ups that had to compute their entry since the server started.
    pub misses: u64,
    /// hits / (hits + misses), 0 before any look-up.
    pub hit_rate: f64,
    /// Entries held now, for the data version served.
    pub size: u64,
    /// Entries computed to fill it.
    pub loads: u64,
}

/// What analytics caches: one entry per question (`overlap:SPY:QQQ`).
pub type Analytics = Arc<dyn std::any::Any + Send + Sync>;

/// The caches of one data version.
pub struct Caches {
    /// Whole GraphQL responses by request (query, operation, variables), for queries whose
    /// every field may be cached; weighed by their size in bytes.
    pub responses: Counted<String, axum::body::Bytes>,
    /// Overlaps and exposures by their arguments.
    pub analytics: Counted<String, Analytics>,
    /// The report (with and without detail) and the validation.
    pub checks: Counted<String, Analytics>,
}

/// Bytes the response cache may hold.
const RESPONSE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl Caches {
    /// Empty caches holding up to `capacity` analytics entries, counting into `counters`.
    pub fn new(capacity: u64, counters: &CacheCounters) -> Self {
        Self {
            responses: Counted {
                cache: Cache::builder()
                    .weigher(|k: &String, v: &axum::body::Bytes| {
                        u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                    })
                    .max_capacity(RESPONSE_CACHE_BYTES)
                    .build(),
                counters: counters.responses.clone(),
                name: "response",
            },
            analytics: Counted {
                cache: Cache::new(capacity),
                counters: counters.analytics.clone(),
                name: "analytics",
            },
            checks: Counted {
                cache: Cache::new(16),
                counters: counters.checks.clone(),
                name: "checks",
            },
        }
    }

    /// Drops every entry (`refreshCache(all)`).
    pub fn clear(&self) {
        self.responses.invalidate_all();
        self.analytics.invalidate_all();
        self.checks.invalidate_all();
    }

    /// Statistics of every cache.
    pub fn stats(&self) -> Vec<CacheStat> {
        vec![
            self.responses.stats(),
            self.analytics.stats(),
            self.checks.stats(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counters_survive_a_new_set_of_caches_and_sizes_do_not() {
        let counters = CacheCounters::default();
        let old = Caches::new(10, &counters);
        let one: Analytics = Arc::new(1u32);
        let got = old
            .analytics
            .get_or_try::<(), _>("k".into(), async { Ok(one.clone()) })
            .await;
        assert!(got.is_ok());
        let again = old
            .analytics
            .get_or_try::<(), _>("k".into(), async { Err(()) })
            .await;
        assert!(
            again.is_ok(),
            "the second look-up is a hit, not a computation"
        );
        let new = Caches::new(10, &counters);
        let fresh = new
            .analytics
            .get_or_try::<(), _>("k".into(), async { Err(()) })
            .await;
        assert!(fresh.is_err(), "a new version starts empty");
        let stat = &new.stats()[1];
        assert_eq!((stat.hits, stat.misses, stat.loads), (1, 2, 2));
        assert_eq!(stat.size, 0);
        assert!((stat.hit_rate - 1.0 / 3.0).abs() < 1e-9);
    }
}
