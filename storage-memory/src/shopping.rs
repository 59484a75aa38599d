//! The buyer's cart and wishlist.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::cart::{Cart, WishlistEntry};
use marketplace_core::{ProductId, ShoppingStore, StorageError, StorageResult, UserId};

use crate::MemoryStorage;

#[async_trait]
impl ShoppingStore for MemoryStorage {
    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        Ok(self.lock().carts.get(&buyer).cloned().unwrap_or(Cart {
            buyer_id: buyer,
            version: 0,
            lines: Vec::new(),
        }))
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let mut s = self.lock();
        let current = s.carts.get(&cart.buyer_id).map_or(0, |c| c.version);
        if current != expected_version {
            return Err(StorageError::Precondition("cart version changed".into()));
        }
        s.carts.insert(cart.buyer_id, cart.clone());
        Ok(())
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let mut s = self.lock();
        let list = s.wishlists.entry(buyer).or_default();
        if list.iter().any(|e| e.product_id == product) {
            return Ok(false);
        }
        list.push(WishlistEntry {
            product_id: product,
            added_at: at,
        });
        Ok(true)
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        let mut s = self.lock();
        let list = s.wishlists.entry(buyer).or_default();
        let before = list.len();
        list.retain(|e| e.product_id != product);
        Ok(list.len() != before)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        let mut v = self
            .lock()
            .wishlists
            .get(&buyer)
            .cloned()
            .unwrap_or_default();
        v.reverse();
        Ok(v)
    }
}
