//! Payments: stored with the checkout, changed in conditional steps with the
//! orders they touch.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::order::Order;
use marketplace_core::payment::{Payment, PaymentQuery, PaymentUpdate};
use marketplace_core::{CheckoutId, PaymentId, PaymentStore, StorageError, StorageResult};

use crate::MemoryStorage;

#[async_trait]
impl PaymentStore for MemoryStorage {
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>> {
        Ok(self.lock().payments.get(&id).cloned())
    }

    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>> {
        let s = self.lock();
        Ok(checkouts
            .iter()
            .filter_map(|c| s.checkout_payment.get(c))
            .filter_map(|id| s.payments.get(id))
            .cloned()
            .collect())
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>> {
        Ok(self
            .lock()
            .payments
            .values()
            .find(|p| p.provider == provider && p.reference.as_deref() == Some(reference))
            .cloned())
    }

    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>> {
        let s = self.lock();
        let mut v: Vec<Payment> = s
            .payments
            .values()
            .filter(|p| q.matches(p))
            .cloned()
            .collect();
        v.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>> {
        let s = self.lock();
        let mut v: Vec<Payment> = s
            .payments
            .values()
            .filter(|p| p.due_at.is_some_and(|d| d <= now))
            .cloned()
            .collect();
        v.sort_by_key(|p| (p.due_at, p.id));
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>> {
        let mut s = self.lock();
        let stored = s
            .payments
            .get(&u.payment.id)
            .ok_or(StorageError::NotFound)?;
        if stored.version + 1 != u.payment.version {
            return Ok(None);
        }
        // Every condition is checked before anything is written, under the one
        // lock. (Several transitions in one step are cancellations, which write
        // no ledger entries, so checking each entry alone is checking them all.)
        for t in &u.transitions {
            if !s.transition_applies(t)? {
                return Ok(None);
            }
        }
        let mut orders = Vec::with_capacity(u.transitions.len());
        for t in &u.transitions {
            orders.extend(s.apply_transition(t));
        }
        s.payments.insert(u.payment.id, u.payment.clone());
        s.push_outbox(&u.outbox);
        Ok(Some(orders))
    }

    async fn payment_event_seen(&self, provider: &str, event_id: &str) -> StorageResult<bool> {
        Ok(self
            .lock()
            .payment_events
            .contains(&(provider.to_owned(), event_id.to_owned())))
    }

    async fn record_payment_event(
        &self,
        provider: &str,
        event_id: &str,
        _at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        Ok(self
            .lock()
            .payment_events
            .insert((provider.to_owned(), event_id.to_owned())))
    }
}
