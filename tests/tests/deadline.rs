//! The request deadline over HTTP (`MARKETPLACE_REQUEST_TIMEOUT`), against a
//! store that is slow for a real reason: another connection holds the SQLite
//! file's write lock (`BEGIN IMMEDIATE`), so a checkout's commit waits on the
//! busy lock and retries. It is answered 503 `deadline_exceeded` with
//! `Retry-After` at the deadline instead of after every retry; once the lock is
//! released nothing of it was written, and the same request succeeds.
//!
//! Two ways to the deadline: with a short busy timeout the retry loops see it
//! coming and stop before their next backoff; with a busy timeout longer than
//! the request's, one `BEGIN` is still waiting inside SQLite when the host cuts
//! the request off.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use marketplace_e2e::TestServer;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

/// The request timeout of the servers under test.
const TIMEOUT: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_retrying_a_held_write_lock_stops_at_its_deadline_and_writes_nothing() {
    // Three BEGINs of 300 ms and two backoffs fit in the second; the third
    // backoff would not.
    stuck_checkout(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_waiting_inside_sqlite_is_cut_off_at_its_deadline_and_writes_nothing() {
    // The first BEGIN alone would wait five seconds on the lock.
    stuck_checkout(Duration::from_secs(5)).await;
}

/// A checkout against a write lock held elsewhere, on a server whose `BEGIN`
/// waits `busy` on the lock before it retries.
async fn stuck_checkout(busy: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marketplace.db");
    let url = format!("sqlite://{}", file.display());
    let mut settings = TestServer::settings(&url, &dir);
    settings.request_timeout = Some(TIMEOUT);
    settings.sql = settings.sql.clone().busy_timeout(busy);
    let s = TestServer::start_with(settings, dir).await;

    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let product = s.product(&seller, "Kettle", 2500, 5).await;
    let buyer = s.buyer().await;
    let address = s.address(&buyer).await;
    let t = Some(buyer.token.as_str());
    let added = s
        .post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": product, "quantity": 2}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.body);
    let cart_before = s.get("/api/v1/cart", t).await.body;

    // Another process, as far as the server can tell, takes the write lock.
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    // Reads go on beside the writer (WAL).
    let read = s.get("/api/v1/products", None).await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);

    let started = Instant::now();
    let stuck = s
        .checkout(&buyer, "deadline-1", json!({"address_id": address}))
        .await;
    let took = started.elapsed();
    eprintln!(
        "checkout on a held write lock answered {} after {} ms (timeout {} ms, busy timeout {} ms)",
        stuck.status,
        took.as_millis(),
        TIMEOUT.as_millis(),
        busy.as_millis()
    );
    assert_eq!(
        stuck.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        stuck.body
    );
    assert_eq!(stuck.body["code"], "deadline_exceeded", "{:?}", stuck.body);
    assert_eq!(stuck.body["status"], 503);
    assert_eq!(stuck.body["retry_after"], 1);
    assert_eq!(
        stuck
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(
        stuck
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // It waited on the lock, and was answered at the deadline: not after every
    // retry (five calls of four busy BEGINs each: 7 s with a 300 ms busy
    // timeout, 100 s with 5 s), nor much later than the deadline.
    assert!(took >= TIMEOUT / 2, "answered after {took:?}");
    assert!(
        took < TIMEOUT + Duration::from_millis(700),
        "answered after {took:?}"
    );

    // The lock is given back: nothing of the checkout was written.
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    let orders = s.get("/api/v1/orders", t).await;
    assert_eq!(orders.status, StatusCode::OK, "{:?}", orders.body);
    assert_eq!(orders.body["items"], json!([]), "{:?}", orders.body);
    assert_eq!(s.get("/api/v1/cart", t).await.body, cart_before);
    let listed = s.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(listed.body["stock"], 5, "no stock taken: {:?}", listed.body);

    // The same request, repeated as `Retry-After` invites, succeeds.
    let done = s
        .checkout(&buyer, "deadline-1", json!({"address_id": address}))
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    assert_eq!(done.body["orders"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.get("/api/v1/orders", t).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let listed = s.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(listed.body["stock"], 3, "{:?}", listed.body);
}
