//! Orders and their status changes.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;

use super::StorageResult;
use crate::ids::{CheckoutId, OrderId};
use crate::order::{Order, OrderQuery, OrderTransition};

/// Orders and their status changes: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// One order.
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>>;

    /// The orders of one checkout, by seller id.
    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>>;

    /// A page of orders matching `query`, newest first.
    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>>;

    /// **Atomic, conditional.** When the order's status is still `t.from`: sets it to
    /// `t.to`, appends `t.change` to its history, adds back `t.restock` units to
    /// each product (bumping its version) and stores `t.outbox`; returns the updated
    /// order. When the status differs, changes nothing and returns `None`.
    /// `NotFound` when the order does not exist.
    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: OrderStore + ?Sized> OrderStore for std::sync::Arc<T> {
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        (**self).order(id).await
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        (**self).checkout_orders(id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        (**self).list_orders(query).await
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        (**self).transition_order(t).await
    }
}
