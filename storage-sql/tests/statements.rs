//! How many SQL statements the stores run, counted from sqlx's own statement log:
//! every statement a connection executes is one `tracing` event of target
//! `sqlx::query`, whichever thread runs it (SQLite runs statements on a worker
//! thread per connection, so the counter is this binary's global subscriber, and
//! the tests here take turns).
//!
//! A store that reads the users of a cart one query per seller (as a forwarder
//! that forgot `users` did, through the trait's old default) fails these.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use marketplace_conformance::World;
use marketplace_core::{Principal, Storage, UserId};
use storage_sql::SqlOptions;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// The target sqlx logs every executed statement under.
const STATEMENTS: &str = "sqlx::query";

/// Records the SQL of every statement sqlx reports.
#[derive(Default)]
struct StatementLog {
    sql: Mutex<Vec<String>>,
}

/// The statement's SQL: sqlx puts its first words in `summary` and, when there
/// are more, the whole text in `db.statement`.
#[derive(Default)]
struct Sql {
    summary: String,
    statement: String,
}

impl Visit for Sql {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.trim().to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Subscriber for StatementLog {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == STATEMENTS
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() != STATEMENTS {
            return;
        }
        let mut sql = Sql::default();
        event.record(&mut sql);
        let text = if sql.statement.is_empty() {
            sql.summary
        } else {
            sql.statement
        };
        self.sql.lock().unwrap().push(text);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// This binary's statement log, installed as the global subscriber on first use.
fn log() -> &'static StatementLog {
    static LOG: OnceLock<Arc<StatementLog>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(StatementLog::default());
        tracing::subscriber::set_global_default(log.clone()).unwrap();
        log
    })
}

/// One test at a time: the log sees every statement in the process. Taken
/// first, so a test's guards (its schema) are dropped before the next begins.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    log();
    TURN.lock().await
}

/// The SQL of the statements run while `f` runs.
async fn statements_of<T>(f: impl Future<Output = T>) -> (T, Vec<String>) {
    let log = log();
    log.sql.lock().unwrap().clear();
    let out = f.await;
    // SQLite's worker logs a statement just after sending its last result: wait
    // until the log is quiet.
    loop {
        let seen = log.sql.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if log.sql.lock().unwrap().len() == seen {
            break;
        }
    }
    (out, std::mem::take(&mut *log.sql.lock().unwrap()))
}

fn reading_users(statements: &[String]) -> Vec<&String> {
    statements
        .iter()
        .filter(|sql| sql.contains("FROM users"))
        .collect()
}

/// A marketplace over `storage` with three verified sellers, each with a product
/// in one buyer's cart.
async fn three_seller_cart<S: Storage>(storage: S) -> (World<S>, Principal, Vec<UserId>) {
    let w = World::new(storage).await;
    let buyer = w.buyer().await;
    let mut sellers = Vec::new();
    for i in 0..3 {
        let seller = w.seller().await;
        let product = w.product(&seller, &format!("Item {i}"), 100 + i, 5).await;
        w.market.add_to_cart(&buyer, product.id, 1).await.unwrap();
        sellers.push(seller.user_id);
    }
    (w, buyer, sellers)
}

/// `users` reads three existing users in exactly one statement.
async fn users_is_one_statement<S: Storage>(storage: S) {
    let (w, _, sellers) = three_seller_cart(storage).await;
    let storage = w.market.storage();
    // Warm up: the first read of a pool may open a connection.
    storage.users(&sellers).await.unwrap();
    let (users, statements) = statements_of(storage.users(&sellers)).await;
    let mut found: Vec<UserId> = users.unwrap().into_iter().map(|u| u.id).collect();
    found.sort_unstable();
    let mut wanted = sellers.clone();
    wanted.sort_unstable();
    assert_eq!(found, wanted);
    assert_eq!(
        statements.len(),
        1,
        "users(&[a, b, c]) must be one statement, ran {statements:#?}"
    );
    assert_eq!(reading_users(&statements).len(), 1, "{statements:#?}");
}

/// Reading a cart with items of three sellers reads the sellers in one
/// statement: the cart, its products and its sellers, three in all (one query
/// per seller would make it five).
async fn cart_reads_its_sellers_in_one_statement<S: Storage>(storage: S) {
    let (w, buyer, _) = three_seller_cart(storage).await;
    w.market.cart(&buyer).await.unwrap();
    let (cart, statements) = statements_of(w.market.cart(&buyer)).await;
    let cart = cart.unwrap();
    assert_eq!(cart.sellers.len(), 3);
    assert!(
        cart.sellers.iter().all(|g| !g.store_name.is_empty()),
        "every group is named after its seller: {cart:?}"
    );
    assert_eq!(
        reading_users(&statements).len(),
        1,
        "the sellers must be read in one statement: {statements:#?}"
    );
    assert!(
        statements.len() <= 3,
        "a cart read is the cart, its products and their sellers: {statements:#?}"
    );
}

/// A checkout writes its payment and hands it back without reading it again
/// (nor any payment): the orders' payment status is the one just opened.
async fn checkout_reads_back_no_payment<S: Storage>(storage: S) {
    let (w, buyer, sellers) = three_seller_cart(storage).await;
    let address = w.address(&buyer).await;
    let key = marketplace_core::IdempotencyKey::parse("statements-checkout").unwrap();
    let request = marketplace_core::CheckoutRequest {
        address_id: Some(address.id),
    };
    let (done, statements) = statements_of(w.market.checkout(&buyer, &key, request)).await;
    let done = done.unwrap();
    assert_eq!(done.orders.len(), sellers.len());
    let payment = done.payment.as_ref().expect("a checkout opens a payment");
    assert!(
        done.orders
            .iter()
            .all(|o| o.payment_status == Some(payment.order_status(o))),
        "every order carries the status of the payment opened: {done:?}"
    );
    // What a later read returns is what the checkout answered.
    let stored = w
        .market
        .checkout_payment(&buyer, done.checkout_id)
        .await
        .unwrap();
    assert_eq!(&stored, payment);
    let reads: Vec<_> = statements
        .iter()
        .filter(|sql| sql.contains("FROM payments"))
        .collect();
    assert!(
        reads.is_empty(),
        "the payment is read back after being written: {reads:#?} among {statements:#?}"
    );
}

/// One pooled connection (SQLite: one reader, beside the writer): a call never
/// opens a connection (whose setup runs statements of its own) while the previous
/// call's connection is still on its way back to the pool.
fn one_connection() -> SqlOptions {
    SqlOptions::default().max_connections(1)
}

#[tokio::test]
async fn sqlite_users_is_one_statement() {
    let _turn = turn().await;
    let fresh = common::sqlite_with(one_connection()).await;
    users_is_one_statement(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_users_is_one_statement() {
    let _turn = turn().await;
    let Some(fresh) = common::postgres_with(one_connection()).await else {
        return;
    };
    users_is_one_statement(fresh.storage).await;
}

#[tokio::test]
async fn sqlite_cart_reads_its_sellers_in_one_statement() {
    let _turn = turn().await;
    let fresh = common::sqlite_with(one_connection()).await;
    cart_reads_its_sellers_in_one_statement(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_cart_reads_its_sellers_in_one_statement() {
    let _turn = turn().await;
    let Some(fresh) = common::postgres_with(one_connection()).await else {
        return;
    };
    cart_reads_its_sellers_in_one_statement(fresh.storage).await;
}

/// Authenticating an access token reads the user and its login's liveness in
/// one statement (by primary key and the live-family index).
async fn authenticating_is_one_statement<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    let me = w.register(marketplace_core::Role::Buyer, &email).await;
    let tokens = w.market.login(&email, "correct horse", None).await.unwrap();
    w.market.authenticate(&tokens.access_token).await.unwrap();
    let (who, statements) = statements_of(w.market.authenticate(&tokens.access_token)).await;
    assert_eq!(who.unwrap(), me);
    assert_eq!(
        statements.len(),
        1,
        "authenticate must be one statement, ran {statements:#?}"
    );
    assert!(statements[0].contains("refresh_tokens"), "{statements:#?}");
}

#[tokio::test]
async fn sqlite_authenticating_is_one_statement() {
    let _turn = turn().await;
    let fresh = common::sqlite_with(one_connection()).await;
    authenticating_is_one_statement(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_authenticating_is_one_statement() {
    let _turn = turn().await;
    let Some(fresh) = common::postgres_with(one_connection()).await else {
        return;
    };
    authenticating_is_one_statement(fresh.storage).await;
}

#[tokio::test]
async fn sqlite_checkout_reads_back_no_payment() {
    let _turn = turn().await;
    let fresh = common::sqlite_with(one_connection()).await;
    checkout_reads_back_no_payment(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_checkout_reads_back_no_payment() {
    let _turn = turn().await;
    let Some(fresh) = common::postgres_with(one_connection()).await else {
        return;
    };
    checkout_reads_back_no_payment(fresh.storage).await;
}
