//! Payments on PostgreSQL: a change is one conditional write on the payment's
//! version, with the order transitions it makes, in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::order::{Order, OrderTransition};
use marketplace_core::payment::{Payment, PaymentQuery, PaymentUpdate};
use marketplace_core::storage::PaymentStore;
use marketplace_core::{CheckoutId, PaymentId, StorageError, StorageResult};
use sqlx::{AssertSqlSafe, PgConnection, Postgres};
use uuid::Uuid;

use super::orders::apply_transition;
use super::outbox::insert_outbox;
use super::{PostgresStorage, e};
use crate::codec::payments::{self, PAYMENT_DOC};
use crate::codec::{self};

/// Locks the products several transitions restock, in id order, before any of
/// them runs: each transition's restock locks its own products in id order,
/// but one after the other they would not be, and a checkout taking the same
/// products (in id order) could deadlock with them. With one transition (or
/// none restocking) the locks are taken as `transition_order` takes them.
async fn lock_restocked(conn: &mut PgConnection, ts: &[OrderTransition]) -> StorageResult<()> {
    if ts.iter().filter(|t| !t.restock.is_empty()).count() < 2 {
        return Ok(());
    }
    let mut ids: Vec<Uuid> = ts
        .iter()
        .flat_map(|t| t.restock.iter().map(|(p, _)| p.0))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query("SELECT id FROM products WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(conn)
        .await
        .map_err(e)?;
    Ok(())
}

#[async_trait]
impl PaymentStore for PostgresStorage {
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_DOC} FROM payments WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, payments::payment)
    }

    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>> {
        if checkouts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = checkouts.iter().map(|c| c.0).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_DOC} FROM payments WHERE checkout_id = ANY($1)"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(e)?;
        codec::all(&rows, payments::payment)
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {PAYMENT_DOC} FROM payments WHERE provider = $1 AND reference = $2"
        )))
        .bind(provider)
        .bind(reference)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, payments::payment)
    }

    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>> {
        let mut list = payments::list_payments::<Postgres>(q);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, payments::payment)
    }

    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>> {
        let mut due = payments::payments_due::<Postgres>(now, limit);
        let rows = due.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, payments::payment)
    }

    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>> {
        let mut tx = self.begin().await?;
        // The conditional write: the payment's row stays locked until this
        // transaction ends, so a concurrent change of the same payment waits,
        // then re-checks the version against the committed row and matches
        // nothing. Every order change of a checkout with a payment goes through
        // here: the order rows below are only ever locked after the payment's.
        let mut write = payments::update_payment::<Postgres>(&u.payment)?;
        let written = write.build().fetch_optional(&mut *tx).await.map_err(e)?;
        if written.is_none() {
            let exists = sqlx::query("SELECT 1 FROM payments WHERE id = $1")
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
        lock_restocked(&mut tx, &u.transitions).await?;
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
        let row = sqlx::query("SELECT 1 FROM payment_events WHERE provider = $1 AND event_id = $2")
            .bind(provider)
            .bind(event_id)
            .fetch_optional(&self.pool)
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
        // A concurrent record of the same event waits on the primary key, then
        // finds it taken and inserts nothing.
        let done = sqlx::query(
            "INSERT INTO payment_events (provider, event_id, handled_at) VALUES ($1, $2, $3) \
             ON CONFLICT (provider, event_id) DO NOTHING",
        )
        .bind(provider)
        .bind(event_id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
