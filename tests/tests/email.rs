//! Email end to end: the marketplace's outbox delivered through `SmtpMailer` to a
//! real SMTP server (aiosmtpd on loopback, `tests/smtp/smtp_server.py`: STARTTLS
//! with a throw-away CA, AUTH), which records every message it accepts and every
//! recipient it refuses. Messages are counted by `Message-ID` (the outbox id) at
//! the server. Without a Python that can import aiosmtpd the tests are reported
//! `ignored` (never under `CI`, where they fail instead; see
//! [`marketplace_e2e::servers`]).
//!
//! Most tests run the server in this process on a SQLite file of their own
//! ([`server`]) and drive the outbox with `OutboxWorker`s they start themselves:
//! one or two workers with their own SMTP connections, running rounds or running
//! in the background. One test runs the server as the binary does
//! (`server_warp::run`, its own worker), in this process. Two start two OS
//! processes of the server ([`marketplace_e2e::process`]), configured only by the
//! binary's variables (`MAIL*`, `DATABASE_URL`...), whose workers share one
//! database: a SQLite file, and PostgreSQL when `TEST_POSTGRES_URL` is set.
//!
//! What they show: the mails of a checkout go to the right people once each, with
//! seller text escaped in HTML; an outage or a recipient answered `451` delays
//! mail and never loses it, retrying with backoff up to the limit and then
//! keeping it dead for an admin to retry; a recipient refused with `550` dies at
//! once; neither blocks the rest; workers, threads or processes, never send a
//! message twice, not even with leases running out mid-send or at shutdown; and
//! the mailer never gives up TLS. (The development mailer, used when `MAIL` is
//! unset, is tested beside it in `marketplace-core`'s `mailer.rs`.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use marketplace_core::outbox::OutboxQuery;
use marketplace_core::{
    DeliveryPolicy, MailError, Mailer, MessageId, OutboxMessage, OutboxStatus, OutboxWorker,
};
use marketplace_e2e::process::{ServerProcess, free_port};
use marketplace_e2e::smtp::{Received, SECOND_SMTP_USER, SMTP_USER, SmtpOptions, SmtpServer};
use marketplace_e2e::{Api, Session, TestServer, audit, postgres_schema};
use marketplace_smtp::{SmtpConfig, SmtpMailer, TlsMode};
use reqwest::StatusCode;
use serde_json::json;

/// Retries in tens of milliseconds instead of minutes.
fn fast_policy(max_attempts: u32) -> DeliveryPolicy {
    let mut p = DeliveryPolicy::default();
    p.max_attempts = max_attempts;
    p.base_backoff = chrono::Duration::milliseconds(50);
    p.max_backoff = chrono::Duration::milliseconds(400);
    p.batch = 5;
    p
}

/// A server whose mail goes to `smtp` (the worker is run by the tests).
async fn server(smtp: &SmtpServer, policy: DeliveryPolicy) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let mut settings = TestServer::settings(&url, &dir);
    settings.smtp = Some(smtp.config());
    settings.delivery = policy;
    TestServer::start_with(settings, dir).await
}

/// Every outbox message, any state.
async fn outbox(s: &TestServer) -> Vec<OutboxMessage> {
    s.app
        .market
        .storage()
        .list_outbox(&OutboxQuery {
            status: None,
            after: None,
            limit: 10_000,
        })
        .await
        .unwrap()
}

/// Runs one worker until nothing is due.
async fn deliver_due(s: &TestServer) {
    let worker = OutboxWorker::new(s.app.market.clone(), Arc::clone(&s.mailer));
    while worker.run_once().await.unwrap().claimed > 0 {}
}

/// Waits until no message is pending.
async fn settle(s: &TestServer, within: Duration) -> Vec<OutboxMessage> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let all = outbox(s).await;
        if all.iter().all(|m| m.status != OutboxStatus::Pending) {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages still pending after {within:?}: {:?}",
            all.iter()
                .filter(|m| m.status == OutboxStatus::Pending)
                .map(|m| (&m.kind, m.attempts, &m.last_error))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How often each outbox id arrived at the SMTP server.
fn arrivals(received: &[Received]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in received {
        *n.entry(r.outbox_id().to_owned()).or_insert(0) += 1;
    }
    n
}

/// Registers a seller with `store`, has `admin` verify it, logs in.
async fn seller_named(s: &TestServer, admin: &Session, store: &str) -> Session {
    let email = s.email("seller");
    let id = s
        .register(json!({"email": email, "password": "correct horse", "role": "seller", "store_name": store}))
        .await;
    s.verify_seller(admin, &id).await;
    s.login(&email, "correct horse").await
}

/// Registers a buyer with this email and logs in.
async fn buyer_with_email(s: &TestServer, email: &str) -> Session {
    s.register(
        json!({"email": email, "password": "correct horse", "role": "buyer", "name": "Ada"}),
    )
    .await;
    s.login(email, "correct horse").await
}

/// `buyer` puts `items` (product id, quantity) in the cart and checks out; the
/// order ids, one per seller.
async fn checkout(s: &TestServer, buyer: &Session, items: &[(&str, u32)]) -> Vec<String> {
    let address = s.address(buyer).await;
    for (product, quantity) in items {
        let r = s
            .post(
                "/api/v1/cart/items",
                Some(&buyer.token),
                json!({"product_id": product, "quantity": quantity}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let r = s
        .http
        .post(format!("{}/api/v1/checkout", s.base))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"address_id": address}))
        .send()
        .await
        .unwrap();
    let r = Api::read(r).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A two-seller checkout over HTTP: the worker delivers through `SmtpMailer`
/// over STARTTLS with a login; exactly one confirmation to the buyer (both
/// orders, items, totals) and one new-order mail per seller (its items only),
/// each to the right address, each once.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn a_two_seller_checkout_mails_buyer_and_sellers_over_starttls() {
    let Some(smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let s = server(&smtp, fast_policy(5)).await;
    let admin = s.admin().await;
    let books = seller_named(&s, &admin, "Bookshop Ada").await;
    let teas = seller_named(&s, &admin, "Tea Garden").await;
    let novel = s.product(&books, "Novel", 1899, 5).await;
    let tea = s.product(&teas, "Sencha", 850, 20).await;
    let buyer = s.buyer().await;
    let orders = checkout(&s, &buyer, &[(&novel, 1), (&tea, 3)]).await;
    assert_eq!(orders.len(), 2);
    let mine = s.get("/api/v1/seller/orders", Some(&books.token)).await;
    let book_order = mine.body["items"][0]["id"].as_str().unwrap().to_owned();
    let accepted = s
        .post(
            &format!("/api/v1/seller/orders/{book_order}/status"),
            Some(&books.token),
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);

    deliver_due(&s).await;
    let all = outbox(&s).await;
    assert!(
        all.iter().all(|m| m.status == OutboxStatus::Delivered),
        "{all:?}"
    );
    let received = smtp.wait_for(all.len(), Duration::from_secs(10)).await;
    assert_eq!(
        received.len(),
        all.len(),
        "one SMTP message per outbox entry"
    );
    let counts = arrivals(&received);
    assert!(counts.values().all(|&n| n == 1), "duplicates: {counts:?}");
    let ids: HashSet<String> = all.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        ids,
        "the Message-IDs are the outbox ids"
    );
    for r in &received {
        assert!(r.tls, "sent over STARTTLS: {}", r.subject);
        assert_eq!(r.auth_login.as_deref(), Some(SMTP_USER), "logged in");
        assert_eq!(r.mail_from, SMTP_USER);
        assert_eq!(r.content_type, "multipart/alternative");
        assert_eq!(r.rcpt_tos.len(), 1);
    }
    let kind_of: HashMap<String, &str> = all
        .iter()
        .map(|m| (m.id.to_string(), m.kind.as_str()))
        .collect();
    let of_kind = |kind: &str| -> Vec<&Received> {
        received
            .iter()
            .filter(|r| kind_of[r.outbox_id()] == kind)
            .collect()
    };

    let confirmations = of_kind("order_confirmation");
    assert_eq!(confirmations.len(), 1, "exactly one buyer confirmation");
    let c = confirmations[0];
    assert_eq!(c.rcpt_tos, std::slice::from_ref(&buyer.email));
    assert!(c.to.contains(&buyer.email));
    let text = c.text();
    for needle in [
        "Bookshop Ada",
        "Tea Garden",
        "1 x Novel at 18.99 USD = 18.99 USD",
        "3 x Sencha at 8.50 USD = 25.50 USD",
        "Grand total: 44.49 USD (4 items)",
        &orders[0],
        &orders[1],
        "1 Main St",
    ] {
        assert!(
            text.contains(needle),
            "confirmation text lacks {needle:?}:\n{text}"
        );
    }
    assert!(c.subject.contains("44.49 USD"), "{}", c.subject);
    assert!(c.html().contains("Sencha") && c.html().contains("44.49 USD"));

    let new_orders = of_kind("new_order");
    assert_eq!(new_orders.len(), 2, "one mail per seller");
    for (seller, mine, theirs, total) in [
        (
            &books,
            "1 x Novel at 18.99 USD = 18.99 USD",
            "Sencha",
            "18.99 USD",
        ),
        (
            &teas,
            "3 x Sencha at 8.50 USD = 25.50 USD",
            "Novel",
            "25.50 USD",
        ),
    ] {
        let m: Vec<_> = new_orders
            .iter()
            .filter(|r| r.rcpt_tos == [seller.email.clone()])
            .collect();
        assert_eq!(m.len(), 1, "exactly one new-order mail to {}", seller.email);
        let text = m[0].text();
        assert!(text.contains(mine), "{text}");
        assert!(text.contains(&format!("Order total: {total}")), "{text}");
        assert!(
            !text.contains(theirs),
            "a seller sees only its own items: {text}"
        );
        assert!(
            text.contains("Ada Buyer") && text.contains("Springfield"),
            "ship-to address: {text}"
        );
    }
    assert_eq!(of_kind("seller_decision").len(), 2);
    let changed = of_kind("status_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].rcpt_tos, std::slice::from_ref(&buyer.email));
    assert_eq!(
        changed[0].subject,
        "Your order from Bookshop Ada was accepted"
    );
    assert!(changed[0].text().contains(&book_order));
    println!(
        "delivered {} messages over STARTTLS+AUTH, 0 duplicates",
        received.len()
    );
    for kind in [
        "order_confirmation",
        "new_order",
        "status_changed",
        "seller_decision",
        "verify_email",
    ] {
        if let Some(r) = of_kind(kind).first() {
            let head: Vec<_> = r.text().lines().take(24).collect();
            println!("--- {kind}\nSubject: {}\n{}\n", r.subject, head.join("\n"));
        }
    }
}

/// Store names and product titles are the sellers' own text: the HTML part
/// shows them escaped, the text part as written.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn seller_text_is_escaped_in_html_mail() {
    let Some(smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let s = server(&smtp, fast_policy(5)).await;
    let admin = s.admin().await;
    let evil = seller_named(&s, &admin, "<script>alert('store')</script> & Sons").await;
    let product = s
        .product(&evil, "<img src=x onerror=alert(1)> Mug", 1200, 3)
        .await;
    let buyer = s.buyer().await;
    checkout(&s, &buyer, &[(&product, 1)]).await;
    deliver_due(&s).await;
    let received = smtp
        .wait_for(outbox(&s).await.len(), Duration::from_secs(10))
        .await;
    let mails: Vec<_> = received
        .iter()
        .filter(|r| r.text().contains("Mug"))
        .collect();
    assert_eq!(
        mails.len(),
        2,
        "the buyer's confirmation and the seller's new order"
    );
    for m in mails {
        let html = m.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;script&gt;") && html.contains("&amp; Sons"),
            "{html}"
        );
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt; Mug"),
            "{html}"
        );
        assert!(
            m.text().contains("<img src=x onerror=alert(1)> Mug"),
            "the text part is not HTML and keeps the title as written"
        );
    }
    let decision = received
        .iter()
        .find(|r| r.subject.contains("verified"))
        .unwrap();
    assert!(!decision.html().contains("<script>"));
    assert!(decision.html().contains("&lt;script&gt;"));
}

/// The SMTP server is down while buyers check out: every checkout succeeds, the
/// mails wait with their failed attempts recorded, and when the server is back
/// the running worker delivers each exactly once.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn an_smtp_outage_delays_mail_but_loses_none() {
    let Some(mut smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    smtp.stop().await;
    let s = server(&smtp, fast_policy(1_000)).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = OutboxWorker::new(s.app.market.clone(), Arc::clone(&s.mailer));
    let worker = tokio::spawn(worker.run(Duration::from_millis(20), async move {
        let _ = stop_rx.await;
    }));

    let admin = s.admin().await;
    let books = seller_named(&s, &admin, "Bookshop Ada").await;
    let teas = seller_named(&s, &admin, "Tea Garden").await;
    let novel = s.product(&books, "Novel", 1899, 50).await;
    let tea = s.product(&teas, "Sencha", 850, 50).await;
    let mut checkouts = 0;
    for _ in 0..3 {
        let buyer = s.buyer().await;
        assert_eq!(
            checkout(&s, &buyer, &[(&novel, 1), (&tea, 2)]).await.len(),
            2
        );
        checkouts += 1;
    }
    // Let the worker fail a few rounds against the closed port.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = outbox(&s).await;
    let total = during.len();
    assert_eq!(
        total,
        2 * 2 + 3 * (1 + 1 + 2),
        "per seller a verification and a decision; per buyer a verification, a confirmation, 2 new orders"
    );
    assert!(
        during.iter().all(|m| m.status == OutboxStatus::Pending),
        "nothing delivered, nothing dead"
    );
    let failed = during.iter().filter(|m| m.attempts > 0).count();
    assert_eq!(failed, total, "every message was tried and failed");
    assert!(during.iter().all(|m| m.last_error.is_some()));
    assert!(smtp.received().is_empty());

    smtp.start_again().await;
    let after = settle(&s, Duration::from_secs(20)).await;
    assert!(after.iter().all(|m| m.status == OutboxStatus::Delivered));
    let received = smtp.wait_for(total, Duration::from_secs(10)).await;
    // Give a duplicate time to show up, if one were coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received_late = smtp.received();
    assert_eq!(received_late.len(), received.len());
    let counts = arrivals(&received_late);
    assert_eq!(counts.len(), total, "every message arrived");
    assert!(counts.values().all(|&n| n == 1), "exactly once: {counts:?}");
    let max_attempts = after.iter().map(|m| m.attempts).max().unwrap();
    println!(
        "{checkouts} checkouts during the outage; {total} messages delivered after it, each once (up to {max_attempts} attempts)"
    );
    let _ = stop_tx.send(());
    worker.await.unwrap();
}

/// Two workers, each with its own SMTP connections, drain one store together:
/// no message is sent twice (counted by Message-ID at the server), and both took
/// part.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn two_workers_never_send_a_message_twice() {
    let options = SmtpOptions {
        delay: 0.02,
        ..SmtpOptions::default()
    };
    let Some(smtp) = SmtpServer::start(options).await else {
        return;
    };
    let mut policy = fast_policy(5);
    policy.batch = 2;
    let s = server(&smtp, policy).await;
    let admin = s.admin().await;
    let books = seller_named(&s, &admin, "Bookshop Ada").await;
    let teas = seller_named(&s, &admin, "Tea Garden").await;
    let novel = s.product(&books, "Novel", 1899, 100).await;
    let tea = s.product(&teas, "Sencha", 850, 100).await;
    for _ in 0..6 {
        let buyer = s.buyer().await;
        checkout(&s, &buyer, &[(&novel, 1), (&tea, 1)]).await;
    }
    let total = outbox(&s).await.len();
    assert_eq!(total, 2 * 2 + 6 * 4);

    let mut tasks = Vec::new();
    for _ in 0..2 {
        // A mailer of its own: separate connections, as in another process.
        let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(&smtp.config()).unwrap());
        let worker = OutboxWorker::new(s.app.market.clone(), mailer);
        tasks.push(tokio::spawn(async move {
            let mut delivered = 0;
            loop {
                let r = worker.run_once().await.unwrap();
                if r.claimed == 0 {
                    break delivered;
                }
                delivered += r.delivered;
            }
        }));
    }
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap());
    }
    let after = settle(&s, Duration::from_secs(5)).await;
    assert!(after.iter().all(|m| m.status == OutboxStatus::Delivered));
    assert_eq!(per_worker.iter().sum::<usize>(), total, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|&n| n > 0),
        "both workers delivered: {per_worker:?}"
    );
    let received = smtp.wait_for(total, Duration::from_secs(10)).await;
    let counts = arrivals(&received);
    assert_eq!(received.len(), total);
    assert_eq!(counts.len(), total);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    println!("two workers delivered {per_worker:?} = {total} messages, 0 duplicates");
}

/// The server process of the multi-process tests ([`marketplace_e2e::process`]).
#[tokio::test]
#[ignore = "the server process the multi-process email tests start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

/// The bootstrap admin of the server processes.
const PROCESS_ADMIN: &str = "admin@example.com";

/// A server process on the database at `url` whose mail worker polls every 20 ms
/// and logs in to `smtp` as `login` (also its sender), with the bootstrap admin
/// [`PROCESS_ADMIN`]; configured only by the variables of the binary.
async fn mail_process(
    url: &str,
    smtp: &SmtpServer,
    login: &str,
    media: &std::path::Path,
) -> ServerProcess {
    let mut vars = smtp.mail_env(login);
    vars.extend([
        ("DATABASE_URL", url.to_owned()),
        ("MARKETPLACE_MEDIA_DIR", media.display().to_string()),
        ("MARKETPLACE_OUTBOX_POLL_MS", "20".to_owned()),
        ("MARKETPLACE_ADMIN_EMAIL", PROCESS_ADMIN.to_owned()),
        ("MARKETPLACE_ADMIN_PASSWORD", "correct horse".to_owned()),
    ]);
    ServerProcess::start(free_port(), &vars).await
}

/// `POST /api/v1/checkout` on `p` with a fresh `Idempotency-Key`; the reply.
async fn checkout_on(p: &ServerProcess, buyer: &Session, address: &str) -> marketplace_e2e::Reply {
    let r = p
        .http
        .post(format!("{}/api/v1/checkout", p.base))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"address_id": address}))
        .send()
        .await
        .unwrap();
    Api::read(r).await
}

/// Two `marketplace-server` processes on the database at `url`, each with its
/// own mail worker logging in to the SMTP server as its own `MAIL` user. Mail is
/// made through the HTTP API of both (each buyer registers on one and checks out
/// on the other) while both workers poll; the SMTP server holds the first
/// messages until both logins are sending, so the two workers certainly overlap.
/// Afterwards every outbox message arrived exactly once (by Message-ID), is
/// `delivered` after one attempt with no claim left, both processes sent some,
/// and the store passes the checkout audit.
async fn two_processes_send_each_message_once(url: &str, backend: &str) {
    const BUYERS: usize = 16;
    const STOCK: u32 = 100;
    let options = SmtpOptions {
        other_logins: vec![SECOND_SMTP_USER.to_owned()],
        hold_until_senders: 2,
        ..SmtpOptions::default()
    };
    let Some(smtp) = SmtpServer::start(options).await else {
        return;
    };
    let media = tempfile::tempdir().unwrap();
    let logins = [SMTP_USER, SECOND_SMTP_USER];
    let mut procs = Vec::new();
    for login in logins {
        procs.push(mail_process(url, &smtp, login, media.path()).await);
    }
    let (store, _) = marketplace_host::open_storage(url, &storage_sql::SqlOptions::default())
        .await
        .unwrap();

    let admin = procs[0].login(PROCESS_ADMIN, "correct horse").await;
    let mut products = Vec::new();
    for s in 0..2 {
        let (home, other) = (&procs[s % 2], &procs[(s + 1) % 2]);
        let email = format!("seller{s}@example.com");
        let id = home
            .register(json!({"email": email, "password": "correct horse", "role": "seller", "store_name": format!("Store {s}")}))
            .await;
        other.verify_seller(&admin, &id).await;
        let seller = other.login(&email, "correct horse").await;
        let p = home
            .post(
                "/api/v1/seller/products",
                Some(&seller.token),
                json!({"title": format!("Item {s}"), "description": "d", "price": {"amount": 500 + s, "currency": "USD"}, "stock": STOCK}),
            )
            .await;
        assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
        products.push(p.body["id"].as_str().unwrap().to_owned());
    }
    for i in 0..BUYERS {
        let (home, shop) = (&procs[i % 2], &procs[(i + 1) % 2]);
        let email = format!("buyer{i}@example.com");
        home.register(
            json!({"email": email, "password": "correct horse", "role": "buyer", "name": "Ada"}),
        )
        .await;
        let buyer = shop.login(&email, "correct horse").await;
        let a = shop
            .post(
                "/api/v1/me/addresses",
                Some(&buyer.token),
                json!({"name": "Ada Buyer", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
        for product in &products {
            let c = shop
                .post(
                    "/api/v1/cart/items",
                    Some(&buyer.token),
                    json!({"product_id": product, "quantity": 1}),
                )
                .await;
            assert_eq!(c.status, StatusCode::OK, "{:?}", c.body);
        }
        let r = checkout_on(shop, &buyer, a.body["id"].as_str().unwrap()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    // Per seller a verification and a decision; per buyer a verification, a
    // confirmation and one new-order mail per seller. More than one batch (20),
    // so neither worker can claim them all while the other waits.
    let total = 2 * 2 + BUYERS * (1 + 1 + 2);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let all = loop {
        let all = store
            .list_outbox(&OutboxQuery {
                status: None,
                after: None,
                limit: 10_000,
            })
            .await
            .unwrap();
        if all.len() == total && all.iter().all(|m| m.status == OutboxStatus::Delivered) {
            break all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {total} messages delivered after 60 s: {:?}",
            all.iter()
                .filter(|m| m.status == OutboxStatus::Delivered)
                .count(),
            all.iter()
                .filter(|m| m.status != OutboxStatus::Delivered)
                .map(|m| (&m.kind, m.status, m.attempts, &m.last_error))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    smtp.wait_for(total, Duration::from_secs(10)).await;
    // Give a duplicate time to show up, if one were coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = smtp.received();
    let counts = arrivals(&received);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(received.len(), total, "one SMTP message per outbox entry");
    let ids: HashSet<String> = all.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        ids,
        "the Message-IDs are the outbox ids"
    );
    for m in &all {
        assert_eq!(m.attempts, 1, "delivered at the first attempt: {m:?}");
        assert!(m.delivered_at.is_some(), "{m:?}");
        assert!(
            m.claimed_by.is_none() && m.claimed_until.is_none(),
            "no claim left: {m:?}"
        );
    }
    let mut per_process = [0; 2];
    for r in &received {
        assert!(r.tls, "over STARTTLS");
        let login = r.auth_login.as_deref().unwrap_or_default();
        let who = logins
            .iter()
            .position(|l| *l == login)
            .unwrap_or_else(|| panic!("sent by an unknown login {login:?}"));
        assert_eq!(r.mail_from, login, "each process sends as its own MAIL");
        per_process[who] += 1;
    }
    assert!(
        per_process.iter().all(|&n| n > 0),
        "both processes sent (their first messages were held until both were sending): {per_process:?}"
    );
    let initial: HashMap<_, _> = products
        .iter()
        .map(|p| (p.parse().unwrap(), STOCK))
        .collect();
    let found = audit(store.as_ref(), &initial, true).await;
    assert_eq!(found.checkouts, BUYERS);
    println!(
        "two server processes on {backend}: {total} messages, each delivered once; process 1 ({}) sent {}, process 2 ({}) sent {}",
        logins[0], per_process[0], logins[1], per_process[1]
    );
}

/// Two server processes share a SQLite file: see
/// [`two_processes_send_each_message_once`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn two_server_processes_on_sqlite_never_send_a_message_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    two_processes_send_each_message_once(&url, "sqlite").await;
}

/// Two server processes share a PostgreSQL schema (when `TEST_POSTGRES_URL` is
/// set): see [`two_processes_send_each_message_once`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(no_postgres, no_smtp),
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server) and a Python with aiosmtpd, see README"
)]
async fn two_server_processes_on_postgres_never_send_a_message_twice() {
    let Some(db) =
        postgres_schema("two_server_processes_on_postgres_never_send_a_message_twice").await
    else {
        return;
    };
    two_processes_send_each_message_once(&db.url, "postgres").await;
}

/// A recipient whose mail server answers every attempt with `451 4.3.0` (try
/// again later) while many other messages flow through a running worker. Its
/// message is first in line and retried with growing delays, exactly
/// `max_attempts` times at the server, then ends `dead` with the 451 as its last
/// error (listed to the admin). Every other message is delivered exactly once,
/// at its first attempt, and all of them before the failing one was given up:
/// nothing waited behind it.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn a_recipient_that_always_answers_451_ends_dead_and_blocks_nothing() {
    const ATTEMPTS: u32 = 4;
    const BUYERS: usize = 8;
    let Some(smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let mut policy = fast_policy(ATTEMPTS);
    // Retries 0.25-0.5 s, 0.5-1 s, then 1-2 s apart (with jitter).
    policy.base_backoff = chrono::Duration::milliseconds(500);
    policy.max_backoff = chrono::Duration::seconds(2);
    // One message per claim, the one due first: the doomed message is taken
    // first, and its retry only after every message that was due before it.
    policy.batch = 1;
    let s = server(&smtp, policy.clone()).await;
    let doomed = buyer_with_email(&s, "tempfail-ada@example.com").await;
    let admin = s.admin().await;
    let books = seller_named(&s, &admin, "Bookshop Ada").await;
    let teas = seller_named(&s, &admin, "Tea Garden").await;
    let novel = s.product(&books, "Novel", 1899, 50).await;
    let tea = s.product(&teas, "Sencha", 850, 50).await;
    for _ in 0..BUYERS {
        let buyer = s.buyer().await;
        checkout(&s, &buyer, &[(&novel, 1), (&tea, 1)]).await;
    }
    let before = outbox(&s).await;
    let total = before.len();
    assert_eq!(total, 1 + 2 * 2 + BUYERS * 4);
    let bad: Vec<_> = before
        .iter()
        .filter(|m| m.recipient == doomed.email)
        .collect();
    assert_eq!(bad.len(), 1, "the doomed buyer's verification mail");
    let bad_id = bad[0].id;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = OutboxWorker::new(s.app.market.clone(), Arc::clone(&s.mailer));
    let worker = tokio::spawn(worker.run(Duration::from_millis(20), async move {
        let _ = stop_rx.await;
    }));
    let after = settle(&s, Duration::from_secs(30)).await;
    let _ = stop_tx.send(());
    worker.await.unwrap();

    let dead = after.iter().find(|m| m.id == bad_id).unwrap();
    assert_eq!(dead.status, OutboxStatus::Dead, "{dead:?}");
    assert_eq!(dead.attempts, ATTEMPTS, "tried exactly up to the limit");
    let error = dead.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains("451"),
        "the last error is the server's: {error}"
    );
    let others: Vec<_> = after.iter().filter(|m| m.id != bad_id).collect();
    for m in &others {
        assert_eq!(m.status, OutboxStatus::Delivered, "{m:?}");
        assert_eq!(m.attempts, 1, "delivered at its first attempt: {m:?}");
    }
    let listed = s
        .get("/api/v1/admin/outbox?status=dead", Some(&admin.token))
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], bad_id.to_string());
    assert!(items[0]["last_error"].as_str().unwrap().contains("451"));

    // At the server: the doomed recipient was refused once per attempt, with
    // the delays of the backoff between attempts...
    let refusals: Vec<_> = smtp
        .refused()
        .into_iter()
        .filter(|r| r.rcpt == doomed.email)
        .collect();
    assert_eq!(
        refusals.len(),
        ATTEMPTS as usize,
        "one refusal per attempt: {refusals:?}"
    );
    assert!(refusals.iter().all(|r| r.code == 451));
    let gaps: Vec<f64> = refusals.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps.iter().enumerate() {
        let delay = (policy.base_backoff * (1 << i)).min(policy.max_backoff);
        let shortest = delay.num_milliseconds() as f64 / 2000.0;
        assert!(
            *gap >= shortest,
            "retry {} came {gap:.3} s after the attempt before it; the backoff is at least {shortest} s",
            i + 1
        );
    }
    // ...and every other message arrived once, none of them behind it: the
    // first refusal came before the first delivery (it was first in line), the
    // last delivery before the last refusal (it was still being retried).
    // Give a duplicate time to show up, if one were coming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = smtp.received();
    let counts = arrivals(&received);
    assert_eq!(received.len(), others.len(), "{counts:?}");
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        others
            .iter()
            .map(|m| m.id.to_string())
            .collect::<HashSet<_>>(),
        "each other message arrived exactly once"
    );
    let first_delivery = received
        .iter()
        .map(|r| r.received_at)
        .fold(f64::INFINITY, f64::min);
    let last_delivery = received
        .iter()
        .map(|r| r.received_at)
        .fold(f64::NEG_INFINITY, f64::max);
    let (first_refusal, last_refusal) = (refusals[0].at, refusals[refusals.len() - 1].at);
    assert!(
        first_refusal < first_delivery,
        "the doomed message was tried first"
    );
    assert!(
        last_delivery < last_refusal,
        "every other message was delivered before the doomed one was given up: \
         last delivery at +{:.3} s, last attempt at +{:.3} s",
        last_delivery - first_refusal,
        last_refusal - first_refusal
    );
    println!(
        "451 recipient: attempts at +{} s, then dead; the other {} messages delivered once each between +{:.3} s and +{:.3} s",
        refusals
            .iter()
            .map(|r| format!("{:.3}", r.at - first_refusal))
            .collect::<Vec<_>>()
            .join(", +"),
        others.len(),
        first_delivery - first_refusal,
        last_delivery - first_refusal
    );
}

/// A recipient the server refuses with 550 ends dead at once (a permanent
/// error), listed by the admin outbox; every other mail is delivered, nothing
/// waits behind it. When the mailbox exists, an admin retry delivers it once.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn an_undeliverable_message_dies_blocks_nothing_and_can_be_retried() {
    let Some(mut smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let mut policy = fast_policy(5);
    policy.batch = 1; // the dead letter is first in line
    let s = server(&smtp, policy).await;
    let admin = s.admin().await;
    let books = seller_named(&s, &admin, "Bookshop Ada").await;
    let novel = s.product(&books, "Novel", 1899, 10).await;
    let doomed = buyer_with_email(&s, "reject-me@example.com").await;
    checkout(&s, &doomed, &[(&novel, 1)]).await;
    let fine = s.buyer().await;
    checkout(&s, &fine, &[(&novel, 2)]).await;

    deliver_due(&s).await;
    let all = outbox(&s).await;
    let dead: Vec<_> = all
        .iter()
        .filter(|m| m.status == OutboxStatus::Dead)
        .collect();
    assert_eq!(
        dead.len(),
        2,
        "the rejected buyer's verification and confirmation"
    );
    for m in &dead {
        assert_eq!(m.recipient, "reject-me@example.com");
        assert_eq!(m.attempts, 1, "a permanent error is not retried");
        assert!(
            m.last_error.as_deref().unwrap_or_default().contains("550"),
            "{m:?}"
        );
    }
    let delivered = all
        .iter()
        .filter(|m| m.status == OutboxStatus::Delivered)
        .count();
    assert_eq!(delivered, all.len() - 2, "nothing else is blocked");
    let received = smtp.wait_for(delivered, Duration::from_secs(10)).await;
    assert_eq!(received.len(), delivered);
    assert!(
        received
            .iter()
            .all(|r| r.rcpt_tos != ["reject-me@example.com"])
    );

    let listed = s
        .get("/api/v1/admin/outbox?status=dead", Some(&admin.token))
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|m| m["status"] == "dead"
        && m["recipient"] == "reject-me@example.com"
        && m["last_error"].as_str().unwrap().contains("550")));

    // The mailbox gets created; an admin retries the confirmation.
    smtp.options.reject_prefix = "nobody-is-rejected-now".to_owned();
    smtp.start_again().await;
    let confirmation = dead
        .iter()
        .find(|m| m.kind == "order_confirmation")
        .unwrap();
    let retried = s
        .post(
            &format!("/api/v1/admin/outbox/{}/retry", confirmation.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    assert_eq!(retried.body["status"], "pending");
    assert_eq!(retried.body["attempts"], 0);
    deliver_due(&s).await;
    let m = s
        .app
        .market
        .storage()
        .outbox_message(confirmation.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.status, OutboxStatus::Delivered);
    let received = smtp.wait_for(delivered + 1, Duration::from_secs(10)).await;
    let counts = arrivals(&received);
    assert_eq!(counts.get(&confirmation.id.to_string()), Some(&1));
    assert_eq!(
        received.len(),
        delivered + 1,
        "only the retried message was added"
    );
    let still_dead = s
        .get("/api/v1/admin/outbox?status=dead", Some(&admin.token))
        .await;
    assert_eq!(still_dead.body["items"].as_array().unwrap().len(), 1);
    let again = s
        .post(
            &format!("/api/v1/admin/outbox/{}/retry", confirmation.id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "a delivered message is not resent"
    );
}

/// With the server unreachable, transient failures are retried with backoff
/// until the attempt limit, then the message is dead (not lost): an admin retry
/// sends it once the server is back.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn transient_failures_end_dead_after_the_retry_limit() {
    let Some(mut smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    smtp.stop().await;
    let s = server(&smtp, fast_policy(3)).await;
    let admin = s.admin().await;
    let buyer = s.buyer().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let dead = loop {
        deliver_due(&s).await;
        let all = outbox(&s).await;
        if all.iter().all(|m| m.status == OutboxStatus::Dead) {
            break all;
        }
        assert!(tokio::time::Instant::now() < deadline, "{all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1, "the buyer's verification mail");
    assert_eq!(dead[0].attempts, 3, "tried up to the limit");
    assert_eq!(dead[0].recipient, buyer.email);

    smtp.start_again().await;
    let r = s
        .post(
            &format!("/api/v1/admin/outbox/{}/retry", dead[0].id),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    deliver_due(&s).await;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].outbox_id(), dead[0].id.to_string());
    assert!(received[0].subject.contains("Confirm your email"));
}

/// Shutdown while a batch is on its way: the worker finishes the message in
/// hand, records every result, and leaves no claim behind, so a second worker
/// delivers the rest at once (not after the lease) and nothing is sent twice.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn graceful_shutdown_finishes_or_releases_claimed_messages() {
    let options = SmtpOptions {
        delay: 0.25,
        ..SmtpOptions::default()
    };
    let Some(smtp) = SmtpServer::start(options).await else {
        return;
    };
    let mut policy = fast_policy(5);
    policy.batch = 3;
    policy.lease = chrono::Duration::minutes(10);
    let s = server(&smtp, policy).await;
    for _ in 0..8 {
        s.buyer().await;
    }
    let total = outbox(&s).await.len();
    assert_eq!(total, 8);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = OutboxWorker::new(s.app.market.clone(), Arc::clone(&s.mailer));
    let first = worker.id();
    let running = tokio::spawn(worker.run(Duration::from_millis(20), async move {
        let _ = stop_rx.await;
    }));
    smtp.wait_for(1, Duration::from_secs(10)).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops promptly")
        .unwrap();

    let mut delivered_first = 0;
    for m in outbox(&s).await {
        let m = s
            .app
            .market
            .storage()
            .outbox_message(m.id)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(
            m.claimed_by,
            Some(first),
            "no claim survives shutdown: {m:?}"
        );
        assert!(m.claimed_by.is_none() && m.claimed_until.is_none());
        match m.status {
            OutboxStatus::Delivered => delivered_first += 1,
            OutboxStatus::Pending => {
                assert_eq!(m.attempts, 0, "an unsent message is not charged an attempt")
            }
            OutboxStatus::Dead => panic!("{m:?}"),
        }
    }
    assert!(
        delivered_first >= 1 && delivered_first < total,
        "stopped mid-way: {delivered_first}"
    );
    assert_eq!(
        smtp.received().len(),
        delivered_first,
        "the server has exactly what was recorded as delivered"
    );

    // Another worker (a restarted process) takes the rest immediately.
    let second = OutboxWorker::new(s.app.market.clone(), Arc::clone(&s.mailer));
    let mut rest = 0;
    loop {
        let r = second.run_once().await.unwrap();
        if r.claimed == 0 {
            break;
        }
        rest += r.delivered;
    }
    assert_eq!(delivered_first + rest, total);
    let received = smtp.wait_for(total, Duration::from_secs(10)).await;
    let counts = arrivals(&received);
    assert_eq!((received.len(), counts.len()), (total, total));
    println!(
        "shutdown after {delivered_first} of {total}; the next worker sent {rest}; 0 duplicates"
    );
}

/// The mailer's own contract against the real server: what is transient, what
/// is permanent, and that TLS verification and STARTTLS are never given up.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn smtp_mailer_classifies_failures_and_never_weakens_tls() {
    let Some(mut smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let message = |to: &str| OutboxMessage {
        id: MessageId(uuid::Uuid::now_v7()),
        kind: "test".to_owned(),
        recipient: to.to_owned(),
        subject: "Hello ünïcode".to_owned(),
        text_body: "plain body".to_owned(),
        html_body: "<p>html body</p>".to_owned(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: chrono::Utc::now(),
        last_error: None,
        created_at: chrono::Utc::now(),
        delivered_at: None,
        claimed_by: None,
        claimed_until: None,
    };
    let good = SmtpMailer::new(&smtp.config()).unwrap();
    good.check_connection().await.unwrap();
    let ok = message("ada@example.com");
    good.send(&ok).await.unwrap();
    let got = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].outbox_id(), ok.id.to_string());
    assert_eq!(got[0].subject, "Hello ünïcode");
    assert_eq!(got[0].text().trim_end(), "plain body");
    assert!(got[0].tls);

    // 550 unknown user: permanent.
    match good.send(&message("reject-x@example.com")).await {
        Err(MailError::Permanent(e)) => assert!(e.contains("550"), "{e}"),
        other => panic!("550 must be permanent: {other:?}"),
    }
    // A wrong password: transient (it is the account, not the message), and the
    // password appears nowhere in the error.
    let mut wrong = smtp.config();
    wrong.password = Some("wrong-password-123".to_owned());
    match SmtpMailer::new(&wrong)
        .unwrap()
        .send(&message("ada@example.com"))
        .await
    {
        Err(MailError::Transient(e)) => {
            assert!(e.contains("535"), "{e}");
            assert!(!e.contains("wrong-password-123"));
        }
        other => panic!("a refused login is transient: {other:?}"),
    }
    // A certificate from a CA nobody trusts: refused (verification stays on).
    let mut untrusted = smtp.config();
    untrusted.extra_root_pem = None;
    assert!(matches!(
        SmtpMailer::new(&untrusted)
            .unwrap()
            .send(&message("ada@example.com"))
            .await,
        Err(MailError::Transient(_))
    ));
    // Nobody listening: transient.
    smtp.stop().await;
    assert!(matches!(
        good.send(&message("ada@example.com")).await,
        Err(MailError::Transient(_))
    ));
    assert!(good.check_connection().await.is_err());
    assert_eq!(smtp.received().len(), 1, "only the good message arrived");

    // A plain server without STARTTLS: a mailer requiring it sends nothing
    // (no fallback to clear text); a relay configured without TLS delivers.
    smtp.options = SmtpOptions {
        starttls: false,
        auth: false,
        ..SmtpOptions::default()
    };
    smtp.start_again().await;
    let requires_tls = SmtpConfig::relay("127.0.0.1", smtp.port, SMTP_USER)
        .unwrap()
        .with_tls(TlsMode::StartTls)
        .trusting_pem(smtp.ca_pem.clone());
    assert!(matches!(
        SmtpMailer::new(&requires_tls)
            .unwrap()
            .send(&message("ada@example.com"))
            .await,
        Err(MailError::Transient(_))
    ));
    assert_eq!(smtp.received().len(), 1);
    let relay = SmtpMailer::new(&smtp.config()).unwrap();
    relay.send(&message("bob@example.com")).await.unwrap();
    let got = smtp.wait_for(2, Duration::from_secs(5)).await;
    assert!(!got[1].tls && got[1].auth_login.is_none());
    assert_eq!(got[1].rcpt_tos, ["bob@example.com"]);

    // A server that stalls mid-conversation: the attempt ends, transient, within
    // the configured time instead of holding the worker.
    smtp.options.delay = 5.0;
    smtp.start_again().await;
    let impatient =
        SmtpMailer::new(&smtp.config().with_timeout(Duration::from_millis(500))).unwrap();
    let started = std::time::Instant::now();
    match impatient.send(&message("carol@example.com")).await {
        Err(MailError::Transient(e)) => assert!(e.contains("did not complete"), "{e}"),
        other => panic!("a stalled server is a transient failure: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// A slow SMTP server and short leases. A worker starts a send only while its
/// claim has at least half its lease left and hands the rest of its batch back at
/// once; a worker that vanished holding claims blocks its messages only until
/// its lease runs out. Shown: the busy worker's lease did run short and it
/// handed messages back, which were claimed again; the vanished worker's
/// messages went out only after its lease had expired; and still every message
/// was sent once, in one attempt.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn slow_smtp_and_short_leases_never_duplicate() {
    let options = SmtpOptions {
        delay: 0.3,
        ..SmtpOptions::default()
    };
    let Some(smtp) = SmtpServer::start(options).await else {
        return;
    };
    let mut policy = fast_policy(5);
    // Whichever worker claims first takes the 6 messages the vanished worker does
    // not hold: 1.8 s of sending on a 1 s lease, so after two sends less than
    // half of it is left and it hands the other 4 back.
    policy.batch = 6;
    policy.lease = chrono::Duration::seconds(1);
    let lease = policy.lease;
    let s = server(&smtp, policy).await;
    for _ in 0..8 {
        s.buyer().await;
    }
    let total = outbox(&s).await.len();
    assert_eq!(total, 8);

    // A worker that claims two messages and vanishes, as a killed process does.
    let now = marketplace_core::clock::storage_precision(chrono::Utc::now());
    let ghost_until = now + lease;
    let ghosted: HashSet<MessageId> = s
        .app
        .market
        .storage()
        .claim_outbox(uuid::Uuid::new_v4(), now, ghost_until, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ghosted.len(), 2);

    // Two workers, each with its own SMTP connections, running the loop of
    // `OutboxWorker::run` (busy rounds back to back, a 20 ms pause when idle)
    // and keeping the report of every busy round.
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = Vec::new();
    for _ in 0..2 {
        let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(&smtp.config()).unwrap());
        let worker = OutboxWorker::new(s.app.market.clone(), mailer);
        let stop = Arc::clone(&stop);
        running.push(tokio::spawn(async move {
            let mut rounds = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let round = worker.run_once().await.unwrap();
                if round.claimed == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                } else {
                    rounds.push(round);
                }
            }
            rounds
        }));
    }
    let after = settle(&s, Duration::from_secs(30)).await;
    stop.store(true, Ordering::SeqCst);
    let mut rounds = Vec::new();
    for r in running {
        rounds.extend(r.await.unwrap());
    }
    assert!(
        after
            .iter()
            .all(|m| m.status == OutboxStatus::Delivered && m.attempts == 1),
        "every message delivered in one attempt: {:?}",
        after
            .iter()
            .map(|m| (m.status, m.attempts))
            .collect::<Vec<_>>()
    );
    let claimed: usize = rounds.iter().map(|r| r.claimed).sum();
    let sent: usize = rounds
        .iter()
        .map(|r| r.delivered + r.retried + r.dead)
        .sum();
    assert_eq!(
        sent, total,
        "each message sent by one worker once: {rounds:?}"
    );
    let handed_back = claimed - sent;
    assert!(
        handed_back > 0,
        "a lease ran short mid-batch and the rest of the batch went back: {rounds:?}"
    );
    // Every message was sent, so every one handed back was claimed again, and
    // so were the vanished worker's, but not before its lease ran out.
    for m in after.iter().filter(|m| ghosted.contains(&m.id)) {
        let at = m.delivered_at.unwrap();
        assert!(
            at >= ghost_until,
            "{} was sent at {at}, while the vanished worker's claim held it until {ghost_until}",
            m.id
        );
    }
    // Give a late duplicate time to land, if one were coming.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received = smtp.received();
    let counts = arrivals(&received);
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "sent twice: {duplicated:?}");
    assert_eq!((received.len(), counts.len()), (total, total));
    println!(
        "slow server, 1 s leases, two workers: {total} messages in {claimed} claims \
         ({handed_back} handed back, 2 taken over from an expired lease), 0 duplicates"
    );
}

/// The server as the binary runs it (`server_warp::run` with `MAIL*`
/// settings): its own worker delivers over SMTP, and it stops cleanly.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn the_running_server_delivers_through_smtp_when_mail_is_set() {
    let Some(smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let media = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("sqlite://{}", media.path().join("marketplace.db").display());
    let mut settings = TestServer::settings(&url, &media);
    settings.listen = format!("127.0.0.1:{port}").parse().unwrap();
    settings.outbox_poll = Duration::from_millis(50);
    settings.smtp = Some(smtp.config());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server_warp::run(settings, async move {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the server did not come up");
    let r = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "grace@example.com", "password": "correct horse", "role": "buyer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, ["grace@example.com"]);
    assert!(got[0].tls && got[0].auth_login.as_deref() == Some(SMTP_USER));
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert_eq!(smtp.received().len(), 1, "sent once");
}

/// `MAIL_SSL_TLS`: TLS from the first byte (SMTPS), with a login; a mailer
/// expecting STARTTLS on that port sends nothing.
#[tokio::test]
#[cfg_attr(
    no_smtp,
    ignore = "needs a Python with aiosmtpd (the SMTP test server), see README"
)]
async fn implicit_tls_delivers_with_a_login() {
    let options = SmtpOptions {
        implicit_tls: true,
        ..SmtpOptions::default()
    };
    let Some(smtp) = SmtpServer::start(options).await else {
        return;
    };
    let config = smtp.config();
    assert_eq!(config.tls, TlsMode::Implicit);
    let mailer = SmtpMailer::new(&config).unwrap();
    mailer.check_connection().await.unwrap();
    let message = OutboxMessage {
        id: MessageId(uuid::Uuid::now_v7()),
        kind: "test".to_owned(),
        recipient: "ada@example.com".to_owned(),
        subject: "Over SMTPS".to_owned(),
        text_body: "plain".to_owned(),
        html_body: "<p>html</p>".to_owned(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: chrono::Utc::now(),
        last_error: None,
        created_at: chrono::Utc::now(),
        delivered_at: None,
        claimed_by: None,
        claimed_until: None,
    };
    mailer.send(&message).await.unwrap();
    let got = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert!(got[0].tls, "encrypted from the first byte");
    assert_eq!(got[0].auth_login.as_deref(), Some(SMTP_USER));
    assert_eq!(got[0].outbox_id(), message.id.to_string());

    let starttls = SmtpMailer::new(
        &config
            .clone()
            .with_tls(TlsMode::StartTls)
            .with_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    assert!(matches!(
        starttls.send(&message).await,
        Err(MailError::Transient(_))
    ));
    assert_eq!(smtp.received().len(), 1);
}
