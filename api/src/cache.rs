//! Typed in-process caches (moka) for the hot look-ups, with hit and miss counters.
//!
//! One [`Caches`] holds the entries of one data version: when the version moves the server
//! starts a new, empty set (see [`crate::state::Snapshot`]) and the old one is dropped with the
//! last request that still uses it. An entry read at an old version therefore can never be
//! served for a newer one, even when a slow read fills it after a load committed. The counters
//! outlive the versions, so statistics cover the server's whole life.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use entity::{definition_group, group_membership};
use moka::future::Cache;
use serde::Serialize;

/// A membership with its group, as the API serves it.
#[derive(Clone, Debug)]
pub struct Member {
    pub membership: Arc<group_membership::Model>,
    pub group: Arc<definition_group::Model>,
}

/// A stock's memberships, heaviest first.
pub type StockMembers = Arc<Vec<Member>>;
/// A group's memberships, heaviest first.
pub type GroupMembers = Arc<Vec<Arc<group_membership::Model>>>;

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
    stocks: Arc<Counters>,
    groups: Arc<Counters>,
    responses: Arc<Counters>,
}

/// One cache and its counters.
pub struct Counted<K, V> {
    cache: Cache<K, V>,
    counters: Arc<Counters>,
}

impl<K, V> Counted<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The cached value, counting a hit or a miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        let found = self.cache.get(key).await;
        let counter = if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores values read from the database in one batch.
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

    fn stats(&self, name: &'static str) -> CacheStat {
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
    /// `stock` (memberships by symbol), `group` (members by group) or `response` (whole
    /// query responses).
    pub name: &'static str,
    /// Look-ups answered from the cache since the server started.
    pub hits: u64,
    /// Look-ups that had to read the database (or execute the query) since the server started.
    pub misses: u64,
    /// hits / (hits + misses), 0 before any look-up.
    pub hit_rate: f64,
    /// Entries held now, for the data version served.
    pub size: u64,
    /// Batches read from the database (or responses computed) to fill it.
    pub loads: u64,
}

/// The caches of one data version.
pub struct Caches {
    /// Memberships by stock symbol.
    pub stocks: Counted<String, StockMembers>,
    /// Members by group id.
    pub groups: Counted<i32, GroupMembers>,
    /// Whole GraphQL responses by request (query, operation, variables), for queries whose
    /// every field may be cached; weighed by their size in bytes.
    pub responses: Counted<String, axum::body::Bytes>,
}

/// Bytes the response cache may hold.
const RESPONSE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Caches {
    /// Empty caches holding up to `capacity` stocks and as many groups, counting into
    /// `counters`.
    pub fn new(capacity: u64, counters: &CacheCounters) -> Self {
        Self {
            stocks: Counted {
                cache: Cache::new(capacity),
                counters: counters.stocks.clone(),
            },
            groups: Counted {
                cache: Cache::new(capacity),
                counters: counters.groups.clone(),
            },
            responses: Counted {
                cache: Cache::builder()
                    .weigher(|k: &String, v: &axum::body::Bytes| {
                        u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                    })
                    .max_capacity(RESPONSE_CACHE_BYTES)
                    .build(),
                counters: counters.responses.clone(),
            },
        }
    }

    /// Drops every entry (`refreshCache(all)`).
    pub fn clear(&self) {
        self.stocks.invalidate_all();
        self.groups.invalidate_all();
        self.responses.invalidate_all();
    }

    /// Statistics of every cache.
    pub fn stats(&self) -> Vec<CacheStat> {
        vec![
            self.stocks.stats("stock"),
            self.groups.stats("group"),
            self.responses.stats("response"),
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
        assert!(old.groups.get(&1).await.is_none());
        old.groups.fill([(1, Arc::new(Vec::new()))]).await;
        assert!(old.groups.get(&1).await.is_some());
        let new = Caches::new(10, &counters);
        assert!(
            new.groups.get(&1).await.is_none(),
            "a new version starts empty"
        );
        let stat = &new.stats()[1];
        assert_eq!((stat.hits, stat.misses, stat.loads), (1, 2, 1));
        assert_eq!(stat.size, 0);
        assert!((stat.hit_rate - 1.0 / 3.0).abs() < 1e-9);
    }
}
