//! # storage-sql
//!
//! The marketplace's [`Storage`] on [sqlx]: **PostgreSQL** for production (several
//! stateless servers on one database) and **SQLite** as the embedded default (one
//! file that survives restarts). [`SqlStorage::connect`] picks the database from
//! the URL, opens a pool, and applies the embedded migrations
//! (`migrations/postgres`, `migrations/sqlite`).
//!
//! ## Layout
//! - `postgres`: the PostgreSQL dialect. Atomic steps are transactions at the
//!   default READ COMMITTED isolation whose writes are conditional (`UPDATE ...
//!   WHERE version = $n`, `stock >= $q`), so concurrent callers are serialised by
//!   row locks and re-checked conditions, never by retries of a stricter isolation.
//!   The outbox claim uses `FOR UPDATE SKIP LOCKED`.
//! - `sqlite`: the SQLite dialect. Write transactions start with `BEGIN IMMEDIATE`
//!   (taking the write lock up front, so two writers never deadlock upgrading a read
//!   lock); one writer connection and a pool of read-only readers in WAL mode.
//! - `codec`: row decoding and value conversions shared by both dialects.
//! - `error`: maps driver errors to [`StorageError`]: unique violations to
//!   `AlreadyExists` by constraint name, serialization failures, deadlocks and busy
//!   databases to `Transient` (core retries those), everything else to `Backend`.
//!
//! ## Schema
//! Money is BIGINT minor units beside a currency code; ids are UUIDs (native in
//! PostgreSQL, 16-byte blobs in SQLite, both sorting bytewise like the core's
//! ids); times are `timestamptz` in PostgreSQL and INTEGER milliseconds in SQLite.
//! Order snapshots (items, address, history), cart lines, images and discounts are
//! JSON. The database itself keeps the invariants it can: `CHECK (stock >= 0)`,
//! unique emails, category names (case-insensitively) and idempotency keys per
//! buyer, at most one default address per user, and foreign keys (a category in
//! use cannot be deleted). Every listing has an index matching its keyset order.
//! On PostgreSQL, catalog text search (`ILIKE '%term%'`) is served by trigram
//! indexes: the migrations install the `pg_trgm` extension when it is missing
//! (a trusted extension: the database owner may), and carry on without those
//! indexes, with a notice, where it cannot be installed. Each PostgreSQL product
//! also carries `seller_selling`, a copy of its seller's "active and verified"
//! kept exact by triggers in the transaction that changes either, so the public
//! catalog is a one-table query that the planner estimates correctly.
//!
//! No sqlx type appears in this crate's API: callers see `marketplace-core`'s
//! types and [`StorageError`] only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), marketplace_core::StorageError> {
//! use storage_sql::{SqlOptions, SqlStorage};
//! let storage = SqlStorage::connect("sqlite://marketplace.db", SqlOptions::default()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod error;
mod postgres;
mod sqlite;

use std::time::Duration as StdDuration;

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
    StorageError, StorageResult, User, UserId,
};
use uuid::Uuid;

/// How [`SqlStorage`] connects. Build it from [`SqlOptions::default`] and the
/// setters; new settings may be added without breaking callers.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqlOptions {
    /// Most connections the pool opens: PostgreSQL connections, or SQLite readers
    /// (SQLite has a single writer connection). Default 10.
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing with a
    /// transient error. Default 30 seconds.
    pub acquire_timeout: StdDuration,
    /// SQLite: how long a connection waits for another process's write lock
    /// before giving up (`busy_timeout`). Default 5 seconds.
    pub busy_timeout: StdDuration,
    /// Apply the embedded migrations on connect. Default `true`; turn off when
    /// migrations are run separately (they are idempotent either way).
    pub run_migrations: bool,
    /// SQLite: create the database file when it does not exist. Default `true`.
    pub create_if_missing: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_connections: 10,
            acquire_timeout: StdDuration::from_secs(30),
            busy_timeout: StdDuration::from_secs(5),
            run_migrations: true,
            create_if_missing: true,
        }
    }
}

impl SqlOptions {
    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`acquire_timeout`](Self::acquire_timeout).
    pub fn acquire_timeout(mut self, timeout: StdDuration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, timeout: StdDuration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`run_migrations`](Self::run_migrations).
    pub fn run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// Sets [`create_if_missing`](Self::create_if_missing).
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }
}

/// Which database a [`SqlStorage`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlBackend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

#[derive(Clone)]
enum Inner {
    Postgres(postgres::PgStore),
    Sqlite(sqlite::SqliteStore),
}

/// The marketplace [`Storage`] on PostgreSQL or SQLite. Clones share one
/// connection pool; every method takes connections from it.
#[derive(Clone)]
pub struct SqlStorage {
    inner: Inner,
}

impl std::fmt::Debug for SqlStorage {
    /// Shows the backend only: the URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStorage")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl SqlStorage {
    /// Connects to the database `url` names and applies pending migrations.
    ///
    /// - `postgres://user@host/db` (or `postgresql://`): PostgreSQL; the usual
    ///   libpq parameters apply (`sslmode=require` for TLS with rustls and the
    ///   webpki roots, `sslrootcert=...`, `options=-c search_path=...`).
    /// - `sqlite://path/to/file.db`, `sqlite:file.db`: a SQLite file, created when
    ///   missing (see [`SqlOptions::create_if_missing`]), in WAL mode with foreign
    ///   keys on.
    /// - `sqlite::memory:`: a private in-memory SQLite database (one connection;
    ///   gone when the storage is dropped).
    ///
    /// Fails with `Backend` for an unknown scheme, an unreachable server or a
    /// failed migration.
    pub async fn connect(url: &str, options: SqlOptions) -> StorageResult<SqlStorage> {
        let inner = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Inner::Postgres(postgres::PgStore::connect(url, &options).await?)
        } else if url.starts_with("sqlite:") {
            Inner::Sqlite(sqlite::SqliteStore::connect(url, &options).await?)
        } else {
            return Err(StorageError::backend(format!(
                "unsupported database URL scheme in `{}`: expected postgres:// or sqlite:",
                url.split(':').next().unwrap_or_default()
            )));
        };
        Ok(SqlStorage { inner })
    }

    /// The database behind this storage.
    pub fn backend(&self) -> SqlBackend {
        match self.inner {
            Inner::Postgres(_) => SqlBackend::Postgres,
            Inner::Sqlite(_) => SqlBackend::Sqlite,
        }
    }

    /// Closes every pooled connection, waiting for calls in flight to finish
    /// (SQLite checkpoints its WAL on the last close).
    pub async fn close(&self) {
        match &self.inner {
            Inner::Postgres(s) => s.close().await,
            Inner::Sqlite(s) => s.close().await,
        }
    }

    fn inner(&self) -> &dyn Storage {
        match &self.inner {
            Inner::Postgres(s) => s,
            Inner::Sqlite(s) => s,
        }
    }
}

/// Every method forwards to the dialect chosen at connect time.
#[async_trait]
impl Storage for SqlStorage {
    async fn ping(&self) -> StorageResult<()> {
        self.inner().ping().await
    }

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.inner().create_user(user, token, outbox).await
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        self.inner().user(id).await
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        self.inner().user_by_email(email).await
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        self.inner().update_profile(id, name, phone).await
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.inner().set_seller_status(id, status, outbox).await
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        self.inner().set_user_active(id, active).await
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        self.inner().list_sellers(status, after, limit).await
    }

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.inner().insert_token(token, outbox).await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        self.inner().redeem_token(hash, purpose, now, effect).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        self.inner().insert_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        self.inner()
            .rotate_refresh_token(presented, next_hash, next_expires_at, now)
            .await
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        self.inner().revoke_refresh_family(hash).await
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        self.inner().record_login_failure(key, now, window).await
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        self.inner().login_failures(key, now, window).await
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        self.inner().clear_login_failures(key).await
    }

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        self.inner().addresses(user).await
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        self.inner().save_address(address).await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        self.inner().delete_address(user, id).await
    }

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        self.inner().insert_category(category).await
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        self.inner().categories().await
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        self.inner().category(id).await
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        self.inner().rename_category(id, name).await
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        self.inner().delete_category(id).await
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        self.inner().insert_product(product).await
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        self.inner().product(id).await
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        self.inner().products(ids).await
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        self.inner().update_product(product, expected_version).await
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        self.inner().list_products(query).await
    }

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        self.inner().cart(buyer).await
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        self.inner().save_cart(cart, expected_version).await
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        self.inner().add_to_wishlist(buyer, product, at).await
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        self.inner().remove_from_wishlist(buyer, product).await
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        self.inner().wishlist(buyer).await
    }

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        self.inner().checkout_by_key(buyer, key).await
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        self.inner().commit_checkout(plan).await
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        self.inner().order(id).await
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        self.inner().checkout_orders(id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        self.inner().list_orders(query).await
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        self.inner().transition_order(t).await
    }

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        self.inner()
            .claim_outbox(worker, now, lease_until, limit)
            .await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        self.inner().finish_delivery(id, worker, update).await
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        self.inner().release_claims(worker).await
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        self.inner().outbox_message(id).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        self.inner().list_outbox(query).await
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        self.inner().requeue_dead(id, now).await
    }
}
