//! Orders and their status changes on SQLite.

use async_trait::async_trait;
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::storage::OrderStore;
use marketplace_core::{CheckoutId, OrderId, StorageError, StorageResult};
use sqlx::{Sqlite, SqliteConnection};

use super::ledger::append_entry;
use super::outbox::insert_outbox;
use super::{SqliteStorage, e};
use crate::codec::{self, Binds, orders};

/// Whether the order exists: what a conditional write that matched no row
/// tells apart (a moved status from a missing order).
pub(super) async fn order_exists(conn: &mut SqliteConnection, id: OrderId) -> StorageResult<bool> {
    let row = sqlx::query("SELECT 1 FROM orders WHERE id = ?1")
        .bind(id.0)
        .fetch_optional(conn)
        .await
        .map_err(e)?;
    Ok(row.is_some())
}

/// Applies `t` in the caller's write transaction: the conditional status
/// change, then the restock, the ledger entry and the mails. `None` when the
/// order no longer has `t.from` (or, where asked, its earning was released) and
/// nothing was written; `NotFound` when there is no such order. A ledger entry
/// the rules refuse fails the call, and the caller's transaction rolls back
/// what it wrote (the status change included). The write lock the transaction
/// holds keeps every other writer out between the condition and the writes.
pub(super) async fn apply_transition(
    conn: &mut SqliteConnection,
    t: &OrderTransition,
) -> StorageResult<Option<Order>> {
    let row = sqlx::query(
        "UPDATE orders SET status = ?2, history = json_insert(history, '$[#]', json(?3)), \
         updated_at = ?4, return_until = COALESCE(?6, return_until) \
         WHERE id = ?1 AND status = ?5 AND (?7 = 0 OR earning_released_at IS NULL) \
         RETURNING *",
    )
    .bind(t.order_id.0)
    .bind(t.to.as_str())
    .json(&t.change)
    .time(t.change.at)
    .bind(t.from.as_str())
    .opt_time(t.return_until)
    .flag(t.require_unreleased)
    .fetch_optional(&mut *conn)
    .await
    .map_err(e)?;
    let Some(row) = row else {
        return if order_exists(conn, t.order_id).await? {
            Ok(None)
        } else {
            Err(StorageError::NotFound)
        };
    };
    let order = orders::order(&row)?;
    for (product, units) in &t.restock {
        sqlx::query("UPDATE products SET stock = stock + ?2, version = version + 1 WHERE id = ?1")
            .bind(product.0)
            .bind(i64::from(*units))
            .execute(&mut *conn)
            .await
            .map_err(e)?;
    }
    if let Some(entry) = &t.ledger {
        append_entry(conn, entry).await?;
    }
    insert_outbox(conn, &t.outbox).await?;
    Ok(Some(order))
}

#[async_trait]
impl OrderStore for SqliteStorage {
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        let row = sqlx::query("SELECT * FROM orders WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        codec::optional(row, orders::order)
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let rows = sqlx::query("SELECT * FROM orders WHERE checkout_id = ?1 ORDER BY seller_id")
            .bind(id.0)
            .fetch_all(&self.reader)
            .await
            .map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let mut list = orders::list_orders::<Sqlite>(q);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut tx = self.begin_write().await?;
        let Some(order) = apply_transition(&mut tx, t).await? else {
            // The conditional write matched nothing: nothing was written.
            tx.rollback().await.map_err(e)?;
            return Ok(None);
        };
        tx.commit().await.map_err(e)?;
        Ok(Some(order))
    }
}
