//! Payouts: taking an available balance, and settling the outcome.

use async_trait::async_trait;
use marketplace_core::payout::{Payout, PayoutQuery, PayoutRequest, PayoutSettlement};
use marketplace_core::{PayoutId, PayoutStore, StorageError, StorageResult};

use crate::MemoryStorage;

#[async_trait]
impl PayoutStore for MemoryStorage {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> {
        Ok(self.lock().payouts.get(&id).cloned())
    }

    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> {
        let s = self.lock();
        let mut v: Vec<Payout> = s
            .payouts
            .values()
            .filter(|p| q.matches(p))
            .cloned()
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> {
        let mut s = self.lock();
        let available = s
            .balances
            .get(&(r.seller_id, r.currency))
            .map_or(0, |b| b.1);
        if available < r.minimum.max(1) {
            return Ok(None);
        }
        let (payout, entry) = r.payout(available);
        s.check_entry(&entry)?;
        s.append_entry(&entry);
        s.payouts.insert(payout.id, payout.clone());
        Ok(Some(payout))
    }

    async fn settle_payout(&self, t: &PayoutSettlement) -> StorageResult<Option<Payout>> {
        let mut s = self.lock();
        let payout = s.payouts.get(&t.payout_id).ok_or(StorageError::NotFound)?;
        if !t.from.contains(&payout.status) {
            return Ok(None);
        }
        if let Some(entry) = &t.entry {
            s.check_entry(entry)?;
            s.append_entry(entry);
        }
        s.push_outbox(&t.outbox);
        let payout = s
            .payouts
            .get_mut(&t.payout_id)
            .ok_or(StorageError::NotFound)?;
        payout.status = t.to;
        if t.reference.is_some() {
            payout.reference.clone_from(&t.reference);
        }
        if t.failure.is_some() {
            payout.failure.clone_from(&t.failure);
        }
        payout.updated_at = t.at;
        Ok(Some(payout.clone()))
    }
}
