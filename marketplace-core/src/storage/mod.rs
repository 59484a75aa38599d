//! The `Storage` trait: what a backend must provide, and the contract it must keep.
//!
//! Core computes every decision (prices, snapshots, which transition is legal,
//! which mails to send); a backend stores and applies them. Each *atomic step* of
//! the domain is one method here, so a backend can use its native atomicity: a
//! lock in memory, a transaction in SQL, a session transaction in MongoDB.
//!
//! # Contract
//! - Methods marked **atomic** either apply every write they describe or none, and
//!   concurrent callers never observe a partial application.
//! - **Conditional** writes (compare-and-swap) never overwrite a value that changed
//!   since the caller read it; they report the mismatch instead.
//! - Outbox messages handed to a method are written in the same atomic step as the
//!   change that caused them.
//! - Timestamps are stored with at least millisecond precision and read back equal
//!   to what was written (core truncates them to milliseconds first).
//! - Errors: [`StorageError::Transient`] marks a failure worth retrying as a whole
//!   (serialization failures, busy databases, transient transaction errors); core
//!   retries those a bounded number of times. A backend that retries on its own
//!   stops when its next attempt would end past the [request
//!   deadline](crate::deadline) and reports [`StorageError::DeadlineExceeded`].
//!   Everything else is final.
//!
//! The `marketplace-conformance` crate is this contract made executable: a backend
//! is correct when it passes that suite.

use async_trait::async_trait;

mod accounts;
mod catalog;
mod checkout;
mod commission;
mod ledger;
mod orders;
mod outbox;
mod payments;
mod payouts;
mod shopping;

pub use accounts::AccountStore;
pub use accounts::{LoginAttempt, RotateOutcome, TokenEffect};
pub use catalog::CatalogStore;
pub use checkout::CheckoutStore;
pub use commission::CommissionStore;
pub use ledger::LedgerStore;
pub use orders::OrderStore;
pub use outbox::OutboxStore;
pub use payments::PaymentStore;
pub use payouts::PayoutStore;
pub use shopping::ShoppingStore;

/// A boxed error from a backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The addressed record does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; names what was duplicated (`email`,
    /// `category name`, `idempotency key`).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A precondition of a conditional write did not hold.
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// A failure that may succeed when the whole call is repeated.
    #[error("transient storage failure: {0}")]
    Transient(#[source] BoxError),
    /// The call kept failing transiently until another attempt would have
    /// ended past the [request deadline](crate::deadline); the source is the
    /// last failure. Like `Transient`, the call may succeed when repeated, but
    /// not within this request: nobody retries it.
    #[error("storage still failing at the request deadline: {0}")]
    DeadlineExceeded(#[source] BoxError),
    /// Any other backend failure.
    #[error("storage failure: {0}")]
    Backend(#[source] BoxError),
}

impl StorageError {
    /// Wraps a driver error as a final backend failure.
    pub fn backend(e: impl Into<BoxError>) -> Self {
        StorageError::Backend(e.into())
    }

    /// Wraps a driver error as a retryable failure.
    pub fn transient(e: impl Into<BoxError>) -> Self {
        StorageError::Transient(e.into())
    }

    /// A retry loop gave up at the request deadline; `last` is its last failure
    /// (the error of a `Transient` is unwrapped, so it is not reported twice).
    pub fn deadline_exceeded(last: StorageError) -> Self {
        match last {
            StorageError::Transient(e) | StorageError::DeadlineExceeded(e) => {
                StorageError::DeadlineExceeded(e)
            }
            other => StorageError::DeadlineExceeded(Box::new(other)),
        }
    }
}

/// The result type of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

/// Persistence for the marketplace: the union of the concept traits, plus a
/// readiness check. See the [module documentation](self) for the contract every
/// method keeps.
#[async_trait]
pub trait Storage:
    AccountStore
    + CatalogStore
    + ShoppingStore
    + CheckoutStore
    + OrderStore
    + OutboxStore
    + CommissionStore
    + LedgerStore
    + PayoutStore
    + PaymentStore
{
    /// Checks that the backend can serve requests (used by readiness probes).
    async fn ping(&self) -> StorageResult<()>;

    /// The database server's current time, read in one round trip, when the
    /// backend has a clock several processes share (PostgreSQL, MongoDB);
    /// `None` for a store only one process uses (memory, SQLite). A
    /// [`DatabaseClock`](crate::clock::DatabaseClock) measures this machine's
    /// offset against it, so every process decides leases and windows by the
    /// same clock. Fails like [`ping`](Storage::ping) when the server cannot
    /// be reached.
    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>>;
}

/// Shares one backend between owners, and lets a host pick a backend at run time
/// (`Arc<dyn Storage>`). Every concept trait forwards the same way; none has a
/// provided method, so a wrapper that forgets one does not compile.
#[async_trait]
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    async fn ping(&self) -> StorageResult<()> {
        (**self).ping().await
    }

    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
        (**self).database_time().await
    }
}
