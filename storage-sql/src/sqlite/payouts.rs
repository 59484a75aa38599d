//! Payouts on SQLite: taking an available balance under the write lock, and
//! settling the outcome.

use async_trait::async_trait;
use marketplace_core::payout::{Payout, PayoutQuery, PayoutRequest, PayoutSettlement};
use marketplace_core::storage::PayoutStore;
use marketplace_core::{PayoutId, StorageError, StorageResult};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite};

use super::ledger::append_entry;
use super::outbox::insert_outbox;
use super::{SqliteStorage, e};
use crate::codec::payouts::{self, PAYOUT_COLUMNS};
use crate::codec::{self, ledger};

#[async_trait]
impl PayoutStore for SqliteStorage {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, payouts::payout)
    }

    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> {
        let mut list = payouts::list_payouts::<Sqlite>(q);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, payouts::payout)
    }

    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> {
        // `BEGIN IMMEDIATE` holds the write lock from the read on: a concurrent
        // request, in this process or another, reads the balance this one left.
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT available FROM seller_balances WHERE seller_id = ?1 AND currency = ?2",
        )
        .bind(r.seller_id.0)
        .bind(r.currency.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let available = codec::optional(row, ledger::available)?.unwrap_or(0);
        if available < r.minimum.max(1) {
            tx.rollback().await.map_err(e)?;
            return Ok(None);
        }
        let (payout, entry) = r.payout(available);
        let mut insert = QueryBuilder::<Sqlite>::new("");
        payouts::push_insert_payout(&mut insert, &payout);
        insert.build().execute(&mut *tx).await.map_err(e)?;
        append_entry(&mut tx, &entry).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(payout))
    }

    async fn settle_payout(&self, s: &PayoutSettlement) -> StorageResult<Option<Payout>> {
        let mut tx = self.begin_write().await?;
        let mut settle = payouts::settle_payout::<Sqlite>(s);
        let row = settle.build().fetch_optional(&mut *tx).await.map_err(e)?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM payouts WHERE id = ?1")
                .bind(s.payout_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StorageError::NotFound),
            };
        };
        let payout = payouts::payout(&row)?;
        if let Some(entry) = &s.entry {
            append_entry(&mut tx, entry).await?;
        }
        insert_outbox(&mut tx, &s.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(payout))
    }
}
