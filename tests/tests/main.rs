//! The integration test binary: one module per area, each test on a fresh database.

mod browser;
mod graphql;
mod http;
mod international;
mod load;
mod pipeline;
mod search;
mod serving;
mod writes;
