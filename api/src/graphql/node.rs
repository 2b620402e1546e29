//! Relay global object identification: stocks and groups implement `Node` with an opaque
//! global `id`, and `node(id:)` / `nodes(ids:)` answer it.
//!
//! An id is base64url (no padding) of `Stock:<symbol>` or `Group:<TYPE>:<name>`
//! (`Stock:AAPL`, `Group:ETF:SPY`): it names the thing, not a row or a data version, so it
//! stays valid across loads and answers with the thing as the data served now has it.

use async_graphql::{Context, ID, Interface, Object};
use entity::GroupType;

use super::error::bad_input;
use super::group::Group;
use super::stock::Stock;
use super::{page_size, snapshot};

/// An object with a global id: `node(id:)` finds it again.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The global id: opaque, the same across loads; `node(id:)` finds it again."
))]
pub enum Node {
    Stock(Stock),
    Group(Group),
}

/// What a global id names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GlobalId {
    Stock(String),
    Group(GroupType, String),
}

impl GlobalId {
    /// The id as clients see it.
    pub(crate) fn encode(&self) -> ID {
        let text = match self {
            Self::Stock(symbol) => format!("Stock:{symbol}"),
            Self::Group(kind, name) => format!("Group:{kind}:{name}"),
        };
        ID(super::opaque::encode(text.as_bytes()))
    }

    /// Reads an id; `None` when it is not one of ours.
    pub(crate) fn decode(id: &str) -> Option<Self> {
        let text = String::from_utf8(super::opaque::decode(id)?).ok()?;
        match text.split_once(':')? {
            ("Stock", symbol) if !symbol.is_empty() => Some(Self::Stock(symbol.to_owned())),
            ("Group", rest) => {
                let (kind, name) = rest.split_once(':')?;
                Some(Self::Group(kind.parse().ok()?, name.to_owned()))
            }
            _ => None,
        }
    }
}

/// `node` and `nodes`.
#[derive(Default)]
pub struct NodeQuery;

fn find(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Option<Node>> {
    let global = GlobalId::decode(id)
        .ok_or_else(|| bad_input(format!("{:?} is not an id from this API", id.as_str())))?;
    let snap = snapshot(ctx)?;
    Ok(match global {
        GlobalId::Stock(symbol) => snap
            .stock(&symbol)
            .map(|s| Node::Stock(Stock::new(snap.clone(), s))),
        GlobalId::Group(kind, name) => snap
            .find(kind, &name)
            .map(|g| Node::Group(Group::new(snap.clone(), g))),
    })
}

#[Object]
impl NodeQuery {
    /// The stock or group with this global id; null when the data served now has none (a stock
    /// no group holds any more). An id that is not from this API is a BAD_USER_INPUT error.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as a stock's or group's `id` gives it.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        find(ctx, &id)
    }

    /// The stocks and groups with these global ids, in the order asked; null where the data
    /// served now has none.
    #[graphql(complexity = "ids.len() * child_complexity")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids (at most the page size limit).")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        page_size(ctx, Some(i32::try_from(ids.len()).unwrap_or(i32::MAX)), 0)?;
        ids.iter().map(|id| find(ctx, id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_stocks_and_groups_and_read_back() {
        let aapl = GlobalId::Stock("AAPL".into());
        assert_eq!(aapl.encode().0, "U3RvY2s6QUFQTA");
        assert_eq!(GlobalId::decode("U3RvY2s6QUFQTA"), Some(aapl));
        let spy = GlobalId::Group(GroupType::Etf, "SPY".into());
        assert_eq!(GlobalId::decode(&spy.encode()), Some(spy));
        let brk = GlobalId::Stock("BRK.B".into());
        assert_eq!(GlobalId::decode(&brk.encode()), Some(brk));
        for junk in ["", "AAPL", "U3RvY2s6", "R3JvdXA6WFlaOlNQWQ"] {
            assert_eq!(GlobalId::decode(junk), None, "{junk}");
        }
    }
}
