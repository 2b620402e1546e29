//! The integration test binary: one module per area, each test on a fresh database.

mod load;
mod pipeline;
