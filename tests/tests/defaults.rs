//! The server as a newcomer starts it (`cargo run -p server-warp`): no
//! configuration, a SQLite file and a generated token secret in the working
//! directory, both kept across restarts, even after a SIGKILL.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_e2e::process::{ServerProcess, free_port};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
#[ignore = "the server process the tests of this file start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

#[tokio::test]
async fn an_unconfigured_server_keeps_accounts_data_and_logins_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = ServerProcess::start_unconfigured(dir.path(), port).await;

    server
        .register(
            json!({"email": "ada@example.com", "password": "a long passphrase", "role": "buyer"}),
        )
        .await;
    let ada = server.login("ada@example.com", "a long passphrase").await;
    let r = server
        .post(
            "/api/v1/me/addresses",
            Some(&ada.token),
            json!({"name": "Ada Lovelace", "line1": "12 St James Square", "city": "London",
                   "postal_code": "SW1Y 4JH", "country": "GB"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let address = r.body["id"].as_str().unwrap().to_owned();

    // The store and the signing key are files in the working directory.
    let db = dir.path().join("marketplace.db");
    let secret = dir.path().join("marketplace.db.jwt-secret");
    assert!(db.is_file(), "no {}", db.display());
    let key = std::fs::read(&secret).unwrap();
    assert!(key.len() >= 32, "a {}-byte secret", key.len());

    server.kill(); // SIGKILL: nothing gets to flush on the way out
    let server = ServerProcess::start_unconfigured(dir.path(), port).await;

    // The access token issued before the restart still verifies: same key.
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        key,
        "the secret was replaced"
    );
    let me = server.get("/api/v1/me", Some(&ada.token)).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["email"], "ada@example.com");
    let addresses = server.get("/api/v1/me/addresses", Some(&ada.token)).await;
    assert_eq!(addresses.status, StatusCode::OK, "{:?}", addresses.body);
    let kept: Vec<_> = addresses.body["items"]
        .as_array()
        .or(addresses.body.as_array())
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, [address]);
    // And the password still logs in.
    server.login("ada@example.com", "a long passphrase").await;
}
