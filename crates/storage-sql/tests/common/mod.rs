//! Test databases for the SQL backend: a temporary SQLite file per test, and an
//! isolated PostgreSQL schema per test when `TEST_POSTGRES_URL` is set. Each is
//! removed when the storage is dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::cart::{Cart, WishlistEntry};
use marketplace_core::catalog::{Category, Product, ProductQuery};
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery};
use marketplace_core::storage::{LoginFailures, RotateOutcome, TokenEffect};
use marketplace_core::{
    AddressId, CategoryId, CheckoutId, MessageId, OrderId, ProductId, SellerStatus, Storage,
    StorageResult, User, UserId,
};
use sqlx::Connection;
use storage_sql::{SqlOptions, SqlStorage};
use uuid::Uuid;

/// The variable naming the PostgreSQL server the tests may use.
pub const POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

/// Schemas this suite creates start with this prefix, then the creation time.
const SCHEMA_PREFIX: &str = "mkt_test_";

/// A storage and what must outlive it (its temporary file, its schema).
pub struct Guarded<G> {
    /// The storage under test; dropped before the guard.
    pub storage: SqlStorage,
    /// Cleans up after the storage.
    pub guard: G,
    /// The URL the storage was opened with, for raw SQL in backend tests.
    pub url: String,
}

/// A fresh SQLite file in its own temporary directory.
pub async fn sqlite() -> Guarded<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("marketplace-sql-")
        .tempdir()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let storage = SqlStorage::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    Guarded {
        storage,
        guard: dir,
        url,
    }
}

/// The PostgreSQL server URL, or `None` after saying loudly why the tests skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "*** SKIPPED: PostgreSQL tests need {POSTGRES_ENV} (e.g. \
                 postgres://postgres@127.0.0.1:5432/test); it is not set ***"
            );
            None
        }
    }
}

/// Drops its schema when dropped.
pub struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of
        // its own and wait for it.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = worker.join();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(StdDuration::ZERO)
        .as_secs()
}

/// Drops schemas an interrupted earlier run left behind (older than an hour, so a
/// run going on beside this one keeps its own).
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
                .bind(SCHEMA_PREFIX)
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
        let cutoff = now_secs().saturating_sub(3600);
        for (name,) in names {
            let created = name
                .strip_prefix(SCHEMA_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|t| t.parse::<u64>().ok());
            if created.is_some_and(|t| t < cutoff) {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut *conn)
                .await;
            }
        }
    })
    .await;
}

/// A fresh schema on the PostgreSQL server, or `None` when none is configured.
pub async fn postgres() -> Option<Guarded<DropSchema>> {
    let url = postgres_url()?;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    drop_stale_schemas(&mut admin).await;
    // The catalog's trigram indexes need pg_trgm: installed once in `public`, it
    // never belongs to (and never goes away with) a test's schema.
    let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut admin)
        .await;
    let schema = format!("{SCHEMA_PREFIX}{}_{}", now_secs(), Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let guard = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let storage = SqlStorage::connect(&scoped, SqlOptions::default().max_connections(8))
        .await
        .unwrap();
    Some(Guarded {
        storage,
        guard,
        url: scoped,
    })
}

/// Every method forwards to the storage.
#[async_trait]
impl<G: Send + Sync + 'static> Storage for Guarded<G> {
    async fn ping(&self) -> StorageResult<()> {
        self.storage.ping().await
    }

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.storage.create_user(user, token, outbox).await
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        self.storage.user(id).await
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        self.storage.user_by_email(email).await
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        self.storage.update_profile(id, name, phone).await
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.storage.set_seller_status(id, status, outbox).await
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        self.storage.set_user_active(id, active).await
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        self.storage.list_sellers(status, after, limit).await
    }

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.storage.insert_token(token, outbox).await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        self.storage.redeem_token(hash, purpose, now, effect).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        self.storage.insert_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        self.storage
            .rotate_refresh_token(presented, next_hash, next_expires_at, now)
            .await
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        self.storage.revoke_refresh_family(hash).await
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        self.storage.record_login_failure(key, now, window).await
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        self.storage.login_failures(key, now, window).await
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        self.storage.clear_login_failures(key).await
    }

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        self.storage.addresses(user).await
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        self.storage.save_address(address).await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        self.storage.delete_address(user, id).await
    }

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        self.storage.insert_category(category).await
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        self.storage.categories().await
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        self.storage.category(id).await
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        self.storage.rename_category(id, name).await
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        self.storage.delete_category(id).await
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        self.storage.insert_product(product).await
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        self.storage.product(id).await
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        self.storage.products(ids).await
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        self.storage.update_product(product, expected_version).await
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        self.storage.list_products(query).await
    }

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        self.storage.cart(buyer).await
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        self.storage.save_cart(cart, expected_version).await
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        self.storage.add_to_wishlist(buyer, product, at).await
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        self.storage.remove_from_wishlist(buyer, product).await
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        self.storage.wishlist(buyer).await
    }

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        self.storage.checkout_by_key(buyer, key).await
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        self.storage.commit_checkout(plan).await
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        self.storage.order(id).await
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        self.storage.checkout_orders(id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        self.storage.list_orders(query).await
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        self.storage.transition_order(t).await
    }

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        self.storage
            .claim_outbox(worker, now, lease_until, limit)
            .await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        self.storage.finish_delivery(id, worker, update).await
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        self.storage.release_claims(worker).await
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        self.storage.outbox_message(id).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        self.storage.list_outbox(query).await
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        self.storage.requeue_dead(id, now).await
    }
}
