//! Payouts to sellers.
//!
//! Part of the storage contract: see the [module documentation](super); the
//! ledger rules of [`LedgerStore`](super::LedgerStore) apply to the entries written
//! here.

use async_trait::async_trait;

use super::StorageResult;
use crate::ids::PayoutId;
use crate::payout::{Payout, PayoutQuery, PayoutRequest, PayoutSettlement};

/// Payouts: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait PayoutStore: Send + Sync + 'static {
    /// One payout.
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>>;

    /// A page of payouts matching `q`, newest first.
    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>>;

    /// **Atomic, conditional: taking a balance.** In one step: reads the seller's
    /// available balance in `r.currency`; when it is below `r.minimum` (or there is
    /// none), changes nothing and returns `None`. Otherwise sets it to zero, stores
    /// the payout and appends its `payout` entry, both as
    /// [`PayoutRequest::payout`] builds them for the amount taken, and returns the
    /// payout. Concurrent requests for one seller take a balance once: the others
    /// find it below the minimum.
    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>>;

    /// **Atomic, conditional.** When the payout's status is one of `s.from`: sets
    /// its status to `s.to`, its reference and failure (when given) and
    /// `updated_at`, appends `s.entry` (returning a failed payout's funds) and
    /// stores `s.outbox`; returns the updated payout. When the status is another,
    /// changes nothing and returns `None`. `NotFound` when there is no such payout.
    async fn settle_payout(&self, s: &PayoutSettlement) -> StorageResult<Option<Payout>>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: PayoutStore + ?Sized> PayoutStore for std::sync::Arc<T> {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> {
        (**self).payout(id).await
    }

    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> {
        (**self).list_payouts(q).await
    }

    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> {
        (**self).request_payout(r).await
    }

    async fn settle_payout(&self, s: &PayoutSettlement) -> StorageResult<Option<Payout>> {
        (**self).settle_payout(s).await
    }
}
