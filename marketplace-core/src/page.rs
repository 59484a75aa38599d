//! One page of a list and the cursor to the next.

use serde::Serialize;

/// A page of results: `{"items": [...], "next_cursor": "..." | null}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The results, in the list's order.
    pub items: Vec<T>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from a query that asked for `limit + 1` rows: the extra row,
    /// when present, only proves there is a next page.
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        cursor: impl Fn(&T) -> String,
    ) -> Page<T> {
        let limit = limit as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Page { items, next_cursor }
    }

    /// Converts every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
