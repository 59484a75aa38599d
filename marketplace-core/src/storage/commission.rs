//! Commission rules.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;

use super::StorageResult;
use crate::commission::{CommissionRule, RuleScope};

/// Commission rules, one per scope: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait CommissionStore: Send + Sync + 'static {
    /// Every rule, in no particular order.
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>>;

    /// **Atomic.** Stores `rule`, replacing the rule of the same scope if there is
    /// one (two concurrent puts leave one of them whole, never a mix).
    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()>;

    /// Removes the rule of `scope`; whether there was one.
    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: CommissionStore + ?Sized> CommissionStore for std::sync::Arc<T> {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> {
        (**self).commission_rules().await
    }

    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> {
        (**self).put_commission_rule(rule).await
    }

    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> {
        (**self).delete_commission_rule(scope).await
    }
}
