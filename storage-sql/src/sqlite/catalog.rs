//! The catalog on SQLite: categories and products. SQLite's `lower()` folds
//! ASCII only, so names and searchable text are stored beside Unicode-folded
//! copies (`*_folded`), which the unique index and the search compare.

use async_trait::async_trait;
use marketplace_core::catalog::{Category, Product, ProductQuery};
use marketplace_core::storage::CatalogStore;
use marketplace_core::{CategoryId, ProductId, StorageError, StorageResult, UserId};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite};

use super::{SqliteStorage, e};
use crate::codec::catalog::{self, PRODUCT_SELECT};
use crate::codec::{self, Binds};
use crate::error;

/// Unicode lower-casing, the same core's in-memory reference uses.
fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// The folded copies of a product's searchable text.
fn folded(p: &Product) -> [(&'static str, String); 2] {
    [
        ("title_folded", fold(&p.title)),
        ("description_folded", fold(&p.description)),
    ]
}

/// A product write refused by the foreign keys names an unknown category.
fn product_write_error(err: sqlx::Error) -> StorageError {
    error::map_foreign_key::<Sqlite>(err, "unknown category")
}

#[async_trait]
impl CatalogStore for SqliteStorage {
    // ----- categories -------------------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        sqlx::query("INSERT INTO categories (id, name, name_folded) VALUES (?1, ?2, ?3)")
            .bind(category.id.0)
            .bind(&category.name)
            .bind(fold(&category.name))
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        let rows = sqlx::query("SELECT id, name FROM categories ORDER BY name, id")
            .fetch_all(&self.reader)
            .await
            .map_err(e)?;
        codec::all(&rows, catalog::category)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        let row = sqlx::query("SELECT id, name FROM categories WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        codec::optional(row, catalog::category)
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE categories SET name = ?2, name_folded = ?3 WHERE id = ?1")
            .bind(id.0)
            .bind(name)
            .bind(fold(name))
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM categories WHERE id = ?1")
            .bind(id.0)
            .execute(&self.writer)
            .await
            .map_err(|err| error::map_foreign_key::<Sqlite>(err, "category in use"))?;
        Ok(done.rows_affected() > 0)
    }

    // ----- products ------------------------------------------------------------------------

    async fn insert_product(&self, p: &Product) -> StorageResult<()> {
        let mut insert = catalog::insert_product::<Sqlite>(p, &folded(p))?;
        insert
            .build()
            .execute(&self.writer)
            .await
            .map_err(product_write_error)?;
        Ok(())
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM products p WHERE p.id = ?1",
            *PRODUCT_SELECT
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, catalog::product)
    }

    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>> {
        // The predicate of the unique index products_seller_sku_key, which serves it.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM products p \
             WHERE p.seller_id = ?1 AND p.sku = ?2 AND p.archived = 0",
            *PRODUCT_SELECT
        )))
        .bind(seller.0)
        .bind(sku)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, catalog::product)
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {} FROM products p WHERE p.id IN (",
            *PRODUCT_SELECT
        ));
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, catalog::product)
    }

    async fn update_product(&self, p: &Product, expected_version: u64) -> StorageResult<()> {
        let mut update = catalog::update_product::<Sqlite>(p, expected_version, &folded(p))?;
        let done = update
            .build()
            .execute(&self.writer)
            .await
            .map_err(product_write_error)?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let exists = sqlx::query("SELECT 1 FROM products WHERE id = ?1")
            .bind(p.id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        Err(match exists {
            Some(_) => StorageError::Precondition("product version changed".into()),
            None => StorageError::NotFound,
        })
    }

    async fn list_products(&self, q: &ProductQuery) -> StorageResult<Vec<Product>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {} FROM products p ", *PRODUCT_SELECT));
        if q.public_only {
            // CROSS JOIN keeps products the outer loop (SQLite's join-order rule):
            // a page walks the sort's index and stops after `limit` rows, instead of
            // starting from the sellers and sorting every product they list.
            qb.push(
                "CROSS JOIN users u ON u.id = p.seller_id AND u.active = 1 AND u.role = 'seller' \
                 AND u.seller_status = 'verified' \
                 WHERE p.active = 1 AND p.archived = 0 AND p.blocked = 0",
            );
        } else {
            qb.push("WHERE 1");
        }
        if !q.include_archived {
            qb.push(" AND p.archived = 0");
        }
        catalog::push_product_filters(&mut qb, q);
        if let Some(text) = &q.text {
            // Both sides Unicode-folded; LIKE then only has to match literally.
            let pattern = catalog::contains_pattern(&fold(text));
            qb.push(" AND (p.title_folded LIKE ").text(&pattern);
            qb.push(" ESCAPE '\\' OR p.description_folded LIKE ")
                .text(&pattern);
            qb.push(" ESCAPE '\\')");
        }
        catalog::push_product_page(&mut qb, q);
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, catalog::product)
    }
}
