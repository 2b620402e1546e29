//! `Stock`: a symbol that appears in any membership, with its sector, ETFs, themes and
//! universes.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use entity::GroupType;
use loader::symbol::Symbol;

use super::group::{Group, GroupKind};
use super::membership::Membership;
use super::{
    Cursors, PageInfo, page_size, prefetch_stocks, selects_stock_data, snapshot, state,
    stock_members,
};
use crate::cache::StockMembers;

/// A stock: any symbol held by an ETF or listed in a universe or theme.
pub struct Stock {
    symbol: String,
}

impl Stock {
    /// A stock by its normalised symbol.
    pub fn new(symbol: String) -> Self {
        Self { symbol }
    }

    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<StockMembers> {
        stock_members(ctx, &self.symbol).await
    }

    async fn of(
        &self,
        ctx: &Context<'_>,
        kind: Option<GroupType>,
    ) -> async_graphql::Result<Vec<Membership>> {
        Ok(self
            .members(ctx)
            .await?
            .iter()
            .filter(|m| kind.is_none_or(|k| m.group.group_type == k.as_str()))
            .map(|m| Membership {
                membership: m.membership.clone(),
                group: m.group.clone(),
            })
            .collect())
    }

    async fn sector_membership(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Membership>> {
        Ok(self
            .of(ctx, Some(GroupType::Sector))
            .await?
            .into_iter()
            .next())
    }
}

/// A stock: any symbol held by an ETF or listed in a universe or theme. Its sector, name and
/// industry come from its one `SECTOR` membership.
#[Object]
impl Stock {
    /// The normalised symbol (`BRK.B`).
    async fn symbol(&self) -> &str {
        &self.symbol
    }

    /// The name shown for the stock (see `build-stock-metadata`); null when no file names it.
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let members = self.members(ctx).await?;
        let from_sector = members
            .iter()
            .find(|m| m.group.group_type == GroupType::Sector.as_str())
            .and_then(|m| {
                m.membership.metadata.as_ref()?["name"]
                    .as_str()
                    .map(str::to_owned)
            });
        Ok(from_sector.or_else(|| {
            members.iter().find_map(|m| {
                m.membership.metadata.as_ref()?["name"]
                    .as_str()
                    .map(str::to_owned)
            })
        }))
    }

    /// The sector key (`information_technology`), `unknown` when the stock has none.
    async fn sector(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(self
            .sector_membership(ctx)
            .await?
            .map_or_else(|| "unknown".to_owned(), |m| m.group.name.clone()))
    }

    /// Where the sector came from: `manual`, `provider`, `sector_etf`, `classification` or
    /// `none`; null before enrichment.
    async fn sector_source(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self.sector_membership(ctx).await?.and_then(|m| {
            m.membership.metadata.as_ref()?["source"]
                .as_str()
                .map(str::to_owned)
        }))
    }

    /// The industry a source gave; null when none did.
    async fn industry(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self.sector_membership(ctx).await?.and_then(|m| {
            m.membership.metadata.as_ref()?["industry"]
                .as_str()
                .map(str::to_owned)
        }))
    }

    /// The ETFs holding the stock, heaviest weight first.
    async fn etfs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Membership>> {
        self.of(ctx, Some(GroupType::Etf)).await
    }

    /// The themes the stock belongs to.
    async fn themes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        Ok(self
            .of(ctx, Some(GroupType::Theme))
            .await?
            .into_iter()
            .map(|m| Group(m.group))
            .collect())
    }

    /// The universes listing the stock.
    async fn universes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        Ok(self
            .of(ctx, Some(GroupType::Universe))
            .await?
            .into_iter()
            .map(|m| Group(m.group))
            .collect())
    }

    /// Every membership of the stock, or those of one group type.
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", desc = "Only groups of this type (default every type).")]
        kind: Option<GroupKind>,
    ) -> async_graphql::Result<Vec<Membership>> {
        self.of(ctx, kind.map(GroupType::from)).await
    }

    /// How many ETFs hold the stock.
    async fn etf_count(&self, ctx: &Context<'_>) -> async_graphql::Result<usize> {
        Ok(self.of(ctx, Some(GroupType::Etf)).await?.len())
    }

    /// How many groups of any type the stock belongs to.
    async fn group_count(&self, ctx: &Context<'_>) -> async_graphql::Result<usize> {
        Ok(self.members(ctx).await?.len())
    }
}

/// Which stocks `stocks` lists.
#[derive(InputObject, Default)]
pub struct StockFilter {
    /// Symbols starting with this text (any case).
    pub symbol_prefix: Option<String>,
    /// Members of this group, written like `symbols` takes them (`SPY`, `nasdaq100`).
    pub group: Option<String>,
}

/// A page of stocks.
#[derive(SimpleObject)]
pub struct StockConnection {
    /// Stocks matching the filter, all pages together.
    pub total_count: usize,
    /// Whether more pages follow, and the cursor to ask for the next.
    pub page_info: PageInfo,
    /// This page's stocks.
    pub edges: Vec<StockEdge>,
}

/// A stock and its cursor.
#[derive(SimpleObject)]
pub struct StockEdge {
    /// Pass as `after` to continue after this stock.
    pub cursor: String,
    /// The stock.
    pub node: Stock,
}

/// Stock look-ups.
#[derive(Default)]
pub struct StockQuery;

#[Object]
impl StockQuery {
    /// A stock by symbol, normalised like the loaders do (`brk-b` finds `BRK.B`); null when no
    /// group has it.
    async fn stock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any spelling: trimmed, upper-cased, share classes as `BRK.B`.")]
        symbol: String,
    ) -> async_graphql::Result<Option<Stock>> {
        let Ok(symbol) = Symbol::parse(&symbol) else {
            return Ok(None);
        };
        let members = stock_members(ctx, symbol.as_str()).await?;
        Ok((!members.is_empty()).then(|| Stock::new(symbol.as_str().to_owned())))
    }

    /// Stocks in symbol order, paged.
    #[graphql(complexity = "first.unwrap_or(25).max(0) as usize * child_complexity")]
    async fn stocks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which stocks (default all).")] filter: Option<StockFilter>,
        #[graphql(desc = "Page size (default 25).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<StockConnection> {
        let size = page_size(ctx, first, 25)?;
        let cursors = Cursors::of(ctx)?;
        let offset = cursors.after(after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let mut symbols: Vec<String> = match &filter.group {
            Some(reference) => super::group::members_of_reference(ctx, reference)
                .await?
                .into_iter()
                .collect(),
            None => state(ctx)?
                .stock_symbols(&*snapshot(ctx)?)
                .await
                .map_err(super::error::internal)?
                .to_vec(),
        };
        if let Some(prefix) = &filter.symbol_prefix {
            let prefix = prefix.trim().to_ascii_uppercase();
            symbols.retain(|s| s.starts_with(&prefix));
        }
        let (range, page_info) = cursors.page(symbols.len(), offset, size);
        if selects_stock_data(&ctx.look_ahead().field("edges").field("node")) {
            prefetch_stocks(ctx, &symbols[range.clone()]).await?;
        }
        let edges = symbols[range.clone()]
            .iter()
            .zip(range)
            .map(|(s, i)| StockEdge {
                cursor: cursors.at(i),
                node: Stock::new(s.clone()),
            })
            .collect();
        Ok(StockConnection {
            total_count: symbols.len(),
            page_info,
            edges,
        })
    }
}
