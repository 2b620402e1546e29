//! Connections: every paged list has one shape (Relay's): `edges { cursor node }`, `nodes`,
//! `pageInfo { hasNextPage hasPreviousPage startCursor endCursor }` and `totalCount`, paged
//! forward with `first` and `after`.
//!
//! A cursor is opaque to clients (base64url of a small JSON object) and names a position by
//! its key, never by an offset or a data version, so a load of one group leaves every other
//! list's cursors valid:
//!
//! - `stocks` and `groups`: the sort key of the last item seen (its symbol; its name or count
//!   and symbol; its type and key). Such a cursor is valid across loads: the next page starts
//!   after that key in the data served now.
//! - `Group.members`: the last member's weight and symbol, and a fingerprint of the group's own
//!   members and weights. While the group's content is unchanged the cursor pages on, whatever
//!   loads of other groups did; once a load changed that group, the cursor is refused with
//!   `STALE_CURSOR` (positions in a reweighted list would skip or repeat members) and the
//!   client starts again without `after`.

use async_graphql::SimpleObject;
use serde::{Deserialize, Serialize};

use super::error::{bad_input, code, coded};

/// Paging information of a connection.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PageInfo {
    /// Whether more items follow this page.
    pub has_next_page: bool,
    /// Whether items come before this page (it started after a cursor that was not before the
    /// first item).
    pub has_previous_page: bool,
    /// The cursor of this page's first item; null for an empty page.
    pub start_cursor: Option<String>,
    /// The cursor of this page's last item (pass it as `after` for the next page); null for an
    /// empty page. Cursors name a position by key: see the `after` argument of each list for
    /// how long they stay valid.
    pub end_cursor: Option<String>,
}

/// A position in one list, as a cursor carries it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct Cursor {
    /// The list: `stocks`, `groups`, or `members:<TYPE>:<name>`.
    #[serde(rename = "l")]
    pub list: String,
    /// The list's order (`SYMBOL`, `WEIGHT`, ...).
    #[serde(rename = "o")]
    pub order: String,
    /// The fingerprint of the group's members when the cursor was made (members only).
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<u64>,
    /// A numeric key: a weight's bits, a count.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// A text key: a lower-cased name, a group type.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The item: a symbol, a group key.
    #[serde(rename = "k")]
    pub key: String,
}

impl Cursor {
    /// The cursor as clients see it.
    pub(crate) fn encode(&self) -> String {
        super::opaque::encode(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Reads an `after` argument for the list `list` in order `order`: `None` without one, a
    /// BAD_USER_INPUT error when it is not a cursor of this API or belongs to another list or
    /// order.
    pub(crate) fn decode(
        after: Option<&str>,
        list: &str,
        order: &str,
    ) -> async_graphql::Result<Option<Self>> {
        let Some(text) = after else {
            return Ok(None);
        };
        let cursor: Self = super::opaque::decode(text)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| bad_input(format!("{text:?} is not a cursor from this API")))?;
        if cursor.list != list || cursor.order != order {
            return Err(bad_input(format!(
                "this cursor pages another list ({} in {} order), not {list} in {order} order",
                cursor.list, cursor.order
            )));
        }
        Ok(Some(cursor))
    }
}

/// The error for a cursor into a group whose members changed since it was made.
pub(crate) fn stale(group: &str) -> async_graphql::Error {
    coded(
        code::STALE_CURSOR,
        format!(
            "{group} changed since this cursor was made (a load changed its members or \
             weights): start again without `after`"
        ),
    )
}

/// The page of `size` items starting at `start` of a list of `len`, and its page info, the
/// cursors made by `cursor_at`.
pub(crate) fn page(
    len: usize,
    start: usize,
    size: usize,
    cursor_at: impl Fn(usize) -> String,
) -> (std::ops::Range<usize>, PageInfo) {
    let start = start.min(len);
    let end = start.saturating_add(size).min(len);
    let info = PageInfo {
        has_next_page: end < len,
        has_previous_page: start > 0,
        start_cursor: (end > start).then(|| cursor_at(start)),
        end_cursor: (end > start).then(|| cursor_at(end - 1)),
    };
    (start..end, info)
}

/// Defines a connection type and its edge type over a node type.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty, $doc:literal, $edge_doc:literal, $total_doc:literal) => {
        #[doc = $doc]
        pub struct $connection {
            pub total_count: usize,
            pub page_info: $crate::graphql::connection::PageInfo,
            pub edges: Vec<$edge>,
        }

        #[doc = $doc]
        #[async_graphql::Object]
        impl $connection {
            #[doc = $total_doc]
            async fn total_count(&self) -> usize {
                self.total_count
            }

            /// Whether pages come before and after this one, and the cursors to ask for them.
            async fn page_info(&self) -> &$crate::graphql::connection::PageInfo {
                &self.page_info
            }

            /// This page's items, each with its cursor.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            /// This page's items, without cursors (the edges' nodes).
            async fn nodes(&self) -> Vec<$node> {
                self.edges.iter().map(|e| e.node.clone()).collect()
            }
        }

        #[doc = $edge_doc]
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            /// Pass as `after` to continue after this item (in the same order and filter).
            pub cursor: String,
            /// The item.
            pub node: $node,
        }
    };
}

pub(crate) use connection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_for_its_own_list_and_order_only() {
        let c = Cursor {
            list: "members:ETF:SPY".into(),
            order: "WEIGHT".into(),
            fingerprint: Some(u64::MAX),
            number: Some(7.25f64.to_bits()),
            text: None,
            key: "BRK.B".into(),
        };
        let text = c.encode();
        assert_eq!(
            Cursor::decode(Some(&text), "members:ETF:SPY", "WEIGHT")
                .ok()
                .flatten(),
            Some(c)
        );
        assert!(Cursor::decode(Some(&text), "members:ETF:QQQ", "WEIGHT").is_err());
        assert!(Cursor::decode(Some(&text), "members:ETF:SPY", "SYMBOL").is_err());
        for junk in ["", "nope", "v3o24", "e30"] {
            assert!(
                Cursor::decode(Some(junk), "stocks", "SYMBOL").is_err(),
                "{junk}"
            );
        }
        assert_eq!(Cursor::decode(None, "stocks", "SYMBOL").ok(), Some(None));
    }

    #[test]
    fn pages_cover_every_item_once() {
        let (mut start, mut seen) = (0, Vec::new());
        loop {
            let (range, info) = page(10, start, 4, |i| i.to_string());
            assert_eq!(info.has_previous_page, start > 0);
            seen.extend(range);
            if !info.has_next_page {
                assert!(info.end_cursor.is_some());
                break;
            }
            start = info
                .end_cursor
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(99)
                + 1;
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let (range, info) = page(10, 10, 4, |i| i.to_string());
        assert!(range.is_empty() && info.end_cursor.is_none() && !info.has_next_page);
    }
}
