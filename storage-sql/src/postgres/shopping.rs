//! The buyer's cart and wishlist on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::cart::{Cart, WishlistEntry};
use marketplace_core::storage::ShoppingStore;
use marketplace_core::{ProductId, StorageResult, UserId};
use sqlx::Postgres;

use super::{PostgresStorage, e};
use crate::codec::{self, shopping};

#[async_trait]
impl ShoppingStore for PostgresStorage {
    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        let row = sqlx::query("SELECT version, lines FROM carts WHERE buyer_id = $1")
            .bind(buyer.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?;
        shopping::cart(buyer, row)
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let mut save = shopping::save_cart::<Postgres>(cart, expected_version)?;
        let done = save.build().execute(&self.pool).await.map_err(e)?;
        shopping::cart_saved(done.rows_affected())
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "INSERT INTO wishlist_entries (buyer_id, product_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (buyer_id, product_id) DO NOTHING",
        )
        .bind(buyer.0)
        .bind(product.0)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        let done =
            sqlx::query("DELETE FROM wishlist_entries WHERE buyer_id = $1 AND product_id = $2")
                .bind(buyer.0)
                .bind(product.0)
                .execute(&self.pool)
                .await
                .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        let rows = sqlx::query(
            "SELECT product_id, added_at FROM wishlist_entries WHERE buyer_id = $1 \
             ORDER BY seq DESC",
        )
        .bind(buyer.0)
        .fetch_all(&self.pool)
        .await
        .map_err(e)?;
        codec::all(&rows, shopping::wishlist_entry)
    }
}
