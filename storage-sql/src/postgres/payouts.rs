//! Payouts on PostgreSQL: taking an available balance under its row lock, and
//! settling the outcome.

use async_trait::async_trait;
use marketplace_core::payout::{Payout, PayoutQuery, PayoutRequest, PayoutSettlement};
use marketplace_core::storage::PayoutStore;
use marketplace_core::{PayoutId, StorageError, StorageResult};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};

use super::ledger::append_entry;
use super::outbox::insert_outbox;
use super::{PostgresStorage, e};
use crate::codec::payouts::{self, PAYOUT_COLUMNS};
use crate::codec::{self, ledger};

#[async_trait]
impl PayoutStore for PostgresStorage {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, payouts::payout)
    }

    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> {
        let mut list = payouts::list_payouts::<Postgres>(q);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, payouts::payout)
    }

    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> {
        let mut tx = self.begin().await?;
        // The balance row stays locked until this transaction ends: a concurrent
        // request waits here, then reads the balance this one left (zero).
        let row = sqlx::query(
            "SELECT available FROM seller_balances WHERE seller_id = $1 AND currency = $2 \
             FOR UPDATE",
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
        let mut insert = QueryBuilder::<Postgres>::new("");
        payouts::push_insert_payout(&mut insert, &payout);
        insert.build().execute(&mut *tx).await.map_err(e)?;
        append_entry(&mut tx, &entry).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(payout))
    }

    async fn settle_payout(&self, s: &PayoutSettlement) -> StorageResult<Option<Payout>> {
        let mut tx = self.begin().await?;
        // The conditional write: a concurrent settlement waits for the row, then
        // finds its status moved and changes nothing.
        let mut settle = payouts::settle_payout::<Postgres>(s);
        let row = settle.build().fetch_optional(&mut *tx).await.map_err(e)?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM payouts WHERE id = $1")
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
