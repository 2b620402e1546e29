//! Append-only schema migrations. They build the same schema on SQLite and PostgreSQL and are
//! frozen history: a change to the schema is a new migration, never an edit of an old one.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_definition_groups;
mod m20261124_000002_create_group_memberships;
mod m20261124_000003_create_load_runs;
mod m20261124_000004_create_load_run_files;
mod m20261124_000005_create_membership_changes;
mod m20261124_000006_create_data_versions;
mod m20261201_000007_rename_load_runs_outcome_to_state;
mod m20261201_000008_byte_order_keys_on_postgres;
mod m20261201_000009_drop_bulk_foreign_keys;
mod m20261201_000010_change_records_for_undo;

/// Runs the migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_definition_groups::Migration),
            Box::new(m20261124_000002_create_group_memberships::Migration),
            Box::new(m20261124_000003_create_load_runs::Migration),
            Box::new(m20261124_000004_create_load_run_files::Migration),
            Box::new(m20261124_000005_create_membership_changes::Migration),
            Box::new(m20261124_000006_create_data_versions::Migration),
            Box::new(m20261201_000007_rename_load_runs_outcome_to_state::Migration),
            Box::new(m20261201_000008_byte_order_keys_on_postgres::Migration),
            Box::new(m20261201_000009_drop_bulk_foreign_keys::Migration),
            Box::new(m20261201_000010_change_records_for_undo::Migration),
        ]
    }
}
