//! Reads of the stored graph that a load needs. Every function takes `&impl ConnectionTrait`
//! so the caller owns the transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use entity::{GroupType, definition_group, group_membership, load_run, load_run_file};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, IsolationLevel, QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
};

/// A read-only transaction that sees one committed state from its first statement to its end,
/// whatever commits meanwhile: repeatable read on PostgreSQL; on SQLite (WAL) a deferred
/// transaction, whose first read fixes the state it sees. Reads that combine several
/// statements (the snapshot, a group's past) take one, so they never mix two versions.
pub async fn begin_read(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}

use crate::diff::Stored;
use crate::symbol::Symbol;

/// How many ids go into one `IN (...)` list.
pub const CHUNK: usize = 500;

/// The groups of one type in an environment, by name.
pub async fn groups(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
) -> Result<BTreeMap<String, definition_group::Model>, DbErr> {
    Ok(definition_group::Entity::find()
        .filter(definition_group::Column::Environment.eq(environment))
        .filter(definition_group::Column::GroupType.eq(group_type.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|g| (g.name.clone(), g))
        .collect())
}

/// The stored memberships of the given groups, by group id and symbol.
pub async fn memberships(
    db: &impl ConnectionTrait,
    group_ids: &[i32],
) -> Result<HashMap<i32, BTreeMap<Symbol, Stored>>, DbErr> {
    let mut out: HashMap<i32, BTreeMap<Symbol, Stored>> = HashMap::new();
    for chunk in group_ids.chunks(CHUNK) {
        let rows = group_membership::Entity::find()
            .filter(group_membership::Column::GroupId.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        for row in rows {
            out.entry(row.group_id).or_default().insert(
                Symbol::from_normalised(row.symbol),
                Stored {
                    id: row.id,
                    weight: row.weight,
                    metadata: row.metadata,
                },
            );
        }
    }
    Ok(out)
}

/// The stored memberships of one group, by symbol: the one read a load makes of a group's
/// state before diffing it.
pub async fn group_memberships(
    db: &impl ConnectionTrait,
    group_id: i32,
) -> Result<BTreeMap<Symbol, Stored>, DbErr> {
    Ok(group_membership::Entity::find()
        .filter(group_membership::Column::GroupId.eq(group_id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            (
                Symbol::from_normalised(row.symbol),
                Stored {
                    id: row.id,
                    weight: row.weight,
                    metadata: row.metadata,
                },
            )
        })
        .collect())
}

/// The MD5 of each group's file at its last successful load (loaded or found unchanged), or,
/// when a rollback touched the group since, the MD5 that rollback put the group back to (a
/// group with none is missing from the map, so its file is read whatever its MD5).
pub async fn last_loaded_md5(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
) -> Result<HashMap<String, String>, DbErr> {
    loaded_md5(db, environment, group_type, None).await
}

/// [`last_loaded_md5`] as it was just before run `run_id`: what a rollback of that run puts
/// each group's input back to.
pub async fn loaded_md5_before(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
    run_id: i32,
) -> Result<HashMap<String, String>, DbErr> {
    loaded_md5(db, environment, group_type, Some(run_id)).await
}

async fn loaded_md5(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
    before_run: Option<i32>,
) -> Result<HashMap<String, String>, DbErr> {
    let mut latest = Query::select()
        .expr(Expr::col((load_run_file::Entity, load_run_file::Column::Id)).max())
        .from(load_run_file::Entity)
        .inner_join(
            load_run::Entity,
            Expr::col((load_run::Entity, load_run::Column::Id))
                .equals((load_run_file::Entity, load_run_file::Column::RunId)),
        )
        .and_where(Expr::col((load_run::Entity, load_run::Column::Environment)).eq(environment))
        .and_where(
            Expr::col((load_run_file::Entity, load_run_file::Column::GroupType))
                .eq(group_type.as_str()),
        )
        .and_where(
            Expr::col((load_run_file::Entity, load_run_file::Column::Status)).is_in([
                "loaded",
                "unchanged",
                "rolled_back",
            ]),
        )
        .group_by_col((load_run_file::Entity, load_run_file::Column::GroupName))
        .to_owned();
    if let Some(run_id) = before_run {
        latest
            .and_where(Expr::col((load_run_file::Entity, load_run_file::Column::RunId)).lt(run_id));
    }
    let rows = load_run_file::Entity::find()
        .filter(load_run_file::Column::Id.in_subquery(latest))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|f| f.md5.map(|md5| (f.group_name, md5)))
        .collect())
}

/// Every dotted share-class symbol already stored in an environment (`BRK.B`), so a compact
/// spelling in a later file resolves the same way.
pub async fn dotted_symbols(
    db: &impl ConnectionTrait,
    environment: &str,
) -> Result<HashSet<Symbol>, DbErr> {
    let groups_in_env = definition_group::Entity::find()
        .select_only()
        .column(definition_group::Column::Id)
        .filter(definition_group::Column::Environment.eq(environment))
        .into_query();
    let symbols: Vec<String> = group_membership::Entity::find()
        .select_only()
        .column(group_membership::Column::Symbol)
        .distinct()
        .filter(group_membership::Column::Symbol.like("%.%"))
        .filter(group_membership::Column::GroupId.in_subquery(groups_in_env))
        .into_tuple()
        .all(db)
        .await?;
    Ok(symbols.into_iter().map(Symbol::from_normalised).collect())
}

/// The current data version of an environment (0 before any load).
pub async fn data_version(db: &impl ConnectionTrait, environment: &str) -> Result<i64, DbErr> {
    Ok(
        entity::data_version::Entity::find_by_id(environment.to_owned())
            .one(db)
            .await?
            .map_or(0, |v| v.version),
    )
}

/// One membership with its group's type and name.
#[derive(Clone, Debug)]
pub struct MembershipRow {
    pub group_type: GroupType,
    pub group_name: String,
    pub symbol: String,
    pub weight: Option<f64>,
    pub metadata: Option<serde_json::Value>,
}

/// Every membership of an environment with its group's type and name (groups read once and
/// joined in memory, see [`crate::graph::memberships_of_symbols`]).
pub async fn all_memberships(
    db: &impl ConnectionTrait,
    environment: &str,
) -> Result<Vec<MembershipRow>, DbErr> {
    let groups: HashMap<i32, (GroupType, String)> = definition_group::Entity::find()
        .select_only()
        .column(definition_group::Column::Id)
        .column(definition_group::Column::GroupType)
        .column(definition_group::Column::Name)
        .filter(definition_group::Column::Environment.eq(environment))
        .into_tuple::<(i32, String, String)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(id, t, name)| Some((id, (t.parse().ok()?, name))))
        .collect();
    let ids: Vec<i32> = groups.keys().copied().collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        for m in group_membership::Entity::find()
            .filter(group_membership::Column::GroupId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            if let Some((group_type, group_name)) = groups.get(&m.group_id) {
                out.push(MembershipRow {
                    group_type: *group_type,
                    group_name: group_name.clone(),
                    symbol: m.symbol,
                    weight: m.weight,
                    metadata: m.metadata,
                });
            }
        }
    }
    Ok(out)
}
