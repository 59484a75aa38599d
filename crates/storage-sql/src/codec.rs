//! Row decoding and value conversions shared by both dialects.
//!
//! The two databases store some values differently (UUIDs, times, booleans); the
//! [`Columns`] trait hides that, so each record is decoded by one function here.

use chrono::{DateTime, Utc};
use marketplace_core::address::Address;
use marketplace_core::catalog::{Category, Product};
use marketplace_core::fields::Email;
use marketplace_core::order::{Order, OrderItem, StatusChange};
use marketplace_core::outbox::{OutboxMessage, OutboxStatus};
use marketplace_core::{
    Currency, Discount, Money, OrderStatus, Role, SellerStatus, StorageError, StorageResult, User,
};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::types::Json;
use uuid::Uuid;

/// A stored value that cannot be what the schema promises.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::backend(format!("stored {what} is invalid: {detail}"))
}

/// Typed column access, whatever the dialect's representation.
pub(crate) trait Columns {
    fn uuid(&self, col: &str) -> StorageResult<Uuid>;
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>>;
    fn time(&self, col: &str) -> StorageResult<DateTime<Utc>>;
    fn opt_time(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>>;
    fn text(&self, col: &str) -> StorageResult<String>;
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>>;
    fn int(&self, col: &str) -> StorageResult<i64>;
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

fn decode_err(col: &str, e: sqlx::Error) -> StorageError {
    corrupt(col, e)
}

impl Columns for PgRow {
    fn uuid(&self, col: &str) -> StorageResult<Uuid> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn time(&self, col: &str) -> StorageResult<DateTime<Utc>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn opt_time(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn text(&self, col: &str) -> StorageResult<String> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn int(&self, col: &str) -> StorageResult<i64> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn flag(&self, col: &str) -> StorageResult<bool> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<T> {
        self.try_get::<Json<T>, _>(col)
            .map(|j| j.0)
            .map_err(|e| decode_err(col, e))
    }
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<Option<T>> {
        self.try_get::<Option<Json<T>>, _>(col)
            .map(|j| j.map(|j| j.0))
            .map_err(|e| decode_err(col, e))
    }
}

/// SQLite keeps times as INTEGER milliseconds since the epoch.
pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(col: &str, ms: i64) -> StorageResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(col, ms))
}

impl Columns for SqliteRow {
    fn uuid(&self, col: &str) -> StorageResult<Uuid> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn opt_uuid(&self, col: &str) -> StorageResult<Option<Uuid>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn time(&self, col: &str) -> StorageResult<DateTime<Utc>> {
        from_millis(col, self.int(col)?)
    }
    fn opt_time(&self, col: &str) -> StorageResult<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.try_get(col).map_err(|e| decode_err(col, e))?;
        v.map(|ms| from_millis(col, ms)).transpose()
    }
    fn text(&self, col: &str) -> StorageResult<String> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn opt_text(&self, col: &str) -> StorageResult<Option<String>> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn int(&self, col: &str) -> StorageResult<i64> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn flag(&self, col: &str) -> StorageResult<bool> {
        self.try_get(col).map_err(|e| decode_err(col, e))
    }
    fn json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<T> {
        let s: String = self.text(col)?;
        serde_json::from_str(&s).map_err(|e| corrupt(col, e))
    }
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> StorageResult<Option<T>> {
        self.opt_text(col)?
            .map(|s| serde_json::from_str(&s).map_err(|e| corrupt(col, e)))
            .transpose()
    }
}

/// Serializes a value stored as JSON (SQLite TEXT; PostgreSQL binds `Json`).
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> StorageResult<String> {
    serde_json::to_string(v).map_err(StorageError::backend)
}

/// A `u64` version or count as the BIGINT the databases store.
pub(crate) fn to_i64(v: u64) -> StorageResult<i64> {
    i64::try_from(v).map_err(|_| StorageError::backend(format!("{v} does not fit in a BIGINT")))
}

/// The pattern for a case-insensitive substring search: `%`, `_` and `\` in the
/// text match literally (`ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Unicode lower-casing, the same core's in-memory reference uses; SQLite stores it
/// beside names and searchable text because its own `lower()` folds ASCII only.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

pub(crate) fn user<R: Columns>(r: &R) -> StorageResult<User> {
    let email = r.text("email")?;
    let role = r.text("role")?;
    Ok(User {
        id: r.uuid("id")?.into(),
        email: Email::parse(&email).map_err(|e| corrupt("email", e.message))?,
        password_hash: r.text("password_hash")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        name: r.opt_text("name")?,
        phone: r.opt_text("phone")?,
        store_name: r.opt_text("store_name")?,
        seller_status: r
            .opt_text("seller_status")?
            .map(|s| SellerStatus::parse(&s).ok_or_else(|| corrupt("seller status", &s)))
            .transpose()?,
        email_verified: r.flag("email_verified")?,
        active: r.flag("active")?,
        created_at: r.time("created_at")?,
    })
}

pub(crate) fn address<R: Columns>(r: &R) -> StorageResult<Address> {
    Ok(Address {
        id: r.uuid("id")?.into(),
        user_id: r.uuid("user_id")?.into(),
        name: r.text("name")?,
        line1: r.text("line1")?,
        line2: r.opt_text("line2")?,
        city: r.text("city")?,
        region: r.opt_text("region")?,
        postal_code: r.text("postal_code")?,
        country: r.text("country")?,
        phone: r.opt_text("phone")?,
        is_default: r.flag("is_default")?,
    })
}

pub(crate) fn category<R: Columns>(r: &R) -> StorageResult<Category> {
    Ok(Category {
        id: r.uuid("id")?.into(),
        name: r.text("name")?,
    })
}

pub(crate) fn product<R: Columns>(r: &R) -> StorageResult<Product> {
    Ok(Product {
        id: r.uuid("id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        title: r.text("title")?,
        description: r.text("description")?,
        price: r.money("price_amount", "currency")?,
        discount: r.opt_json::<Discount>("discount")?,
        stock: r.count("stock")?,
        images: r.json("images")?,
        category_id: r.opt_uuid("category_id")?.map(Into::into),
        active: r.flag("active")?,
        archived: r.flag("archived")?,
        blocked: r.flag("blocked")?,
        version: r.version("version")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn order<R: Columns>(r: &R) -> StorageResult<Order> {
    let status = r.text("status")?;
    Ok(Order {
        id: r.uuid("id")?.into(),
        checkout_id: r.uuid("checkout_id")?.into(),
        buyer_id: r.uuid("buyer_id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        store_name: r.text("store_name")?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("order status", &status))?,
        items: r.json::<Vec<OrderItem>>("items")?,
        address: r.json::<Address>("address")?,
        total: r.money("total_amount", "currency")?,
        history: r.json::<Vec<StatusChange>>("history")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn outbox_message<R: Columns>(r: &R) -> StorageResult<OutboxMessage> {
    let status = r.text("status")?;
    Ok(OutboxMessage {
        id: r.uuid("id")?.into(),
        kind: r.text("kind")?,
        recipient: r.text("recipient")?,
        subject: r.text("subject")?,
        text_body: r.text("text_body")?,
        html_body: r.text("html_body")?,
        status: OutboxStatus::parse(&status).ok_or_else(|| corrupt("outbox status", &status))?,
        attempts: r.count("attempts")?,
        next_attempt_at: r.time("next_attempt_at")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.time("created_at")?,
        delivered_at: r.opt_time("delivered_at")?,
        claimed_by: r.opt_uuid("claimed_by")?,
        claimed_until: r.opt_time("claimed_until")?,
    })
}

/// Decodes every row with `f`.
pub(crate) fn all<R, T>(rows: &[R], f: fn(&R) -> StorageResult<T>) -> StorageResult<Vec<T>> {
    rows.iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern("100%_"), "%100\\%\\_%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
        assert_eq!(contains_pattern("steel"), "%steel%");
    }
}
