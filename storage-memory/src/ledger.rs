//! The seller ledger: entries in write order, balances beside them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::ledger::{Balance, EarningRelease, EntryKind, LedgerEntry, LedgerQuery};
use marketplace_core::order::{Order, OrderStatus};
use marketplace_core::{Currency, LedgerStore, StorageError, StorageResult, UserId};

use crate::{MemoryStorage, State};

impl State {
    /// Checks that `entry` may be appended: no bucket below zero, one earning,
    /// release and reversal per order.
    pub(crate) fn check_entry(&self, entry: &LedgerEntry) -> StorageResult<()> {
        let key = (entry.seller_id, entry.currency());
        let (pending, available) = self.balances.get(&key).copied().unwrap_or((0, 0));
        if pending + entry.pending.amount < 0 || available + entry.available.amount < 0 {
            return Err(StorageError::Precondition(format!(
                "a {} entry would take the balance below zero",
                entry.kind.as_str()
            )));
        }
        if let Some(order) = entry.order_id
            && matches!(
                entry.kind,
                EntryKind::Earning | EntryKind::Release | EntryKind::Reversal
            )
            && self.order_entries.contains(&(order, entry.kind))
        {
            return Err(StorageError::AlreadyExists("ledger entry"));
        }
        Ok(())
    }

    /// Appends an entry [`State::check_entry`] accepted, moving its balance.
    pub(crate) fn append_entry(&mut self, entry: &LedgerEntry) {
        let b = self
            .balances
            .entry((entry.seller_id, entry.currency()))
            .or_insert((0, 0));
        b.0 += entry.pending.amount;
        b.1 += entry.available.amount;
        if let Some(order) = entry.order_id {
            self.order_entries.insert((order, entry.kind));
        }
        self.ledger.push(entry.clone());
    }
}

fn balance((seller, currency): (UserId, Currency), (p, a): (i64, i64)) -> Balance {
    use marketplace_core::Money;
    Balance::new(seller, Money::new(p, currency), Money::new(a, currency))
}

#[async_trait]
impl LedgerStore for MemoryStorage {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> {
        let s = self.lock();
        Ok(s.balances
            .iter()
            .filter(|((id, _), _)| seller.is_none_or(|s| *id == s))
            .map(|(k, v)| balance(*k, *v))
            .collect())
    }

    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> {
        let s = self.lock();
        let mut v: Vec<LedgerEntry> = s.ledger.iter().filter(|e| q.matches(e)).cloned().collect();
        v.sort_by_key(|e| std::cmp::Reverse((e.created_at, e.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> {
        let s = self.lock();
        let mut v: Vec<Order> = s
            .orders
            .values()
            .filter(|o| {
                o.status == OrderStatus::Delivered
                    && o.earning_released_at.is_none()
                    && o.return_until.is_some_and(|end| end <= now)
            })
            .cloned()
            .collect();
        v.sort_by_key(|o| (o.return_until, o.id));
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> {
        let mut s = self.lock();
        let order = s.orders.get(&r.order_id).ok_or(StorageError::NotFound)?;
        if order.status != OrderStatus::Delivered || order.earning_released_at.is_some() {
            return Ok(false);
        }
        s.check_entry(&r.entry)?;
        if let Some(order) = s.orders.get_mut(&r.order_id) {
            order.earning_released_at = Some(r.entry.created_at);
        }
        s.append_entry(&r.entry);
        Ok(true)
    }
}
