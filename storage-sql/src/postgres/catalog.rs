//! The catalog on PostgreSQL: categories and products.

use async_trait::async_trait;
use marketplace_core::catalog::{Category, Product, ProductQuery};
use marketplace_core::storage::CatalogStore;
use marketplace_core::{CategoryId, ProductId, StorageError, StorageResult, UserId};
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{PostgresStorage, e};
use crate::codec::catalog::{self, PRODUCT_SELECT};
use crate::codec::{self, Binds};
use crate::error;

/// A product write refused by the foreign keys names an unknown category.
fn product_write_error(err: sqlx::Error) -> StorageError {
    error::map_foreign_key::<Postgres>(err, "unknown category")
}

#[async_trait]
impl CatalogStore for PostgresStorage {
    // ----- categories -------------------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        sqlx::query("INSERT INTO categories (id, name) VALUES ($1, $2)")
            .bind(category.id.0)
            .bind(&category.name)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        // Byte order, like the reference store, whatever the database's collation.
        let rows = sqlx::query("SELECT id, name FROM categories ORDER BY name COLLATE \"C\", id")
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, catalog::category)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        let row = sqlx::query("SELECT id, name FROM categories WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?;
        codec::optional(row, catalog::category)
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE categories SET name = $2 WHERE id = $1")
            .bind(id.0)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        // The products' foreign key refuses to delete a category in use.
        let done = sqlx::query("DELETE FROM categories WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map_err(|err| error::map_foreign_key::<Postgres>(err, "category in use"))?;
        Ok(done.rows_affected() > 0)
    }

    // ----- products ------------------------------------------------------------------------

    async fn insert_product(&self, p: &Product) -> StorageResult<()> {
        let mut insert = catalog::insert_product::<Postgres>(p, &[])?;
        insert
            .build()
            .execute(&self.pool)
            .await
            .map_err(product_write_error)?;
        Ok(())
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM products p WHERE p.id = $1",
            *PRODUCT_SELECT
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, catalog::product)
    }

    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>> {
        // The predicate of the unique index products_seller_sku_key, which serves it.
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM products p \
             WHERE p.seller_id = $1 AND p.sku = $2 AND NOT p.archived",
            *PRODUCT_SELECT
        )))
        .bind(seller.0)
        .bind(sku)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, catalog::product)
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM products p WHERE p.id = ANY($1)",
            *PRODUCT_SELECT
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(e)?;
        codec::all(&rows, catalog::product)
    }

    async fn update_product(&self, p: &Product, expected_version: u64) -> StorageResult<()> {
        let mut update = catalog::update_product::<Postgres>(p, expected_version, &[])?;
        let done = update
            .build()
            .execute(&self.pool)
            .await
            .map_err(product_write_error)?;
        if done.rows_affected() > 0 {
            return Ok(());
        }
        let exists = sqlx::query("SELECT 1 FROM products WHERE id = $1")
            .bind(p.id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?;
        Err(match exists {
            Some(_) => StorageError::Precondition("product version changed".into()),
            None => StorageError::NotFound,
        })
    }

    async fn list_products(&self, q: &ProductQuery) -> StorageResult<Vec<Product>> {
        let mut qb = list_products_query("", q);
        let rows = qb
            .build()
            .persistent(list_products_persistent(q))
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, catalog::product)
    }
}

/// The statement [`CatalogStore::list_products`] runs for `q`, after `prefix`.
fn list_products_query(prefix: &str, q: &ProductQuery) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "{prefix}SELECT {} FROM products p ",
        *PRODUCT_SELECT
    ));
    if q.public_only {
        // `seller_selling` mirrors the seller's state (kept by triggers, see
        // migration 0003): one table, so the planner sees how many rows match.
        qb.push("WHERE p.seller_selling AND p.active AND NOT p.archived AND NOT p.blocked");
    } else {
        qb.push("WHERE TRUE");
    }
    if !q.include_archived {
        qb.push(" AND NOT p.archived");
    }
    catalog::push_product_filters(&mut qb, q);
    if let Some(text) = &q.text {
        let pattern = catalog::contains_pattern(text);
        qb.push(" AND (p.title ILIKE ").text(&pattern);
        qb.push(" ESCAPE '\\' OR p.description ILIKE ")
            .text(&pattern);
        qb.push(" ESCAPE '\\')");
    }
    catalog::push_product_page(&mut qb, q);
    qb
}

/// Whether [`CatalogStore::list_products`] keeps `q`'s statement prepared.
///
/// A search pattern or a price range changes the best plan with its value: a
/// prepared statement's generic plan cannot know that `%lamp%` matches one
/// product in 20 and sorts every product in the price range (24 ms instead of
/// 1 ms on a 10,000-product catalog). Such queries are planned with their values
/// each time; plain pages keep their prepared statements.
fn list_products_persistent(q: &ProductQuery) -> bool {
    q.text.is_none() && q.min_price.is_none() && q.max_price.is_none()
}

impl PostgresStorage {
    /// The plan PostgreSQL chooses for the statement
    /// [`CatalogStore::list_products`] runs for `q`, planned the same way, with
    /// the same values: the lines of its `EXPLAIN`. For the tests that check
    /// which indexes the store's own queries can use; not part of the API.
    #[doc(hidden)]
    pub async fn explain_list_products(&self, q: &ProductQuery) -> StorageResult<Vec<String>> {
        let mut qb = list_products_query("EXPLAIN ", q);
        qb.build_query_scalar()
            .persistent(list_products_persistent(q))
            .fetch_all(&self.pool)
            .await
            .map_err(e)
    }
}
