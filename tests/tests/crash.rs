//! Crash safety: checkouts run against a real server process, which is killed
//! with SIGKILL mid-load and restarted on the same database (a SQLite file, and
//! PostgreSQL when `TEST_POSTGRES_URL` is set). Afterwards every checkout is whole
//! or absent, retries with the same keys finish the job exactly once, and the
//! store passes the audit.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marketplace_core::{
    AddressInput, AuthConfig, Config, HashCost, JwtSecret, Marketplace, NewAccount, NewProduct,
    Principal, Role,
};
use marketplace_e2e::process::{SECRET, ServerProcess, free_port};
use marketplace_e2e::{audit, postgres_schema};
use serde_json::json;
use storage_sql::SqlOptions;

const BUYERS: usize = 200;
const STOCK: u32 = 40;

/// The server process the crash tests start and kill ([`marketplace_e2e::process`]).
#[tokio::test]
#[ignore = "the server process the crash tests start and kill"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

/// A server process on `url` (no mail worker), listening on `port`.
async fn start(url: &str, port: u16, media: &std::path::Path) -> ServerProcess {
    let vars = [
        ("DATABASE_URL", url.to_owned()),
        ("MARKETPLACE_MEDIA_DIR", media.display().to_string()),
        ("MARKETPLACE_OUTBOX_POLL_MS", "0".to_owned()),
        // What a crash leaves is the question here: 200 checkouts on ten hot
        // products can outlast the default deadline on a loaded machine, and a
        // 503 would be a third outcome this test does not look at (the
        // deadline has its own tests in deadline.rs).
        ("MARKETPLACE_REQUEST_TIMEOUT", "off".to_owned()),
    ];
    ServerProcess::start(port, &vars).await
}

async fn crash_and_recover(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(url, port, dir.path()).await;

    // Setup through a second marketplace on the same database (another process
    // would do the same), signing tokens with the server's secret.
    let (store, _) = marketplace_host::open_storage(url, &SqlOptions::default())
        .await
        .unwrap();
    let mut auth = AuthConfig::new(JwtSecret::new(SECRET.as_bytes().to_vec()).unwrap());
    auth.hash_cost = HashCost::FAST_INSECURE;
    let market = Marketplace::builder(Arc::clone(&store), Config::new(auth))
        .build()
        .await
        .unwrap();
    let mut products = Vec::new();
    for s in 0..3 {
        let email = format!("seller{s}@example.com");
        let account = NewAccount {
            email: email.clone(),
            password: "correct horse".into(),
            role: Role::Seller,
            name: None,
            store_name: Some(format!("Store {s}")),
        };
        let seller = market.register(account).await.unwrap();
        market.verify_seller_by_email(&email).await.unwrap();
        let who = Principal {
            user_id: seller.id,
            role: Role::Seller,
        };
        for k in 0..2 {
            let p = NewProduct {
                title: format!("Item {s}-{k}"),
                description: String::new(),
                price: marketplace_core::Money::new(500 + k, marketplace_core::Currency::USD),
                stock: STOCK,
                category_id: None,
                images: Vec::new(),
                discount: None,
                active: None,
                sku: None,
            };
            products.push(market.create_product(&who, p).await.unwrap().id);
        }
    }
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let email = format!("buyer{i}@example.com");
        let account = NewAccount {
            email: email.clone(),
            password: "correct horse".into(),
            role: Role::Buyer,
            name: None,
            store_name: None,
        };
        let user = market.register(account).await.unwrap();
        let who = Principal {
            user_id: user.id,
            role: Role::Buyer,
        };
        let address = AddressInput {
            name: Some("B".into()),
            line1: Some("1 Way".into()),
            city: Some("Town".into()),
            postal_code: Some("1000".into()),
            country: Some("DE".into()),
            ..Default::default()
        };
        market.add_address(&who, address).await.unwrap();
        market
            .add_to_cart(&who, products[i % products.len()], 1)
            .await
            .unwrap();
        market
            .add_to_cart(&who, products[(i + 3) % products.len()], 1)
            .await
            .unwrap();
        let token = market
            .login(&email, "correct horse", None)
            .await
            .unwrap()
            .access_token;
        buyers.push((who, token));
    }

    // Every buyer checks out at once; the server is killed while they do.
    let client = reqwest::Client::new();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let checkout = |base: String, token: String, i: usize| {
        let (client, done) = (client.clone(), Arc::clone(&done));
        async move {
            let r = client
                .post(format!("{base}/api/v1/checkout"))
                .bearer_auth(token)
                .header("Idempotency-Key", format!("crash-{i}"))
                .json(&json!({}))
                .send()
                .await
                .map(|r| r.status().as_u16());
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r
        }
    };
    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, (_, token))| tokio::spawn(checkout(server.base.clone(), token.clone(), i)))
        .collect();
    // Kill once a quarter of the checkouts have answered: the rest are in flight,
    // some of them inside their commit.
    while done.load(std::sync::atomic::Ordering::SeqCst) < BUYERS / 4 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill(); // SIGKILL
    let mut answered = 0;
    let mut cut = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(status) => {
                assert!(status < 500, "answered {status} before the crash");
                answered += 1;
            }
            Err(_) => cut += 1,
        }
    }
    assert!(
        cut > 0,
        "SIGKILL cut no request off ({answered} answered): the crash fell outside the load"
    );

    // Right after the crash: each buyer has either a whole checkout and an empty
    // cart, or no checkout and the cart as it was.
    let mut committed = 0;
    for (who, _) in &buyers {
        let cart = store.cart(who.user_id).await.unwrap();
        let q = marketplace_core::order::OrderQuery {
            buyer_id: Some(who.user_id),
            seller_id: None,
            status: None,
            after: None,
            limit: 10,
        };
        let orders = store.list_orders(&q).await.unwrap();
        if orders.is_empty() {
            assert_eq!(cart.lines.len(), 2, "no checkout, so the cart stays");
        } else if orders.iter().all(|o| o.items.is_empty()) {
            panic!("a checkout without items");
        } else {
            assert!(
                cart.lines.is_empty(),
                "a committed checkout empties the cart"
            );
            committed += 1;
        }
    }
    let initial: HashMap<_, _> = products.iter().map(|p| (*p, STOCK)).collect();
    audit(store.as_ref(), &initial, true).await;

    // Restart on the same database; every buyer retries with the same key.
    let server = start(url, port, dir.path()).await;
    let mut retried: HashMap<u16, usize> = HashMap::new();
    for (i, (_, token)) in buyers.iter().enumerate() {
        let status = checkout(server.base.clone(), token.clone(), i)
            .await
            .unwrap();
        assert!(matches!(status, 200 | 201 | 409), "retry answered {status}");
        *retried.entry(status).or_default() += 1;
    }
    assert!(
        retried.get(&200).copied().unwrap_or(0) >= committed,
        "every committed checkout replays"
    );
    let found = audit(store.as_ref(), &initial, true).await;
    assert_eq!(
        found.checkouts,
        retried.get(&200).copied().unwrap_or(0) + retried.get(&201).copied().unwrap_or(0)
    );
    let mut server = server;
    server.kill();
    eprintln!(
        "crash on {}: {answered} answered and {cut} cut off by SIGKILL, {committed} committed before it; \
         after restart {retried:?}; {} checkouts, {} orders, {} units sold in all",
        url.split(':').next().unwrap_or_default(),
        found.checkouts,
        found.orders,
        found.units_sold
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_checkout_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    crash_and_recover(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn sigkill_mid_checkout_on_postgres() {
    let Some(db) = postgres_schema("sigkill_mid_checkout_on_postgres").await else {
        return;
    };
    crash_and_recover(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn sigkill_mid_checkout_on_mongodb() {
    let Some(url) = marketplace_e2e::mongodb_database("sigkill_mid_checkout_on_mongodb") else {
        return;
    };
    crash_and_recover(&url).await;
}
