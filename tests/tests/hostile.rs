//! What a hostile (or merely careless) client sends at the HTTP layer: bytes no
//! database can hold, trailing data after a JSON document, bodies the server
//! answers before reading, HEAD requests, bodies without a JSON type; and the
//! settings that decide what mails and pages show (currency, link bases).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_core::OutboxStore;
use marketplace_core::outbox::OutboxQuery;
use marketplace_e2e::{Api, Reply, TestServer, postgres_schema};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn send(s: &Api, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .body(body.to_vec());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    Api::read(req.send().await.unwrap()).await
}

fn problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
}

/// NUL bytes and other control characters in every place a client puts text
/// reach no query: search answers 422, login 401, register 422, never a 5xx.
async fn nul_bytes_get_clear_refusals(s: &TestServer) {
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    s.product(&seller, "Tea", 500, 3).await;
    for q in ["%00", "tea%00", "a%00b", "%01"] {
        let r = s.get(&format!("/api/v1/products?q={q}"), None).await;
        problem(&r, 422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "q", "{:?}", r.body);
        let r = s.get(&format!("/api/v1/products?cursor={q}"), None).await;
        assert!(r.status.is_client_error(), "cursor {q}: {:?}", r.body);
    }
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a\u{0}b@example.com", "password": "correct horse"}),
        )
        .await;
    problem(&r, 401, "invalid_credentials");
    let r = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a\u{0}b@example.com", "password": "correct horse", "role": "buyer"}),
        )
        .await;
    problem(&r, 422, "validation_failed");
    let r = s
        .post(
            "/api/v1/auth/password-reset",
            None,
            json!({"email": "a\u{0}b@example.com"}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let r = s
        .post(
            "/api/v1/auth/verify-email",
            None,
            json!({"token": "to\u{0}ken"}),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    let r = s.get("/api/v1/products/%00", None).await;
    assert!(r.status.is_client_error(), "{:?}", r.body);
    // The search still works for clean text.
    let r = s.get("/api/v1/products?q=tea", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn nul_bytes_get_clear_refusals_on_sqlite() {
    nul_bytes_get_clear_refusals(&TestServer::start().await).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn nul_bytes_get_clear_refusals_on_postgres() {
    let Some(db) = postgres_schema("nul_bytes_get_clear_refusals_on_postgres").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    nul_bytes_get_clear_refusals(&TestServer::start_on(&db.url, dir).await).await;
}

/// A body is one JSON document: a second document or garbage after it is
/// malformed, and nothing is written.
#[tokio::test]
async fn data_after_the_json_document_is_malformed() {
    let s = TestServer::start().await;
    let account = r#"{"email":"twice@example.com","password":"correct horse","role":"buyer"}"#;
    for tail in [r#"{"email":"x"}"#, "garbage", "]]]", "\u{0}"] {
        let body = format!("{account}{tail}");
        let r = send(
            &s,
            "POST",
            "/api/v1/auth/register",
            Some("application/json"),
            body.as_bytes(),
        )
        .await;
        problem(&r, 400, "malformed_json");
    }
    let login = r#"{"email":"twice@example.com","password":"correct horse"}]]]"#;
    let r = send(
        &s,
        "POST",
        "/api/v1/auth/login",
        Some("application/json"),
        login.as_bytes(),
    )
    .await;
    problem(&r, 400, "malformed_json");
    // None of those registered the account; white space after the document is fine.
    let body = format!("{account}\n  \t");
    let r = send(
        &s,
        "POST",
        "/api/v1/auth/register",
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// A JSON body must say it is JSON: no type and `text/plain` both get 415.
#[tokio::test]
async fn json_bodies_need_a_json_content_type() {
    let s = TestServer::start().await;
    let body = br#"{"email":"typed@example.com","password":"correct horse","role":"buyer"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let r = send(&s, "POST", "/api/v1/auth/register", ct, body).await;
        problem(&r, 415, "unsupported_media_type");
    }
    let r = send(
        &s,
        "POST",
        "/api/v1/auth/register",
        Some("application/json; charset=utf-8"),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// An answer given before the body was read (413 on the declared length, 401
/// before an upload) closes the connection cleanly, and the client's next
/// request works.
#[tokio::test]
async fn early_answers_leave_no_dead_keep_alive_connection() {
    let s = TestServer::start().await;
    // One connection at most, so the next request would reuse a dead one.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let big = vec![b' '; 100 * 1024];
    for round in 0..3 {
        let r = http
            .post(format!("{}/api/v1/auth/register", s.base))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "round {round}");
        assert_eq!(r.headers()["connection"], "close");
        let r = http
            .post(format!("{}/api/v1/cart/items", s.base))
            .header("content-type", "application/json")
            .body(r#"{"product_id":"x","quantity":1}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "round {round}");
        let r = http
            .get(format!("{}/api/v1/products", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "round {round}");
        // A request whose body was read keeps its connection.
        assert!(r.headers().get("connection").is_none());
    }
}

/// HEAD answers like GET, without a body.
#[tokio::test]
async fn head_answers_like_get() {
    let s = TestServer::start().await;
    for path in [
        "/api/v1/products",
        "/api/v1/categories",
        "/healthz",
        "/api/v1/openapi.json",
    ] {
        let get = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        let head = s
            .http
            .head(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    let head = s
        .http
        .head(format!("{}/api/v1/cart", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
}

/// Money takes exactly its two fields, like every other object.
#[tokio::test]
async fn unknown_fields_inside_money_are_refused() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let r = s
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Tea", "price": {"amount": 500, "currency": "USD", "cents": 1}, "stock": 1}),
        )
        .await;
    problem(&r, 400, "invalid_body");
    let mine = s.get("/api/v1/seller/products", Some(&seller.token)).await;
    assert!(mine.body["items"].as_array().unwrap().is_empty());
}

/// A line whose product became unavailable shows zero, as its subtotal counts it.
#[tokio::test]
async fn unavailable_cart_lines_add_up_like_their_subtotal() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let buyer = s.buyer().await;
    let gone = s.product(&seller, "Gone", 700, 5).await;
    let kept = s.product(&seller, "Kept", 300, 5).await;
    for p in [&gone, &kept] {
        let r = s
            .post(
                "/api/v1/cart/items",
                Some(&buyer.token),
                json!({"product_id": p, "quantity": 2}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let r = s
        .delete(
            &format!("/api/v1/seller/products/{gone}"),
            Some(&seller.token),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let cart = s.get("/api/v1/cart", Some(&buyer.token)).await;
    let group = &cart.body["sellers"][0];
    let lines = group["items"].as_array().unwrap();
    assert_eq!(
        lines.len(),
        2,
        "the unavailable line is flagged, not hidden"
    );
    let sum: i64 = lines
        .iter()
        .map(|l| l["line_total"]["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(group["subtotal"]["amount"].as_i64().unwrap(), sum);
    assert_eq!(sum, 600);
    let flagged = lines
        .iter()
        .find(|l| l["product_id"] == gone.as_str())
        .unwrap();
    assert_eq!(flagged["available"], false);
    assert_eq!(flagged["line_total"]["amount"], 0);
    assert_eq!(cart.body["total"]["amount"], 600);
}

/// A marketplace in yen: prices in yen only, and mails print whole yen.
#[tokio::test]
async fn the_currency_is_a_setting_and_mails_use_its_minor_units() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let mut settings = TestServer::settings(&url, &dir);
    settings.currency = marketplace_core::Currency::parse("JPY").unwrap();
    let s = TestServer::start_with(settings, dir).await;
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let usd = s
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Tea", "price": {"amount": 500, "currency": "USD"}, "stock": 1}),
        )
        .await;
    problem(&usd, 422, "validation_failed");
    let r = s
        .post(
            "/api/v1/seller/products",
            Some(&seller.token),
            json!({"title": "Matcha", "price": {"amount": 1500, "currency": "JPY"}, "stock": 9}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let product = r.body["id"].as_str().unwrap().to_owned();
    let buyer = s.buyer().await;
    s.address(&buyer).await;
    s.post(
        "/api/v1/cart/items",
        Some(&buyer.token),
        json!({"product_id": product, "quantity": 2}),
    )
    .await;
    let done = s.checkout(&buyer, "yen-1", json!({})).await;
    assert_eq!(done.status, StatusCode::CREATED, "{:?}", done.body);
    assert_eq!(
        done.body["orders"][0]["total"],
        json!({"amount": 3000, "currency": "JPY"})
    );
    let mails = outbox(&s).await;
    let confirmation = mails
        .iter()
        .find(|m| m.kind == "order_confirmation")
        .unwrap();
    assert!(
        confirmation.text_body.contains("3,000 JPY"),
        "{}",
        confirmation.text_body
    );
    assert!(
        confirmation.subject.contains("3,000 JPY"),
        "{}",
        confirmation.subject
    );
    assert!(
        !confirmation.text_body.contains("30.00"),
        "{}",
        confirmation.text_body
    );
}

/// Every outbox message of the server.
async fn outbox(s: &TestServer) -> Vec<marketplace_core::OutboxMessage> {
    s.app
        .market
        .storage()
        .list_outbox(&OutboxQuery {
            status: None,
            after: None,
            limit: 500,
        })
        .await
        .unwrap()
}

/// The outbox mail of `kind` to `to`.
async fn mail(s: &TestServer, kind: &str, to: &str) -> marketplace_core::OutboxMessage {
    outbox(s)
        .await
        .into_iter()
        .find(|m| m.kind == kind && m.recipient == to)
        .unwrap_or_else(|| panic!("no {kind} mail to {to}"))
}

/// The link in a mail's text, as `(base, path and query)`.
fn link(text: &str, base: &str) -> String {
    let start = text
        .find(base)
        .unwrap_or_else(|| panic!("no {base} link in {text}"));
    let rest = &text[start + base.len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

async fn form(s: &TestServer, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let r = s
        .http
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The verify-email and reset-password links land on pages of this server that
/// complete the action; the link base and the media base are separate settings.
#[tokio::test]
async fn mail_links_land_on_pages_that_complete_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let mut settings = TestServer::settings(&url, &dir);
    settings.storefront_url = Some("https://shop.example.com/".into());
    settings.media_base_url = Some("https://cdn.example.com/images".into());
    let s = TestServer::start_with(settings, dir).await;

    let email = s.email("pages");
    s.register(json!({"email": email, "password": "correct horse", "role": "buyer"}))
        .await;
    let verify = mail(&s, "verify_email", &email).await;
    let path = link(&verify.text_body, "https://shop.example.com");
    assert!(path.starts_with("/verify-email?token="), "{path}");
    // Opening the link shows a button and changes nothing yet.
    let page = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/verify-email\">"),
        "{html}"
    );
    let session = s.login(&email, "correct horse").await;
    let me = s.get("/api/v1/me", Some(&session.token)).await;
    assert_eq!(me.body["email_verified"], false);
    let token = path.trim_start_matches("/verify-email?token=");
    let (status, html) = form(&s, "/verify-email", &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("confirmed"), "{html}");
    let me = s.get("/api/v1/me", Some(&session.token)).await;
    assert_eq!(me.body["email_verified"], true);
    // The token works once.
    let (status, html) = form(&s, "/verify-email", &[("token", token)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");

    s.post("/api/v1/auth/password-reset", None, json!({"email": email}))
        .await;
    let reset = mail(&s, "password_reset", &email).await;
    let path = link(&reset.text_body, "https://shop.example.com");
    assert!(path.starts_with("/reset-password?token="), "{path}");
    let html = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("type=\"password\""), "{html}");
    let token = path.trim_start_matches("/reset-password?token=");
    let (status, html) = form(
        &s,
        "/reset-password",
        &[("token", token), ("password", "short")],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let (status, html) = form(
        &s,
        "/reset-password",
        &[("token", token), ("password", "a brand new passphrase")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    s.login(&email, "a brand new passphrase").await;
    // A hostile token is escaped, never echoed as markup.
    let html = s
        .http
        .get(format!(
            "{}/reset-password?token=%22%3E%3Cscript%3E",
            s.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"), "{html}");

    // Image URLs are built on the media base.
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let product = s.product(&seller, "Lamp", 1000, 1).await;
    let r = s
        .upload_image(&seller, &product, PNG.to_vec(), "lamp.png")
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let view = s.get(&format!("/api/v1/products/{product}"), None).await;
    let images: Vec<Value> = view.body["images"].as_array().unwrap().clone();
    assert!(!images.is_empty());
    for i in images {
        assert!(
            i.as_str()
                .unwrap()
                .starts_with("https://cdn.example.com/images/"),
            "{i}"
        );
    }
}

/// A real 1 x 1 PNG (uploads are decoded, so a header alone is refused).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xf7, 0x03, 0x41, 0x43, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];
