//! Placeholder money rooms (replaced by the real implementation).
#![allow(unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::commission::{CommissionRule, RuleScope};
use marketplace_core::ledger::{Balance, EarningRelease, LedgerEntry, LedgerQuery};
use marketplace_core::order::Order;
use marketplace_core::payout::{Payout, PayoutQuery, PayoutRequest, PayoutSettlement};
use marketplace_core::{
    CommissionStore, LedgerStore, PayoutId, PayoutStore, StorageError, StorageResult, UserId,
};

use super::SqliteStorage;

fn todo() -> StorageError {
    StorageError::backend("money is not implemented on this backend yet")
}

#[async_trait]
impl CommissionStore for SqliteStorage {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> { Ok(Vec::new()) }
    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> { Err(todo()) }
    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> { Err(todo()) }
}

#[async_trait]
impl LedgerStore for SqliteStorage {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> { Err(todo()) }
    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> { Err(todo()) }
    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> { Ok(Vec::new()) }
    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> { Err(todo()) }
}

#[async_trait]
impl PayoutStore for SqliteStorage {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> { Err(todo()) }
    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> { Err(todo()) }
    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> { Err(todo()) }
    async fn settle_payout(&self, s: &PayoutSettlement) -> StorageResult<Option<Payout>> { Err(todo()) }
}
