//! # storage-mongo
//!
//! A [`Storage`] for the marketplace on MongoDB, through the official `mongodb`
//! driver. It sits beside `storage-memory` and `storage-sql`: core decides, this
//! crate stores, and the `marketplace-conformance` suite checks that it keeps the
//! same contract.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use storage_mongo::{MongoOptions, MongoStorage};
//!
//! let storage = MongoStorage::connect(
//!     "mongodb://127.0.0.1:27017/marketplace?replicaSet=rs0",
//!     MongoOptions::default(),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! ## Atomicity
//! Every step the contract marks **atomic** and touching more than one document
//! runs in a multi-document transaction on a `ClientSession` (snapshot reads,
//! majority writes), retried on `TransientTransactionError` and with its commit
//! retried on `UnknownTransactionCommitResult` (see [`transaction`]). Steps that
//! touch exactly one document (saving a cart, recording a delivery attempt)
//! are single conditional writes, which MongoDB applies atomically on their own.
//! Conditional writes put their condition in the filter (`{_id, version}`,
//! `{_id, stock: {$gte: n}}`, `{_id, status}`) and report a mismatch instead of
//! overwriting.
//!
//! Transactions need a replica set (a single-node one is enough) or a sharded
//! cluster: [`MongoStorage::connect`] refuses a standalone server rather than
//! silently losing atomicity.
//!
//! ## Layout
//! The crate has the rooms of the storage traits: each concept's module holds
//! `impl <Concept>Store for MongoStorage` with that concept's reads and writes,
//! the transaction bodies of its atomic steps and what its documents look like:
//! [`accounts`] (users, sellers, addresses; single-use and refresh tokens and
//! login throttling in [`accounts::tokens`]), [`catalog`] (categories,
//! products), [`shopping`] (cart, wishlist), [`checkout`] (the checkout commit
//! and its idempotency records), [`orders`], [`outbox`], and the money:
//! [`commission`] (rules), [`ledger`] (entries and the balances beside them)
//! and [`payouts`]; [`payments`] (checkouts' payments, changed with the
//! orders they touch, and the provider events already handled). This file keeps
//! [`MongoStorage`] itself (connecting, the collection handles) and
//! `impl Storage` (`ping`).
//!
//! Shared by every concept: [`transaction`] runs an atomic step in a
//! transaction and retries it (and repeats single-document writes that lose a
//! conflict); [`values`] says how identifiers, instants and money are encoded;
//! [`schema`] lists the collections and indexes; [`error`] maps driver errors
//! into the core's [`StorageError`](marketplace_core::StorageError).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use async_trait::async_trait;
use futures::TryStreamExt;
use marketplace_core::{Storage, StorageResult};
use mongodb::bson::{Document, doc};
use mongodb::error::Error as DriverError;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

pub mod accounts;
pub mod catalog;
pub mod checkout;
pub mod commission;
pub mod error;
pub mod ledger;
mod options;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod payouts;
pub mod schema;
pub mod shopping;
mod topology;
pub mod transaction;
pub mod values;

pub use error::ConnectError;
pub use options::MongoOptions;

use crate::error::storage_error;

/// The marketplace's storage in one MongoDB database.
///
/// Cheap to clone: clones share the driver's connection pool.
#[derive(Clone)]
pub struct MongoStorage {
    client: Client,
    db: Database,
    options: MongoOptions,
    users: Collection<Document>,
    tokens: Collection<Document>,
    refresh: Collection<Document>,
    login_failures: Collection<Document>,
    addresses: Collection<Document>,
    categories: Collection<Document>,
    products: Collection<Document>,
    carts: Collection<Document>,
    wishlist: Collection<Document>,
    checkouts: Collection<Document>,
    orders: Collection<Document>,
    outbox: Collection<Document>,
    commission_rules: Collection<Document>,
    ledger: Collection<Document>,
    balances: Collection<Document>,
    payouts: Collection<Document>,
    payments: Collection<Document>,
    payment_events: Collection<Document>,
    /// Turns for transactions (see [`MongoOptions::max_concurrent_transactions`]).
    turns: std::sync::Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for MongoStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's options may hold credentials: only the database is shown.
        f.debug_struct("MongoStorage")
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

impl MongoStorage {
    /// Connects to the server at `url`, checks that it can run transactions
    /// (a replica set or a sharded cluster; a standalone server is refused with
    /// [`ConnectError::Standalone`]), and creates the collections and indexes
    /// unless [`MongoOptions::ensure_indexes`] is off.
    ///
    /// The database is [`MongoOptions::database`], or else the URL's path.
    pub async fn connect(url: &str, options: MongoOptions) -> Result<MongoStorage, ConnectError> {
        let client_options = ClientOptions::parse(url)
            .await
            .map_err(|e| ConnectError::InvalidUrl(Box::new(e)))?;
        MongoStorage::open(client_options, options).await
    }

    /// [`connect`](MongoStorage::connect) with the driver's options already
    /// parsed (tests add a command monitor to them).
    pub(crate) async fn open(
        mut client_options: ClientOptions,
        options: MongoOptions,
    ) -> Result<MongoStorage, ConnectError> {
        if client_options.app_name.is_none() {
            client_options.app_name.clone_from(&options.app_name);
        }
        let name = options
            .database
            .clone()
            .or_else(|| client_options.default_database.clone())
            .filter(|n| !n.is_empty())
            .ok_or(ConnectError::NoDatabase)?;
        let server = client_options
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let server_error = |e: DriverError| ConnectError::Server(Box::new(e));
        let client = Client::with_options(client_options).map_err(server_error)?;
        let hello = client
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(server_error)?;
        topology::check(&hello, &server)?;
        let db = client.database(&name);
        if options.ensure_indexes {
            schema::ensure(&db).await.map_err(server_error)?;
        }
        Ok(MongoStorage::new(client, db, options))
    }

    fn new(client: Client, db: Database, options: MongoOptions) -> MongoStorage {
        let c = |name: &str| db.collection::<Document>(name);
        MongoStorage {
            users: c(schema::USERS),
            tokens: c(schema::TOKENS),
            refresh: c(schema::REFRESH),
            login_failures: c(schema::LOGIN_FAILURES),
            addresses: c(schema::ADDRESSES),
            categories: c(schema::CATEGORIES),
            products: c(schema::PRODUCTS),
            carts: c(schema::CARTS),
            wishlist: c(schema::WISHLIST),
            checkouts: c(schema::CHECKOUTS),
            orders: c(schema::ORDERS),
            outbox: c(schema::OUTBOX),
            commission_rules: c(schema::COMMISSION_RULES),
            ledger: c(schema::LEDGER),
            balances: c(schema::BALANCES),
            payouts: c(schema::PAYOUTS),
            payments: c(schema::PAYMENTS),
            payment_events: c(schema::PAYMENT_EVENTS),
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(
                options.max_concurrent_transactions.max(1),
            )),
            client,
            db,
            options,
        }
    }

    /// The database the store lives in (for operators: backups, dropping a test
    /// database).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Every document `filter` selects, in `sort` order, at most `limit` (a
    /// limit of 0 selects nothing: to the server it would mean "no limit").
    async fn find_all(
        coll: &Collection<Document>,
        filter: Document,
        sort: Option<Document>,
        limit: Option<u32>,
    ) -> StorageResult<Vec<Document>> {
        let mut find = coll.find(filter);
        if let Some(sort) = sort {
            find = find.sort(sort);
        }
        if let Some(limit) = limit {
            if limit == 0 {
                return Ok(Vec::new());
            }
            find = find.limit(i64::from(limit));
        }
        find.await
            .map_err(storage_error)?
            .try_collect()
            .await
            .map_err(storage_error)
    }
}

#[async_trait]
impl Storage for MongoStorage {
    async fn ping(&self) -> StorageResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    /// The `localTime` of the primary's `hello` reply (milliseconds). A server
    /// whose reply lacks it has no clock to offer: `None`.
    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
        let reply = self
            .db
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(storage_error)?;
        values::Reader::new("hello", &reply).opt_date("localTime")
    }
}
