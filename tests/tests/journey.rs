//! The whole marketplace as clients use it, over HTTP.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_e2e::TestServer;
use reqwest::StatusCode;
use serde_json::json;

/// An admin verifies sellers, two sellers list products, a buyer fills a cart
/// from both, checks out into two orders, the sellers advance them to delivered,
/// the buyer sees the history, and the outbox holds the expected mails.
#[tokio::test]
async fn a_buyer_buys_from_two_sellers() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let (books, teas) = (s.seller(&admin).await, s.seller(&admin).await);
    let novel = s.product(&books, "Novel", 1899, 5).await;
    let tea = s.product(&teas, "Sencha", 850, 20).await;
    let listed = s.get("/api/v1/products?limit=10", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    assert!(listed.body["next_cursor"].is_null());

    let buyer = s.buyer().await;
    let address = s.address(&buyer).await;
    let t = Some(buyer.token.as_str());
    assert_eq!(
        s.post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": novel, "quantity": 1})
        )
        .await
        .status,
        StatusCode::OK
    );
    let cart = s
        .post(
            "/api/v1/cart/items",
            t,
            json!({"product_id": tea, "quantity": 3}),
        )
        .await;
    assert_eq!(cart.body["sellers"].as_array().unwrap().len(), 2);
    assert_eq!(
        cart.body["total"],
        json!({"amount": 1899 + 3 * 850, "currency": "USD"})
    );

    let checkout = s
        .checkout(&buyer, "journey-1", json!({"address_id": address}))
        .await;
    assert_eq!(checkout.status, StatusCode::CREATED, "{:?}", checkout.body);
    let orders = checkout.body["orders"].as_array().unwrap().clone();
    assert_eq!(orders.len(), 2);
    let checkout_id = checkout.body["checkout_id"].as_str().unwrap();
    assert!(
        orders
            .iter()
            .all(|o| o["checkout_id"] == checkout_id && o["status"] == "pending")
    );
    assert!(
        s.get("/api/v1/cart", t).await.body["sellers"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A retry with the same key returns the same checkout.
    let replay = s
        .checkout(&buyer, "journey-1", json!({"address_id": address}))
        .await;
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        (replay.status, replay.body["checkout_id"].as_str()),
        (StatusCode::OK, Some(checkout_id))
    );

    for seller in [&books, &teas] {
        let mine = s.get("/api/v1/seller/orders", Some(&seller.token)).await;
        let items = mine.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "each seller sees exactly its own order");
        let id = items[0]["id"].as_str().unwrap();
        for status in ["accepted", "packed", "shipped", "delivered"] {
            let r = s
                .post(
                    &format!("/api/v1/seller/orders/{id}/status"),
                    Some(&seller.token),
                    json!({"status": status}),
                )
                .await;
            assert_eq!(
                (r.status, r.body["status"].as_str()),
                (StatusCode::OK, Some(status))
            );
        }
    }
    let history = s.get("/api/v1/orders", t).await;
    let mine = history.body["items"].as_array().unwrap();
    assert_eq!(mine.len(), 2);
    for o in mine {
        assert_eq!(o["status"], "delivered");
        let steps: Vec<_> = o["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["to"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["pending", "accepted", "packed", "shipped", "delivered"]
        );
    }
    let stock = s.get(&format!("/api/v1/products/{novel}"), None).await;
    assert_eq!(stock.body["stock"], 4);

    let outbox = s
        .get("/api/v1/admin/outbox?limit=100", Some(&admin.token))
        .await;
    let mails = outbox.body["items"].as_array().unwrap();
    let count = |kind: &str| mails.iter().filter(|m| m["kind"] == kind).count();
    assert_eq!(count("order_confirmation"), 1);
    assert_eq!(count("new_order"), 2);
    assert_eq!(count("status_changed"), 8);
    assert_eq!(count("seller_decision"), 2);
    let confirmation = mails
        .iter()
        .find(|m| m["kind"] == "order_confirmation")
        .unwrap();
    assert_eq!(confirmation["recipient"], buyer.email.as_str());
}

/// Operations endpoints answer, responses carry request ids, and the OpenAPI
/// document describes every route.
#[tokio::test]
async fn operations_endpoints() {
    let s = TestServer::start().await;
    let h = s.get("/healthz", None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert!(h.headers.get("x-request-id").is_some());
    assert_eq!(s.get("/readyz", None).await.status, StatusCode::OK);
    let mine = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        mine.headers().get("x-request-id").unwrap(),
        "trace-me-42",
        "a caller's request id is kept"
    );
    let doc = s.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/checkout",
        "/api/v1/products",
        "/api/v1/seller/orders/{id}/status",
        "/api/v1/admin/outbox",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    let checkout = &doc.body["paths"]["/api/v1/checkout"]["post"]["responses"];
    for code in ["201", "400", "401", "403", "409", "422"] {
        assert!(checkout.get(code).is_some(), "checkout documents {code}");
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    let nowhere = s.get("/api/v1/nowhere", None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(
        nowhere.headers.get("content-type").unwrap(),
        "application/problem+json"
    );
}
