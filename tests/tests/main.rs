//! The integration test binary: one module per area, each test on a fresh database.

mod browser;
mod graphql;
mod international;
mod load;
mod pipeline;
mod serving;
mod writes;
