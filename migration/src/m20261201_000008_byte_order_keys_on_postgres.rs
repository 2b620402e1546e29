//! PostgreSQL: symbols and group names compare byte by byte (`COLLATE "C"`).
//!
//! The keys the loader writes most (a membership's symbol, a change's group and symbol) were
//! compared under the database's default collation, which costs a locale comparison at every
//! step of every index insert: about half of a large load's time went there. Byte order is
//! also the order the loader, the server and SQLite already use, so ordering by these columns
//! now agrees everywhere. Equality is unchanged for the ASCII keys stored. SQLite compares
//! bytes already (`BINARY`): nothing to do there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column) pairs moved to byte order; their indexes are rebuilt with them.
const COLUMNS: [(&str, &str); 5] = [
    ("definition_groups", "name"),
    ("group_memberships", "symbol"),
    ("membership_changes", "group_type"),
    ("membership_changes", "group_name"),
    ("membership_changes", "symbol"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "COLLATE \"C\"").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "COLLATE \"default\"").await
    }
}

async fn collate(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    for (table, column) in COLUMNS {
        db.execute_unprepared(&format!(
            "ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar {collation}"
        ))
        .await?;
    }
    Ok(())
}
