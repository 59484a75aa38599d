//! Behind a load balancer: the login throttle counts failures per real client
//! when the balancer is a trusted proxy (`MARKETPLACE_TRUSTED_PROXIES`), and
//! ignores forwarding headers from anyone else, so a client cannot pick the
//! address it is throttled under.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_e2e::{Api, TestServer};
use marketplace_host::proxy::TrustedProxies;
use serde_json::json;

/// A failed login (a wrong password for a fresh email) as `client` says.
async fn fail(api: &Api, n: usize, client: &str) -> u16 {
    api.http
        .post(format!("{}/api/v1/auth/login", api.base))
        .header("x-forwarded-for", client)
        .json(&json!({"email": format!("nobody{n}@example.com"), "password": "wrong password"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn server(trusted: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TestServer::settings("memory:", &dir);
    settings.trusted_proxies = TrustedProxies::parse(trusted).unwrap();
    TestServer::start_with(settings, dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_throttle_counts_the_client_a_trusted_balancer_names() {
    // The test connects from 127.0.0.1: here, the trusted balancer.
    let s = server("127.0.0.1").await;
    let limit = 20; // failures per client address in the window (the default)
    for n in 0..limit {
        assert_eq!(fail(&s, n, "198.51.100.1").await, 401);
    }
    assert_eq!(
        fail(&s, 100, "198.51.100.1").await,
        429,
        "that client is throttled"
    );
    // Another client behind the same balancer is not.
    assert_eq!(fail(&s, 101, "198.51.100.2").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let s = server("").await;
    // Every failure counts against the peer, whatever address it claims.
    for n in 0..20 {
        assert_eq!(fail(&s, n, &format!("203.0.113.{n}")).await, 401);
    }
    assert_eq!(fail(&s, 100, "203.0.113.200").await, 429);
}
