//! Payments over HTTP, against a real server process on every backend: the
//! checkout answers how to pay; with the manual default an admin marks the
//! checkout paid, and a seller's later cancellation is refunded; buyers see
//! each order's payment status; webhooks for a provider that takes none are
//! refused. With `TEST_STRIPE_URL` (localstripe), the same sale is paid by
//! card through Stripe's API: see `stripe.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_e2e::process::{ServerProcess, free_port};
use marketplace_e2e::{Api, Reply, Session, postgres_schema};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The server process the payment tests start ([`marketplace_e2e::process`]).
#[tokio::test]
#[ignore = "the server process the payment tests start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

const ADMIN: &str = "root@example.com";
const PASSWORD: &str = "correct horse";

async fn start(url: &str, media: &std::path::Path) -> ServerProcess {
    let vars = [
        ("DATABASE_URL", url.to_owned()),
        ("MARKETPLACE_MEDIA_DIR", media.display().to_string()),
        ("MARKETPLACE_OUTBOX_POLL_MS", "0".to_owned()),
        ("MARKETPLACE_LEDGER_POLL_MS", "200".to_owned()),
        ("MARKETPLACE_ADMIN_EMAIL", ADMIN.to_owned()),
        ("MARKETPLACE_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    ServerProcess::start(free_port(), &vars).await
}

fn ok(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
}

async fn seller(api: &Api, admin: &Session, email: &str) -> Session {
    let id = api
        .register(
            json!({"email": email, "password": PASSWORD, "role": "seller", "store_name": email}),
        )
        .await;
    api.verify_seller(admin, &id).await;
    api.login(email, PASSWORD).await
}

async fn product(api: &Api, seller: &Session, cents: i64) -> String {
    let r = api
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Thing", "price": {"amount": cents, "currency": "USD"}, "stock": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn order_of<'a>(checkout: &'a Value, seller: &Session) -> &'a Value {
    checkout["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o.get("seller_id").and_then(Value::as_str) == Some(seller.id.as_str()))
        .unwrap()
}

async fn manual_sale(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let api = start(url, dir.path()).await;
    let admin = api.login(ADMIN, PASSWORD).await;
    let a = Some(admin.token.as_str());
    let (books, teas) = (
        seller(&api, &admin, "books@example.com").await,
        seller(&api, &admin, "teas@example.com").await,
    );
    let (p1, p2) = (
        product(&api, &books, 1500).await,
        product(&api, &teas, 2500).await,
    );
    api.register(json!({"email": "ada@example.com", "password": PASSWORD, "role": "buyer"}))
        .await;
    let ada = api.login("ada@example.com", PASSWORD).await;
    let b = Some(ada.token.as_str());
    let r = api
        .post(
            "/api/v1/me/addresses",
            b,
            json!({"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for p in [&p1, &p2] {
        let r = api
            .post(
                "/api/v1/cart/items",
                b,
                json!({"product_id": p, "quantity": 1}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let done = api.checkout(&ada, "pay-1", json!({})).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    let pay = &done.body["payment"];
    assert_eq!(pay["status"], "awaiting_payment", "{pay}");
    assert_eq!(pay["provider"], "manual");
    assert_eq!(pay["amount"]["amount"], 4000);
    assert!(
        pay["instructions"].as_str().unwrap().contains("40.00"),
        "{pay}"
    );
    assert_eq!(
        order_of(&done.body, &books)["payment_status"],
        "awaiting_payment"
    );
    let checkout = done.body["checkout_id"].as_str().unwrap();
    let id = pay["id"].as_str().unwrap();

    // The buyer reads it back; another buyer and a seller do not.
    let r = api
        .get(&format!("/api/v1/checkouts/{checkout}/payment"), b)
        .await;
    ok(&r, "the buyer's payment");
    assert_eq!(r.body["id"], id);
    let r = api
        .get(
            &format!("/api/v1/checkouts/{checkout}/payment"),
            Some(&books.token),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Sellers fulfil before payment on delivery.
    let books_order = order_of(&done.body, &books)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let teas_order = order_of(&done.body, &teas)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .post(
            &format!("/api/v1/seller/orders/{books_order}/status"),
            Some(&books.token),
            json!({"status": "accepted"}),
        )
        .await;
    ok(&r, "accepting an order paid on delivery");

    let r = api
        .get("/api/v1/admin/payments?status=awaiting_payment", a)
        .await;
    ok(&r, "payments awaiting");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = api
        .post(&format!("/api/v1/admin/payments/{id}/paid"), a, json!(null))
        .await;
    ok(&r, "marking paid");
    assert_eq!(r.body["status"], "captured");
    assert_eq!(r.body["captured"]["amount"], 4000);
    let r = api
        .post(&format!("/api/v1/admin/payments/{id}/paid"), a, json!(null))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["code"], "payment_settled");

    // A cancellation after the payment is refunded.
    let r = api
        .post(
            &format!("/api/v1/seller/orders/{teas_order}/status"),
            Some(&teas.token),
            json!({"status": "cancelled"}),
        )
        .await;
    ok(&r, "cancelling");
    let r = api.get(&format!("/api/v1/orders/{teas_order}"), b).await;
    ok(&r, "the buyer's order");
    assert_eq!(r.body["payment_status"], "refunded", "{}", r.body);
    let r = api.get("/api/v1/orders", b).await;
    ok(&r, "the buyer's orders");
    let statuses: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["payment_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "paid").count(),
        1,
        "{statuses:?}"
    );
    let r = api.get(&format!("/api/v1/admin/payments/{id}"), a).await;
    ok(&r, "the payment");
    assert_eq!(r.body["status"], "partially_refunded", "{}", r.body);
    assert_eq!(r.body["refunded"]["amount"], 2500);
    assert_eq!(r.body["refunds"][0]["status"], "succeeded");
    assert_eq!(r.body["refunds"][0]["order_id"], teas_order.as_str());

    // Webhooks: the manual provider takes none; an unknown provider is 404.
    let r = api
        .post(
            "/api/v1/payments/webhooks/manual",
            None,
            json!({"id": "evt_1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = api
        .post(
            "/api/v1/payments/webhooks/nobody",
            None,
            json!({"id": "evt_1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_payment_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    manual_sale(&format!("sqlite://{}", dir.path().join("p.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_payment_on_memory() {
    manual_sale("memory:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn manual_payment_on_postgres() {
    let Some(db) = postgres_schema("manual_payment_on_postgres").await else {
        return;
    };
    manual_sale(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn manual_payment_on_mongodb() {
    let Some(url) = marketplace_e2e::mongodb_database("manual_payment_on_mongodb") else {
        return;
    };
    manual_sale(&url).await;
}
