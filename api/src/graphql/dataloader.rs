//! Request-scoped dataloaders: the cache misses of one request are batched into one `IN (...)`
//! read per kind of look-up, so no query costs one SQL statement per row.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::cache::{GroupMembers, StockMembers};
use crate::state::{AppState, Snapshot};

/// Memberships of a stock, by normalised symbol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MembersBySymbol(pub String);

/// Members of a group, by group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MembersByGroup(pub i32);

/// The loader behind both keys: it reads for, and fills the caches of, the snapshot its
/// request answers from.
pub struct GraphLoader {
    pub state: Arc<AppState>,
    pub snapshot: Arc<Snapshot>,
}

impl Loader<MembersBySymbol> for GraphLoader {
    type Value = StockMembers;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[MembersBySymbol],
    ) -> Result<HashMap<MembersBySymbol, StockMembers>, Self::Error> {
        let symbols: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        Ok(self
            .state
            .fetch_stocks(&self.snapshot, &symbols)
            .await
            .map_err(Arc::new)?
            .into_iter()
            .map(|(k, v)| (MembersBySymbol(k), v))
            .collect())
    }
}

impl Loader<MembersByGroup> for GraphLoader {
    type Value = GroupMembers;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(
        &self,
        keys: &[MembersByGroup],
    ) -> Result<HashMap<MembersByGroup, GroupMembers>, Self::Error> {
        let ids: Vec<i32> = keys.iter().map(|k| k.0).collect();
        Ok(self
            .state
            .fetch_groups(&self.snapshot, &ids)
            .await
            .map_err(Arc::new)?
            .into_iter()
            .map(|(k, v)| (MembersByGroup(k), v))
            .collect())
    }
}
