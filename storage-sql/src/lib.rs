//! # storage-sql
//!
//! The marketplace's [`Storage`](marketplace_core::Storage) on [sqlx]:
//! **PostgreSQL** for production (several stateless servers on one database),
//! [`PostgresStorage`], and **SQLite** as the embedded default (one file that
//! survives restarts), [`SqliteStorage`]. Each `connect`s from a URL of its own
//! scheme (the host picks the store by the scheme), opens a pool and applies its
//! embedded migrations (`migrations/postgres`, `migrations/sqlite`).
//!
//! ## Layout
//! Both dialects have the rooms of the storage traits: one module per concept,
//! each holding that trait's `impl` for the dialect's store.
//!
//! | concept | trait | PostgreSQL | SQLite | shared |
//! | --- | --- | --- | --- | --- |
//! | users, sellers, tokens, throttling, addresses | `AccountStore` | `postgres/accounts.rs` | `sqlite/accounts.rs` | `codec/accounts.rs` |
//! | categories, products | `CatalogStore` | `postgres/catalog.rs` | `sqlite/catalog.rs` | `codec/catalog.rs` |
//! | cart, wishlist | `ShoppingStore` | `postgres/shopping.rs` | `sqlite/shopping.rs` | `codec/shopping.rs` |
//! | the checkout commit | `CheckoutStore` | `postgres/checkout.rs` | `sqlite/checkout.rs` | `codec/checkout.rs` |
//! | orders | `OrderStore` | `postgres/orders.rs` | `sqlite/orders.rs` | `codec/orders.rs` |
//! | notification outbox | `OutboxStore` | `postgres/outbox.rs` | `sqlite/outbox.rs` | `codec/outbox.rs` |
//! | commission rules | `CommissionStore` | `postgres/commission.rs` | `sqlite/commission.rs` | `codec/commission.rs` |
//! | seller ledger, balances, earning releases | `LedgerStore` | `postgres/ledger.rs` | `sqlite/ledger.rs` | `codec/ledger.rs` |
//! | payouts | `PayoutStore` | `postgres/payouts.rs` | `sqlite/payouts.rs` | `codec/payouts.rs` |
//! | checkouts' payments, provider events handled | `PaymentStore` | `postgres/payments.rs` | `sqlite/payments.rs` | `codec/payments.rs` |
//!
//! - `postgres/mod.rs`, `sqlite/mod.rs`: connecting, the pools, migrations,
//!   transactions and `ping`. PostgreSQL's atomic steps are transactions at the
//!   default READ COMMITTED isolation whose writes are conditional (`UPDATE ...
//!   WHERE version = $n`, `stock >= $q`), so concurrent callers are serialised by
//!   row locks and re-checked conditions, never by retries of a stricter
//!   isolation; the checkout takes every item's stock in one statement and the
//!   outbox claim uses `FOR UPDATE SKIP LOCKED`. A payout locks the seller's
//!   balance row (`FOR UPDATE`) before it reads what it takes. A payment change
//!   is a conditional write on the payment's `version` whose row lock serialises
//!   concurrent changes of one payment; its order transitions run after it, in
//!   the same transaction, through the same function as `transition_order`
//!   (the products several of them restock locked first, in id order, as the
//!   checkout locks them). SQLite's write transactions
//!   start with `BEGIN IMMEDIATE` (taking the write lock up front, so two writers
//!   never deadlock upgrading a read lock), with one writer connection and a pool
//!   of read-only readers in WAL mode; its checkout takes each item in turn under
//!   that lock.
//! - `schema.rs`: the schema version found on connect against this build's
//!   migrations, and whether this build may serve it (rolling deploys: an
//!   older build serves a newer schema that records it still serves it).
//! - `codec/`: what the dialects share, written once per concept: column lists,
//!   row decoders, bind helpers and the dynamically built queries (listings,
//!   inserts of whole records). Each dialect keeps its own SQL text where it
//!   differs (placeholders `$1` and `?1`, casts, locks, booleans).
//! - `dialect.rs`: the few value-level differences: times (`timestamptz`, INTEGER
//!   milliseconds), JSON, and the error codes worth a retry.
//! - `error.rs`: maps driver errors to
//!   [`StorageError`](marketplace_core::StorageError): unique violations to
//!   `AlreadyExists` by constraint name, serialization failures, deadlocks and
//!   busy databases to `Transient` (core retries those), a balance bucket's
//!   check to `Precondition`, everything else to `Backend`.
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
//!
//! Money follows the same rule. An order's commission is a JSON snapshot beside
//! its `return_until` and `earning_released_at`. Commission rules are one row per
//! scope (`level`, `target`), unique for the default too through a generated key
//! that stands the nil uuid in for its missing target. Ledger entries are
//! append-only rows; each one moves its seller's `seller_balances` row in the
//! same transaction (one shared "append" per dialect, in its `ledger.rs`), and
//! that row's `CHECK (pending >= 0)` and `CHECK (available >= 0)` refuse a
//! bucket below zero, so the whole step rolls back with `Precondition`. A
//! partial unique index allows one earning, release and reversal per order
//! (`AlreadyExists("ledger entry")`).
//! A payment is a row of the columns its queries and its conditional write
//! need (checkout, buyer, provider and reference, status, due time, version,
//! creation time) beside `doc`, the whole record as JSON, which is what is read
//! back; every write sets both from one record. One payment per checkout, and
//! one per provider's reference (a partial unique index, `AlreadyExists("payment
//! reference")`). The provider events already handled are one row each, keyed
//! by provider and event id.
//! On PostgreSQL, catalog text search (`ILIKE '%term%'`) is served by trigram
//! indexes: the migrations install the `pg_trgm` extension when it is missing
//! (a trusted extension: the database owner may), and carry on without those
//! indexes, with a notice, where it cannot be installed. Each PostgreSQL product
//! also carries `seller_selling`, a copy of its seller's "active and verified"
//! kept exact by triggers in the transaction that changes either, so the public
//! catalog is a one-table query that the planner estimates correctly.
//!
//! No sqlx type appears in this crate's API: callers see `marketplace-core`'s
//! types and [`StorageError`](marketplace_core::StorageError) only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), marketplace_core::StorageError> {
//! use storage_sql::{PostgresStorage, SqlOptions, SqliteStorage};
//! let embedded = SqliteStorage::connect("sqlite://marketplace.db", SqlOptions::default()).await?;
//! let shared = PostgresStorage::connect("postgres://shop@db/shop", SqlOptions::default()).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod dialect;
mod error;
mod postgres;
pub mod schema;
mod sqlite;

use std::time::Duration as StdDuration;

pub use postgres::PostgresStorage;
pub use schema::SchemaStatus;
pub use sqlite::SqliteStorage;

/// How a [`PostgresStorage`] or [`SqliteStorage`] connects. Build it from
/// [`SqlOptions::default`] and the setters; new settings may be added without breaking callers.
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
    /// migrations are run separately (`marketplace-server migrate`, a deploy
    /// step): a connect then refuses a schema older than this build's instead
    /// of migrating it. Either way a schema a newer build migrated is served
    /// when it still serves this build (see [`schema`]).
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
