//! Connecting to SQLite or PostgreSQL and bringing the schema up to date.

use std::path::Path;

use anyhow::Context as _;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

/// Connects and runs every pending migration.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_file(url)
        && let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the database folder {}", parent.display()))?;
    }
    let url = &loopback_without_tls(url);
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    if db.get_database_backend() == DbBackend::Sqlite && sqlite_file(url).is_some() {
        // Readers keep reading the last committed state while a load writes.
        db.execute_unprepared("PRAGMA journal_mode=WAL")
            .await
            .context("cannot switch SQLite to WAL")?;
    }
    Migrator::up(&db, None)
        .await
        .context("cannot migrate the database")?;
    Ok(db)
}

/// A PostgreSQL URL to a loopback address gets `sslmode=disable` unless it names an sslmode.
///
/// TLS on loopback protects nothing, and it is slow here: rustls writes each record in more
/// than one `send`, sqlx does not set `TCP_NODELAY`, so Nagle's algorithm holds every
/// statement's tail until the server's delayed ACK (about 40 ms). A full load took 3.3 s over
/// TLS on 127.0.0.1 and 0.45 s without. Remote servers keep the default (`prefer`).
pub fn loopback_without_tls(url: &str) -> String {
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_postgres || url.contains("sslmode=") {
        return url.to_owned();
    }
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().map_or("", |h| &h[1..])
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=disable")
}

/// The file path of an on-disk SQLite URL.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:" && !rest.contains("mode=memory")).then_some(path)
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A PostgreSQL URL with another database name (`postgres://u@h:5432/test` → `.../name`).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Creates an empty PostgreSQL database through `admin_url`; returns its URL.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let admin = Database::connect(loopback_without_tls(admin_url))
        .await
        .with_context(|| format!("cannot connect to {}", redact(admin_url)))?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("cannot create database {name}"))?;
    admin.close().await.ok();
    Ok(with_database(admin_url, name))
}

/// Drops a PostgreSQL database created by [`create_postgres_database`], closing its sessions.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = Database::connect(loopback_without_tls(admin_url)).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin.close().await.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_and_redaction() {
        assert_eq!(
            sqlite_file("sqlite://data/holdgraph.db?mode=rwc"),
            Some("data/holdgraph.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x@y/z"), None);
        assert_eq!(
            redact("postgres://app:secret@db:5432/hg"),
            "postgres://app:***@db:5432/hg"
        );
        assert_eq!(
            redact("postgres://postgres@db/hg"),
            "postgres://postgres@db/hg"
        );
    }

    #[test]
    fn loopback_postgres_skips_tls_unless_told() {
        assert_eq!(
            loopback_without_tls("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
        );
        assert_eq!(
            loopback_without_tls("postgres://u:p@localhost/x?application_name=a"),
            "postgres://u:p@localhost/x?application_name=a&sslmode=disable"
        );
        assert_eq!(
            loopback_without_tls("postgres://u@[::1]:5432/x"),
            "postgres://u@[::1]:5432/x?sslmode=disable"
        );
        for kept in [
            "postgres://u@db.example.com/x",
            "postgres://u@127.0.0.1/x?sslmode=require",
            "sqlite://data/x.db?mode=rwc",
        ] {
            assert_eq!(loopback_without_tls(kept), kept);
        }
    }
}
