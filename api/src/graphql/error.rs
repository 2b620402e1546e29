//! GraphQL errors with `extensions.code`. Internal errors are logged once with their chain and
//! reach the client as a generic message: never SQL.

use async_graphql::{Error, ErrorExtensions};

/// The codes clients can rely on.
pub mod code {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// A cursor into a group whose members changed since it was made.
    pub const STALE_CURSOR: &str = "STALE_CURSOR";
    /// A ticker that names more than one listing (`SAN`: Madrid and Paris).
    pub const AMBIGUOUS_SYMBOL: &str = "AMBIGUOUS_SYMBOL";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const CONFLICT: &str = "CONFLICT";
    /// An operation refused as asked (a rollback behind later runs without `force`).
    pub const REFUSED: &str = "REFUSED";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
}

/// An error with a code.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, e| e.set("code", code))
}

/// A bad argument.
pub fn bad_input(message: impl Into<String>) -> Error {
    coded(code::BAD_USER_INPUT, message)
}

/// Logs an internal error and returns a message without its details.
pub fn internal(error: impl std::fmt::Display) -> Error {
    tracing::error!(error = %error, "request failed");
    coded(
        code::INTERNAL_SERVER_ERROR,
        "internal error; the server log has the details",
    )
}
