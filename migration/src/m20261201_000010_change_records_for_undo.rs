//! Change records keep what undoing them needs.
//!
//! `membership_changes` gains the membership's metadata before and after the change
//! (`old_metadata`, `new_metadata`), so a removed member comes back with its name and market
//! and a metadata-only change (`updated`) can be recorded at all. `group_changes` records each
//! group a run created, updated (description or metadata) or removed, with both sides, so a
//! rollback can remove a group a run made and bring back one it removed.
//!
//! Like `membership_changes` (see m20261201_000009), `group_changes` names its group rather
//! than referencing it and has no foreign key: the records outlive what they name. Rows
//! recorded before this migration have null metadata.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [
            MembershipChanges::OldMetadata,
            MembershipChanges::NewMetadata,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MembershipChanges::Table)
                        .add_column(json_null(column))
                        .to_owned(),
                )
                .await?;
        }
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        manager
            .create_table(
                Table::create()
                    .table(GroupChanges::Table)
                    .if_not_exists()
                    .col(pk_auto(GroupChanges::Id))
                    .col(integer(GroupChanges::RunId))
                    .col(key(GroupChanges::GroupType, postgres))
                    .col(key(GroupChanges::GroupName, postgres))
                    .col(string(GroupChanges::Change))
                    .col(text_null(GroupChanges::OldDescription))
                    .col(json_null(GroupChanges::OldMetadata))
                    .col(text_null(GroupChanges::NewDescription))
                    .col(json_null(GroupChanges::NewMetadata))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_group_changes_group")
                    .table(GroupChanges::Table)
                    .col(GroupChanges::GroupType)
                    .col(GroupChanges::GroupName)
                    .col(GroupChanges::RunId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_group_changes_run")
                    .table(GroupChanges::Table)
                    .col(GroupChanges::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GroupChanges::Table).to_owned())
            .await?;
        for column in [
            MembershipChanges::NewMetadata,
            MembershipChanges::OldMetadata,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(MembershipChanges::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// A name column: byte order on PostgreSQL, like the other change records' keys (see
/// m20261201_000008); SQLite compares bytes already.
fn key(column: GroupChanges, postgres: bool) -> ColumnDef {
    let mut def = string(column);
    if postgres {
        def.extra("COLLATE \"C\"");
    }
    def
}

#[derive(DeriveIden, Clone, Copy)]
enum MembershipChanges {
    Table,
    OldMetadata,
    NewMetadata,
}

#[derive(DeriveIden)]
enum GroupChanges {
    Table,
    Id,
    RunId,
    GroupType,
    GroupName,
    Change,
    OldDescription,
    OldMetadata,
    NewDescription,
    NewMetadata,
}
