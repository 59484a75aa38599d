//! Payments on SQLite: a change is one conditional write on the payment's
//! version, with the order transitions it makes, under the write lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::order::Order;
use marketplace_core::payment::{Payment, PaymentQuery, PaymentUpdate};
use marketplace_core::storage::PaymentStore;
use marketplace_core::{CheckoutId, PaymentId, StorageError, StorageResult};
use sqlx::{AssertSqlSafe, Sqlite};

use super::orders::apply_transition;
use super::outbox::insert_outbox;
use super::{SqliteStorage, e};
use crate::codec::payments::{self, PAYMENT_DOC};
use crate::codec::{self, Binds};

#[async_trait]
impl PaymentStore for SqliteStorage {
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_DOC} FROM payments WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, payments::payment)
    }

    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>> {
        if checkouts.is_empty() {
            return Ok(Vec::new());
        }
        // One statement, its ids bound one by one (SQLite has no arrays), in
        // chunks below SQLite's limit on bound parameters.
        let mut found = Vec::new();
        for chunk in checkouts.chunks(CHECKOUTS_PER_STATEMENT) {
            let mut list = payments::checkout_payments_in::<Sqlite>(chunk);
            let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
            found.extend(codec::all(&rows, payments::payment)?);
        }
        Ok(found)
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_DOC} FROM payments WHERE provider = ?1 AND reference = ?2"
        )))
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, payments::payment)
    }

    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>> {
        let mut list = payments::list_payments::<Sqlite>(q);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, payments::payment)
    }

    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>> {
        let mut due = payments::payments_due::<Sqlite>(now, limit);
        let rows = due.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, payments::payment)
    }

    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>> {
        // Under the write lock from the first statement: nothing another writer
        // does can come between the version's check and the last transition.
        let mut tx = self.begin_write().await?;
        let mut write = payments::update_payment::<Sqlite>(&u.payment)?;
        let written = write.build().fetch_optional(&mut *tx).await.map_err(e)?;
        if written.is_none() {
            let exists = sqlx::query("SELECT 1 FROM payments WHERE id = ?1")
                .bind(u.payment.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
            tx.rollback().await.map_err(e)?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StorageError::NotFound),
            };
        }
        let mut orders = Vec::with_capacity(u.transitions.len());
        for t in &u.transitions {
            match apply_transition(&mut tx, t).await? {
                Some(order) => orders.push(order),
                None => {
                    // An order moved: the payment's change and the transitions
                    // before this one are undone with it.
                    tx.rollback().await.map_err(e)?;
                    return Ok(None);
                }
            }
        }
        insert_outbox(&mut tx, &u.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(orders))
    }

    async fn payment_event_seen(&self, provider: &str, event_id: &str) -> StorageResult<bool> {
        let row = sqlx::query("SELECT 1 FROM payment_events WHERE provider = ?1 AND event_id = ?2")
            .bind(provider)
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        Ok(row.is_some())
    }

    async fn record_payment_event(
        &self,
        provider: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        // One statement is one write transaction: of two records of one event,
        // the second finds the key taken and inserts nothing.
        let done = sqlx::query(
            "INSERT INTO payment_events (provider, event_id, handled_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .time(at)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}

/// The most checkout ids one lookup binds: well below SQLite's limit of
/// 32 766 bound parameters.
const CHECKOUTS_PER_STATEMENT: usize = 500;
