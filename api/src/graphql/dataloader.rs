//! Request-scoped dataloaders for what the snapshot does not hold: the runs that made the
//! changes a query lists are read in one `IN (...)` batch per request, never one per change.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use loader::graph::RunSummary;

use crate::state::AppState;

/// A load run, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunById(pub i32);

/// Reads load runs for one request.
pub struct RunLoader {
    pub state: Arc<AppState>,
}

impl Loader<RunById> for RunLoader {
    type Value = RunSummary;
    type Error = Arc<sea_orm::DbErr>;

    async fn load(&self, keys: &[RunById]) -> Result<HashMap<RunById, RunSummary>, Self::Error> {
        let ids: Vec<i32> = keys.iter().map(|k| k.0).collect();
        self.state.count_query();
        let runs = loader::graph::runs_by_id(&self.state.db, self.state.environment(), &ids)
            .await
            .map_err(Arc::new)?;
        Ok(runs.into_iter().map(|r| (RunById(r.id), r)).collect())
    }
}
