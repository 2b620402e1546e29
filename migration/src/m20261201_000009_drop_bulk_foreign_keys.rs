//! The two tables a load writes by the million, `group_memberships` and `membership_changes`,
//! lose their foreign keys (to `definition_groups` and `load_runs`).
//!
//! PostgreSQL checks a foreign key with one trigger call per inserted row: on a full load of
//! 1.75 million memberships (and as many change records) the two checks took about 10 of 40
//! seconds. Nothing needs them: both tables are written only by a run that holds the write
//! lock, in the transaction that creates the group and records the run, and the loader deletes
//! a group's memberships itself before the group (it never relied on the cascade). Change
//! records were always meant to outlive what they name. SQLite gets the same schema, by
//! rebuilding the two tables (it cannot drop a constraint); rows and ids are kept.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL: (table, constraint).
const CONSTRAINTS: [(&str, &str); 2] = [
    ("group_memberships", "fk_group_memberships_group"),
    ("membership_changes", "fk_membership_changes_run"),
];

/// SQLite: each table as it is created without its foreign key, its columns, and its indexes.
const SQLITE_TABLES: [(&str, &str, &str, &[&str]); 2] = [
    (
        "group_memberships",
        r#"( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "group_id" integer NOT NULL, "symbol" varchar NOT NULL, "weight" double NULL, "metadata" json_text NULL, "added_at" timestamp_with_timezone_text NOT NULL DEFAULT CURRENT_TIMESTAMP )"#,
        r#""id", "group_id", "symbol", "weight", "metadata", "added_at""#,
        &[
            r#"CREATE UNIQUE INDEX "ux_group_memberships_group_symbol" ON "group_memberships" ("group_id", "symbol")"#,
            r#"CREATE INDEX "ix_group_memberships_symbol" ON "group_memberships" ("symbol")"#,
        ],
    ),
    (
        "membership_changes",
        r#"( "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "run_id" integer NOT NULL, "group_type" varchar NOT NULL, "group_name" varchar NOT NULL, "symbol" varchar NOT NULL, "change" varchar NOT NULL, "old_weight" double NULL, "new_weight" double NULL )"#,
        r#""id", "run_id", "group_type", "group_name", "symbol", "change", "old_weight", "new_weight""#,
        &[
            r#"CREATE INDEX "ix_membership_changes_run" ON "membership_changes" ("run_id")"#,
            r#"CREATE INDEX "ix_membership_changes_group" ON "membership_changes" ("group_type", "group_name")"#,
            r#"CREATE INDEX "ix_membership_changes_symbol" ON "membership_changes" ("symbol")"#,
        ],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            for (table, constraint) in CONSTRAINTS {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {constraint}"
                ))
                .await?;
            }
            return Ok(());
        }
        for (table, definition, columns, indexes) in SQLITE_TABLES {
            db.execute_unprepared(&format!(
                r#"CREATE TABLE "{table}_next" {definition};
                INSERT INTO "{table}_next" ({columns}) SELECT {columns} FROM "{table}";
                DROP TABLE "{table}";
                ALTER TABLE "{table}_next" RENAME TO "{table}";"#
            ))
            .await?;
            for index in indexes {
                db.execute_unprepared(index).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Putting the checks back would fail on any change record of a run since removed, and
        // nothing depends on them: going down keeps the tables as they are.
        Ok(())
    }
}
