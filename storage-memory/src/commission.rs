//! Commission rules, one per scope.

use async_trait::async_trait;
use marketplace_core::commission::{CommissionRule, RuleScope};
use marketplace_core::{CommissionStore, StorageResult};

use crate::MemoryStorage;

#[async_trait]
impl CommissionStore for MemoryStorage {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> {
        Ok(self.lock().rules.values().cloned().collect())
    }

    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> {
        self.lock().rules.insert(rule.scope, rule.clone());
        Ok(())
    }

    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> {
        Ok(self.lock().rules.remove(scope).is_some())
    }
}
