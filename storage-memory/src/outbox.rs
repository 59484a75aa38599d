//! The notification outbox: claims, delivery results, requeues.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery, OutboxStatus};
use marketplace_core::{MessageId, OutboxStore, StorageResult};
use uuid::Uuid;

use crate::MemoryStorage;

#[async_trait]
impl OutboxStore for MemoryStorage {
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        let mut s = self.lock();
        let mut due: Vec<&mut OutboxMessage> = s
            .outbox
            .values_mut()
            .filter(|m| {
                m.status == OutboxStatus::Pending
                    && m.next_attempt_at <= now
                    && m.claimed_until.is_none_or(|u| u <= now)
            })
            .collect();
        due.sort_by_key(|m| (m.next_attempt_at, m.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|m| {
                m.claimed_by = Some(worker);
                m.claimed_until = Some(lease_until);
                m.clone()
            })
            .collect())
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let mut s = self.lock();
        let Some(m) = s.outbox.get_mut(&id) else {
            return Ok(false);
        };
        if m.status != OutboxStatus::Pending || m.claimed_by != Some(worker) {
            return Ok(false);
        }
        m.attempts += 1;
        m.claimed_by = None;
        m.claimed_until = None;
        match update {
            DeliveryUpdate::Delivered { at } => {
                m.status = OutboxStatus::Delivered;
                m.delivered_at = Some(*at);
            }
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => {
                m.next_attempt_at = *next_attempt_at;
                m.last_error = Some(error.clone());
            }
            DeliveryUpdate::Dead { error } => {
                m.status = OutboxStatus::Dead;
                m.last_error = Some(error.clone());
            }
        }
        Ok(true)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let mut s = self.lock();
        let mut n = 0;
        for m in s
            .outbox
            .values_mut()
            .filter(|m| m.claimed_by == Some(worker))
        {
            m.claimed_by = None;
            m.claimed_until = None;
            n += 1;
        }
        Ok(n)
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        Ok(self.lock().outbox.get(&id).cloned())
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let s = self.lock();
        let mut v: Vec<OutboxMessage> = s
            .outbox
            .values()
            .filter(|m| q.matches(m))
            .cloned()
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let mut s = self.lock();
        match s.outbox.get_mut(&id) {
            Some(m) if m.status == OutboxStatus::Dead => {
                m.status = OutboxStatus::Pending;
                m.attempts = 0;
                m.next_attempt_at = now;
                m.claimed_by = None;
                m.claimed_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
