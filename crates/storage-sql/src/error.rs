//! Maps sqlx errors to the core's [`StorageError`]; no driver type leaves the crate.

use marketplace_core::StorageError;
use sqlx::error::DatabaseError;

/// The dialect an error came from: error codes mean different things in each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// What a unique constraint protects, by the constraint's (PostgreSQL) or the
/// index's or column's (SQLite message) name.
fn unique_subject(db: &dyn DatabaseError) -> &'static str {
    let name = db.constraint().unwrap_or_else(|| db.message());
    const SUBJECTS: [(&str, &str); 5] = [
        ("users_email_key", "email"),
        ("categories_name_key", "category name"),
        ("categories.name_folded", "category name"),
        ("checkouts_buyer_key_key", "idempotency key"),
        ("checkouts.buyer_id", "idempotency key"),
    ];
    SUBJECTS
        .iter()
        .find(|(needle, _)| name.contains(needle))
        .map_or("record", |(_, subject)| subject)
}

/// Whether a database error is worth repeating the whole call for.
fn is_transient(dialect: Dialect, db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    match dialect {
        // serialization_failure, deadlock_detected, lock_not_available
        Dialect::Postgres => matches!(code.as_ref(), "40001" | "40P01" | "55P03"),
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
        Dialect::Sqlite => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
    }
}

/// The general mapping: unique violations to `AlreadyExists`, retryable failures
/// to `Transient`, the rest to `Backend`.
pub(crate) fn map(dialect: Dialect, e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::PoolTimedOut => StorageError::transient(e),
        sqlx::Error::Database(db) if is_transient(dialect, db.as_ref()) => {
            StorageError::transient(e)
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StorageError::AlreadyExists(unique_subject(db.as_ref()))
        }
        _ => StorageError::backend(e),
    }
}

/// Whether the error is a foreign-key violation (a missing or still referenced
/// row), which some calls report as a `Precondition`.
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Whether the error is SQLite's "database is busy/locked".
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if is_transient(Dialect::Sqlite, db.as_ref()))
}
