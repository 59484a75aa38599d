//! The seller ledger and its balances.
//!
//! Part of the storage contract: see the [module documentation](super).
//!
//! Every method that appends ledger entries (here, in
//! [`OrderStore::transition_order`](super::OrderStore::transition_order) and in
//! [`PayoutStore`](super::PayoutStore)) keeps the same rules:
//! - entries are only ever appended, never changed or removed;
//! - the seller's balance in the entry's currency (`pending`, `available`) changes
//!   by the entry's amounts in the same atomic step, so a balance always equals the
//!   sum of its entries;
//! - a bucket never goes below zero: an entry that would take it there is refused
//!   with [`StorageError::Precondition`](super::StorageError::Precondition) and the
//!   whole step writes nothing;
//! - at most one entry of each kind `earning`, `release` and `reversal` exists per
//!   order (a second is `AlreadyExists` and the step writes nothing).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StorageResult;
use crate::ids::UserId;
use crate::ledger::{Balance, EarningRelease, LedgerEntry, LedgerQuery};
use crate::order::Order;

/// The seller ledger: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// The balances of one seller (one per currency it ever had an entry in), or
    /// of every seller when `seller` is `None`.
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>>;

    /// A page of entries matching `q`, newest first.
    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>>;

    /// Up to `limit` orders whose earning is due for release: status `delivered`,
    /// not yet released, `return_until` at or before `now`; oldest deadline first.
    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>>;

    /// **Atomic, conditional.** When the order is still `delivered` and its earning
    /// not yet released: sets its `earning_released_at` to the entry's time and
    /// appends `r.entry` (moving the net from pending to available); returns
    /// `true`. Otherwise changes nothing and returns `false`. Serializes with
    /// [`transition_order`](super::OrderStore::transition_order) on the same order:
    /// a return request and a release never both succeed.
    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: LedgerStore + ?Sized> LedgerStore for std::sync::Arc<T> {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> {
        (**self).balances(seller).await
    }

    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> {
        (**self).ledger_entries(q).await
    }

    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> {
        (**self).orders_to_release(now, limit).await
    }

    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> {
        (**self).release_earning(r).await
    }
}
