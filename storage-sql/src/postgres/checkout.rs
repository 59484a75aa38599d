//! The checkout commit on PostgreSQL: the stock of every item taken in one
//! statement, the orders, the payment and their mails written in another.

use std::collections::HashMap;

use async_trait::async_trait;
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord, IdempotencyKey};
use marketplace_core::error::ShortItem;
use marketplace_core::storage::CheckoutStore;
use marketplace_core::{StorageError, StorageResult, UserId};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{PostgresStorage, e};
use crate::codec::{self, Columns, checkout, orders, outbox, payments, to_i64};

#[async_trait]
impl CheckoutStore for PostgresStorage {
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>> {
        let row = sqlx::query(
            "SELECT id, request_hash FROM checkouts WHERE buyer_id = $1 AND idempotency_key = $2",
        )
        .bind(buyer.0)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, checkout::record)
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        let mut tx = self.begin().await?;

        // 1. The idempotency record goes in first: a concurrent commit with the
        //    same key waits on the unique index, then finds the key taken.
        let mut claim = checkout::insert_checkout::<Postgres>(plan);
        claim.push(" ON CONFLICT (buyer_id, idempotency_key) DO NOTHING");
        let claimed = claim.build().execute(&mut *tx).await.map_err(e)?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await.map_err(e)?;
            return match self
                .checkout_by_key(plan.buyer_id, &plan.idempotency_key)
                .await?
            {
                Some(done) => Ok(CheckoutOutcome::Replayed(done)),
                // The other commit rolled back after all: try again.
                None => Err(StorageError::transient("idempotency key in flux")),
            };
        }

        // 2. Compare-and-swap on the cart version, emptying it ("no row" is 0).
        let cart = if plan.cart_version == 0 {
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES ($1, 1, '[]') \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = c.version + 1, lines = '[]' \
                 WHERE c.version = 0",
            )
            .bind(plan.buyer_id.0)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = version + 1, lines = '[]' \
                 WHERE buyer_id = $1 AND version = $2",
            )
            .bind(plan.buyer_id.0)
            .bind(to_i64(plan.cart_version)?)
            .execute(&mut *tx)
            .await
        }
        .map_err(e)?;
        if cart.rows_affected() == 0 {
            tx.rollback().await.map_err(e)?;
            return Ok(CheckoutOutcome::CartChanged);
        }

        // 3. Conditional decrements, one statement: rows are locked in product-id
        //    order, and each decrement re-checks stock and sellability against the
        //    committed row it locked.
        let ids: Vec<Uuid> = plan.reservations.iter().map(|r| r.product_id.0).collect();
        let qtys: Vec<i64> = plan
            .reservations
            .iter()
            .map(|r| i64::from(r.quantity))
            .collect();
        let taken = sqlx::query(
            "WITH wanted AS ( \
                 SELECT id, sum(qty)::int8 AS qty FROM unnest($1::uuid[], $2::int8[]) AS t(id, qty) \
                 GROUP BY id \
             ), locked AS ( \
                 SELECT p.id FROM products p JOIN wanted w ON w.id = p.id \
                 ORDER BY p.id FOR NO KEY UPDATE OF p \
             ) \
             UPDATE products p SET stock = p.stock - w.qty, version = p.version + 1 \
             FROM wanted w \
             WHERE p.id = w.id AND p.id IN (SELECT id FROM locked) AND p.stock >= w.qty \
               AND p.active AND NOT p.archived AND NOT p.blocked \
             RETURNING p.id",
        )
        .bind(&ids)
        .bind(&qtys)
        .fetch_all(&mut *tx)
        .await
        .map_err(e)?;
        if taken.len() < plan.reservations.len() {
            let taken: Vec<Uuid> = taken
                .iter()
                .map(|r| r.uuid("id"))
                .collect::<StorageResult<_>>()?;
            let missing: Vec<Uuid> = ids.iter().copied().filter(|i| !taken.contains(i)).collect();
            // The short rows are still locked by this transaction: what it reads is
            // what was available.
            let rows = sqlx::query(
                "SELECT id, CASE WHEN active AND NOT archived AND NOT blocked \
                 THEN stock ELSE 0 END AS available FROM products WHERE id = ANY($1)",
            )
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
            tx.rollback().await.map_err(e)?;
            let mut available = HashMap::new();
            for r in &rows {
                available.insert(r.uuid("id")?, r.count("available")?);
            }
            let short: Vec<ShortItem> = plan
                .reservations
                .iter()
                .filter(|r| missing.contains(&r.product_id.0))
                .map(|r| ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available: available.get(&r.product_id.0).copied().unwrap_or(0),
                })
                .collect();
            // The decrement judged a row by the statement's snapshot; a restock
            // committed while it waited for the row lock can leave enough after all.
            // That is a race, not a shortage: let core run the commit again.
            if short.iter().any(|s| s.available >= s.requested) {
                return Err(StorageError::transient(
                    "stock changed while the checkout waited for it",
                ));
            }
            return Ok(CheckoutOutcome::Short(short));
        }

        // 4. Orders, the payment and the mails, in one statement.
        let mut qb = QueryBuilder::<Postgres>::new("");
        let mut with = "WITH";
        if !plan.orders.is_empty() {
            qb.push(format!("{with} new_orders AS ("));
            orders::push_insert_orders(&mut qb, &plan.orders);
            qb.push(") ");
            with = ",";
        }
        if let Some(p) = &plan.payment {
            qb.push(format!("{with} new_payment AS ("));
            payments::push_insert_payment(&mut qb, p)?;
            qb.push(") ");
        }
        if plan.outbox.is_empty() {
            qb.push("SELECT 1");
        } else {
            outbox::push_insert_outbox(&mut qb, &plan.outbox);
        }
        qb.build().execute(&mut *tx).await.map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(CheckoutOutcome::Committed)
    }
}
