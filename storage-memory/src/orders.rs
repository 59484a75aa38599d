//! Orders and their status changes with restock.

use async_trait::async_trait;
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::{CheckoutId, OrderId, OrderStore, StorageError, StorageResult};

use crate::{MemoryStorage, State};

#[async_trait]
impl OrderStore for MemoryStorage {
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        Ok(self.lock().orders.get(&id).cloned())
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let mut v: Vec<Order> = self
            .lock()
            .orders
            .values()
            .filter(|o| o.checkout_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|o| o.seller_id);
        Ok(v)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let s = self.lock();
        let mut v: Vec<Order> = s
            .orders
            .values()
            .filter(|o| q.matches(o))
            .cloned()
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut s = self.lock();
        if !s.transition_applies(t)? {
            return Ok(None);
        }
        Ok(s.apply_transition(t))
    }
}

impl State {
    /// Whether `t` may be applied: the order still has its `from` status (and
    /// an unreleased earning where asked), and its ledger entry is acceptable.
    pub(crate) fn transition_applies(&self, t: &OrderTransition) -> StorageResult<bool> {
        let order = self.orders.get(&t.order_id).ok_or(StorageError::NotFound)?;
        if order.status != t.from || (t.require_unreleased && order.earning_released_at.is_some()) {
            return Ok(false);
        }
        if let Some(entry) = &t.ledger {
            self.check_entry(entry)?;
        }
        Ok(true)
    }

    /// Applies a transition [`transition_applies`](Self::transition_applies)
    /// accepted (under the same lock); returns the updated order.
    pub(crate) fn apply_transition(&mut self, t: &OrderTransition) -> Option<Order> {
        let order = self.orders.get_mut(&t.order_id)?;
        order.status = t.to;
        if t.return_until.is_some() {
            order.return_until = t.return_until;
        }
        order.history.push(t.change.clone());
        order.updated_at = t.change.at;
        let updated = order.clone();
        for (product, units) in &t.restock {
            if let Some(p) = self.products.get_mut(product) {
                p.stock += units;
                p.version += 1;
            }
        }
        if let Some(entry) = &t.ledger {
            self.append_entry(entry);
        }
        self.push_outbox(&t.outbox);
        Some(updated)
    }
}
