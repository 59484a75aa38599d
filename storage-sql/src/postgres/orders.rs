//! Orders and their status changes on PostgreSQL.

use async_trait::async_trait;
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::storage::OrderStore;
use marketplace_core::{CheckoutId, OrderId, ProductId, StorageError, StorageResult};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use super::ledger::append_entry;
use super::outbox::insert_outbox;
use super::{PostgresStorage, e};
use crate::codec::{self, orders};

/// Adds `qty` units back to each product, locking the rows in id order.
const RESTOCK: &str = "WITH wanted AS ( \
         SELECT id, sum(qty)::int8 AS qty FROM unnest($1::uuid[], $2::int8[]) AS t(id, qty) GROUP BY id \
     ), locked AS ( \
         SELECT p.id FROM products p JOIN wanted w ON w.id = p.id ORDER BY p.id FOR NO KEY UPDATE OF p \
     ) \
     UPDATE products p SET stock = p.stock + w.qty, version = p.version + 1 \
     FROM wanted w WHERE p.id = w.id AND p.id IN (SELECT id FROM locked)";

/// Adds back the units of a cancelled or returned order, in one statement.
async fn restock(conn: &mut PgConnection, restock: &[(ProductId, u32)]) -> StorageResult<()> {
    if restock.is_empty() {
        return Ok(());
    }
    let (ids, qtys): (Vec<Uuid>, Vec<i64>) =
        restock.iter().map(|(p, n)| (p.0, i64::from(*n))).unzip();
    sqlx::query(RESTOCK)
        .bind(ids)
        .bind(qtys)
        .execute(conn)
        .await
        .map_err(e)?;
    Ok(())
}

/// Whether the order exists: what a conditional write that matched no row
/// tells apart (a moved status from a missing order).
pub(super) async fn order_exists(conn: &mut PgConnection, id: OrderId) -> StorageResult<bool> {
    let row = sqlx::query("SELECT 1 FROM orders WHERE id = $1")
        .bind(id.0)
        .fetch_optional(conn)
        .await
        .map_err(e)?;
    Ok(row.is_some())
}

/// Applies `t` in the caller's transaction: the conditional status change,
/// then the restock, the ledger entry and the mails. `None` when the order no
/// longer has `t.from` (or, where asked, its earning was released) and nothing
/// was written; `NotFound` when there is no such order. A ledger entry the
/// rules refuse fails the call, and the caller's transaction rolls back what
/// it wrote (the status change included).
///
/// The conditional write locks the order's row: a concurrent transition (or
/// earning release) of the same order waits, then finds its condition gone and
/// changes nothing.
pub(super) async fn apply_transition(
    conn: &mut PgConnection,
    t: &OrderTransition,
) -> StorageResult<Option<Order>> {
    let row = sqlx::query(
        "UPDATE orders SET status = $2, history = history || jsonb_build_array($3::jsonb), \
         updated_at = $4, return_until = COALESCE($6, return_until) \
         WHERE id = $1 AND status = $5 AND (NOT $7 OR earning_released_at IS NULL) \
         RETURNING *",
    )
    .bind(t.order_id.0)
    .bind(t.to.as_str())
    .bind(Json(&t.change))
    .bind(t.change.at)
    .bind(t.from.as_str())
    .bind(t.return_until)
    .bind(t.require_unreleased)
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
    restock(conn, &t.restock).await?;
    if let Some(entry) = &t.ledger {
        append_entry(conn, entry).await?;
    }
    insert_outbox(conn, &t.outbox).await?;
    Ok(Some(order))
}

#[async_trait]
impl OrderStore for PostgresStorage {
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        let row = sqlx::query("SELECT * FROM orders WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?;
        codec::optional(row, orders::order)
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let rows = sqlx::query("SELECT * FROM orders WHERE checkout_id = $1 ORDER BY seller_id")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let mut list = orders::list_orders::<Postgres>(q);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut tx = self.begin().await?;
        let Some(order) = apply_transition(&mut tx, t).await? else {
            // The conditional write matched nothing: nothing was written.
            tx.rollback().await.map_err(e)?;
            return Ok(None);
        };
        tx.commit().await.map_err(e)?;
        Ok(Some(order))
    }
}
