//! Contention through the HTTP server: on PostgreSQL over a thousand concurrent
//! checkout attempts on ten hot products (hundreds on MongoDB), some repeated
//! with the same idempotency key, then the invariants.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use marketplace_core::{AddressInput, NewAccount, Principal, Role};
use marketplace_e2e::{TestServer, audit, postgres_schema};
use serde_json::json;

const HOT: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn a_thousand_checkouts_on_ten_hot_products_on_postgres() {
    let Some(db) = postgres_schema("a_thousand_checkouts_on_ten_hot_products_on_postgres").await
    else {
        return;
    };
    contention(&db.url, 1000, 100, 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn hundreds_of_checkouts_on_ten_hot_products_on_mongodb() {
    let Some(url) =
        marketplace_e2e::mongodb_database("hundreds_of_checkouts_on_ten_hot_products_on_mongodb")
    else {
        return;
    };
    // Demand (about 900 units) exceeds supply (600).
    contention(&url, 300, 30, 60).await;
}

/// `buyers` buyers check out at once, the first `doubled` of them twice with
/// the same key (a double click), on `HOT` products of `stock` units each; then
/// the audit.
async fn contention(url: &str, buyers_wanted: usize, doubled: usize, stock: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TestServer::settings(url, &dir);
    // The crowd is far more than two cores serve within any request timeout
    // (the two tests run at once): with MARKETPLACE_REQUEST_TIMEOUT's 15 s,
    // hundreds of checkouts are answered 503 `deadline_exceeded`, and clients
    // repeating them after `Retry-After` multiply the load (10 301 repeats and
    // 15 minutes, measured). This test is about atomicity under contention, so
    // every request waits its turn; `deadline.rs` tests the timeout.
    settings.request_timeout = None;
    settings.sql = settings
        .sql
        .clone()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(300));
    let s = Arc::new(TestServer::start_with(settings, dir).await);
    let market = &s.app.market;

    // Setup through the library (fast); the contention goes through HTTP.
    let admin = s.admin().await;
    let mut sellers = Vec::new();
    for _ in 0..5 {
        sellers.push(s.seller(&admin).await);
    }
    let mut products = Vec::new();
    for i in 0..HOT {
        products.push(
            s.product(
                &sellers[i % sellers.len()],
                &format!("Hot {i}"),
                1000 + i as i64,
                stock,
            )
            .await,
        );
    }
    let mut buyers = Vec::new();
    for i in 0..buyers_wanted {
        let email = s.email("crowd");
        let user = market
            .register(NewAccount {
                email: email.clone(),
                password: "correct horse".into(),
                role: Role::Buyer,
                name: None,
                store_name: None,
            })
            .await
            .unwrap();
        let who = Principal {
            user_id: user.id,
            role: Role::Buyer,
        };
        let address = AddressInput {
            name: Some("Crowd".into()),
            line1: Some("1 Queue Lane".into()),
            city: Some("Busytown".into()),
            postal_code: Some("10001".into()),
            country: Some("US".into()),
            ..Default::default()
        };
        market.add_address(&who, address).await.unwrap();
        for k in 0..2 {
            let p = products[(i * 3 + k * 7) % HOT].parse().unwrap();
            market
                .add_to_cart(&who, p, (i % 2) as u32 + 1)
                .await
                .unwrap();
        }
        let token = s.login(&email, "correct horse").await.token;
        buyers.push(token);
    }

    // Every buyer at once; the first DOUBLED send their request twice.
    let mut tasks = Vec::new();
    for (i, token) in buyers.iter().enumerate() {
        let copies = if i < doubled { 2 } else { 1 };
        for _ in 0..copies {
            let (s, token) = (Arc::clone(&s), token.clone());
            tasks.push(tokio::spawn(async move {
                let res = s
                    .http
                    .post(format!("{}/api/v1/checkout", s.base))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("crowd-{i}"))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                (i, status, body)
            }));
        }
    }
    let attempts = tasks.len();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut by_buyer: HashMap<usize, Vec<String>> = HashMap::new();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        *statuses.entry(status).or_default() += 1;
        assert!(status < 500, "a checkout answered {status}: {body}");
        match status {
            200 | 201 => by_buyer
                .entry(i)
                .or_default()
                .push(body["checkout_id"].as_str().unwrap().to_owned()),
            409 => assert!(
                ["insufficient_stock", "cart_changed"].contains(&body["code"].as_str().unwrap()),
                "unexpected conflict: {body}"
            ),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    for (i, ids) in &by_buyer {
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "buyer {i}'s repeated key gave different checkouts: {ids:?}"
        );
    }
    let initial: HashMap<_, _> = products
        .iter()
        .map(|p| (p.parse().unwrap(), stock))
        .collect();
    let found = audit(market.storage().as_ref(), &initial, true).await;
    assert_eq!(
        found.checkouts,
        by_buyer.len(),
        "one checkout per successful buyer"
    );
    assert!(found.units_sold > 0 && found.units_sold <= u64::from(stock) * HOT as u64);
    assert!(
        statuses.get(&409).copied().unwrap_or(0) > 0,
        "demand exceeds supply, so some checkouts are refused"
    );
    eprintln!(
        "contention on {}: {attempts} checkout attempts by {buyers_wanted} buyers on {HOT} products -> statuses {statuses:?}; \
         {} checkouts, {} orders, {} of {} units sold",
        if url.starts_with("mongodb") {
            "MongoDB"
        } else {
            "PostgreSQL"
        },
        found.checkouts,
        found.orders,
        found.units_sold,
        u64::from(stock) * HOT as u64
    );
}
