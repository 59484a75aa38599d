//! Money over HTTP, against a real server process with a one-second return
//! window and its ledger worker polling every 200 ms: commission rules set
//! before a sale are snapshotted on the seller's order; a delivered order's
//! earning is held, then released by the worker; an admin pays out, marks one
//! payout paid and another failed; the seller sees the payout, the statement
//! (JSON and CSV) lists earning, release and payout with the right amounts, and
//! the admin's commission report the fee.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use chrono::{Datelike, Utc};
use marketplace_e2e::process::{ServerProcess, free_port};
use marketplace_e2e::{Api, Reply, Session, postgres_schema};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The server process the money tests start ([`marketplace_e2e::process`]).
#[tokio::test]
#[ignore = "the server process the money tests start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

const ADMIN: &str = "root@example.com";
const PASSWORD: &str = "correct horse";

/// A server process on `url` with the short return window and a fast ledger
/// worker; its admin comes from the configuration.
async fn start(url: &str, media: &std::path::Path) -> ServerProcess {
    let vars = [
        ("DATABASE_URL", url.to_owned()),
        ("MARKETPLACE_MEDIA_DIR", media.display().to_string()),
        ("MARKETPLACE_OUTBOX_POLL_MS", "0".to_owned()),
        ("MARKETPLACE_RETURN_WINDOW", "1s".to_owned()),
        ("MARKETPLACE_LEDGER_POLL_MS", "200".to_owned()),
        ("MARKETPLACE_ADMIN_EMAIL", ADMIN.to_owned()),
        ("MARKETPLACE_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    ServerProcess::start(free_port(), &vars).await
}

fn ok(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
}

fn problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
}

fn usd(amount: i64) -> Value {
    json!({"amount": amount, "currency": "USD"})
}

async fn seller(api: &Api, admin: &Session, email: &str, store: &str) -> Session {
    let id = api
        .register(
            json!({"email": email, "password": PASSWORD, "role": "seller", "store_name": store}),
        )
        .await;
    api.verify_seller(admin, &id).await;
    api.login(email, PASSWORD).await
}

async fn product(api: &Api, seller: &Session, title: &str, cents: i64, category: &str) -> String {
    let r = api
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": title, "price": usd(cents), "stock": 10, "category_id": category}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Waits until `seller`'s balance shows `available` (the ledger worker's
/// release); panics after 15 s.
async fn available(api: &Api, seller: &Session, available: i64) -> Value {
    let started = Instant::now();
    loop {
        let b = api.get("/api/v1/seller/balance", Some(&seller.token)).await;
        ok(&b, "balance");
        if b.body["available"]["amount"] == available {
            return b.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the earning was never released: {}",
            b.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn order_of(api: &Api, seller: &Session) -> Value {
    let r = api.get("/api/v1/seller/orders", Some(&seller.token)).await;
    ok(&r, "seller orders");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    items[0].clone()
}

async fn money_flow(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let api = start(url, dir.path()).await;
    let admin = api.login(ADMIN, PASSWORD).await;
    let a = Some(admin.token.as_str());
    let books = seller(&api, &admin, "books@example.com", "Books").await;
    let teas = seller(&api, &admin, "teas@example.com", "Teas").await;
    api.register(json!({"email": "ada@example.com", "password": PASSWORD, "role": "buyer"}))
        .await;
    let ada = api.login("ada@example.com", PASSWORD).await;
    let r = api
        .post("/api/v1/admin/categories", a, json!({"name": "Tea"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let tea = r.body["id"].as_str().unwrap().to_owned();

    // Rules at the three levels, before the sale.
    let rule = |path: String, body: Value| {
        let api = &api;
        async move { api.call(reqwest::Method::PUT, &path, a, Some(body)).await }
    };
    let r = rule(
        "/api/v1/admin/commission-rules/default".into(),
        json!({"rate_bps": 2000}),
    )
    .await;
    ok(&r, "default rule");
    assert_eq!(r.body["scope"], json!({"level": "default"}));
    assert_eq!(r.body["rate_bps"], 2000);
    assert_eq!(r.body["updated_by"], admin.id.as_str());
    ok(
        &rule(
            format!("/api/v1/admin/commission-rules/categories/{tea}"),
            json!({"rate_bps": 500}),
        )
        .await,
        "category rule",
    );
    let r = rule(
        format!("/api/v1/admin/commission-rules/sellers/{}", books.id),
        json!({"rate_bps": 1000, "fixed_fee": usd(25)}),
    )
    .await;
    ok(&r, "seller rule");
    assert_eq!(
        r.body["scope"],
        json!({"level": "seller", "seller_id": books.id})
    );
    assert_eq!(r.body["fixed_fee"], usd(25));
    let r = api.get("/api/v1/admin/commission-rules", a).await;
    ok(&r, "rules");
    let levels: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scope"]["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["default", "category", "seller"]);
    assert_eq!(r.body["next_cursor"], Value::Null);

    // The sale: 2 x 25.00 from Books (its own rule beats the category's),
    // 4 x 8.50 from Teas (the category's rule beats the default).
    let atlas = product(&api, &books, "Atlas", 2500, &tea).await;
    let sencha = product(&api, &teas, "Sencha", 850, &tea).await;
    let address = api
        .post(
            "/api/v1/me/addresses",
            Some(&ada.token),
            json!({"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}),
        )
        .await;
    assert_eq!(address.status, StatusCode::CREATED, "{}", address.body);
    for (p, n) in [(&atlas, 2), (&sencha, 4)] {
        let r = api
            .post(
                "/api/v1/cart/items",
                Some(&ada.token),
                json!({"product_id": p, "quantity": n}),
            )
            .await;
        ok(&r, "cart");
    }
    let r = api
        .checkout(&ada, "money-1", json!({"address_id": address.body["id"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for o in r.body["orders"].as_array().unwrap() {
        assert!(
            o.get("commission").is_none(),
            "a buyer sees no commission: {o}"
        );
    }

    // A later rule change touches no existing order.
    ok(
        &rule(
            "/api/v1/admin/commission-rules/default".into(),
            json!({"rate_bps": 9000}),
        )
        .await,
        "default rule changed",
    );
    let books_order = order_of(&api, &books).await;
    let c = &books_order["commission"];
    assert_eq!(c["amount"], usd(525), "10 % of 50.00 plus 0.25: {c}");
    assert_eq!(c["seller_net"], usd(4475));
    assert_eq!(c["rules"].as_array().unwrap().len(), 1);
    assert_eq!(c["rules"][0]["scope"]["level"], "seller");
    assert_eq!(c["rules"][0]["base"], usd(5000));
    let teas_order = order_of(&api, &teas).await;
    let c = &teas_order["commission"];
    assert_eq!(c["amount"], usd(170), "5 % of 34.00: {c}");
    assert_eq!(c["seller_net"], usd(3230));
    assert_eq!(c["rules"][0]["scope"]["level"], "category");
    assert_eq!(c["rules"][0]["scope"]["category_id"], tea.as_str());

    // Nothing is earned before delivery.
    let b = api.get("/api/v1/seller/balance", Some(&books.token)).await;
    ok(&b, "balance");
    assert_eq!(b.body["total"], usd(0));

    // Delivery: the net is held for the return window.
    for (who, order) in [(&books, &books_order), (&teas, &teas_order)] {
        let id = order["id"].as_str().unwrap();
        for status in ["accepted", "packed", "shipped", "delivered"] {
            let r = api
                .post(
                    &format!("/api/v1/seller/orders/{id}/status"),
                    Some(&who.token),
                    json!({"status": status}),
                )
                .await;
            ok(&r, status);
        }
    }
    let b = api.get("/api/v1/seller/balance", Some(&books.token)).await;
    ok(&b, "balance");
    assert_eq!(b.body["pending"], usd(4475), "held: {}", b.body);
    assert_eq!(b.body["available"], usd(0));
    assert_eq!(b.body["total"], usd(4475));
    assert_eq!(b.body["seller_id"], books.id.as_str());
    let delivered = order_of(&api, &books).await;
    assert!(delivered["return_until"].is_string(), "{delivered}");

    // The ledger worker releases it once the window closes.
    let b = available(&api, &books, 4475).await;
    assert_eq!(b["pending"], usd(0));
    available(&api, &teas, 3230).await;
    let released = order_of(&api, &books).await;
    assert!(released["earning_released_at"].is_string(), "{released}");
    let id = released["id"].as_str().unwrap();
    problem(
        &api.post(
            &format!("/api/v1/orders/{id}/return"),
            Some(&ada.token),
            json!({}),
        )
        .await,
        409,
        "return_window_closed",
    );

    // The ledger, newest first, a page at a time.
    let r = api
        .get("/api/v1/seller/ledger?limit=1", Some(&books.token))
        .await;
    ok(&r, "ledger");
    assert_eq!(r.body["items"][0]["kind"], "release");
    assert_eq!(r.body["items"][0]["pending"], usd(-4475));
    assert_eq!(r.body["items"][0]["available"], usd(4475));
    let cursor = r.body["next_cursor"].as_str().unwrap().to_owned();
    let r = api
        .get(
            &format!("/api/v1/seller/ledger?limit=1&cursor={cursor}"),
            Some(&books.token),
        )
        .await;
    ok(&r, "ledger page 2");
    assert_eq!(r.body["items"][0]["kind"], "earning");
    assert_eq!(r.body["items"][0]["pending"], usd(4475));
    assert_eq!(r.body["items"][0]["commission"], usd(525));
    assert_eq!(r.body["items"][0]["order_id"], id);
    assert_eq!(r.body["next_cursor"], Value::Null);

    // Payouts: one seller, then everyone due (the other), then nobody.
    let r = api
        .post("/api/v1/admin/payouts", a, json!({"seller_id": books.id}))
        .await;
    ok(&r, "payout of one seller");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    let books_payout = items[0].clone();
    assert_eq!(books_payout["seller_id"], books.id.as_str());
    assert_eq!(books_payout["amount"], usd(4475));
    assert_eq!(books_payout["status"], "requested");
    assert_eq!(books_payout["provider"], "manual");
    let r = api.post("/api/v1/admin/payouts", a, json!({})).await;
    ok(&r, "payout run");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only Teas was still due: {}", r.body);
    assert_eq!(items[0]["seller_id"], teas.id.as_str());
    assert_eq!(items[0]["amount"], usd(3230));
    let teas_payout = items[0]["id"].as_str().unwrap().to_owned();
    let r = api
        .call(reqwest::Method::POST, "/api/v1/admin/payouts", a, None)
        .await;
    ok(&r, "payout run without a body");
    assert_eq!(r.body["items"], json!([]), "nothing is due twice");
    let b = api.get("/api/v1/seller/balance", Some(&books.token)).await;
    assert_eq!(
        b.body["available"],
        usd(0),
        "the payout took it: {}",
        b.body
    );

    // A failed payout gives the money back; a paid one is settled for good.
    let r = api
        .post(
            &format!("/api/v1/admin/payouts/{teas_payout}/failed"),
            a,
            json!({"reason": "the account is closed"}),
        )
        .await;
    ok(&r, "failed");
    assert_eq!(r.body["status"], "failed");
    assert_eq!(r.body["failure"], "the account is closed");
    available(&api, &teas, 3230).await;
    let payout = books_payout["id"].as_str().unwrap();
    let r = api
        .post(
            &format!("/api/v1/admin/payouts/{payout}/paid"),
            a,
            json!({"reference": "BANK-2026-0001"}),
        )
        .await;
    ok(&r, "paid");
    assert_eq!(r.body["status"], "paid");
    assert_eq!(r.body["reference"], "BANK-2026-0001");
    problem(
        &api.post(
            &format!("/api/v1/admin/payouts/{payout}/paid"),
            a,
            json!({"reference": "again"}),
        )
        .await,
        409,
        "payout_settled",
    );
    problem(
        &api.post(
            &format!("/api/v1/admin/payouts/{payout}/failed"),
            a,
            json!({"reason": "too late"}),
        )
        .await,
        409,
        "payout_settled",
    );

    // The seller sees its payout paid, and only its own.
    let r = api.get("/api/v1/seller/payouts", Some(&books.token)).await;
    ok(&r, "seller payouts");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["id"], payout);
    assert_eq!(items[0]["status"], "paid");
    assert_eq!(items[0]["reference"], "BANK-2026-0001");
    let r = api
        .get(
            "/api/v1/seller/payouts?status=requested",
            Some(&books.token),
        )
        .await;
    ok(&r, "seller payouts by status");
    assert_eq!(r.body["items"], json!([]));
    let path = format!("/api/v1/seller/payouts/{payout}");
    let r = api.get(&path, Some(&books.token)).await;
    ok(&r, "seller payout");
    assert_eq!(r.body["status"], "paid");
    problem(&api.get(&path, Some(&teas.token)).await, 404, "not_found");
    problem(&api.get(&path, Some(&ada.token)).await, 403, "forbidden");
    let r = api
        .get(&format!("/api/v1/admin/payouts?seller_id={}", teas.id), a)
        .await;
    ok(&r, "admin payouts of a seller");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["status"], "failed");
    let r = api.get("/api/v1/admin/payouts?status=paid", a).await;
    ok(&r, "admin payouts by status");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["id"], payout);
    let r = api.get(&format!("/api/v1/admin/payouts/{payout}"), a).await;
    ok(&r, "admin payout");
    assert_eq!(r.body["reference"], "BANK-2026-0001");

    // The statement: earning, release, payout, and a closing balance of zero.
    let today = Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(1), today + chrono::Days::new(2));
    let r = api
        .get(
            &format!("/api/v1/seller/statement?from={from}&to={to}"),
            Some(&books.token),
        )
        .await;
    ok(&r, "statement");
    let kinds: Vec<&str> = r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["earning", "release", "payout"]);
    assert_eq!(r.body["opening"]["total"], usd(0));
    assert_eq!(r.body["closing"]["total"], usd(0));
    assert_eq!(r.body["store_name"], "Books");
    let res = api
        .http
        .get(format!(
            "{}/api/v1/seller/statement.csv?from={from}&to={to}",
            api.base
        ))
        .bearer_auth(&books.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        "text/csv; charset=utf-8",
        "{:?}",
        res.headers()
    );
    assert_eq!(
        res.headers()["content-disposition"],
        format!("attachment; filename=\"statement-{from}-{to}.csv\"").as_str()
    );
    let csv = res.text().await.unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "date",
            "entry",
            "kind",
            "order_id",
            "payout_id",
            "commission",
            "pending_change",
            "available_change",
            "pending_after",
            "available_after",
            "currency"
        ],
        "{csv}"
    );
    assert_eq!(rows.len(), 4, "{csv}");
    // kind, order, payout, commission, pending change, available change,
    // pending after, available after, currency
    let expected = [
        [
            "earning", id, "", "5.25", "44.75", "0.00", "44.75", "0.00", "USD",
        ],
        [
            "release", id, "", "0.00", "-44.75", "44.75", "0.00", "44.75", "USD",
        ],
        [
            "payout", "", payout, "0.00", "0.00", "-44.75", "0.00", "0.00", "USD",
        ],
    ];
    for (row, want) in rows[1..].iter().zip(expected) {
        assert_eq!(&row[2..], want, "{csv}");
    }

    // The admin's views: balances and the commission report.
    let r = api.get("/api/v1/admin/balances", a).await;
    ok(&r, "balances");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", r.body);
    assert_eq!(items[0]["seller_id"], teas.id.as_str(), "largest first");
    assert_eq!(items[0]["available"], usd(3230));
    assert_eq!(items[1]["total"], usd(0));
    let r = api
        .get(
            &format!("/api/v1/admin/reports/commission?from={from}&to={to}&by=day"),
            a,
        )
        .await;
    ok(&r, "report");
    let rows = r.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", r.body);
    let books_row = rows.iter().find(|r| r["store_name"] == "Books").unwrap();
    assert_eq!(books_row["period"], today.to_string());
    assert_eq!(books_row["delivered"], 1);
    assert_eq!(books_row["returned"], 0);
    assert_eq!(books_row["gross"], usd(5000));
    assert_eq!(books_row["commission"], usd(525));
    assert_eq!(books_row["seller_net"], usd(4475));
    assert_eq!(r.body["totals"][0]["commission"], usd(525 + 170));
    assert_eq!(r.body["totals"][0]["gross"], usd(5000 + 3400));
    let r = api
        .get("/api/v1/admin/reports/commission?by=month", a)
        .await;
    ok(&r, "monthly report");
    assert_eq!(
        r.body["rows"][0]["period"],
        today.with_day(1).unwrap().to_string()
    );
    // Removing a rule: 204, then 404.
    let path = format!("/api/v1/admin/commission-rules/sellers/{}", books.id);
    assert_eq!(api.delete(&path, a).await.status, StatusCode::NO_CONTENT);
    problem(&api.delete(&path, a).await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    money_flow(&format!("sqlite://{}", dir.path().join("m.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_flow_on_memory() {
    money_flow("memory:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn money_flow_on_postgres() {
    let Some(db) = postgres_schema("money_flow_on_postgres").await else {
        return;
    };
    money_flow(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn money_flow_on_mongodb() {
    let Some(url) = marketplace_e2e::mongodb_database("money_flow_on_mongodb") else {
        return;
    };
    money_flow(&url).await;
}
