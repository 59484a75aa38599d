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
//! One module per concept says how its documents look and holds the
//! transaction bodies of its atomic steps: [`accounts`], [`catalog`],
//! [`shopping`] (carts, wishlists, addresses), [`orders`] (with the checkout
//! commit), [`outbox`]; this file keeps the `Storage` implementation itself; [`values`] says how identifiers, instants and money are encoded;
//! [`schema`] lists the collections and indexes; [`error`] maps driver errors
//! into the core's [`StorageError`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::IntoFuture;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::{FutureExt, TryStreamExt};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::cart::{Cart, WishlistEntry};
use marketplace_core::catalog::{Category, Product, ProductQuery};
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery, OutboxStatus};
use marketplace_core::storage::{LoginFailures, RotateOutcome, TokenEffect};
use marketplace_core::{
    AddressId, CategoryId, CheckoutId, MessageId, OrderId, ProductId, SellerStatus, Storage,
    StorageError, StorageResult, User, UserId,
};
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as DriverError;
use mongodb::options::{ClientOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Collection, Database};
use uuid::Uuid;

pub mod accounts;
pub mod catalog;
pub mod error;
mod options;
pub mod orders;
pub mod outbox;
pub mod schema;
pub mod shopping;
mod topology;
pub mod transaction;
pub mod values;

pub use error::ConnectError;
pub use options::MongoOptions;

use crate::error::{duplicate_key, storage_error};
use crate::transaction::Fail;
use crate::values::{Reader, count, date, uuid};

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
        let mut client_options = ClientOptions::parse(url)
            .await
            .map_err(|e| ConnectError::InvalidUrl(Box::new(e)))?;
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

    /// Every document `filter` selects, in `sort` order, at most `limit`.
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
            find = find.limit(i64::from(limit));
        }
        find.await
            .map_err(storage_error)?
            .try_collect()
            .await
            .map_err(storage_error)
    }

    /// Runs a single-document write, repeating it while it loses a write
    /// conflict against a transaction (which means it did not apply).
    async fn single<T, F, Fut>(&self, mut op: F) -> Result<T, DriverError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DriverError>>,
    {
        let deadline = std::time::Instant::now() + self.options.transaction_retry_timeout;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match op().await {
                Err(e) if error::is_write_conflict(&e) && std::time::Instant::now() < deadline => {
                    transaction::backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) async fn push_outbox(
        &self,
        s: &mut ClientSession,
        messages: &[OutboxMessage],
    ) -> Result<(), DriverError> {
        if !messages.is_empty() {
            self.outbox
                .insert_many(messages.iter().map(outbox::message_doc))
                .session(s)
                .await?;
        }
        Ok(())
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Self {
        Fail::Refuse(e)
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

    // ----- users -----------------------------------------------------------------

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(
            &(self, user, token, outbox),
            |s, (store, user, token, outbox)| store.create_user_tx(s, user, *token, outbox).boxed(),
        )
        .await
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        self.users
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| accounts::user_from(&d))
            .transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = ids.iter().map(|id| uuid(id.0)).collect();
        Self::find_all(&self.users, doc! { "_id": { "$in": ids } }, None, None)
            .await?
            .iter()
            .map(accounts::user_from)
            .collect()
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        self.users
            .find_one(doc! { "email": email })
            .await
            .map_err(storage_error)?
            .map(|d| accounts::user_from(&d))
            .transpose()
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        let update = doc! { "$set": {
            "name": values::opt_str(name),
            "phone": values::opt_str(phone),
        } };
        self.single(|| {
            self.users
                .find_one_and_update(doc! { "_id": uuid(id.0) }, update.clone())
                .return_document(ReturnDocument::After)
                .into_future()
        })
        .await
        .map_err(storage_error)?
        .map(|d| accounts::user_from(&d))
        .transpose()
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(
            &(self, id, status, outbox),
            |s, (store, id, status, outbox)| {
                store.set_seller_status_tx(s, *id, *status, outbox).boxed()
            },
        )
        .await?
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        self.transaction(&(self, id, active), |s, (store, id, active)| {
            store.set_user_active_tx(s, *id, *active).boxed()
        })
        .await?
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        let mut filter = match status {
            Some(s) => doc! { "seller_status": s.as_str() },
            None => doc! { "seller_status": { "$in": accounts::seller_statuses() } },
        };
        if let Some(a) = after {
            filter.insert("_id", doc! { "$gt": uuid(a.0) });
        }
        Self::find_all(&self.users, filter, Some(doc! { "_id": 1 }), Some(limit))
            .await?
            .iter()
            .map(accounts::user_from)
            .collect()
    }

    // ----- single-use tokens ---------------------------------------------------------

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(&(self, token, outbox), |s, (store, token, outbox)| {
            store.insert_token_tx(s, token, outbox).boxed()
        })
        .await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        self.transaction(
            &(self, hash, purpose, now, effect),
            |s, (store, hash, purpose, now, effect)| {
                store
                    .redeem_token_tx(s, hash, *purpose, *now, effect)
                    .boxed()
            },
        )
        .await
    }

    // ----- refresh tokens --------------------------------------------------------------

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        self.refresh
            .insert_one(accounts::refresh_doc(token))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        self.transaction(
            &(self, presented, next_hash, next_expires_at, now),
            |s, (store, presented, next_hash, next_expires_at, now)| {
                store
                    .rotate_refresh_tx(s, presented, next_hash, *next_expires_at, *now)
                    .boxed()
            },
        )
        .await
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        self.transaction(&(self, hash), |s, (store, hash)| {
            store.revoke_family_tx(s, hash).boxed()
        })
        .await
    }

    // ----- login throttling --------------------------------------------------------------

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        let cutoff = date(now - window);
        let decode = |d: Document| {
            let r = Reader::new(schema::LOGIN_FAILURES, &d);
            Ok(LoginFailures {
                count: r.u32("count")?,
                window_started: r.date("window_started")?,
            })
        };
        // Lock-free: count in the open window, or else open a new one (an
        // upsert that loses a race to open it hits the unique _id and retries).
        for _ in 0..16 {
            let counted = self
                .single(|| {
                    self.login_failures
                        .find_one_and_update(
                            doc! { "_id": key, "window_started": { "$gt": cutoff.clone() } },
                            doc! { "$inc": { "count": 1_i64 } },
                        )
                        .return_document(ReturnDocument::After)
                        .into_future()
                })
                .await
                .map_err(storage_error)?;
            if let Some(d) = counted {
                return decode(d);
            }
            let opened = self
                .single(|| {
                    self.login_failures
                        .find_one_and_update(
                            doc! { "_id": key, "window_started": { "$lte": cutoff.clone() } },
                            doc! { "$set": { "count": 1_i64, "window_started": date(now) } },
                        )
                        .upsert(true)
                        .return_document(ReturnDocument::After)
                        .into_future()
                })
                .await;
            match opened {
                Ok(Some(d)) => return decode(d),
                Ok(None) => {}
                Err(e) if duplicate_key(&e).is_some() => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Err(StorageError::Transient(
            "login failure counter kept changing".into(),
        ))
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        let Some(d) = self
            .login_failures
            .find_one(doc! { "_id": key })
            .await
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        let r = Reader::new(schema::LOGIN_FAILURES, &d);
        let f = LoginFailures {
            count: r.u32("count")?,
            window_started: r.date("window_started")?,
        };
        Ok((f.window_started + window > now).then_some(f))
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        self.login_failures
            .delete_one(doc! { "_id": key })
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    // ----- addresses -------------------------------------------------------------------

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        Self::find_all(
            &self.addresses,
            doc! { "user_id": uuid(user.0) },
            Some(doc! { "seq": 1, "_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(shopping::address_from)
        .collect()
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        self.transaction(&(self, address), |s, (store, address)| {
            store.save_address_tx(s, address).boxed()
        })
        .await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        self.addresses
            .delete_one(doc! { "_id": uuid(id.0), "user_id": uuid(user.0) })
            .await
            .map(|r| r.deleted_count > 0)
            .map_err(storage_error)
    }

    // ----- categories ------------------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        self.categories
            .insert_one(catalog::category_doc(category))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        Self::find_all(
            &self.categories,
            doc! {},
            Some(doc! { "name": 1, "_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(catalog::category_from)
        .collect()
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        self.categories
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| catalog::category_from(&d))
            .transpose()
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let key = name.to_lowercase();
        let r = self
            .categories
            .update_one(
                doc! { "_id": uuid(id.0) },
                doc! { "$set": { "name": name, "name_key": &key } },
            )
            .await
            .map_err(storage_error)?;
        if r.matched_count > 0 {
            return Ok(true);
        }
        // As the contract orders it: a taken name is reported before a missing id.
        let taken = self
            .categories
            .find_one(doc! { "name_key": key })
            .await
            .map_err(storage_error)?;
        match taken {
            Some(_) => Err(StorageError::AlreadyExists("category name")),
            None => Ok(false),
        }
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        self.transaction(&(self, id), |s, (store, id)| {
            store.delete_category_tx(s, *id).boxed()
        })
        .await?
    }

    // ----- products ---------------------------------------------------------------------

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        self.transaction(&(self, product), |s, (store, product)| {
            store.insert_product_tx(s, product).boxed()
        })
        .await?
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        self.products
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| catalog::product_from(&d))
            .transpose()
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = ids.iter().map(|id| uuid(id.0)).collect();
        Self::find_all(&self.products, doc! { "_id": { "$in": ids } }, None, None)
            .await?
            .iter()
            .map(catalog::product_from)
            .collect()
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        self.transaction(
            &(self, product, expected_version),
            |s, (store, product, expected_version)| {
                store
                    .update_product_tx(s, product, *expected_version)
                    .boxed()
            },
        )
        .await?
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        let (filter, sort) = catalog::product_query(query);
        Self::find_all(&self.products, filter, Some(sort), Some(query.limit))
            .await?
            .iter()
            .map(catalog::product_from)
            .collect()
    }

    // ----- cart and wishlist ---------------------------------------------------------------

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        match self
            .carts
            .find_one(doc! { "_id": uuid(buyer.0) })
            .await
            .map_err(storage_error)?
        {
            Some(d) => shopping::cart_from(&d),
            None => Ok(Cart {
                buyer_id: buyer,
                version: 0,
                lines: Vec::new(),
            }),
        }
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let changed = || StorageError::Precondition("cart version changed".into());
        let buyer = uuid(cart.buyer_id.0);
        let lines = shopping::cart_lines(cart);
        if expected_version == 0 {
            // Never saved: the first save creates the document; a concurrent
            // first save makes this one hit the unique _id.
            let first = doc! { "_id": buyer, "version": count(cart.version), "lines": lines };
            return match self
                .single(|| self.carts.insert_one(first.clone()).into_future())
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if duplicate_key(&e).is_some() => Err(changed()),
                Err(e) => Err(storage_error(e)),
            };
        }
        let filter = doc! { "_id": buyer, "version": count(expected_version) };
        let update = doc! { "$set": { "version": count(cart.version), "lines": lines } };
        let r = self
            .single(|| {
                self.carts
                    .update_one(filter.clone(), update.clone())
                    .into_future()
            })
            .await
            .map_err(storage_error)?;
        if r.matched_count == 0 {
            return Err(changed());
        }
        Ok(())
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let entry = doc! {
            "buyer_id": uuid(buyer.0),
            "product_id": uuid(product.0),
            "added_at": date(at),
        };
        match self.wishlist.insert_one(entry).await {
            Ok(_) => Ok(true),
            Err(e) if duplicate_key(&e).is_some() => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        self.wishlist
            .delete_one(doc! { "buyer_id": uuid(buyer.0), "product_id": uuid(product.0) })
            .await
            .map(|r| r.deleted_count > 0)
            .map_err(storage_error)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        Self::find_all(
            &self.wishlist,
            doc! { "buyer_id": uuid(buyer.0) },
            Some(doc! { "added_at": -1, "_id": -1 }),
            None,
        )
        .await?
        .iter()
        .map(|d| {
            let r = Reader::new(schema::WISHLIST, d);
            Ok(WishlistEntry {
                product_id: ProductId(r.uuid("product_id")?),
                added_at: r.date("added_at")?,
            })
        })
        .collect()
    }

    // ----- checkout and orders ---------------------------------------------------------------

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        self.checkouts
            .find_one(doc! { "buyer_id": uuid(buyer.0), "key": key })
            .await
            .map_err(storage_error)?
            .map(|d| orders::checkout_from(&d))
            .transpose()
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        self.transaction(&(self, plan), |s, (store, plan)| {
            store.commit_checkout_tx(s, plan).boxed()
        })
        .await
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        self.orders
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| orders::order_from(&d))
            .transpose()
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        Self::find_all(
            &self.orders,
            doc! { "checkout_id": uuid(id.0) },
            Some(doc! { "seller_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(orders::order_from)
        .collect()
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        Self::find_all(
            &self.orders,
            orders::order_filter(query),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(query.limit),
        )
        .await?
        .iter()
        .map(orders::order_from)
        .collect()
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        self.transaction(&(self, t), |s, (store, t)| {
            store.transition_order_tx(s, t).boxed()
        })
        .await?
    }

    // ----- notification outbox -------------------------------------------------------------------

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.transaction(
            &(self, worker, now, lease_until, limit),
            |s, (store, worker, now, lease_until, limit)| {
                store
                    .claim_outbox_tx(s, *worker, *now, *lease_until, *limit)
                    .boxed()
            },
        )
        .await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let mut set = match update {
            DeliveryUpdate::Delivered { at } => doc! {
                "status": OutboxStatus::Delivered.as_str(),
                "delivered_at": date(*at),
            },
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => doc! { "next_attempt_at": date(*next_attempt_at), "last_error": error },
            DeliveryUpdate::Dead { error } => doc! {
                "status": OutboxStatus::Dead.as_str(),
                "last_error": error,
            },
        };
        set.insert("claimed_by", Bson::Null);
        set.insert("claimed_until", Bson::Null);
        let filter = doc! {
            "_id": uuid(id.0),
            "status": OutboxStatus::Pending.as_str(),
            "claimed_by": uuid(worker),
        };
        let update = doc! { "$set": set, "$inc": { "attempts": 1_i64 } };
        self.single(|| {
            self.outbox
                .update_one(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count > 0)
        .map_err(storage_error)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let filter = doc! { "claimed_by": uuid(worker) };
        let update = doc! { "$set": { "claimed_by": Bson::Null, "claimed_until": Bson::Null } };
        self.single(|| {
            self.outbox
                .update_many(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count)
        .map_err(storage_error)
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        self.outbox
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| outbox::message_from(&d))
            .transpose()
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        Self::find_all(
            &self.outbox,
            outbox::outbox_filter(query),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(query.limit),
        )
        .await?
        .iter()
        .map(outbox::message_from)
        .collect()
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let filter = doc! { "_id": uuid(id.0), "status": OutboxStatus::Dead.as_str() };
        let update = doc! { "$set": {
            "status": OutboxStatus::Pending.as_str(),
            "attempts": 0_i64,
            "next_attempt_at": date(now),
            "claimed_by": Bson::Null,
            "claimed_until": Bson::Null,
        } };
        self.single(|| {
            self.outbox
                .update_one(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count > 0)
        .map_err(storage_error)
    }
}
