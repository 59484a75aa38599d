//! What the dialects share, written once: typed column access ([`Columns`]) and
//! binding ([`Binds`]) over each dialect's representation of a value
//! ([`Dialect`]), and per concept (the rooms of the storage traits) the column
//! lists, row decoders, bind helpers and dynamically built queries.
//!
//! A dialect module keeps its own SQL text, executors and transactions; it hands
//! rows to the decoders here and queries to the bind helpers here.

pub(crate) mod accounts;
pub(crate) mod catalog;
pub(crate) mod checkout;
pub(crate) mod commission;
pub(crate) mod ledger;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod payments;
pub(crate) mod payouts;
pub(crate) mod shopping;

use chrono::{DateTime, Utc};
use marketplace_core::{Currency, Money, StorageError, StorageResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::query::Query;
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, QueryBuilder, Row, Type};
use uuid::Uuid;

use crate::dialect::Dialect;

/// A stored value that cannot be what the schema promises.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::backend(format!("stored {what} is invalid: {detail}"))
}

// ----- reading -------------------------------------------------------------------

/// Typed column access, whatever the dialect's representation.
pub(crate) trait Columns {
    fn uuid(&self, col: &str) -> StorageResult<Uuid>;
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>>;
    fn time(&self, col: &str) -> StorageResult<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>>;
    fn text(&self, col: &str) -> StorageResult<String>;
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>>;
    fn int(&self, col: &str) -> StorageResult<i64>;
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>>;
    fn flag(&self, col: &str) -> StorageResult<bool>;
    fn json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<T>;
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<Option<T>>;

    fn count(&self, col: &str) -> StorageResult<u32> {
        let v = self.int(col)?;
        u32::try_from(v).map_err(|_| corrupt(col, v))
    }

    fn version(&self, col: &str) -> StorageResult<u64> {
        let v = self.int(col)?;
        u64::try_from(v).map_err(|_| corrupt(col, v))
    }

    fn money(&self, amount: &str, currency: &str) -> StorageResult<Money> {
        let code = self.text(currency)?;
        let currency = Currency::parse(&code).ok_or_else(|| corrupt("currency", &code))?;
        Ok(Money::new(self.int(amount)?, currency))
    }
}

fn present<T>(col: &str, v: Option<T>) -> StorageResult<T> {
    v.ok_or_else(|| corrupt(col, "NULL"))
}

/// Every dialect's rows, through its [`Dialect`] primitives.
impl<R: Row<Database: Dialect<Row = R>>> Columns for R {
    fn uuid(&self, col: &str) -> StorageResult<Uuid> {
        present(col, self.opt_uuid(col)?)
    }
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>> {
        R::Database::get_uuid(self, col)
    }
    fn time(&self, col: &str) -> StorageResult<DateTime<Utc>> {
        present(col, self.opt_time(col)?)
    }
    fn opt_time(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
        R::Database::get_time(self, col)
    }
    fn text(&self, col: &str) -> StorageResult<String> {
        present(col, self.opt_text(col)?)
    }
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
        R::Database::get_text(self, col)
    }
    fn int(&self, col: &str) -> StorageResult<i64> {
        present(col, self.opt_int(col)?)
    }
    fn opt_int(&self, col: &str) -> StorageResult<Option<i64>> {
        R::Database::get_int(self, col)
    }
    fn flag(&self, col: &str) -> StorageResult<bool> {
        R::Database::get_flag(self, col)
    }
    fn json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<T> {
        present(col, self.opt_json(col)?)
    }
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<Option<T>> {
        R::Database::get_json(self, col)
    }
}

/// Decodes every row with `f`.
pub(crate) fn all<R, T>(rows: &[R], f: fn(&R) -> StorageResult<T>) -> StorageResult<Vec<T>> {
    rows.iter().map(f).collect()
}

/// Decodes the row, if any, with `f`.
pub(crate) fn optional<R, T>(
    row: Option<R>,
    f: fn(&R) -> StorageResult<T>,
) -> StorageResult<Option<T>> {
    row.as_ref().map(f).transpose()
}

// ----- binding -------------------------------------------------------------------

/// Something values are bound to, one after the other: a query, a query
/// builder, or one row of a builder's `VALUES` list.
pub(crate) trait Push: Sized {
    /// The dialect of what is being built.
    type Db: Dialect;

    /// Binds one value as it is.
    fn push<'t, T: Encode<'t, Self::Db> + Type<Self::Db>>(self, value: T) -> Self;
}

impl<D: Dialect> Push for Query<'_, D, <D as Database>::Arguments> {
    type Db = D;
    fn push<'t, T: Encode<'t, D> + Type<D>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<D: Dialect> Push for &mut QueryBuilder<D> {
    type Db = D;
    fn push<'t, T: Encode<'t, D> + Type<D>>(self, value: T) -> Self {
        self.push_bind(value)
    }
}

impl<D: Dialect> Push for &mut Separated<'_, D, &'static str> {
    type Db = D;
    fn push<'t, T: Encode<'t, D> + Type<D>>(self, value: T) -> Self {
        self.push_bind(value)
    }
}

/// Typed binding, whatever the dialect's representation: the other half of
/// [`Columns`]. Chains like sqlx's own `bind`.
pub(crate) trait Binds: Push {
    fn uuid(self, v: Uuid) -> Self;
    fn opt_uuid(self, v: Option<Uuid>) -> Self;
    fn text(self, v: &str) -> Self;
    fn opt_text(self, v: Option<&str>) -> Self;
    fn int(self, v: i64) -> Self;
    fn opt_int(self, v: Option<i64>) -> Self;
    fn flag(self, v: bool) -> Self;
    fn time(self, v: DateTime<Utc>) -> Self;
    fn opt_time(self, v: Option<DateTime<Utc>>) -> Self;
    fn json<T: Serialize + ?Sized>(self, v: &T) -> Self;
    fn opt_json<T: Serialize>(self, v: Option<&T>) -> Self;
}

/// Every builder, through its dialect's [`Dialect`] primitives.
impl<P: Push> Binds for P {
    fn uuid(self, v: Uuid) -> Self {
        P::Db::bind_uuid(self, Some(v))
    }
    fn opt_uuid(self, v: Option<Uuid>) -> Self {
        P::Db::bind_uuid(self, v)
    }
    fn text(self, v: &str) -> Self {
        P::Db::bind_text(self, Some(v))
    }
    fn opt_text(self, v: Option<&str>) -> Self {
        P::Db::bind_text(self, v)
    }
    fn int(self, v: i64) -> Self {
        P::Db::bind_int(self, Some(v))
    }
    fn opt_int(self, v: Option<i64>) -> Self {
        P::Db::bind_int(self, v)
    }
    fn flag(self, v: bool) -> Self {
        P::Db::bind_flag(self, v)
    }
    fn time(self, v: DateTime<Utc>) -> Self {
        P::Db::bind_time(self, Some(v))
    }
    fn opt_time(self, v: Option<DateTime<Utc>>) -> Self {
        P::Db::bind_time(self, v)
    }
    fn json<T: Serialize + ?Sized>(self, v: &T) -> Self {
        P::Db::bind_json(self, Some(v))
    }
    fn opt_json<T: Serialize>(self, v: Option<&T>) -> Self {
        P::Db::bind_json(self, v)
    }
}

// ----- values --------------------------------------------------------------------

/// A `u64` version or count as the BIGINT the databases store.
pub(crate) fn to_i64(v: u64) -> StorageResult<i64> {
    i64::try_from(v).map_err(|_| StorageError::backend(format!("{v} does not fit in a BIGINT")))
}

/// `columns` (a comma-separated list) with each name qualified by `table`.
pub(crate) fn qualified(table: &str, columns: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
