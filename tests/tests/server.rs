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

/// Graceful shutdown with a request in flight: a registration whose body is
/// still being uploaded when shutdown begins. The listener closes at once (new
/// connections are refused while that request is still open), the request
/// completes with `201 Created` and its account is kept, and then the server
/// stops.
#[tokio::test]
async fn shutdown_finishes_requests_then_stops_listening() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::{Duration, Instant, sleep, timeout};

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
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));

    // The request's head, asking to be told when the handler starts reading the
    // body (`Expect: 100-continue`), then half of the body.
    let body = r#"{"email": "late@example.com", "password": "correct horse", "role": "buyer"}"#;
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 256];
    let n = timeout(Duration::from_secs(10), conn.read(&mut interim))
        .await
        .expect("the server reads the request")
        .unwrap();
    let interim = String::from_utf8_lossy(&interim[..n]);
    assert!(
        interim.starts_with("HTTP/1.1 100"),
        "the handler is reading the body: {interim:?}"
    );
    conn.write_all(first_half.as_bytes()).await.unwrap();

    // Shutdown begins with the request in flight: new connections are refused
    // while it is still open.
    tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections 5 s after shutdown began"
        );
        sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !server.is_finished(),
        "the server waits for the request in flight"
    );

    // The rest of the body: the request completes, and the connection closes.
    conn.write_all(second_half.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    timeout(Duration::from_secs(10), conn.read_to_end(&mut reply))
        .await
        .expect("the reply comes and the connection closes")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1.1 201"),
        "the request in flight completes: {reply}"
    );
    timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once the request is done")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting connections"
    );
    base.app
        .market
        .login("late@example.com", "correct horse", None)
        .await
        .expect("the account the request in flight created is kept");
}
