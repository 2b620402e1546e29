//! Errors that stop a whole load. A bad file is not one of them: it is rejected in the report
//! and the other files still load.

use std::path::PathBuf;

/// Why a load could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("no {kind} files found in {dir} (expected {expected})")]
    NoFiles {
        kind: &'static str,
        dir: PathBuf,
        expected: &'static str,
    },
    #[error("no file for {kind} {name} in {dir}")]
    NotFound {
        kind: &'static str,
        name: String,
        dir: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The write lock could not be taken (another writer held it too long).
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// A rollback was refused (an unknown run, nothing to undo, later runs in the way).
    #[error(transparent)]
    RollbackRefused(#[from] crate::history::RollbackRefused),
    #[error("database error during the load; nothing was changed: {0}")]
    Db(#[from] sea_orm::DbErr),
}
