//! The checkout commit and its idempotency records.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;

use super::StorageResult;
use crate::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord, IdempotencyKey};
use crate::ids::UserId;

/// The checkout commit and its idempotency records: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait CheckoutStore: Send + Sync + 'static {
    /// The checkout a buyer made with an idempotency key, if any.
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>>;

    /// **Atomic, conditional: the checkout commit.** In one step:
    /// 1. when the buyer already used `plan.idempotency_key`, returns `Replayed`
    ///    and changes nothing;
    /// 2. when the buyer's cart version is not `plan.cart_version`, returns
    ///    `CartChanged` and changes nothing;
    /// 3. decrements the stock of every reservation, each only if enough remains
    ///    and the product is still active, not archived and not blocked; when any
    ///    falls short, returns `Short` listing **every** short item with the units
    ///    available (0 for an unsellable product) and changes nothing;
    /// 4. otherwise stores the orders, the payment (when the plan has one), the
    ///    idempotency record, the outbox messages, empties the cart (bumping its
    ///    version) and bumps each product's version.
    ///
    /// Concurrent commits never oversell: stock never goes below zero.
    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: CheckoutStore + ?Sized> CheckoutStore for std::sync::Arc<T> {
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>> {
        (**self).checkout_by_key(buyer, key).await
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        (**self).commit_checkout(plan).await
    }
}
