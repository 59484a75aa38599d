//! What the two dialects do differently below their SQL: how a time is stored
//! and which error codes are worth a retry. Everything the dialects share
//! ([`codec`](crate::codec): column lists, row decoders, bind helpers) is written
//! once against this trait.

use chrono::{DateTime, Utc};
use marketplace_core::StorageResult;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{Decode, Encode, Postgres, Row, Sqlite, Type};
use uuid::Uuid;

use crate::codec::{Push, corrupt};

/// A database this crate speaks: PostgreSQL or SQLite.
///
/// The `bind_*` and `get_*` methods are the primitives [`Binds`](crate::codec::Binds)
/// and [`Columns`](crate::codec::Columns) are built on. Optional values are bound
/// as `Option`s: `Some(v)` encodes exactly like `v`, with the same type.
pub(crate) trait Dialect: sqlx::Database {
    /// How a time is stored: `timestamptz` in PostgreSQL, INTEGER milliseconds
    /// since the epoch in SQLite.
    type Time: for<'t> Encode<'t, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send;

    /// A time as the database stores it.
    fn store_time(t: DateTime<Utc>) -> Self::Time;

    /// A stored time; `None` when out of range.
    fn load_time(v: Self::Time) -> Option<DateTime<Utc>>;

    /// Whether a database error code marks a failure worth repeating the call for.
    fn is_transient(code: &str) -> bool;

    fn bind_uuid<P: Push<Db = Self>>(p: P, v: Option<Uuid>) -> P;
    fn bind_text<P: Push<Db = Self>>(p: P, v: Option<&str>) -> P;
    fn bind_int<P: Push<Db = Self>>(p: P, v: Option<i64>) -> P;
    fn bind_flag<P: Push<Db = Self>>(p: P, v: bool) -> P;
    fn bind_time<P: Push<Db = Self>>(p: P, v: Option<DateTime<Utc>>) -> P;
    /// A JSON document: `jsonb` in PostgreSQL, TEXT in SQLite.
    fn bind_json<P: Push<Db = Self>, T: Serialize + ?Sized>(p: P, v: Option<&T>) -> P;

    fn get_uuid(row: &Self::Row, col: &str) -> StorageResult<Option<Uuid>>;
    fn get_text(row: &Self::Row, col: &str) -> StorageResult<Option<String>>;
    fn get_int(row: &Self::Row, col: &str) -> StorageResult<Option<i64>>;
    fn get_flag(row: &Self::Row, col: &str) -> StorageResult<bool>;
    fn get_time(row: &Self::Row, col: &str) -> StorageResult<Option<DateTime<Utc>>>;
    fn get_json<T: DeserializeOwned>(row: &Self::Row, col: &str) -> StorageResult<Option<T>>;
}

/// Both dialects bind and read every value through sqlx's own types (times in
/// their [`Dialect::Time`]). Rust cannot say "`Uuid` encodes" of a database it
/// does not name, so each dialect says it for itself, in these same words.
macro_rules! values_through_sqlx {
    () => {
        fn bind_uuid<P: Push<Db = Self>>(p: P, v: Option<Uuid>) -> P {
            p.push(v)
        }
        fn bind_text<P: Push<Db = Self>>(p: P, v: Option<&str>) -> P {
            p.push(v)
        }
        fn bind_int<P: Push<Db = Self>>(p: P, v: Option<i64>) -> P {
            p.push(v)
        }
        fn bind_flag<P: Push<Db = Self>>(p: P, v: bool) -> P {
            p.push(v)
        }
        fn bind_time<P: Push<Db = Self>>(p: P, v: Option<DateTime<Utc>>) -> P {
            p.push(v.map(Self::store_time))
        }
        fn bind_json<P: Push<Db = Self>, T: Serialize + ?Sized>(p: P, v: Option<&T>) -> P {
            p.push(v.map(Json))
        }

        fn get_uuid(row: &Self::Row, col: &str) -> StorageResult<Option<Uuid>> {
            row.try_get(col).map_err(|e| corrupt(col, e))
        }
        fn get_text(row: &Self::Row, col: &str) -> StorageResult<Option<String>> {
            row.try_get(col).map_err(|e| corrupt(col, e))
        }
        fn get_int(row: &Self::Row, col: &str) -> StorageResult<Option<i64>> {
            row.try_get(col).map_err(|e| corrupt(col, e))
        }
        fn get_flag(row: &Self::Row, col: &str) -> StorageResult<bool> {
            row.try_get(col).map_err(|e| corrupt(col, e))
        }
        fn get_time(row: &Self::Row, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
            let stored: Option<Self::Time> = row.try_get(col).map_err(|e| corrupt(col, e))?;
            stored
                .map(|v| Self::load_time(v).ok_or_else(|| corrupt(col, "time out of range")))
                .transpose()
        }
        fn get_json<T: DeserializeOwned>(row: &Self::Row, col: &str) -> StorageResult<Option<T>> {
            let stored: Option<Json<T>> = row.try_get(col).map_err(|e| corrupt(col, e))?;
            Ok(stored.map(|Json(v)| v))
        }
    };
}

impl Dialect for Postgres {
    type Time = DateTime<Utc>;

    fn store_time(t: DateTime<Utc>) -> Self::Time {
        t
    }

    fn load_time(t: Self::Time) -> Option<DateTime<Utc>> {
        Some(t)
    }

    fn is_transient(code: &str) -> bool {
        // serialization_failure, deadlock_detected, lock_not_available
        matches!(code, "40001" | "40P01" | "55P03")
    }

    values_through_sqlx!();
}

impl Dialect for Sqlite {
    type Time = i64;

    fn store_time(t: DateTime<Utc>) -> Self::Time {
        t.timestamp_millis()
    }

    fn load_time(ms: Self::Time) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(ms)
    }

    fn is_transient(code: &str) -> bool {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
    }

    values_through_sqlx!();
}
