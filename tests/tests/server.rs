//! The listener around the routes: CORS and graceful shutdown.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_e2e::TestServer;
use reqwest::StatusCode;
use server_warp::serve::Cors;

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TestServer::settings("memory:", &dir);
    settings.cors = Cors::parse("https://shop.example, https://admin.example/");
    let s = TestServer::start_with(settings, dir).await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, format!("{}/api/v1/cart", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://admin.example").await.unwrap();
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://admin.example"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let get = s
        .http
        .get(format!("{}/api/v1/products", s.base))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(
        get.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );
    let other = s
        .http
        .get(format!("{}/api/v1/products", s.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn shutdown_finishes_requests_then_stops_listening() {
    let base = TestServer::start().await;
    let (app, listener) = (
        base.app.clone(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server_warp::serve::serve(
        listener,
        app,
        Cors::Off,
        async move {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/healthz");
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    tx.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("the server stops promptly once idle")
        .unwrap();
    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "no longer accepting connections"
    );
}
