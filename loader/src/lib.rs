//! The maintenance library: read provider files → normalise → diff against what is stored →
//! apply in one transaction → record the run. The CLI and the GraphQL mutations both call it,
//! so a command and its mutation can never behave differently.

pub mod apply;
pub mod definitions;
pub mod diff;
pub mod enrich;
pub mod error;
pub mod graph;
pub mod guard;
pub mod history;
pub mod listing;
pub mod lock;
pub mod market;
pub mod members;
pub mod organize;
pub mod profile;
pub mod quality;
pub mod read;
pub mod report;
pub mod run;
pub mod source;
pub mod store;
pub mod symbol;
pub mod sync;
pub mod table;
pub mod validate;
pub mod weight;

pub use error::LoadError;
pub use report::{LoadReport, Mode};
pub use run::{LoadRequest, Progress, Quiet, load};
