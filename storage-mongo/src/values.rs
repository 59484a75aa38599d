//! How domain values are written as BSON and read back.
//!
//! - Identifiers (UUIDs) are BSON binary subtype 4, so they sort like the
//!   `Uuid`s themselves (byte order) and round-trip exactly with the other
//!   backends' identifiers.
//! - Instants are BSON dates (milliseconds; core truncates to milliseconds first).
//! - Counters and money are 64-bit integers: money is `{amount, currency}` in
//!   minor units, never a float.
//! - An absent optional value is stored as `null`, so one `$set` replaces it.
//!
//! Reading is strict but never panics: a document that does not decode is a
//! [`StorageError::Backend`](marketplace_core::StorageError) naming the field.

use chrono::{DateTime, Utc};
use marketplace_core::{Currency, Money, StorageResult};
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{self, Binary, Bson, Document, doc};
use uuid::Uuid;

use crate::error::malformed;

/// A UUID as BSON binary subtype 4.
pub(crate) fn uuid(id: Uuid) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes: id.as_bytes().to_vec(),
    })
}

/// An instant as a BSON date (milliseconds since the epoch).
pub(crate) fn date(t: DateTime<Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(t.timestamp_millis()))
}

/// An unsigned counter as a 64-bit integer (saturating, never wrapping).
pub(crate) fn count(n: impl Into<u64>) -> Bson {
    Bson::Int64(i64::try_from(n.into()).unwrap_or(i64::MAX))
}

/// An optional value, `null` when absent.
pub(crate) fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Bson) -> Bson {
    v.map_or(Bson::Null, f)
}

/// An optional string, `null` when absent.
pub(crate) fn opt_str(v: Option<&str>) -> Bson {
    opt(v, |s| Bson::String(s.to_owned()))
}

/// The keyset condition of a newest-first list: documents before
/// `(created_at, id)` in `created_at`, then `_id`, descending order.
pub(crate) fn before(created_at: DateTime<Utc>, id: Uuid) -> Bson {
    Bson::Array(vec![
        Bson::Document(doc! { "created_at": { "$lt": date(created_at) } }),
        Bson::Document(doc! { "created_at": date(created_at), "_id": { "$lt": uuid(id) } }),
    ])
}

/// Money as `{amount, currency}`.
pub(crate) fn money(m: Money) -> Bson {
    Bson::Document(doc! { "amount": m.amount, "currency": m.currency.as_str() })
}

/// Typed, checked access to the fields of a stored document.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    doc: &'a Document,
    collection: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `doc`, a document of `collection` (named in errors).
    pub(crate) fn new(collection: &'static str, doc: &'a Document) -> Reader<'a> {
        Reader { doc, collection }
    }

    fn bad(&self, key: &str, want: &str) -> marketplace_core::StorageError {
        malformed(
            self.collection,
            format!("field `{key}` is missing or not {want}"),
        )
    }

    /// The value at `key`, `None` when missing or `null`.
    fn get(&self, key: &str) -> Option<&'a Bson> {
        self.doc.get(key).filter(|v| !matches!(v, Bson::Null))
    }

    /// A required string.
    pub(crate) fn str(&self, key: &str) -> StorageResult<String> {
        self.opt_str(key)?.ok_or_else(|| self.bad(key, "a string"))
    }

    /// An optional string.
    pub(crate) fn opt_str(&self, key: &str) -> StorageResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Bson::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "a string")),
        }
    }

    /// A required integer (32- or 64-bit on the wire).
    pub(crate) fn i64(&self, key: &str) -> StorageResult<i64> {
        match self.get(key) {
            Some(Bson::Int64(n)) => Ok(*n),
            Some(Bson::Int32(n)) => Ok(i64::from(*n)),
            _ => Err(self.bad(key, "an integer")),
        }
    }

    /// A required non-negative integer that fits a `u32`.
    pub(crate) fn u32(&self, key: &str) -> StorageResult<u32> {
        u32::try_from(self.i64(key)?).map_err(|_| self.bad(key, "a 32-bit count"))
    }

    /// A required non-negative integer.
    pub(crate) fn u64(&self, key: &str) -> StorageResult<u64> {
        u64::try_from(self.i64(key)?).map_err(|_| self.bad(key, "a count"))
    }

    /// A required boolean.
    pub(crate) fn bool(&self, key: &str) -> StorageResult<bool> {
        match self.get(key) {
            Some(Bson::Boolean(b)) => Ok(*b),
            _ => Err(self.bad(key, "a boolean")),
        }
    }

    /// A required instant.
    pub(crate) fn date(&self, key: &str) -> StorageResult<DateTime<Utc>> {
        self.opt_date(key)?.ok_or_else(|| self.bad(key, "a date"))
    }

    /// An optional instant.
    pub(crate) fn opt_date(&self, key: &str) -> StorageResult<Option<DateTime<Utc>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Bson::DateTime(d)) => DateTime::from_timestamp_millis(d.timestamp_millis())
                .map(Some)
                .ok_or_else(|| self.bad(key, "a representable date")),
            Some(_) => Err(self.bad(key, "a date")),
        }
    }

    /// A required UUID.
    pub(crate) fn uuid(&self, key: &str) -> StorageResult<Uuid> {
        self.opt_uuid(key)?.ok_or_else(|| self.bad(key, "a UUID"))
    }

    /// An optional UUID.
    pub(crate) fn opt_uuid(&self, key: &str) -> StorageResult<Option<Uuid>> {
        match self.get(key) {
            None => Ok(None),
            Some(Bson::Binary(b)) if b.subtype == BinarySubtype::Uuid => Uuid::from_slice(&b.bytes)
                .map(Some)
                .map_err(|_| self.bad(key, "a 16-byte UUID")),
            Some(_) => Err(self.bad(key, "a UUID")),
        }
    }

    /// An array of UUIDs (missing reads as empty).
    pub(crate) fn uuids(&self, key: &str) -> StorageResult<Vec<Uuid>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Bson::Array(items)) => items
                .iter()
                .map(|b| match b {
                    Bson::Binary(b) if b.subtype == BinarySubtype::Uuid => {
                        Uuid::from_slice(&b.bytes).map_err(|_| self.bad(key, "16-byte UUIDs"))
                    }
                    _ => Err(self.bad(key, "an array of UUIDs")),
                })
                .collect(),
            Some(_) => Err(self.bad(key, "an array")),
        }
    }

    /// A required embedded document.
    pub(crate) fn doc(&self, key: &str) -> StorageResult<Reader<'a>> {
        self.opt_doc(key)?
            .ok_or_else(|| self.bad(key, "a document"))
    }

    /// An optional embedded document.
    pub(crate) fn opt_doc(&self, key: &str) -> StorageResult<Option<Reader<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Bson::Document(d)) => Ok(Some(Reader::new(self.collection, d))),
            Some(_) => Err(self.bad(key, "a document")),
        }
    }

    /// An array of embedded documents (missing reads as empty).
    pub(crate) fn docs(&self, key: &str) -> StorageResult<Vec<Reader<'a>>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Bson::Array(items)) => items
                .iter()
                .map(|b| match b {
                    Bson::Document(d) => Ok(Reader::new(self.collection, d)),
                    _ => Err(self.bad(key, "an array of documents")),
                })
                .collect(),
            Some(_) => Err(self.bad(key, "an array")),
        }
    }

    /// An array of strings (missing reads as empty).
    pub(crate) fn strings(&self, key: &str) -> StorageResult<Vec<String>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Bson::Array(items)) => items
                .iter()
                .map(|b| match b {
                    Bson::String(s) => Ok(s.clone()),
                    _ => Err(self.bad(key, "an array of strings")),
                })
                .collect(),
            Some(_) => Err(self.bad(key, "an array")),
        }
    }

    /// Required money (`{amount, currency}`).
    pub(crate) fn money(&self, key: &str) -> StorageResult<Money> {
        let m = self.doc(key)?;
        let currency = Currency::parse(&m.str("currency")?)
            .ok_or_else(|| self.bad(key, "money with an ISO 4217 currency"))?;
        Ok(Money::new(m.i64("amount")?, currency))
    }

    /// A required string parsed by `parse` (status names and the like).
    pub(crate) fn parsed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> StorageResult<T> {
        parse(&self.str(key)?).ok_or_else(|| self.bad(key, "a known name"))
    }

    /// An optional string parsed by `parse`.
    pub(crate) fn opt_parsed<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> StorageResult<Option<T>> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) => parse(&s)
                .map(Some)
                .ok_or_else(|| self.bad(key, "a known name")),
        }
    }
}
