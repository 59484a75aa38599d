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
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            return if order_exists(&mut tx, t.order_id).await? {
                Ok(None)
            } else {
                Err(StorageError::NotFound)
            };
        };
        let order = orders::order(&row)?;
        for (product, units) in &t.restock {
            sqlx::query(
                "UPDATE products SET stock = stock + ?2, version = version + 1 WHERE id = ?1",
            )
            .bind(product.0)
            .bind(i64::from(*units))
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        }
        if let Some(entry) = &t.ledger {
            append_entry(&mut tx, entry).await?;
        }
        insert_outbox(&mut tx, &t.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(order))
    }
}
