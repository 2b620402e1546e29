//! `query`: look-ups from the command line, as text tables or JSON.

use clap::Args;
use entity::{GroupType, definition_group, group_membership};
use loader::graph;
use loader::symbol::Symbol;
use loader::table::{Cell, Kind, Table};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::{Exit, Io};
use crate::config::Config;

/// What to look up (exactly one).
#[derive(Args, Debug, Clone, Default)]
#[command(group(
    clap::ArgGroup::new("lookup")
        .required(true)
        .multiple(false)
        .args(["stock", "etf", "sector", "industry", "theme", "universe", "stats"])
))]
pub struct QueryArgs {
    /// A stock: its name, sector, industry, ETFs with weights, themes and universes.
    #[arg(long)]
    pub stock: Option<String>,
    /// An ETF's holdings, heaviest first.
    #[arg(long)]
    pub etf: Option<String>,
    /// Sectors whose key or name contains this text (`technology`), with their stocks.
    #[arg(long)]
    pub sector: Option<String>,
    /// Stocks whose industry contains this text.
    #[arg(long)]
    pub industry: Option<String>,
    /// A theme's members.
    #[arg(long)]
    pub theme: Option<String>,
    /// A universe's members.
    #[arg(long)]
    pub universe: Option<String>,
    /// Counts of everything.
    #[arg(long)]
    pub stats: bool,
    /// How many members to list (0 for all).
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(
    args: &QueryArgs,
    config: &Config,
    db: &DatabaseConnection,
    io: &mut Io<'_>,
) -> anyhow::Result<Exit> {
    let env = config.environment.as_str();
    let found = if let Some(symbol) = &args.stock {
        stock(db, env, symbol).await?
    } else if let Some(name) = &args.etf {
        group(db, env, GroupType::Etf, name, args.limit).await?
    } else if let Some(name) = &args.theme {
        group(db, env, GroupType::Theme, name, args.limit).await?
    } else if let Some(name) = &args.universe {
        group(db, env, GroupType::Universe, name, args.limit).await?
    } else if let Some(text) = &args.sector {
        sector(db, env, text, args.limit).await?
    } else if let Some(text) = &args.industry {
        industry(db, env, text, args.limit).await?
    } else {
        Some(stats(db, env).await?)
    };
    let Some(answer) = found else {
        let what = [
            args.stock.as_ref().map(|s| format!("stock {s}")),
            args.etf.as_ref().map(|s| format!("ETF {s}")),
            args.theme.as_ref().map(|s| format!("theme {s}")),
            args.universe.as_ref().map(|s| format!("universe {s}")),
            args.sector
                .as_ref()
                .map(|s| format!("sector matching {s:?}")),
            args.industry
                .as_ref()
                .map(|s| format!("industry matching {s:?}")),
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
        writeln!(io.err, "error: no {what} in environment {env}")?;
        return Ok(Exit::Failure);
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *io.out, &answer.json)?;
        writeln!(io.out)?;
    } else {
        write!(io.out, "{}", answer.text)?;
    }
    Ok(Exit::Success)
}

/// A look-up's answer in both forms.
struct Answer {
    json: Value,
    text: String,
}

/// A console table of these columns and rows, with its final newline.
fn table<R: IntoIterator<Item = Cell>>(
    columns: &[(&str, Kind)],
    rows: impl IntoIterator<Item = R>,
) -> String {
    let mut t = Table::new(columns.iter().copied());
    t.rows(rows);
    format!("{t}\n")
}

fn meta_str<'a>(m: &'a group_membership::Model, key: &str) -> Option<&'a str> {
    m.metadata.as_ref().and_then(|v| v[key].as_str())
}

fn display_name(g: &definition_group::Model) -> String {
    g.metadata
        .as_ref()
        .and_then(|m| m["display_name"].as_str())
        .map_or_else(|| g.name.clone(), str::to_owned)
}

fn limited<T>(list: &[T], limit: usize) -> &[T] {
    if limit == 0 {
        list
    } else {
        &list[..list.len().min(limit)]
    }
}

async fn stock(db: &DatabaseConnection, env: &str, raw: &str) -> anyhow::Result<Option<Answer>> {
    let Ok(symbol) = Symbol::parse(raw) else {
        return Ok(None);
    };
    let symbol = symbol.as_str().to_owned();
    let mut found = graph::memberships_of_symbols(db, env, std::slice::from_ref(&symbol)).await?;
    let Some(list) = found.remove(&symbol) else {
        return Ok(None);
    };
    let of = |t: GroupType| list.iter().filter(move |(_, g)| g.group_type == t.as_str());
    let sector = of(GroupType::Sector).next();
    let name = sector
        .and_then(|(m, _)| meta_str(m, "name"))
        .or_else(|| list.iter().find_map(|(m, _)| meta_str(m, "name")))
        .map(str::to_owned);
    let industry = sector
        .and_then(|(m, _)| meta_str(m, "industry"))
        .map(str::to_owned);
    let source = sector
        .and_then(|(m, _)| meta_str(m, "source"))
        .map(str::to_owned);
    let sector_key = sector.map_or("unknown".to_owned(), |(_, g)| g.name.clone());
    let etfs: Vec<(String, Option<f64>)> = of(GroupType::Etf)
        .map(|(m, g)| (g.name.clone(), m.weight))
        .collect();
    let names = |t: GroupType| of(t).map(|(_, g)| g.name.clone()).collect::<Vec<_>>();
    let (themes, universes) = (names(GroupType::Theme), names(GroupType::Universe));
    let json = json!({
        "symbol": symbol,
        "name": name,
        "sector": sector_key,
        "sector_source": source,
        "industry": industry,
        "etfs": etfs.iter().map(|(e, w)| json!({"etf": e, "weight": w})).collect::<Vec<_>>(),
        "themes": themes,
        "universes": universes,
    });
    let mut text = format!(
        "{symbol} {}\nsector: {sector_key}{}\nindustry: {}\nthemes: {}\nuniverses: {}\n",
        name.as_deref().unwrap_or(""),
        source.map(|s| format!(" (from {s})")).unwrap_or_default(),
        industry.as_deref().unwrap_or("-"),
        if themes.is_empty() {
            "-".to_owned()
        } else {
            themes.join(", ")
        },
        if universes.is_empty() {
            "-".to_owned()
        } else {
            universes.join(", ")
        },
    );
    text.push_str(&format!("held by {} ETFs:\n", etfs.len()));
    text.push_str(&table(
        &[("ETF", Kind::Text), ("weight %", Kind::WEIGHT)],
        etfs.iter().map(|(e, w)| [Cell::from(e), (*w).into()]),
    ));
    Ok(Some(Answer { json, text }))
}

fn member_rows(members: &[group_membership::Model]) -> impl Iterator<Item = [Cell; 4]> {
    members.iter().map(|m| {
        [
            Cell::from(&m.symbol),
            meta_str(m, "name").into(),
            m.weight.into(),
            meta_str(m, "industry").into(),
        ]
    })
}

fn member_json(members: &[group_membership::Model]) -> Vec<Value> {
    members
        .iter()
        .map(|m| {
            json!({
                "symbol": m.symbol,
                "name": meta_str(m, "name"),
                "weight": m.weight,
                "industry": meta_str(m, "industry"),
            })
        })
        .collect()
}

async fn group(
    db: &DatabaseConnection,
    env: &str,
    group_type: GroupType,
    name: &str,
    limit: usize,
) -> anyhow::Result<Option<Answer>> {
    let Some(g) = graph::group(db, env, group_type, name).await? else {
        return Ok(None);
    };
    let mut members = graph::members_of_groups(db, &[g.id]).await?;
    let list = members.remove(&g.id).unwrap_or_default();
    Ok(Some(describe_group(&g, &list, limit)))
}

fn describe_group(
    g: &definition_group::Model,
    list: &[group_membership::Model],
    limit: usize,
) -> Answer {
    let total: f64 = list.iter().filter_map(|m| m.weight).sum();
    let shown = limited(list, limit);
    let json = json!({
        "type": g.group_type,
        "name": g.name,
        "description": g.description,
        "members": list.len(),
        "total_weight": list.iter().any(|m| m.weight.is_some()).then_some(total),
        "listed": member_json(shown),
    });
    let mut text = format!(
        "{} {} — {}\n{} members",
        g.group_type,
        g.name,
        g.description.as_deref().unwrap_or(""),
        list.len()
    );
    if list.iter().any(|m| m.weight.is_some()) {
        text.push_str(&format!(", total weight {total:.2} %"));
    }
    if shown.len() < list.len() {
        text.push_str(&format!(
            " (first {} shown; --limit 0 lists all)",
            shown.len()
        ));
    }
    text.push('\n');
    text.push_str(&table(
        &[
            ("symbol", Kind::Text),
            ("name", Kind::Text),
            ("weight %", Kind::WEIGHT),
            ("industry", Kind::Text),
        ],
        member_rows(shown),
    ));
    Answer { json, text }
}

fn folded(s: &str) -> String {
    s.to_lowercase().replace(['_', '-'], " ")
}

async fn sector(
    db: &DatabaseConnection,
    env: &str,
    text: &str,
    limit: usize,
) -> anyhow::Result<Option<Answer>> {
    let wanted = folded(text.trim());
    let matching: Vec<definition_group::Model> = graph::groups(db, env, Some(GroupType::Sector))
        .await?
        .into_iter()
        .filter(|g| folded(&g.name).contains(&wanted) || folded(&display_name(g)).contains(&wanted))
        .collect();
    if matching.is_empty() {
        return Ok(None);
    }
    let ids: Vec<i32> = matching.iter().map(|g| g.id).collect();
    let mut members = graph::members_of_groups(db, &ids).await?;
    let mut json_out = Vec::new();
    let mut text_out = String::new();
    for g in &matching {
        let mut list = members.remove(&g.id).unwrap_or_default();
        list.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let answer = describe_group(g, &list, limit);
        json_out.push(answer.json);
        text_out.push_str(&answer.text);
    }
    Ok(Some(Answer {
        json: Value::Array(json_out),
        text: text_out,
    }))
}

async fn industry(
    db: &DatabaseConnection,
    env: &str,
    text: &str,
    limit: usize,
) -> anyhow::Result<Option<Answer>> {
    let wanted = text.trim().to_lowercase();
    let sectors = graph::groups(db, env, Some(GroupType::Sector)).await?;
    let ids: Vec<i32> = sectors.iter().map(|g| g.id).collect();
    let members = graph::members_of_groups(db, &ids).await?;
    let mut hits: Vec<(String, group_membership::Model)> = Vec::new();
    for g in &sectors {
        for m in members.get(&g.id).into_iter().flatten() {
            if meta_str(m, "industry").is_some_and(|i| i.to_lowercase().contains(&wanted)) {
                hits.push((g.name.clone(), m.clone()));
            }
        }
    }
    if hits.is_empty() {
        return Ok(None);
    }
    hits.sort_by(|a, b| a.1.symbol.cmp(&b.1.symbol));
    let shown = limited(&hits, limit);
    let json = json!({
        "industry": text,
        "stocks": hits.len(),
        "listed": shown.iter().map(|(s, m)| json!({
            "symbol": m.symbol, "name": meta_str(m, "name"), "sector": s,
            "industry": meta_str(m, "industry"),
        })).collect::<Vec<_>>(),
    });
    let mut out = format!("{} stocks in industries matching {text:?}\n", hits.len());
    out.push_str(&table(
        &[
            ("symbol", Kind::Text),
            ("name", Kind::Text),
            ("sector", Kind::Text),
            ("industry", Kind::Text),
        ],
        shown.iter().map(|(s, m)| {
            [
                Cell::from(&m.symbol),
                meta_str(m, "name").into(),
                s.into(),
                meta_str(m, "industry").into(),
            ]
        }),
    ));
    Ok(Some(Answer { json, text: out }))
}

async fn stats(db: &DatabaseConnection, env: &str) -> anyhow::Result<Answer> {
    let groups = graph::groups(db, env, None).await?;
    let ids: Vec<i32> = groups.iter().map(|g| g.id).collect();
    let totals = graph::group_totals(db, &ids).await?;
    let mut rows = Vec::new();
    let mut json_types = serde_json::Map::new();
    for t in GroupType::ALL {
        let of: Vec<&definition_group::Model> = groups
            .iter()
            .filter(|g| g.group_type == t.as_str())
            .collect();
        let members: i64 = of
            .iter()
            .map(|g| totals.get(&g.id).map_or(0, |t| t.0))
            .sum();
        rows.push([t.to_string().into(), of.len().into(), members.into()]);
        json_types.insert(
            t.to_string(),
            json!({"groups": of.len(), "memberships": members}),
        );
    }
    let stocks = loader::validate::stock_count(db, env).await?;
    let version = loader::store::data_version(db, env).await?;
    let json =
        json!({"environment": env, "stocks": stocks, "data_version": version, "types": json_types});
    let mut text = format!("environment {env}: {stocks} stocks, data version {version}\n");
    text.push_str(&table(
        &[
            ("type", Kind::Text),
            ("groups", Kind::Count),
            ("memberships", Kind::Count),
        ],
        rows,
    ));
    Ok(Answer { json, text })
}
