//! Checkouts' payments and the provider events already handled.
//!
//! Part of the storage contract: see the [module documentation](super); the
//! ledger rules of [`LedgerStore`](super::LedgerStore) apply to the entries the
//! order transitions here write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StorageResult;
use crate::ids::{CheckoutId, PaymentId};
use crate::order::Order;
use crate::payment::{Payment, PaymentQuery, PaymentUpdate};

/// Payments: what a backend stores for this concept. A payment is created by
/// [`CheckoutStore::commit_checkout`](super::CheckoutStore::commit_checkout)
/// with its orders, one per checkout. See the [storage contract](super) for
/// what **atomic** and **conditional** mean.
#[async_trait]
pub trait PaymentStore: Send + Sync + 'static {
    /// One payment.
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>>;

    /// The payments of these checkouts (those that have one), in any order.
    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>>;

    /// The payment a provider knows by `reference`.
    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>>;

    /// A page of payments matching `q`, newest first.
    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>>;

    /// Up to `limit` payments whose `due_at` is at or before `now`, earliest
    /// first.
    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>>;

    /// **Atomic, conditional.** When the stored payment's version is
    /// `u.payment.version - 1` and every transition's order still has its
    /// `from` status (and, where asked, an unreleased earning): replaces the
    /// payment with `u.payment`, applies every transition as
    /// [`OrderStore::transition_order`](super::OrderStore::transition_order)
    /// does (history, restock, return deadline, ledger entry, mails), stores
    /// `u.outbox`, and returns the updated orders in the order of the
    /// transitions. Otherwise changes nothing and returns `None`. `NotFound`
    /// when there is no such payment.
    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>>;

    /// Whether the provider's event `event_id` was already handled.
    async fn payment_event_seen(&self, provider: &str, event_id: &str) -> StorageResult<bool>;

    /// Records that the provider's event `event_id` was handled at `at`;
    /// `false` when it already was (recording twice is harmless).
    async fn record_payment_event(
        &self,
        provider: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> StorageResult<bool>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: PaymentStore + ?Sized> PaymentStore for std::sync::Arc<T> {
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>> {
        (**self).payment(id).await
    }

    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>> {
        (**self).checkout_payments(checkouts).await
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>> {
        (**self).payment_by_reference(provider, reference).await
    }

    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>> {
        (**self).list_payments(q).await
    }

    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>> {
        (**self).payments_due(now, limit).await
    }

    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>> {
        (**self).update_payment(u).await
    }

    async fn payment_event_seen(&self, provider: &str, event_id: &str) -> StorageResult<bool> {
        (**self).payment_event_seen(provider, event_id).await
    }

    async fn record_payment_event(
        &self,
        provider: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        (**self).record_payment_event(provider, event_id, at).await
    }
}
