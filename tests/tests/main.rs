//! The integration test binary: one module per area, each test on a fresh database.

mod admin;
mod browser;
mod graphql;
mod history_api;
mod http;
mod international;
mod load;
mod pipeline;
mod rollback;
mod search;
mod serving;
mod subscriptions;
mod writes;
