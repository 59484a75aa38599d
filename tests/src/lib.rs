//! Test harness: a real `marketplace-server` stack bound to `127.0.0.1:0` in the
//! test process, a small JSON client to drive it as outside clients do, and a real
//! SMTP server for the email tests ([`smtp`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use marketplace_core::{HashCost, Mailer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server_warp::{App, Settings};

pub mod smtp;

/// A server running in this process.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The application behind it, for setup no HTTP route offers (admins) and for
    /// checking state directly.
    pub app: App,
    /// The mailer the settings picked (the outbox worker's), for tests that run
    /// workers themselves.
    pub mailer: Arc<dyn Mailer>,
    /// The client.
    pub http: reqwest::Client,
    _media: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    seq: AtomicU32,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A signed-in account.
#[derive(Clone, Debug)]
pub struct Session {
    /// Its access token.
    pub token: String,
    /// Its user id.
    pub id: String,
    /// Its email.
    pub email: String,
}

/// A response: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Value,
}

impl TestServer {
    /// Starts a server on the in-memory store with cheap password hashing.
    pub async fn start() -> TestServer {
        let media = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.jwt_secret = Some("end-to-end-test-secret-of-at-least-32-bytes".into());
        settings.media_dir = media.path().to_owned();
        settings.hash_cost = HashCost::FAST_INSECURE;
        settings.outbox_poll = std::time::Duration::ZERO;
        Self::start_with(settings, media).await
    }

    /// Starts a server with `settings` (its listen address is replaced by an
    /// ephemeral port).
    pub async fn start_with(settings: Settings, media: tempfile::TempDir) -> TestServer {
        let (app, mailer) = server_warp::build(&settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server_warp::serve::serve(
            listener,
            app.clone(),
            settings.cors.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            base,
            app,
            mailer,
            http: reqwest::Client::new(),
            _media: media,
            stop: Some(tx),
            seq: AtomicU32::new(0),
        }
    }

    /// A unique email.
    pub fn email(&self, who: &str) -> String {
        format!(
            "{who}{}@example.com",
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Reads a response.
    pub async fn read(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, token, None).await
    }

    /// Logs in over HTTP.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login of {email}: {:?}", r.body);
        let token = r.body["access_token"].as_str().unwrap().to_owned();
        let me = self.get("/api/v1/me", Some(&token)).await;
        Session {
            token,
            id: me.body["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
        }
    }

    /// Registers a buyer over HTTP and logs in.
    pub async fn buyer(&self) -> Session {
        let email = self.email("buyer");
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse", "role": "buyer", "name": "Ada"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        self.login(&email, "correct horse").await
    }

    /// Registers a seller over HTTP, has an admin verify it, and logs in.
    pub async fn seller(&self, admin: &Session) -> Session {
        let email = self.email("seller");
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse", "role": "seller", "store_name": format!("Store {email}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let v = self
            .post(
                &format!("/api/v1/admin/sellers/{id}/verify"),
                Some(&admin.token),
                json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
        self.login(&email, "correct horse").await
    }

    /// Creates an admin the way an operator does, and logs in.
    pub async fn admin(&self) -> Session {
        let email = self.email("admin");
        self.app
            .market
            .create_admin(&email, "correct horse")
            .await
            .unwrap();
        self.login(&email, "correct horse").await
    }

    /// A product of `seller`.
    pub async fn product(&self, seller: &Session, title: &str, cents: i64, stock: u32) -> String {
        let r = self
            .post(
                "/api/v1/seller/products",
                Some(&seller.token),
                json!({"title": title, "description": "d", "price": {"amount": cents, "currency": "USD"}, "stock": stock}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// An address of `buyer`.
    pub async fn address(&self, buyer: &Session) -> String {
        let r = self
            .post(
                "/api/v1/me/addresses",
                Some(&buyer.token),
                json!({"name": "Ada Buyer", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }
}
