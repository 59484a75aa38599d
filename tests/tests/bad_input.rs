//! Anything a client can send gets a clear 4xx problem document, never a 5xx,
//! and writes nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_core::outbox::OutboxQuery;
use marketplace_e2e::{Api, Reply, Session, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn raw(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Api::read(req.send().await.unwrap()).await
}

fn problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert_eq!(r.body["status"], status);
}

/// A GET that must answer 200 (a refused read would make two censuses equal
/// without proving anything); its body.
async fn read(s: &TestServer, path: &str, token: Option<&str>) -> Value {
    let r = s.get(path, token).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {:?}", r.body);
    r.body
}

/// Everything a refused request could have written, read back: the outbox, the
/// `products`, each of the `buyers`' profile, cart, addresses and orders, and
/// whether the account the refused registrations name exists.
async fn census(s: &TestServer, products: &[String], buyers: &[Session]) -> Value {
    let q = OutboxQuery {
        status: None,
        after: None,
        limit: 100_000,
    };
    let storage = s.app.market.storage();
    let mails = storage.list_outbox(&q).await.unwrap().len();
    let registered = storage.user_by_email("a@b.co").await.unwrap().is_some();
    let mut listed = Vec::new();
    for p in products {
        listed.push(read(s, &format!("/api/v1/products/{p}"), None).await);
    }
    let mut accounts = Vec::new();
    for b in buyers {
        let t = Some(b.token.as_str());
        accounts.push(json!({
            "profile": read(s, "/api/v1/me", t).await,
            "cart": read(s, "/api/v1/cart", t).await,
            "addresses": read(s, "/api/v1/me/addresses", t).await,
            "orders": read(s, "/api/v1/orders", t).await,
        }));
    }
    json!({"mails": mails, "a@b.co registered": registered, "products": listed, "buyers": accounts})
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let buyer = s.buyer().await;
    let product = s.product(&seller, "Lamp", 2500, 5).await;
    let vase = s.product(&seller, "Vase", 1200, 5).await;
    let address = s.address(&buyer).await;
    // Something in the cart, so that a refused cart change would show.
    let r = s
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"product_id": product, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A buyer whose cart stays empty.
    let empty = s.buyer().await;
    let (products, buyers) = (
        [product.clone(), vase.clone()],
        [buyer.clone(), empty.clone()],
    );
    let before = census(&s, &products, &buyers).await;
    assert_eq!(before["buyers"][0]["cart"]["total"]["amount"], 2500);
    assert_eq!(
        before["buyers"][0]["addresses"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(before["a@b.co registered"], false);
    let b = Some(buyer.token.as_str());
    let j = "application/json";

    // (method, path, token, content type, body, status, code)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("POST", "/api/v1/auth/register", None, j, b"{\"email\": ".to_vec(), 400, "malformed_json"),
        ("POST", "/api/v1/auth/register", None, j, b"not json at all".to_vec(), 400, "malformed_json"),
        ("POST", "/api/v1/auth/register", None, j, b"".to_vec(), 400, "malformed_json"),
        ("POST", "/api/v1/auth/register", None, j, br#"{"email": 5, "password": "x", "role": "buyer"}"#.to_vec(), 400, "invalid_body"),
        ("POST", "/api/v1/auth/register", None, j, br#"{"email": "a@b.co", "role": "buyer"}"#.to_vec(), 400, "invalid_body"),
        ("POST", "/api/v1/auth/register", None, j, br#"{"email": "a@b.co", "password": "long enough", "role": "admin"}"#.to_vec(), 422, "validation_failed"),
        ("POST", "/api/v1/auth/register", None, j, br#"{"email": "a@b.co", "password": "long enough", "role": "buyer", "is_admin": true}"#.to_vec(), 400, "invalid_body"),
        ("POST", "/api/v1/auth/register", None, "text/plain", br#"{"email": "a@b.co", "password": "long enough", "role": "buyer"}"#.to_vec(), 415, "unsupported_media_type"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": -1}}"#).into_bytes(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": 1e40}}"#).into_bytes(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": 99999999999999999999999}}"#).into_bytes(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": "2"}}"#).into_bytes(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": 1000}}"#).into_bytes(), 422, "validation_failed"),
        ("POST", "/api/v1/cart/items", b, j, format!(r#"{{"product_id": "{product}", "quantity": 0}}"#).into_bytes(), 422, "validation_failed"),
        ("POST", "/api/v1/cart/items", b, j, br#"{"product_id": "not-a-uuid", "quantity": 1}"#.to_vec(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, br#"{"product_id": "00000000-0000-0000-0000-000000000000", "quantity": 1}"#.to_vec(), 422, "validation_failed"),
        ("POST", "/api/v1/cart/items", b, j, br#"[1, 2, 3]"#.to_vec(), 400, "invalid_body"),
        ("POST", "/api/v1/cart/items", b, j, vec![0xff, 0xfe, 0x00], 400, "malformed_json"),
        ("POST", "/api/v1/me/addresses", b, j, br#"{"name": "A\u0000B", "line1": "x", "city": "y", "postal_code": "1", "country": "ZZ"}"#.to_vec(), 422, "validation_failed"),
        ("PATCH", "/api/v1/me", b, j, format!(r#"{{"name": "{}"}}"#, "é".repeat(101)).into_bytes(), 422, "validation_failed"),
        ("POST", "/api/v1/checkout", b, j, b"{}".to_vec(), 400, "missing_idempotency_key"),
        ("GET", "/api/v1/products?limit=abc", None, j, Vec::new(), 400, "invalid_query"),
        ("GET", "/api/v1/products?min_price=-5", None, j, Vec::new(), 422, "validation_failed"),
        ("GET", "/api/v1/products?cursor=%F0%9F%92%A9", None, j, Vec::new(), 422, "validation_failed"),
        ("GET", "/api/v1/products?sort=random", None, j, Vec::new(), 400, "invalid_query"),
        ("GET", "/api/v1/products/not-a-uuid", None, j, Vec::new(), 404, "not_found"),
        ("GET", "/api/v1/orders/12345", b, j, Vec::new(), 404, "not_found"),
        ("DELETE", "/api/v1/cart/items/%00", b, j, Vec::new(), 404, "not_found"),
        ("PUT", "/api/v1/cart", b, j, Vec::new(), 405, "method_not_allowed"),
    ];
    for (method, path, token, ct, body, status, code) in cases {
        let r = raw(&s, method, path, token, ct, body.clone()).await;
        assert!(
            r.status.as_u16() < 500,
            "{method} {path} answered {}",
            r.status
        );
        problem(&r, status, code);
        if status == 400 && code == "invalid_body" {
            assert!(
                !r.body["errors"][0]["field"].as_str().unwrap().is_empty(),
                "the field is named: {:?}",
                r.body
            );
        }
    }
    // Validation errors list every bad field at once.
    let r = s
        .post(
            "/api/v1/me/addresses",
            b,
            json!({"name": "", "line1": "", "city": "", "postal_code": "", "country": "XX"}),
        )
        .await;
    problem(&r, 422, "validation_failed");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 5);
    assert_eq!(
        census(&s, &products, &buyers).await,
        before,
        "nothing was written"
    );

    // Checkout of an empty cart, and of a short cart: 409 with every short item
    // listed, and nothing written (no order, no mail, stock and cart unchanged).
    problem(&s.checkout(&empty, "k", json!({})).await, 409, "cart_empty");
    let r = s
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"product_id": vase, "quantity": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for (id, stock) in [(&product, 0), (&vase, 2)] {
        let r = s
            .patch(
                &format!("/api/v1/seller/products/{id}"),
                Some(&seller.token),
                json!({"stock": stock}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let before = census(&s, &products, &buyers).await;
    let r = s
        .checkout(&buyer, "short", json!({"address_id": address}))
        .await;
    problem(&r, 409, "insufficient_stock");
    let mut short: Vec<(String, u64, u64)> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["product_id"].as_str().unwrap().to_owned(),
                i["requested"].as_u64().unwrap(),
                i["available"].as_u64().unwrap(),
            )
        })
        .collect();
    short.sort();
    let mut expected = vec![(product.clone(), 1, 0), (vase.clone(), 3, 2)];
    expected.sort();
    assert_eq!(short, expected, "every short item, with what is left");
    assert_eq!(
        census(&s, &products, &buyers).await,
        before,
        "a refused checkout writes nothing"
    );
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let s = TestServer::start().await;
    let big = format!(
        r#"{{"email": "a@b.co", "password": "{}", "role": "buyer"}}"#,
        "x".repeat(100_000)
    );
    let r = raw(
        &s,
        "POST",
        "/api/v1/auth/register",
        None,
        "application/json",
        big.into_bytes(),
    )
    .await;
    problem(&r, 413, "payload_too_large");
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let product = s.product(&seller, "Frame", 100, 1).await;
    let huge = vec![0u8; 6 * 1024 * 1024];
    let r = s.upload_image(&seller, &product, huge, "big.png").await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = s
        .upload_image(
            &seller,
            &product,
            b"GIF89a not accepted".to_vec(),
            "cat.png",
        )
        .await;
    problem(&r, 415, "unsupported_media_type");
    assert!(
        s.get(&format!("/api/v1/products/{product}"), None)
            .await
            .body["images"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let s = TestServer::start().await;
    let buyer = s.buyer().await;
    let parts: Vec<&str> = buyer.token.split('.').collect();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let sign = |header: &str, claims: &Value, key: &[u8]| {
        let h = jsonwebtoken::Header::new(match header {
            "HS512" => jsonwebtoken::Algorithm::HS512,
            _ => jsonwebtoken::Algorithm::HS256,
        });
        jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
    };
    let secret = b"end-to-end-test-secret-of-at-least-32-bytes";
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 10);
    let mut admin = claims.clone();
    admin["role"] = json!("admin");
    let tokens = vec![
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        ),
        sign(
            "HS256",
            &claims,
            b"some-other-secret-of-at-least-32-bytes!!",
        ),
        sign("HS512", &claims, secret),
        sign("HS256", &expired, secret),
        sign("HS256", &admin, secret),
        format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(admin.to_string()),
            parts[2]
        ),
        "garbage".to_owned(),
        String::new(),
    ];
    for t in tokens {
        let r = s.get("/api/v1/me", Some(&t)).await;
        problem(&r, 401, "unauthenticated");
        assert_eq!(r.headers.get("www-authenticate").unwrap(), "Bearer");
    }
    let r = s
        .http
        .get(format!("{}/api/v1/me", s.base))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    problem(&Api::read(r).await, 401, "unauthenticated");
    assert_eq!(
        s.get("/api/v1/me", Some(&buyer.token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn login_throttling_answers_429_with_retry_after() {
    let s = TestServer::start().await;
    let buyer = s.buyer().await;
    for _ in 0..5 {
        let r = s
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": buyer.email, "password": "wrong password"}),
            )
            .await;
        problem(&r, 401, "invalid_credentials");
    }
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": buyer.email, "password": "correct horse"}),
        )
        .await;
    problem(&r, 429, "rate_limited");
    let wait: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 900);
    // An unknown account answers exactly like a wrong password.
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ghost@example.com", "password": "wrong password"}),
        )
        .await;
    problem(&r, 401, "invalid_credentials");
}

/// A server on a fresh SQLite file whose earnings are released at delivery and
/// whose minimum payout is a cent, so a test can hold a payout at once.
async fn money_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let mut settings = TestServer::settings(&url, &dir);
    settings.return_window = std::time::Duration::ZERO;
    settings.minimum_payout = Some("0.01".to_owned());
    TestServer::start_with(settings, dir).await
}

#[tokio::test]
async fn bad_money_input_is_refused_and_changes_nothing() {
    let s = money_server().await;
    let admin = s.admin().await;
    let seller = s.seller(&admin).await;
    let buyer = s.buyer().await;
    let (a, se) = (Some(admin.token.as_str()), Some(seller.token.as_str()));
    // A rule, a delivered and released sale, and a payout waiting to be settled.
    let r = s
        .call(
            reqwest::Method::PUT,
            "/api/v1/admin/commission-rules/default",
            a,
            Some(json!({"rate_bps": 1000})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let product = s.product(&seller, "Lamp", 2500, 5).await;
    let r = s
        .post(
            "/api/v1/cart/items",
            Some(&buyer.token),
            json!({"product_id": product, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let address = s.address(&buyer).await;
    let r = s
        .checkout(&buyer, "sale", json!({"address_id": address}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let order = r.body["orders"][0]["id"].as_str().unwrap().to_owned();
    for status in ["accepted", "packed", "shipped", "delivered"] {
        let r = s
            .post(
                &format!("/api/v1/seller/orders/{order}/status"),
                se,
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(s.app.market.release_earnings(10).await.unwrap(), 1);
    let r = s.post("/api/v1/admin/payouts", a, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let payout = r.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["items"][0]["amount"]["amount"], 2250);

    let census = || async {
        json!({
            "rules": read(&s, "/api/v1/admin/commission-rules", a).await,
            "balances": read(&s, "/api/v1/admin/balances", a).await,
            "payouts": read(&s, "/api/v1/admin/payouts", a).await,
            "ledger": read(&s, "/api/v1/seller/ledger", se).await,
            "order": read(&s, &format!("/api/v1/seller/orders/{order}"), se).await,
        })
    };
    let before = census().await;
    assert_eq!(before["payouts"]["items"][0]["status"], "requested");
    assert_eq!(before["ledger"]["items"].as_array().map(Vec::len), Some(3));

    let j = "application/json";
    let nobody = uuid::Uuid::new_v4();
    let paid = format!("/api/v1/admin/payouts/{payout}/paid");
    let failed = format!("/api/v1/admin/payouts/{payout}/failed");
    let default = "/api/v1/admin/commission-rules/default";
    let long = "r".repeat(201);
    // (method, path, token, body, status, code, the field named in `errors`)
    type Case<'a> = (
        &'a str,
        String,
        Option<&'a str>,
        String,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let q = |p: &str| format!("/api/v1{p}");
    let cases: Vec<Case> = vec![
        ("GET", q("/seller/payouts?status=bogus"), se, String::new(), 400, "invalid_query", Some("status")),
        ("GET", q("/seller/payouts?limit=-1"), se, String::new(), 400, "invalid_query", Some("limit")),
        ("GET", q("/seller/payouts?limit=99999999999"), se, String::new(), 400, "invalid_query", Some("limit")),
        ("GET", q("/seller/payouts?cursor=%F0%9F%92%A9"), se, String::new(), 422, "validation_failed", Some("cursor")),
        ("GET", q("/seller/ledger?cursor=bm90LWEtY3Vyc29y"), se, String::new(), 422, "validation_failed", Some("cursor")),
        ("GET", q("/seller/ledger?limit=ten"), se, String::new(), 400, "invalid_query", Some("limit")),
        ("GET", q("/seller/statement?from=yesterday"), se, String::new(), 400, "invalid_query", Some("from")),
        ("GET", q("/seller/statement.csv?to=2026-13-01"), se, String::new(), 400, "invalid_query", Some("to")),
        ("GET", q("/seller/statement?from=2026-12-01&to=2026-11-01"), se, String::new(), 422, "validation_failed", Some("from")),
        ("GET", q("/seller/statement.csv?from=2026-12-01T00:00:00Z&to=2026-11-01"), se, String::new(), 422, "validation_failed", Some("from")),
        ("GET", q("/seller/payouts/not-a-uuid"), se, String::new(), 404, "not_found", None),
        ("GET", q(&format!("/seller/payouts/{nobody}")), se, String::new(), 404, "not_found", None),
        ("GET", q("/admin/reports/commission?by=week"), a, String::new(), 400, "invalid_query", Some("by")),
        ("GET", q("/admin/reports/commission?from=2026-12-01&to=2026-11-01"), a, String::new(), 422, "validation_failed", Some("from")),
        ("GET", q("/admin/reports/commission?to=%00"), a, String::new(), 400, "invalid_query", Some("to")),
        ("GET", q("/admin/payouts?seller_id=not-a-uuid"), a, String::new(), 400, "invalid_query", Some("seller_id")),
        ("GET", q("/admin/payouts?status=PAID"), a, String::new(), 400, "invalid_query", Some("status")),
        ("GET", q(&format!("/admin/payouts/{nobody}")), a, String::new(), 404, "not_found", None),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 1000, "extra": 1}"#.into(), 400, "invalid_body", None),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": -5}"#.into(), 400, "invalid_body", Some("rate_bps")),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 1e40}"#.into(), 400, "invalid_body", Some("rate_bps")),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": "10"}"#.into(), 400, "invalid_body", Some("rate_bps")),
        ("PUT", default.to_owned(), a, "{}".into(), 400, "invalid_body", None),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 10001}"#.into(), 422, "validation_failed", Some("rate_bps")),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 100, "fixed_fee": {"amount": 5, "currency": "EUR"}}"#.into(), 422, "validation_failed", Some("fixed_fee")),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 100, "minimum": {"amount": 50, "currency": "USD"}, "maximum": {"amount": 10, "currency": "USD"}}"#.into(), 422, "validation_failed", Some("minimum")),
        ("PUT", default.to_owned(), a, r#"{"rate_bps": 100, "maximum": {"amount": -1, "currency": "USD"}}"#.into(), 422, "validation_failed", Some("maximum")),
        ("PUT", q(&format!("/admin/commission-rules/categories/{nobody}")), a, r#"{"rate_bps": 100}"#.into(), 404, "not_found", None),
        ("PUT", q(&format!("/admin/commission-rules/sellers/{}", buyer.id)), a, r#"{"rate_bps": 100}"#.into(), 404, "not_found", None),
        ("DELETE", q(&format!("/admin/commission-rules/sellers/{}", seller.id)), a, String::new(), 404, "not_found", None),
        ("POST", q("/admin/payouts"), a, r#"{"seller_id": "nope"}"#.into(), 400, "invalid_body", Some("seller_id")),
        ("POST", q("/admin/payouts"), a, r#"{"sellers": []}"#.into(), 400, "invalid_body", None),
        ("POST", q("/admin/payouts"), a, format!(r#"{{"seller_id": "{}"}}"#, buyer.id), 404, "not_found", None),
        ("POST", q(&format!("/admin/payouts/{nobody}/paid")), a, r#"{"reference": "x"}"#.into(), 404, "not_found", None),
        ("POST", paid.clone(), a, "{}".into(), 400, "invalid_body", None),
        ("POST", paid.clone(), a, r#"{"reference": 5}"#.into(), 400, "invalid_body", Some("reference")),
        ("POST", paid.clone(), a, r#"{"reference": "   "}"#.into(), 422, "validation_failed", Some("reference")),
        ("POST", paid.clone(), a, format!(r#"{{"reference": "{long}"}}"#), 422, "validation_failed", Some("reference")),
        ("POST", paid.clone(), a, r#"{"reference": "BANK\u0000-1"}"#.into(), 422, "validation_failed", Some("reference")),
        ("POST", failed.clone(), a, r#"{"reason": ""}"#.into(), 422, "validation_failed", Some("reason")),
        ("POST", failed.clone(), a, r#"{"reason": "x", "refund": true}"#.into(), 400, "invalid_body", None),
    ];
    for (method, path, token, body, status, code, field) in cases {
        let r = raw(&s, method, &path, token, j, body.into_bytes()).await;
        assert!(
            r.status.as_u16() < 500,
            "{method} {path} answered {}",
            r.status
        );
        eprintln!("{method} {path}");
        problem(&r, status, code);
        let named = r.body["errors"][0]["field"].as_str().unwrap_or("");
        match field {
            Some(f) => assert_eq!(named, f, "{method} {path}: {:?}", r.body),
            None if code == "invalid_body" => {
                assert!(!named.is_empty(), "{method} {path}: {:?}", r.body)
            }
            None => {}
        }
    }
    // A body that is not JSON, and one too large.
    let r = raw(
        &s,
        "POST",
        "/api/v1/admin/payouts",
        a,
        "text/plain",
        b"pay".to_vec(),
    )
    .await;
    problem(&r, 415, "unsupported_media_type");
    let big = format!(r#"{{"reference": "{}"}}"#, "x".repeat(100_000));
    problem(
        &raw(&s, "POST", &paid, a, j, big.into_bytes()).await,
        413,
        "payload_too_large",
    );
    // A buyer is refused the money routes before anything is looked at.
    let b = Some(buyer.token.as_str());
    for path in [
        "/api/v1/seller/balance",
        "/api/v1/seller/statement.csv",
        "/api/v1/admin/balances",
    ] {
        problem(&s.get(path, b).await, 403, "forbidden");
    }
    assert_eq!(census().await, before, "nothing was written");
}
