//! The checkout commit on SQLite: one `BEGIN IMMEDIATE` transaction, so nothing
//! it reads can change before it commits; each item's stock taken in turn.

use async_trait::async_trait;
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord, IdempotencyKey};
use marketplace_core::error::ShortItem;
use marketplace_core::storage::CheckoutStore;
use marketplace_core::{StorageResult, UserId};
use sqlx::{QueryBuilder, Sqlite};

use super::outbox::insert_outbox;
use super::{SqliteStorage, e};
use crate::codec::{self, Columns, checkout, orders, payments, to_i64};

/// The buyer's checkout made with `key`, if any.
const CHECKOUT_BY_KEY: &str =
    "SELECT id, request_hash FROM checkouts WHERE buyer_id = ?1 AND idempotency_key = ?2";

#[async_trait]
impl CheckoutStore for SqliteStorage {
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>> {
        let row = sqlx::query(CHECKOUT_BY_KEY)
            .bind(buyer.0)
            .bind(key.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        codec::optional(row, checkout::record)
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        // The write lock is held from the first statement: nothing below can be
        // raced by another writer, in this process or another.
        let mut tx = self.begin_write().await?;

        // 1. Idempotency.
        let done = sqlx::query(CHECKOUT_BY_KEY)
            .bind(plan.buyer_id.0)
            .bind(plan.idempotency_key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
        if let Some(done) = codec::optional(done, checkout::record)? {
            return Ok(CheckoutOutcome::Replayed(done));
        }

        // 2. Compare-and-swap on the cart version, emptying it ("no row" is 0).
        let cart = if plan.cart_version == 0 {
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES (?1, 1, '[]') \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = c.version + 1, lines = '[]' \
                 WHERE c.version = 0",
            )
            .bind(plan.buyer_id.0)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = version + 1, lines = '[]' \
                 WHERE buyer_id = ?1 AND version = ?2",
            )
            .bind(plan.buyer_id.0)
            .bind(to_i64(plan.cart_version)?)
            .execute(&mut *tx)
            .await
        }
        .map_err(e)?;
        if cart.rows_affected() == 0 {
            return Ok(CheckoutOutcome::CartChanged);
        }

        // 3. Conditional decrements in product-id order (the plan's order),
        //    collecting every short item.
        let mut short = Vec::new();
        for r in &plan.reservations {
            let taken = sqlx::query(
                "UPDATE products SET stock = stock - ?2, version = version + 1 \
                 WHERE id = ?1 AND stock >= ?2 AND active = 1 AND archived = 0 AND blocked = 0",
            )
            .bind(r.product_id.0)
            .bind(i64::from(r.quantity))
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            if taken.rows_affected() == 0 {
                let available = sqlx::query(
                    "SELECT CASE WHEN active = 1 AND archived = 0 AND blocked = 0 \
                     THEN stock ELSE 0 END AS available FROM products WHERE id = ?1",
                )
                .bind(r.product_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
                short.push(ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available: available
                        .map(|a| a.count("available"))
                        .transpose()?
                        .unwrap_or(0),
                });
            }
        }
        if !short.is_empty() {
            tx.rollback().await.map_err(e)?;
            return Ok(CheckoutOutcome::Short(short));
        }

        // 4. The idempotency record, the orders, the payment and the mails.
        let mut record = checkout::insert_checkout::<Sqlite>(plan);
        record.build().execute(&mut *tx).await.map_err(e)?;
        for o in &plan.orders {
            let mut insert = QueryBuilder::<Sqlite>::new("");
            orders::push_insert_orders(&mut insert, [o]);
            insert.build().execute(&mut *tx).await.map_err(e)?;
        }
        if let Some(p) = &plan.payment {
            let mut insert = QueryBuilder::<Sqlite>::new("");
            payments::push_insert_payment(&mut insert, p)?;
            insert.build().execute(&mut *tx).await.map_err(e)?;
        }
        insert_outbox(&mut tx, &plan.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(CheckoutOutcome::Committed)
    }
}
