//! Read paths over the stored graph, shared by the GraphQL API and by validation (which checks
//! that both directions of every relationship agree when read through these same functions).
//! Every function is scoped to an environment and batches its look-ups into `IN (...)` lists.

use std::collections::HashMap;

use entity::{GroupType, definition_group, group_membership};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::store::CHUNK;

/// A group's stored name for a user's spelling: ETF tickers upper case, other keys lower case.
pub fn normalise_group_name(group_type: GroupType, name: &str) -> String {
    let name = name.trim();
    match group_type {
        GroupType::Etf => name.to_ascii_uppercase(),
        _ => name.to_ascii_lowercase(),
    }
}

/// One group by type and name (any case), or `None`.
pub async fn group(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: GroupType,
    name: &str,
) -> Result<Option<definition_group::Model>, DbErr> {
    definition_group::Entity::find()
        .filter(definition_group::Column::Environment.eq(environment))
        .filter(definition_group::Column::GroupType.eq(group_type.as_str()))
        .filter(definition_group::Column::Name.eq(normalise_group_name(group_type, name)))
        .one(db)
        .await
}

/// Every group of an environment (of one type, when given), ordered by type and name.
pub async fn groups(
    db: &impl ConnectionTrait,
    environment: &str,
    group_type: Option<GroupType>,
) -> Result<Vec<definition_group::Model>, DbErr> {
    let mut query = definition_group::Entity::find()
        .filter(definition_group::Column::Environment.eq(environment));
    if let Some(t) = group_type {
        query = query.filter(definition_group::Column::GroupType.eq(t.as_str()));
    }
    query
        .order_by_asc(definition_group::Column::GroupType)
        .order_by_asc(definition_group::Column::Name)
        .all(db)
        .await
}

/// The memberships of the given groups, each group's list heaviest first, then by symbol.
pub async fn members_of_groups(
    db: &impl ConnectionTrait,
    group_ids: &[i32],
) -> Result<HashMap<i32, Vec<group_membership::Model>>, DbErr> {
    let mut out: HashMap<i32, Vec<group_membership::Model>> = HashMap::new();
    for chunk in group_ids.chunks(CHUNK) {
        for m in group_membership::Entity::find()
            .filter(group_membership::Column::GroupId.is_in(chunk.iter().copied()))
            .all(db)
            .await?
        {
            out.entry(m.group_id).or_default().push(m);
        }
    }
    for members in out.values_mut() {
        sort_heaviest_first(members);
    }
    Ok(out)
}

/// Heavier first; no weight last. The one order of weights every read path uses.
pub fn heavier_first(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    heaviest_first_key(a).cmp(&heaviest_first_key(b))
}

/// [`heavier_first`] as a sort key, for sorts that compare many times: `f64::total_cmp`'s
/// order as an integer, reversed.
pub fn heaviest_first_key(weight: Option<f64>) -> std::cmp::Reverse<i64> {
    let bits = weight.unwrap_or(f64::NEG_INFINITY).to_bits() as i64;
    std::cmp::Reverse(bits ^ ((((bits >> 63) as u64) >> 1) as i64))
}

/// Orders memberships heaviest first (no weight last), ties by symbol.
pub fn sort_heaviest_first(members: &mut [group_membership::Model]) {
    members.sort_by(|a, b| heavier_first(a.weight, b.weight).then_with(|| a.symbol.cmp(&b.symbol)));
}

/// Every membership of the given symbols in an environment, with its group, by symbol; each
/// symbol's list is heaviest first.
///
/// Groups are read once and joined in memory: a SQL join would repeat each group's row (and
/// parse its metadata) for every membership, which dominated batch look-ups.
pub async fn memberships_of_symbols(
    db: &impl ConnectionTrait,
    environment: &str,
    symbols: &[String],
) -> Result<HashMap<String, Vec<(group_membership::Model, definition_group::Model)>>, DbErr> {
    let groups: HashMap<i32, definition_group::Model> = groups(db, environment, None)
        .await?
        .into_iter()
        .map(|g| (g.id, g))
        .collect();
    let mut out: HashMap<String, Vec<(group_membership::Model, definition_group::Model)>> =
        HashMap::new();
    for chunk in symbols.chunks(CHUNK) {
        let rows = group_membership::Entity::find()
            .filter(group_membership::Column::Symbol.is_in(chunk.iter().cloned()))
            .all(db)
            .await?;
        for m in rows {
            if let Some(g) = groups.get(&m.group_id) {
                out.entry(m.symbol.clone())
                    .or_default()
                    .push((m, g.clone()));
            }
        }
    }
    for list in out.values_mut() {
        list.sort_by(|(a, ga), (b, gb)| {
            heavier_first(a.weight, b.weight).then_with(|| ga.name.cmp(&gb.name))
        });
    }
    Ok(out)
}

/// Every distinct symbol with a membership in a group of the given types.
pub async fn symbols_in(
    db: &impl ConnectionTrait,
    environment: &str,
    types: &[GroupType],
) -> Result<Vec<String>, DbErr> {
    group_membership::Entity::find()
        .select_only()
        .column(group_membership::Column::Symbol)
        .distinct()
        .inner_join(definition_group::Entity)
        .filter(definition_group::Column::Environment.eq(environment))
        .filter(definition_group::Column::GroupType.is_in(types.iter().map(|t| t.as_str())))
        .order_by_asc(group_membership::Column::Symbol)
        .into_tuple()
        .all(db)
        .await
}

/// Member count and total weight of each group.
pub async fn group_totals(
    db: &impl ConnectionTrait,
    group_ids: &[i32],
) -> Result<HashMap<i32, (i64, Option<f64>)>, DbErr> {
    let mut out = HashMap::new();
    for chunk in group_ids.chunks(CHUNK) {
        let rows: Vec<(i32, i64, Option<f64>)> = group_membership::Entity::find()
            .select_only()
            .column(group_membership::Column::GroupId)
            .column_as(group_membership::Column::Id.count(), "n")
            .column_as(group_membership::Column::Weight.sum(), "total")
            .filter(group_membership::Column::GroupId.is_in(chunk.iter().copied()))
            .group_by(group_membership::Column::GroupId)
            .into_tuple()
            .all(db)
            .await?;
        for (id, n, total) in rows {
            out.insert(id, (n, total));
        }
    }
    Ok(out)
}

/// A recorded load run without its stored report (which can be large).
#[derive(Clone, Debug, PartialEq, sea_orm::DerivePartialModel)]
#[sea_orm(entity = "entity::load_run::Entity")]
pub struct RunSummary {
    pub id: i32,
    pub kind: String,
    pub mode: String,
    pub scope: Option<String>,
    pub source: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub state: String,
    pub holder: Option<String>,
    pub files_total: i32,
    pub files_loaded: i32,
    pub files_unchanged: i32,
    pub files_rejected: i32,
    pub created: i32,
    pub updated: i32,
    pub deleted: i32,
    pub skipped: i32,
    pub data_version: Option<i64>,
    pub error: Option<String>,
}

/// Load runs of an environment by id (those that exist).
pub async fn runs_by_id(
    db: &impl ConnectionTrait,
    environment: &str,
    ids: &[i32],
) -> Result<Vec<RunSummary>, DbErr> {
    use entity::load_run;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        out.extend(
            load_run::Entity::find()
                .filter(load_run::Column::Environment.eq(environment))
                .filter(load_run::Column::Id.is_in(chunk.iter().copied()))
                .into_partial_model::<RunSummary>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_key_orders_as_total_cmp_heaviest_first_with_no_weight_last() {
        let weights = [
            None,
            Some(f64::NAN),
            Some(-f64::NAN),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(100.0),
            Some(14.59997),
            Some(0.31),
            Some(f64::MIN_POSITIVE),
            Some(0.0),
            Some(-0.0),
            Some(-0.25),
            Some(-1e300),
        ];
        for a in weights {
            for b in weights {
                let by_value = b
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&a.unwrap_or(f64::NEG_INFINITY));
                assert_eq!(heavier_first(a, b), by_value, "{a:?} against {b:?}");
            }
        }
        assert!(heaviest_first_key(Some(0.0)) < heaviest_first_key(None));
        assert!(heaviest_first_key(Some(2.0)) < heaviest_first_key(Some(1.0)));
    }
}
