//! The buyer's cart and wishlist.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StorageResult;
use crate::cart::{Cart, WishlistEntry};
use crate::ids::{ProductId, UserId};

/// The buyer's cart and wishlist: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait ShoppingStore: Send + Sync + 'static {
    /// The buyer's cart; an empty cart of version 0 when none was saved.
    async fn cart(&self, buyer: UserId) -> StorageResult<Cart>;

    /// **Conditional.** Replaces the buyer's cart when its stored version is
    /// `expected_version` (0 for a cart never saved), storing `cart.version`, which
    /// the caller has incremented. `Precondition` otherwise.
    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()>;

    /// Adds a product to a wishlist; `false` when it was already there.
    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool>;

    /// Removes a product from a wishlist; `false` when it was not there.
    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool>;

    /// The buyer's wishlist, newest first.
    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: ShoppingStore + ?Sized> ShoppingStore for std::sync::Arc<T> {
    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        (**self).cart(buyer).await
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        (**self).save_cart(cart, expected_version).await
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        (**self).add_to_wishlist(buyer, product, at).await
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        (**self).remove_from_wishlist(buyer, product).await
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        (**self).wishlist(buyer).await
    }
}
