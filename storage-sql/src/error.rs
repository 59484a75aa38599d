//! Maps sqlx errors to the core's [`StorageError`]; no driver type leaves the crate.

use marketplace_core::StorageError;
use sqlx::Sqlite;
use sqlx::error::DatabaseError;

use crate::dialect::Dialect;

/// What a unique constraint protects, by the constraint's (PostgreSQL) or the
/// index's or column's (SQLite message) name.
fn unique_subject(db: &dyn DatabaseError) -> &'static str {
    let name = db.constraint().unwrap_or_else(|| db.message());
    const SUBJECTS: [(&str, &str); 15] = [
        ("users_email_key", "email"),
        // PostgreSQL names the index; SQLite its columns.
        ("products_seller_sku_key", "sku"),
        ("products.seller_id, products.sku", "sku"),
        ("categories_name_key", "category name"),
        ("categories.name_folded", "category name"),
        ("checkouts_buyer_key_key", "idempotency key"),
        ("checkouts.buyer_id", "idempotency key"),
        ("ledger_entries_order_kind_key", "ledger entry"),
        (
            "ledger_entries.order_id, ledger_entries.kind",
            "ledger entry",
        ),
        ("payouts_idempotency_key_key", "payout"),
        ("payouts.idempotency_key", "payout"),
        ("payments_checkout_key", "payment"),
        ("payments.checkout_id", "payment"),
        ("payments_provider_reference_key", "payment reference"),
        ("payments.provider, payments.reference", "payment reference"),
    ];
    SUBJECTS
        .iter()
        .find(|(needle, _)| name.contains(needle))
        .map_or("record", |(_, subject)| subject)
}

/// The checks that keep each bucket of a seller's balance at zero or above, by
/// name: PostgreSQL reports the constraint, SQLite names it in its message.
const BALANCE_CHECKS: [&str; 2] = [
    "seller_balances_pending_check",
    "seller_balances_available_check",
];

/// Whether a database error is a balance bucket refusing to go below zero.
fn is_negative_balance(db: &dyn DatabaseError) -> bool {
    let name = db.constraint().unwrap_or_else(|| db.message());
    db.is_check_violation() && BALANCE_CHECKS.iter().any(|c| name.contains(c))
}

/// Whether a database error is worth repeating the whole call for.
fn is_transient<D: Dialect>(db: &dyn DatabaseError) -> bool {
    db.code().is_some_and(|code| D::is_transient(&code))
}

/// The general mapping: unique violations to `AlreadyExists`, a balance bucket
/// that would go below zero to `Precondition`, retryable failures to
/// `Transient`, the rest to `Backend`.
pub(crate) fn map<D: Dialect>(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::PoolTimedOut => StorageError::transient(e),
        sqlx::Error::Database(db) if is_transient::<D>(db.as_ref()) => StorageError::transient(e),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::AlreadyExists(unique_subject(db.as_ref()))
        }
        sqlx::Error::Database(db) if is_negative_balance(db.as_ref()) => {
            StorageError::Precondition("a ledger entry would take the balance below zero".into())
        }
        _ => StorageError::backend(e),
    }
}

/// [`map`], but a foreign-key violation (a missing or still referenced row) is
/// the `Precondition` `what`.
pub(crate) fn map_foreign_key<D: Dialect>(e: sqlx::Error, what: &str) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::Precondition(what.into())
        }
        _ => map::<D>(e),
    }
}

/// What a store's `connect` says of a URL of another scheme: the scheme it got
/// (never the rest of the URL, which may hold a password), and which store opens
/// such URLs.
pub(crate) fn wrong_scheme(store: &str, expected: &str, url: &str) -> StorageError {
    let scheme = url.split(':').next().unwrap_or_default();
    let other = match scheme {
        "sqlite" => " (SqliteStorage opens those)",
        "postgres" | "postgresql" => " (PostgresStorage opens those)",
        _ => "",
    };
    StorageError::backend(format!(
        "{store} opens {expected} URLs, not `{scheme}:` ones{other}"
    ))
}

/// Whether the error is SQLite's "database is busy/locked".
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if is_transient::<Sqlite>(db.as_ref()))
}
