//! Payments through Stripe's API, against localstripe (`TEST_STRIPE_URL`), a
//! stateful Stripe-compatible server, and a real server process configured
//! the way an operator would (`STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`,
//! `STRIPE_API_BASE`):
//! - the checkout answers a PaymentIntent's client secret; sellers cannot
//!   accept before the buyer pays; the buyer pays by card at localstripe and
//!   the server learns it (from the provider when the buyer asks, and from
//!   signed webhooks, duplicated and out of order);
//! - one seller accepts and the other cancels: the intent is captured once,
//!   for the accepted order; a later cancellation is refunded at localstripe;
//! - an unpaid checkout expires: its intent is cancelled at localstripe, its
//!   stock returned, and the buyer can no longer pay it;
//! - buyers double-click their checkouts and pay at once while sellers decide
//!   and the worker runs; afterwards, for every checkout, captured − refunded
//!   equals the totals of its live orders, in our records and at localstripe.
//!
//! localstripe has no idempotency keys and sends no
//! `payment_intent.amount_capturable_updated`: the webhooks of an
//! authorization are signed here with the endpoint's secret, as Stripe signs
//! them (see the README for all it does not cover).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketplace_conformance::World;
use marketplace_conformance::scenarios::{all_orders, all_payments, payment_invariants};
use marketplace_core::{PaymentStatus, Principal, ProductId};
use marketplace_e2e::process::{ServerProcess, free_port};
use marketplace_e2e::{Api, Reply, Session, skipped};
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage_sql::SqlOptions;

/// The server process the Stripe tests start ([`marketplace_e2e::process`]).
#[tokio::test]
#[ignore = "the server process the Stripe tests start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

const ADMIN: &str = "root@example.com";
const PASSWORD: &str = "correct horse";
const KEY: &str = "sk_test_marketplace_e2e";
const WEBHOOK_SECRET: &str = "whsec_marketplace_e2e";
const VISA: &str = "4242424242424242";

/// localstripe, as a buyer's browser and the tests reach it.
struct Stripe {
    url: String,
    http: reqwest::Client,
}

impl Stripe {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// The buyer pays the intent by card, as Stripe.js would: a payment
    /// method, attached, then the confirmation. Answers the confirm's status.
    async fn pay(&self, intent: &str) -> u16 {
        let (status, pm) = self
            .post(
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", VISA),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2034"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{pm}");
        let pm = pm["id"].as_str().unwrap().to_owned();
        let (status, _) = self
            .post(
                &format!("/v1/payment_intents/{intent}"),
                &[("payment_method", &pm)],
            )
            .await;
        if status != 200 {
            return status;
        }
        self.post(&format!("/v1/payment_intents/{intent}/confirm"), &[])
            .await
            .0
    }

    async fn intent(&self, id: &str) -> Value {
        self.get(&format!("/v1/payment_intents/{id}")).await
    }

    /// The refunds our provider made for the intent (it tags each with its key).
    async fn our_refunds(&self, id: &str) -> i64 {
        let list = self
            .get(&format!("/v1/refunds?payment_intent={id}&limit=100"))
            .await;
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metadata"]["idempotency_key"].is_string())
            .map(|r| r["amount"].as_i64().unwrap())
            .sum()
    }
}

fn stripe_url(test: &str) -> Option<String> {
    let url = std::env::var("TEST_STRIPE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        skipped(
            test,
            "it needs TEST_STRIPE_URL (localstripe, e.g. http://127.0.0.1:8420), unset when it ran",
        );
    }
    url
}

async fn start(db: &str, stripe: &str, media: &std::path::Path, hold: &str) -> ServerProcess {
    let vars = [
        ("DATABASE_URL", db.to_owned()),
        ("MARKETPLACE_MEDIA_DIR", media.display().to_string()),
        ("MARKETPLACE_OUTBOX_POLL_MS", "0".to_owned()),
        ("MARKETPLACE_LEDGER_POLL_MS", "200".to_owned()),
        ("MARKETPLACE_PAYMENT_HOLD", hold.to_owned()),
        ("MARKETPLACE_ADMIN_EMAIL", ADMIN.to_owned()),
        ("MARKETPLACE_ADMIN_PASSWORD", PASSWORD.to_owned()),
        ("STRIPE_SECRET_KEY", KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", stripe.to_owned()),
        ("STRIPE_RECEIPT_EMAIL", "false".to_owned()),
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

async fn product(api: &Api, seller: &Session, cents: i64, stock: u32) -> String {
    let r = api
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Thing", "price": {"amount": cents, "currency": "USD"}, "stock": stock}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn buyer(api: &Api, email: &str) -> Session {
    api.register(json!({"email": email, "password": PASSWORD, "role": "buyer"}))
        .await;
    let b = api.login(email, PASSWORD).await;
    let r = api
        .post(
            "/api/v1/me/addresses",
            Some(&b.token),
            json!({"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    b
}

/// The buyer's cart holds one unit of each product; checks it out with `key`.
async fn buy(api: &Api, who: &Session, products: &[&str], key: &str) -> Value {
    for p in products {
        let r = api
            .post(
                "/api/v1/cart/items",
                Some(&who.token),
                json!({"product_id": p, "quantity": 1}),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let r = api.checkout(who, key, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn order_of(checkout: &Value, seller: &Session) -> String {
    checkout["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["seller_id"] == seller.id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn set_status(api: &Api, seller: &Session, order: &str, to: &str) -> Reply {
    api.post(
        &format!("/api/v1/seller/orders/{order}/status"),
        Some(&seller.token),
        json!({"status": to}),
    )
    .await
}

/// A webhook as Stripe sends it, signed now with the endpoint's secret.
fn event(id: &str, kind: &str, intent: &Value) -> (String, Vec<u8>) {
    let body = json!({
        "id": id,
        "object": "event",
        "type": kind,
        "data": {"object": intent},
    })
    .to_string()
    .into_bytes();
    let now = chrono::Utc::now().timestamp();
    (
        marketplace_stripe::signature_header(WEBHOOK_SECRET, now, &body),
        body,
    )
}

async fn deliver(api: &Api, signature: &str, body: &[u8]) -> Reply {
    let res = api
        .http
        .post(format!("{}/api/v1/payments/webhooks/stripe", api.base))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    Api::read(res).await
}

/// Waits until the checkout's payment has `status`, as the buyer reads it.
async fn payment_becomes(api: &Api, who: &Session, checkout: &str, status: &str) -> Value {
    payment_reaches(api, who, checkout, &[status]).await
}

/// Waits until the checkout's payment has one of `statuses`.
async fn payment_reaches(api: &Api, who: &Session, checkout: &str, statuses: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        let r = api
            .get(
                &format!("/api/v1/checkouts/{checkout}/payment"),
                Some(&who.token),
            )
            .await;
        ok(&r, "the payment");
        if statuses.iter().any(|s| r.body["status"] == *s) {
            return r.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the payment never became {statuses:?}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_stripe, ignore = "needs TEST_STRIPE_URL (localstripe), see README")]
async fn a_sale_paid_by_card_through_stripe() {
    let Some(url) = stripe_url("a_sale_paid_by_card_through_stripe") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stripe.db").display());
    let api = start(&db, &url, dir.path(), "30min").await;
    let stripe = Stripe {
        url,
        http: reqwest::Client::new(),
    };
    // The webhook endpoint, as an operator registers it in Stripe's dashboard.
    let endpoint = format!("{}/api/v1/payments/webhooks/stripe", api.base);
    let name = format!("marketplace-e2e-{}", api.base.rsplit(':').next().unwrap());
    let (status, _) = stripe
        .post(
            &format!("/_config/webhooks/{name}"),
            &[("url", &endpoint), ("secret", WEBHOOK_SECRET)],
        )
        .await;
    assert_eq!(status, 200);

    let admin = api.login(ADMIN, PASSWORD).await;
    let (books, teas) = (
        seller(&api, &admin, "books@example.com").await,
        seller(&api, &admin, "teas@example.com").await,
    );
    let (p1, p2) = (
        product(&api, &books, 1500, 50).await,
        product(&api, &teas, 2500, 50).await,
    );
    let ada = buyer(&api, "ada@example.com").await;
    let done = buy(&api, &ada, &[&p1, &p2], "card-1").await;
    let pay = &done["payment"];
    assert_eq!(pay["provider"], "stripe");
    assert_eq!(pay["status"], "awaiting_payment");
    assert!(
        pay["client_secret"].as_str().unwrap().contains("_secret"),
        "{pay}"
    );
    assert!(pay["expires_at"].is_string(), "stock is held: {pay}");
    let intent = pay["reference"].as_str().unwrap().to_owned();
    let at_stripe = stripe.intent(&intent).await;
    assert_eq!(at_stripe["amount"], 4000);
    assert_eq!(at_stripe["capture_method"], "manual");
    let checkout = done["checkout_id"].as_str().unwrap();
    let (o1, o2) = (order_of(&done, &books), order_of(&done, &teas));
    let r = set_status(&api, &books, &o1, "accepted").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["code"], "payment_pending");

    // The buyer pays; asking for the payment, the client learns it at once.
    assert_eq!(stripe.pay(&intent).await, 200);
    assert_eq!(stripe.intent(&intent).await["status"], "requires_capture");
    payment_becomes(&api, &ada, checkout, "authorized").await;

    // One seller accepts, the other cancels: captured once, for the accepted.
    ok(
        &set_status(&api, &books, &o1, "accepted").await,
        "accepting",
    );
    ok(
        &set_status(&api, &teas, &o2, "cancelled").await,
        "cancelling",
    );
    let captured = payment_becomes(&api, &ada, checkout, "captured").await;
    assert_eq!(captured["captured"]["amount"], 1500, "{captured}");
    assert_eq!(stripe.intent(&intent).await["status"], "succeeded");

    // A later cancellation is refunded at Stripe.
    ok(
        &set_status(&api, &books, &o1, "cancelled").await,
        "cancelling after capture",
    );
    let refunded = payment_becomes(&api, &ada, checkout, "refunded").await;
    assert_eq!(refunded["refunded"]["amount"], 1500);
    assert_eq!(stripe.our_refunds(&intent).await, 1500);

    // Webhooks: signed, deduplicated, out of order, never backwards.
    let second = buy(&api, &ada, &[&p1], "card-2").await;
    let intent2 = second["payment"]["reference"].as_str().unwrap().to_owned();
    let checkout2 = second["checkout_id"].as_str().unwrap().to_owned();
    assert_eq!(stripe.pay(&intent2).await, 200);
    let mut object = stripe.intent(&intent2).await;
    object["amount_capturable"] = json!(1500);
    let (sig, body) = event(
        "evt_e2e_auth",
        "payment_intent.amount_capturable_updated",
        &object,
    );
    let mut forged = body.clone();
    let at = forged.len() / 2;
    forged[at] ^= 1;
    let r = deliver(&api, &sig, &forged).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let old = marketplace_stripe::signature_header(
        WEBHOOK_SECRET,
        chrono::Utc::now().timestamp() - 3600,
        &body,
    );
    let r = deliver(&api, &old, &body).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a replay is refused: {}",
        r.body
    );
    let (a, b) = tokio::join!(deliver(&api, &sig, &body), deliver(&api, &sig, &body));
    let mut outcomes = vec![a.body["outcome"].clone(), b.body["outcome"].clone()];
    outcomes.sort_by_key(|v| v.to_string());
    assert!(
        outcomes.contains(&json!("applied")),
        "one delivery applies it: {outcomes:?}"
    );
    let (sig, body) = event("evt_e2e_failed", "payment_intent.payment_failed", &object);
    let r = deliver(&api, &sig, &body).await;
    ok(&r, "a late failure");
    let p = payment_becomes(&api, &ada, &checkout2, "authorized").await;
    assert!(
        p["failure"].is_null(),
        "a late failure changes nothing: {p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(no_stripe, ignore = "needs TEST_STRIPE_URL (localstripe), see README")]
async fn unpaid_checkouts_expire_and_cards_race_the_worker() {
    let Some(url) = stripe_url("unpaid_checkouts_expire_and_cards_race_the_worker") else {
        return;
    };
    const BUYERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("stripe.db").display());
    let api = Arc::new(start(&db, &url, dir.path(), "3s").await);
    let stripe = Arc::new(Stripe {
        url,
        http: reqwest::Client::new(),
    });
    let admin = api.login(ADMIN, PASSWORD).await;
    let sellers = [
        seller(&api, &admin, "one@example.com").await,
        seller(&api, &admin, "two@example.com").await,
    ];
    let products = [
        product(&api, &sellers[0], 700, 30).await,
        product(&api, &sellers[1], 900, 30).await,
    ];

    // Buyers double-click their checkouts; most pay at once, some never.
    let mut tasks = Vec::new();
    for b in 0..BUYERS {
        let (api, stripe, products) = (Arc::clone(&api), Arc::clone(&stripe), products.clone());
        tasks.push(tokio::spawn(async move {
            let who = buyer(&api, &format!("b{b}@example.com")).await;
            for p in &products {
                let r = api
                    .post(
                        "/api/v1/cart/items",
                        Some(&who.token),
                        json!({"product_id": p, "quantity": 1}),
                    )
                    .await;
                assert!(r.status.is_success(), "{}", r.body);
            }
            let key = format!("double-{b}");
            let (x, y) = tokio::join!(
                api.checkout(&who, &key, json!({})),
                api.checkout(&who, &key, json!({}))
            );
            assert_eq!(
                x.body["checkout_id"], y.body["checkout_id"],
                "one checkout per double click"
            );
            let done = if x.status == StatusCode::CREATED {
                x.body
            } else {
                y.body
            };
            let payment = api
                .get(
                    &format!(
                        "/api/v1/checkouts/{}/payment",
                        done["checkout_id"].as_str().unwrap()
                    ),
                    Some(&who.token),
                )
                .await
                .body;
            let intent = payment["reference"].as_str().unwrap().to_owned();
            if b % 4 != 3 {
                assert_eq!(stripe.pay(&intent).await, 200);
            }
            (who, done, intent)
        }));
    }
    let mut sales = Vec::new();
    for t in tasks {
        sales.push(t.await.unwrap());
    }
    // Sellers decide while the worker runs: accept, or accept then cancel.
    let mut tasks = Vec::new();
    for (b, (who, done, _)) in sales.iter().enumerate() {
        let checkout = done["checkout_id"].as_str().unwrap().to_owned();
        if b % 4 == 3 {
            continue;
        }
        payment_becomes(&api, who, &checkout, "authorized").await;
        for (n, s) in sellers.iter().enumerate() {
            let (api, s, order) = (Arc::clone(&api), s.clone(), order_of(done, s));
            tasks.push(tokio::spawn(async move {
                ok(&set_status(&api, &s, &order, "accepted").await, "accepting");
                if (b + n) % 3 == 0 {
                    ok(
                        &set_status(&api, &s, &order, "cancelled").await,
                        "cancelling",
                    );
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The unpaid expire: the worker cancels their intents and returns the stock.
    for (b, (who, done, intent)) in sales.iter().enumerate() {
        let checkout = done["checkout_id"].as_str().unwrap();
        if b % 4 == 3 {
            payment_becomes(&api, who, checkout, "voided").await;
            assert_eq!(stripe.intent(intent).await["status"], "canceled");
            assert_ne!(
                stripe.pay(intent).await,
                200,
                "an expired checkout cannot be paid"
            );
        } else {
            let p = payment_reaches(
                &api,
                who,
                checkout,
                &["captured", "partially_refunded", "refunded"],
            )
            .await;
            // Captured for the orders live when the last seller decided.
            let captured = p["captured"]["amount"].as_i64().unwrap();
            assert!([700, 900, 1600].contains(&captured), "{p}");
        }
    }
    // Wait for every refund, then check the books, ours and Stripe's.
    let (store, _) = marketplace_host::open_storage(&db, &SqlOptions::default())
        .await
        .unwrap();
    let world = World::new(store).await;
    let started = Instant::now();
    while all_payments(&world)
        .await
        .iter()
        .any(|p| p.has_open_refunds() || p.status == PaymentStatus::Capturing)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "refunds never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let figures = payment_invariants(&world, &Principal::operator(), None).await;
    for p in all_payments(&world).await {
        let intent = stripe.intent(p.reference.as_deref().unwrap()).await;
        if p.status.is_captured() {
            assert_eq!(intent["status"], "succeeded", "{p:?}");
            assert_eq!(
                stripe.our_refunds(p.reference.as_deref().unwrap()).await,
                p.refunded.amount,
                "Stripe refunded what we recorded"
            );
        } else {
            assert_eq!(intent["status"], "canceled", "{p:?}");
        }
    }
    let orders = all_orders(&world, &Principal::operator()).await;
    for p in &products {
        let id: ProductId = p.parse().unwrap();
        let held: u32 = orders
            .iter()
            .filter(|o| o.status.holds_stock())
            .flat_map(|o| o.items.iter())
            .filter(|i| i.product_id == id)
            .map(|i| i.quantity)
            .sum();
        let left = world
            .market
            .storage()
            .product(id)
            .await
            .unwrap()
            .unwrap()
            .stock;
        assert_eq!(left + held, 30, "stock + held == initial");
    }
    eprintln!("stripe (localstripe) contention: {figures:?}");
}
