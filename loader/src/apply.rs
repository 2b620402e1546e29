//! Changes → SQL, inside a transaction the caller owns.

use chrono::{DateTime, Utc};
use entity::{
    ChangeKind, GroupChangeKind, GroupType, data_version, definition_group, group_change,
    group_membership,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
};

use crate::diff::GroupDiff;
use crate::store::CHUNK;
use crate::symbol::Symbol;

/// Rows per multi-row `INSERT` of group changes (nine columns: far below every
/// bind-parameter limit).
const INSERT_CHUNK: usize = 500;

/// What a group should look like, besides its members.
pub struct GroupSpec<'a> {
    pub environment: &'a str,
    pub group_type: GroupType,
    pub name: &'a str,
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// Creates the group, or updates its description and metadata; returns its id.
pub async fn upsert_group(
    db: &impl ConnectionTrait,
    existing: Option<&definition_group::Model>,
    spec: GroupSpec<'_>,
    now: DateTime<Utc>,
) -> Result<i32, DbErr> {
    if let Some(group) = existing {
        if group.description != spec.description || group.metadata != spec.metadata {
            definition_group::Entity::update_many()
                .col_expr(
                    definition_group::Column::Description,
                    Expr::value(spec.description),
                )
                .col_expr(
                    definition_group::Column::Metadata,
                    Expr::value(spec.metadata),
                )
                .col_expr(definition_group::Column::UpdatedAt, Expr::value(now))
                .filter(definition_group::Column::Id.eq(group.id))
                .exec(db)
                .await?;
        }
        return Ok(group.id);
    }
    let model = definition_group::ActiveModel {
        id: NotSet,
        name: Set(spec.name.to_owned()),
        group_type: Set(spec.group_type.as_str().to_owned()),
        description: Set(spec.description),
        metadata: Set(spec.metadata),
        environment: Set(spec.environment.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = definition_group::Entity::insert(model).exec(db).await?;
    Ok(inserted.last_insert_id)
}

/// Applies one group's diff to its memberships.
pub async fn apply_diff(
    db: &impl ConnectionTrait,
    group_id: i32,
    diff: &GroupDiff,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let removed: Vec<i32> = diff.removed.iter().map(|r| r.id).collect();
    for chunk in removed.chunks(CHUNK) {
        group_membership::Entity::delete_many()
            .filter(group_membership::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    // Changed members are upserted (a changed member keeps its row and id); new members are
    // inserted, with no conflict to look for: the diff was computed under the write lock, in
    // this transaction, so none of them is stored. No statement is sent per row.
    let updated = diff
        .updated
        .iter()
        .map(|u| (&u.symbol, u.new_weight, &u.metadata));
    let added = diff
        .added
        .iter()
        .map(|(symbol, d)| (symbol, d.weight, &d.metadata));
    write_members(db, group_id, updated, true, now).await?;
    write_members(db, group_id, added, false, now).await
}

/// Writes members in bulk statements: upserts when `upsert`, plain inserts otherwise.
async fn write_members<'a>(
    db: &impl ConnectionTrait,
    group_id: i32,
    rows: impl Iterator<Item = (&'a Symbol, Option<f64>, &'a serde_json::Value)>,
    upsert: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut batch = Vec::with_capacity(BULK_CHUNK);
    for (symbol, weight, metadata) in rows {
        batch.push(BulkMember {
            s: symbol.as_str(),
            w: weight,
            m: metadata,
        });
        if batch.len() == BULK_CHUNK {
            insert_members(db, group_id, std::mem::take(&mut batch), upsert, now).await?;
        }
    }
    if !batch.is_empty() {
        insert_members(db, group_id, batch, upsert, now).await?;
    }
    Ok(())
}

/// Rows per bulk statement. The rows travel as one JSON parameter, expanded in the database
/// (`json_to_recordset` on PostgreSQL, `json_each` on SQLite), so a statement is parsed and
/// planned once whatever its size and no row is bound parameter by parameter: a multi-row
/// `VALUES` of a few hundred rows cost PostgreSQL more to plan than to run, and SQLite's
/// driver more to build and bind than to insert. Weights travel as the shortest decimal text
/// that reads back as the same double, and both databases read it back exactly.
const BULK_CHUNK: usize = 5_000;

/// A member as a bulk statement's JSON carries it, borrowed (no copy of its metadata is made
/// to serialise it).
#[derive(serde::Serialize)]
struct BulkMember<'a> {
    s: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    w: Option<f64>,
    m: &'a serde_json::Value,
}

async fn insert_members(
    db: &impl ConnectionTrait,
    group_id: i32,
    rows: Vec<BulkMember<'_>>,
    upsert: bool,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let (insert, upsert_clause) = match backend {
        DbBackend::Postgres => (
            "INSERT INTO group_memberships (group_id, symbol, weight, metadata, added_at) \
             SELECT $1, x.s, x.w, x.m, $2 \
             FROM json_to_recordset($3::json) AS x(s text, w double precision, m json)",
            " ON CONFLICT (group_id, symbol) \
             DO UPDATE SET weight = EXCLUDED.weight, metadata = EXCLUDED.metadata",
        ),
        // `WHERE true`: an upsert's SELECT needs a WHERE to parse unambiguously.
        _ => (
            "INSERT INTO group_memberships (group_id, symbol, weight, metadata, added_at) \
             SELECT ?, j.value ->> 's', j.value ->> 'w', j.value ->> 'm', ? \
             FROM json_each(?) AS j WHERE true",
            " ON CONFLICT (group_id, symbol) \
             DO UPDATE SET weight = excluded.weight, metadata = excluded.metadata",
        ),
    };
    let sql = if upsert {
        format!("{insert}{upsert_clause}")
    } else {
        insert.to_owned()
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [group_id.into(), now.into(), json_text(&rows)?.into()],
    ))
    .await?;
    Ok(())
}

/// Rows as the JSON text a bulk statement takes.
fn json_text(rows: &impl serde::Serialize) -> Result<String, DbErr> {
    serde_json::to_string(rows).map_err(|e| DbErr::Custom(format!("cannot encode rows: {e}")))
}

/// One membership change to record, borrowing what it names from the diff.
pub struct ChangeRow<'a> {
    pub group_type: GroupType,
    pub group_name: &'a str,
    pub symbol: &'a str,
    pub change: ChangeKind,
    pub old_weight: Option<f64>,
    pub new_weight: Option<f64>,
    /// The metadata before the change (`removed`, `reweighted`, `updated`).
    pub old_metadata: Option<&'a serde_json::Value>,
    /// The metadata after it (`reweighted`, `updated`). An `added` row has none: the
    /// membership it added holds it, and undoing it removes the membership; at a million
    /// rows a load, recording it again cost a third of a full load's time.
    pub new_metadata: Option<&'a serde_json::Value>,
}

/// The change rows of one group's diff: each with what undoing it needs (the old side of a
/// removal or an update). A change of metadata alone is an `updated` row (its weights are the
/// same).
pub fn change_rows<'a>(
    group_type: GroupType,
    group_name: &'a str,
    diff: &'a GroupDiff,
) -> impl Iterator<Item = ChangeRow<'a>> {
    let added = diff.added.iter().map(move |(symbol, d)| ChangeRow {
        group_type,
        group_name,
        symbol: symbol.as_str(),
        change: ChangeKind::Added,
        old_weight: None,
        new_weight: d.weight,
        old_metadata: None,
        new_metadata: None,
    });
    let removed = diff.removed.iter().map(move |r| ChangeRow {
        group_type,
        group_name,
        symbol: r.symbol.as_str(),
        change: ChangeKind::Removed,
        old_weight: r.weight,
        new_weight: None,
        old_metadata: r.metadata.as_ref(),
        new_metadata: None,
    });
    let updated = diff.updated.iter().map(move |u| ChangeRow {
        group_type,
        group_name,
        symbol: u.symbol.as_str(),
        change: if u.is_reweight() {
            ChangeKind::Reweighted
        } else {
            ChangeKind::Updated
        },
        old_weight: u.old_weight,
        new_weight: u.new_weight,
        old_metadata: u.old_metadata.as_ref(),
        new_metadata: Some(&u.metadata),
    });
    added.chain(removed).chain(updated)
}

/// Records membership changes for a run, in bulk statements.
pub async fn record_changes<'a>(
    db: &impl ConnectionTrait,
    run_id: i32,
    rows: impl IntoIterator<Item = ChangeRow<'a>>,
) -> Result<(), DbErr> {
    let mut batch = Vec::with_capacity(BULK_CHUNK);
    for row in rows {
        batch.push(BulkChange {
            t: row.group_type.as_str(),
            g: row.group_name,
            s: row.symbol,
            c: row.change.as_str(),
            o: row.old_weight,
            n: row.new_weight,
            om: row.old_metadata,
            nm: row.new_metadata,
        });
        if batch.len() == BULK_CHUNK {
            insert_changes(db, run_id, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        insert_changes(db, run_id, batch).await?;
    }
    Ok(())
}

/// A change as a bulk statement's JSON carries it, borrowed.
#[derive(serde::Serialize)]
struct BulkChange<'a> {
    t: &'a str,
    g: &'a str,
    s: &'a str,
    c: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    om: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nm: Option<&'a serde_json::Value>,
}

async fn insert_changes(
    db: &impl ConnectionTrait,
    run_id: i32,
    rows: Vec<BulkChange<'_>>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO membership_changes \
             (run_id, group_type, group_name, symbol, change, old_weight, new_weight, \
             old_metadata, new_metadata) \
             SELECT $1, x.t, x.g, x.s, x.c, x.o, x.n, x.om, x.nm FROM json_to_recordset($2::json) \
             AS x(t text, g text, s text, c text, o double precision, n double precision, \
             om json, nm json)"
        }
        _ => {
            "INSERT INTO membership_changes \
             (run_id, group_type, group_name, symbol, change, old_weight, new_weight, \
             old_metadata, new_metadata) \
             SELECT ?, j.value ->> 't', j.value ->> 'g', j.value ->> 's', j.value ->> 'c', \
             j.value ->> 'o', j.value ->> 'n', j.value ->> 'om', j.value ->> 'nm' \
             FROM json_each(?) AS j"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [run_id.into(), json_text(&rows)?.into()],
    ))
    .await?;
    Ok(())
}

/// One change to a group itself (its existence, description or metadata) to record.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupChangeRow {
    pub group_type: GroupType,
    pub group_name: String,
    pub change: GroupChangeKind,
    pub old_description: Option<String>,
    pub old_metadata: Option<serde_json::Value>,
    pub new_description: Option<String>,
    pub new_metadata: Option<serde_json::Value>,
}

/// Records a run's group changes (at most one per group), in multi-row statements.
pub async fn record_group_changes(
    db: &impl ConnectionTrait,
    run_id: i32,
    rows: Vec<GroupChangeRow>,
) -> Result<(), DbErr> {
    let mut models = rows.into_iter().map(|row| group_change::ActiveModel {
        id: NotSet,
        run_id: Set(run_id),
        group_type: Set(row.group_type.as_str().to_owned()),
        group_name: Set(row.group_name),
        change: Set(row.change.as_str().to_owned()),
        old_description: Set(row.old_description),
        old_metadata: Set(row.old_metadata),
        new_description: Set(row.new_description),
        new_metadata: Set(row.new_metadata),
    });
    loop {
        let chunk: Vec<_> = models.by_ref().take(INSERT_CHUNK).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        group_change::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
}

/// Removes a group and (by cascade) its memberships.
pub async fn delete_group(db: &impl ConnectionTrait, group_id: i32) -> Result<(), DbErr> {
    group_membership::Entity::delete_many()
        .filter(group_membership::Column::GroupId.eq(group_id))
        .exec(db)
        .await?;
    definition_group::Entity::delete_by_id(group_id)
        .exec(db)
        .await?;
    Ok(())
}

/// The PostgreSQL channel a load notifies when it commits a new data version; the payload is
/// `environment:version`.
pub const VERSION_CHANNEL: &str = "holdgraph_data_version";

/// Bumps an environment's data version in one statement (`version = version + 1 ...
/// RETURNING`) and returns the new value: two writers can never commit the same version.
pub async fn bump_data_version(
    db: &impl ConnectionTrait,
    environment: &str,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let mut stmt = Query::insert();
    stmt.into_table(data_version::Entity).columns([
        data_version::Column::Environment,
        data_version::Column::Version,
        data_version::Column::UpdatedAt,
    ]);
    stmt.values([environment.into(), 1i64.into(), now.into()])
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    stmt.on_conflict(
        OnConflict::column(data_version::Column::Environment)
            .value(
                data_version::Column::Version,
                Expr::col((data_version::Entity, data_version::Column::Version)).add(1),
            )
            .update_column(data_version::Column::UpdatedAt)
            .to_owned(),
    )
    .returning_col(data_version::Column::Version);
    let row = db
        .query_one(&stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the bumped data version".to_owned()))?;
    let version: i64 = row.try_get("", "version")?;
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Delivered when (and only if) the load's transaction commits: every server listening
        // builds the new snapshot at once.
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                VERSION_CHANNEL.into(),
                format!("{environment}:{version}").into(),
            ],
        ))
        .await?;
    }
    Ok(version)
}
