//! One page of a list and the cursor to the next.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};

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

/// The cursor of a newest-first list keyed by `(time, id)`: opaque to clients.
pub(crate) fn newest_cursor(at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.timestamp_millis()))
}

/// Reads a cursor [`newest_cursor`] wrote; anything else is a validation error
/// on `cursor`.
pub(crate) fn parse_newest_cursor<I: std::str::FromStr>(c: &str) -> Result<(DateTime<Utc>, I)> {
    let bad = || Error::invalid("cursor", "invalid", "is not a cursor of this list");
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (t, id) = raw.split_once('|').ok_or_else(bad)?;
    let at = t
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}
