//! The notification outbox: claims, delivery results, requeues.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StorageResult;
use crate::ids::MessageId;
use crate::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery};

/// The notification outbox: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// **Atomic.** Claims up to `limit` pending messages due at `now` that no live
    /// claim holds (none, or one whose lease ended before `now`), oldest due first:
    /// marks them held by `worker` until `lease_until` and returns them. Two
    /// concurrent claims never return the same message.
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>>;

    /// **Conditional.** Records the result of a delivery attempt of a message still
    /// pending and held by `worker`: counts the attempt, applies `update` and
    /// releases the claim. `false` (nothing changed) when the claim was lost.
    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool>;

    /// Releases every claim `worker` holds without counting an attempt (shutdown).
    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64>;

    /// One message.
    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>>;

    /// A page of messages, newest first.
    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>>;

    /// **Conditional.** Puts a dead message back to pending, due at `now`, with its
    /// attempts reset; `false` when it is not dead.
    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: OutboxStore + ?Sized> OutboxStore for std::sync::Arc<T> {
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        (**self).claim_outbox(worker, now, lease_until, limit).await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        (**self).finish_delivery(id, worker, update).await
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        (**self).release_claims(worker).await
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        (**self).outbox_message(id).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        (**self).list_outbox(query).await
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        (**self).requeue_dead(id, now).await
    }
}
