//! The catalog: categories and products.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;

use super::StorageResult;
use crate::catalog::{Category, Product, ProductQuery};
use crate::ids::{CategoryId, ProductId, UserId};

/// The catalog: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    // ----- categories ------------------------------------------------------------
    /// Stores a category; `AlreadyExists("category name")` when the name is taken
    /// (case-insensitively).
    async fn insert_category(&self, category: &Category) -> StorageResult<()>;

    /// Every category, by name.
    async fn categories(&self) -> StorageResult<Vec<Category>>;

    /// One category.
    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>>;

    /// Renames a category; `false` when it does not exist, `AlreadyExists` when the
    /// name is taken.
    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool>;

    /// **Conditional.** Deletes a category unless a product uses it
    /// (`Precondition`); `false` when it does not exist.
    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool>;

    // ----- products --------------------------------------------------------------
    /// Stores a new product; `AlreadyExists("sku")` when it has a SKU that
    /// another of its seller's products that is not archived already has (the
    /// check and the write are one atomic step: of two concurrent inserts with
    /// the same seller and SKU, exactly one succeeds).
    async fn insert_product(&self, product: &Product) -> StorageResult<()>;

    /// One product, whatever its state.
    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>>;

    /// The product of `seller` with exactly this SKU that is not archived, if
    /// any (there is at most one).
    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>>;

    /// The products with these ids that exist, in any order.
    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>>;

    /// **Conditional.** Replaces the product whose stored version is
    /// `expected_version` with `product` (whose `version` the caller has already
    /// incremented). `Precondition` when the version moved (another edit, or a
    /// checkout or restock changed the stock), `NotFound` when it does not exist,
    /// `AlreadyExists("sku")` when the product is not archived and another of its
    /// seller's products that is not archived has its SKU (checked atomically
    /// with the write, like [`insert_product`](Self::insert_product)).
    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()>;

    /// A page of products matching `query` in its sort order, starting after its
    /// cursor. See [`ProductQuery`] for the meaning of each filter.
    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: CatalogStore + ?Sized> CatalogStore for std::sync::Arc<T> {
    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        (**self).insert_category(category).await
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        (**self).categories().await
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        (**self).category(id).await
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        (**self).rename_category(id, name).await
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        (**self).delete_category(id).await
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        (**self).insert_product(product).await
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        (**self).product(id).await
    }

    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>> {
        (**self).product_by_sku(seller, sku).await
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        (**self).products(ids).await
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        (**self).update_product(product, expected_version).await
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        (**self).list_products(query).await
    }
}
