//! The catalog: categories and products, paged along the kept sort orders.

use std::ops::Bound;

use async_trait::async_trait;
use marketplace_core::catalog::{Category, Product, ProductQuery, ProductSort};
use marketplace_core::{
    CatalogStore, CategoryId, ProductId, StorageError, StorageResult, User, UserId,
};

use crate::MemoryStorage;

#[async_trait]
impl CatalogStore for MemoryStorage {
    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        let mut s = self.lock();
        let lower = category.name.to_lowercase();
        if s.categories
            .values()
            .any(|c| c.name.to_lowercase() == lower)
        {
            return Err(StorageError::AlreadyExists("category name"));
        }
        s.categories.insert(category.id, category.clone());
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        let mut v: Vec<_> = self.lock().categories.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        Ok(self.lock().categories.get(&id).cloned())
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let mut s = self.lock();
        let lower = name.to_lowercase();
        if s.categories
            .values()
            .any(|c| c.id != id && c.name.to_lowercase() == lower)
        {
            return Err(StorageError::AlreadyExists("category name"));
        }
        Ok(s.categories
            .get_mut(&id)
            .map(|c| c.name = name.to_owned())
            .is_some())
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        let mut s = self.lock();
        if s.products.values().any(|p| p.category_id == Some(id)) {
            return Err(StorageError::Precondition("category in use".into()));
        }
        Ok(s.categories.remove(&id).is_some())
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        let mut s = self.lock();
        if product
            .category_id
            .is_some_and(|c| !s.categories.contains_key(&c))
        {
            return Err(StorageError::Precondition("unknown category".into()));
        }
        s.check_sku(product)?;
        s.put_product(product);
        Ok(())
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        Ok(self.lock().products.get(&id).cloned())
    }

    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>> {
        let s = self.lock();
        Ok(s.skus
            .get(&(seller, sku.to_owned()))
            .and_then(|id| s.products.get(id))
            .cloned())
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.products.get(id))
            .cloned()
            .collect())
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        let mut s = self.lock();
        if product
            .category_id
            .is_some_and(|c| !s.categories.contains_key(&c))
        {
            return Err(StorageError::Precondition("unknown category".into()));
        }
        let current = s.products.get(&product.id).ok_or(StorageError::NotFound)?;
        if current.version != expected_version {
            return Err(StorageError::Precondition("product version changed".into()));
        }
        s.check_sku(product)?;
        s.put_product(product);
        Ok(())
    }

    async fn list_products(&self, q: &ProductQuery) -> StorageResult<Vec<Product>> {
        let s = self.lock();
        let ids: Box<dyn Iterator<Item = ProductId> + '_> = match (q.sort, &q.after) {
            (ProductSort::Newest, None) => Box::new(s.newest.iter().rev().map(|k| k.1)),
            (ProductSort::Newest, Some(k)) => {
                Box::new(s.newest.range(..(k.created_at, k.id)).rev().map(|k| k.1))
            }
            (ProductSort::PriceAsc, None) => Box::new(s.by_price.iter().map(|k| k.1)),
            (ProductSort::PriceAsc, Some(k)) => Box::new(
                s.by_price
                    .range((Bound::Excluded((k.price, k.id)), Bound::Unbounded))
                    .map(|k| k.1),
            ),
            (ProductSort::PriceDesc, None) => Box::new(s.by_price.iter().rev().map(|k| k.1)),
            (ProductSort::PriceDesc, Some(k)) => {
                Box::new(s.by_price.range(..(k.price, k.id)).rev().map(|k| k.1))
            }
        };
        Ok(ids
            .filter_map(|id| s.products.get(&id))
            .filter(|p| q.matches(p))
            .filter(|p| {
                !q.public_only
                    || (p.is_sellable() && s.users.get(&p.seller_id).is_some_and(User::is_selling))
            })
            .take(q.limit as usize)
            .cloned()
            .collect())
    }
}
