//! Typed in-process caches (moka) for the hot look-ups, with hit and miss counters. Every
//! entry belongs to the data version it was read at: when the version moves, [`Caches::clear`]
//! drops everything, so a server never serves data older than the last committed load.

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

/// One cache and its counters.
pub struct Counted<K, V> {
    pub cache: Cache<K, V>,
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
}

impl<K, V> Counted<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(capacity: u64) -> Self {
        Self::with_cache(Cache::new(capacity))
    }

    fn with_cache(cache: Cache<K, V>) -> Self {
        Self {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            loads: AtomicU64::new(0),
        }
    }

    /// The cached value, counting a hit or a miss.
    pub async fn get(&self, key: &K) -> Option<V> {
        let found = self.cache.get(key).await;
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores values read from the database in one batch.
    pub async fn fill(&self, entries: impl IntoIterator<Item = (K, V)>) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        for (k, v) in entries {
            self.cache.insert(k, v).await;
        }
        // Settle moka's bookkeeping so sizes in the statistics are current.
        self.cache.run_pending_tasks().await;
    }

    fn stats(&self, name: &'static str) -> CacheStat {
        let hits = self.hits.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
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
            loads: self.loads.load(Ordering::Relaxed),
        }
    }
}

/// Statistics of one cache.
#[derive(Clone, Debug, Serialize, async_graphql::SimpleObject)]
pub struct CacheStat {
    /// `stock` (memberships by symbol), `group` (members by group) or `response` (whole
    /// query responses; its size counts entries).
    pub name: &'static str,
    /// Look-ups answered from the cache.
    pub hits: u64,
    /// Look-ups that had to read the database.
    pub misses: u64,
    /// hits / (hits + misses), 0 before any look-up.
    pub hit_rate: f64,
    /// Entries held now.
    pub size: u64,
    /// Batches read from the database to fill it.
    pub loads: u64,
}

/// The server's caches.
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
    /// Caches holding up to `capacity` stocks and as many groups.
    pub fn new(capacity: u64) -> Self {
        Self {
            stocks: Counted::new(capacity),
            groups: Counted::new(capacity),
            responses: Counted::with_cache(
                Cache::builder()
                    .weigher(|k: &String, v: &axum::body::Bytes| {
                        u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                    })
                    .max_capacity(RESPONSE_CACHE_BYTES)
                    .build(),
            ),
        }
    }

    /// Drops every entry (a new data version, or `refreshCache(all)`).
    pub fn clear(&self) {
        self.stocks.cache.invalidate_all();
        self.groups.cache.invalidate_all();
        self.responses.cache.invalidate_all();
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
