//! Commission rules on PostgreSQL: one row per scope, replaced whole by an upsert.

use async_trait::async_trait;
use marketplace_core::StorageResult;
use marketplace_core::commission::{CommissionRule, RuleScope};
use marketplace_core::storage::CommissionStore;
use sqlx::{AssertSqlSafe, Postgres};

use super::{PostgresStorage, e};
use crate::codec;
use crate::codec::commission::{self, RULE_COLUMNS};

#[async_trait]
impl CommissionStore for PostgresStorage {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM commission_rules"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(e)?;
        codec::all(&rows, commission::rule)
    }

    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> {
        // One statement: a concurrent put of the same scope waits on the unique
        // key, then replaces this one's row whole.
        let mut put = commission::put_rule::<Postgres>(rule)?;
        put.build().execute(&self.pool).await.map_err(e)?;
        Ok(())
    }

    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> {
        let mut delete = commission::delete_rule::<Postgres>(scope);
        let done = delete.build().execute(&self.pool).await.map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
