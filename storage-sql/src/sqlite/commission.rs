//! Commission rules on SQLite: one row per scope, replaced whole by an upsert.

use async_trait::async_trait;
use marketplace_core::StorageResult;
use marketplace_core::commission::{CommissionRule, RuleScope};
use marketplace_core::storage::CommissionStore;
use sqlx::{AssertSqlSafe, Sqlite};

use super::{SqliteStorage, e};
use crate::codec;
use crate::codec::commission::{self, RULE_COLUMNS};

#[async_trait]
impl CommissionStore for SqliteStorage {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RULE_COLUMNS} FROM commission_rules"
        )))
        .fetch_all(&self.reader)
        .await
        .map_err(e)?;
        codec::all(&rows, commission::rule)
    }

    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> {
        // One statement is one write transaction: two puts are serialised by the
        // write lock, and the second replaces the first's row whole.
        let mut put = commission::put_rule::<Sqlite>(rule)?;
        put.build().execute(&self.writer).await.map_err(e)?;
        Ok(())
    }

    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> {
        let mut delete = commission::delete_rule::<Sqlite>(scope);
        let done = delete.build().execute(&self.writer).await.map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
