//! Test harness: a real `marketplace-server` stack bound to `127.0.0.1:0` in the
//! test process, a small JSON client to drive it as outside clients do, servers in
//! OS processes of their own for tests that kill one or run two ([`process`]), a
//! real SMTP server for the email tests ([`smtp`]), and the PostgreSQL and MongoDB
//! servers some tests need, with how a test without one is skipped ([`servers`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use marketplace_core::{HashCost, Mailer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server_warp::{App, Settings};

pub mod process;
pub mod servers;
pub mod smtp;

pub use servers::{
    MONGODB_ENV, POSTGRES_ENV, PgSchema, S3_ENV, mongodb_database, postgres_schema, s3_bucket,
    skipped, under_ci,
};

/// An HTTP client of one marketplace server, calling it as outside clients do.
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The client.
    pub http: reqwest::Client,
}

/// A server running in this process; its HTTP client is reached through `Deref`
/// (`server.get(...)`, `server.base`).
pub struct TestServer {
    /// The server's HTTP client.
    pub api: Api,
    /// The application behind it, for setup no HTTP route offers (admins) and for
    /// checking state directly.
    pub app: App,
    /// The mailer the settings picked (the outbox worker's), for tests that run
    /// workers themselves.
    pub mailer: Arc<dyn Mailer>,
    _media: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    seq: AtomicU32,
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
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

impl Api {
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
        Api::read(req.send().await.unwrap()).await
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

    /// `POST /api/v1/checkout` with an `Idempotency-Key`.
    pub async fn checkout(&self, who: &Session, key: &str, body: Value) -> Reply {
        let req = self
            .http
            .post(format!("{}/api/v1/checkout", self.base))
            .bearer_auth(&who.token)
            .header("Idempotency-Key", key)
            .json(&body);
        Api::read(req.send().await.unwrap()).await
    }

    /// Uploads `bytes` as a product image (multipart field `image`).
    pub async fn upload_image(
        &self,
        seller: &Session,
        product: &str,
        bytes: Vec<u8>,
        file_name: &str,
    ) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let req = self
            .http
            .post(format!(
                "{}/api/v1/seller/products/{product}/images",
                self.base
            ))
            .bearer_auth(&seller.token)
            .multipart(reqwest::multipart::Form::new().part("image", part));
        Api::read(req.send().await.unwrap()).await
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

    /// Registers an account over HTTP (`body` as `POST /api/v1/auth/register`
    /// takes it); returns its id.
    pub async fn register(&self, body: Value) -> String {
        let r = self.post("/api/v1/auth/register", None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
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

    /// `admin` verifies the seller `id`.
    pub async fn verify_seller(&self, admin: &Session, id: &str) {
        let v = self
            .post(
                &format!("/api/v1/admin/sellers/{id}/verify"),
                Some(&admin.token),
                json!({}),
            )
            .await;
        assert_eq!(v.status, StatusCode::OK, "{:?}", v.body);
    }
}

impl TestServer {
    /// Starts a server on a fresh SQLite file (the embedded default) with cheap
    /// password hashing and no background mail worker.
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
        Self::start_on(&url, dir).await
    }

    /// Starts a server on the in-memory store (for tests that build many fixtures).
    pub async fn start_memory() -> TestServer {
        Self::start_on("memory:", tempfile::tempdir().unwrap()).await
    }

    /// Test settings: `database_url`, a fixed secret, media in `dir`, cheap hashing,
    /// no background mail worker.
    pub fn settings(database_url: &str, dir: &tempfile::TempDir) -> Settings {
        let mut settings = Settings::default();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.database_url = database_url.to_owned();
        settings.jwt_secret = Some("end-to-end-test-secret-of-at-least-32-bytes".into());
        settings.media_dir = dir.path().join("media");
        settings.hash_cost = HashCost::FAST_INSECURE;
        settings.outbox_poll = std::time::Duration::ZERO;
        if !settings.local_store() {
            // Required with a shared database; the tests read image URLs by
            // their key, after `/media/`.
            settings.public_url = Some("http://marketplace.test".into());
        }
        settings
    }

    /// Starts a server on `url`, with media and other files in `dir`.
    pub async fn start_on(url: &str, dir: tempfile::TempDir) -> TestServer {
        let settings = Self::settings(url, &dir);
        Self::start_with(settings, dir).await
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
            settings.trusted_proxies.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            api: Api {
                base,
                http: reqwest::Client::new(),
            },
            app,
            mailer,
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

    /// Registers a buyer over HTTP and logs in.
    pub async fn buyer(&self) -> Session {
        let email = self.email("buyer");
        self.register(
            json!({"email": email, "password": "correct horse", "role": "buyer", "name": "Ada"}),
        )
        .await;
        self.login(&email, "correct horse").await
    }

    /// Registers a seller over HTTP, has an admin verify it, and logs in.
    pub async fn seller(&self, admin: &Session) -> Session {
        let email = self.email("seller");
        let id = self
            .register(json!({"email": email, "password": "correct horse", "role": "seller", "store_name": format!("Store {email}")}))
            .await;
        self.verify_seller(admin, &id).await;
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
}

/// What an audit of a store found (after it checked every invariant).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// Checkouts found.
    pub checkouts: usize,
    /// Orders found.
    pub orders: usize,
    /// Units held by live (not cancelled or returned) orders.
    pub units_sold: u64,
}

/// Checks the invariants of a store whose products started with `initial` stock,
/// panicking on the first violation: stock never below zero and
/// `initial == left + units in live orders` per product; every order has items
/// and a total equal to their sum; every checkout belongs to one buyer and has
/// exactly one confirmation mail naming each of its orders, and every order one
/// new-order mail; at most one checkout per buyer when `one_per_buyer`.
pub async fn audit(
    storage: &dyn marketplace_core::Storage,
    initial: &std::collections::HashMap<marketplace_core::ProductId, u32>,
    one_per_buyer: bool,
) -> Audit {
    use std::collections::{HashMap, HashSet};

    use marketplace_core::order::OrderQuery;
    use marketplace_core::outbox::OutboxQuery;

    let mut orders = Vec::new();
    let mut after = None;
    loop {
        let q = OrderQuery {
            buyer_id: None,
            seller_id: None,
            status: None,
            after,
            limit: 1000,
        };
        let page = storage.list_orders(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(marketplace_core::order::OrderKey {
            created_at: last.created_at,
            id: last.id,
        });
        orders.extend(page);
    }
    let mails = storage
        .list_outbox(&OutboxQuery {
            status: None,
            after: None,
            limit: 1_000_000,
        })
        .await
        .unwrap();

    let mut sold: HashMap<_, u64> = HashMap::new();
    let mut checkouts: HashMap<_, Vec<&marketplace_core::Order>> = HashMap::new();
    for o in &orders {
        assert!(!o.items.is_empty(), "order {} has no items", o.id);
        let sum: i64 = o.items.iter().map(|i| i.line_total.amount).sum();
        assert_eq!(o.total.amount, sum, "order {} total", o.id);
        if o.status.holds_stock() {
            for (p, n) in o.units() {
                *sold.entry(p).or_default() += u64::from(n);
            }
        }
        checkouts.entry(o.checkout_id).or_default().push(o);
    }
    for (product, start) in initial {
        let left = storage.product(*product).await.unwrap().unwrap().stock;
        let units = sold.get(product).copied().unwrap_or(0);
        assert_eq!(
            u64::from(left) + units,
            u64::from(*start),
            "stock accounting of {product}: {left} left, {units} sold"
        );
    }
    let mut buyers = HashSet::new();
    for (checkout, its) in &checkouts {
        let buyer = its[0].buyer_id;
        assert!(
            its.iter().all(|o| o.buyer_id == buyer),
            "checkout {checkout} mixes buyers"
        );
        if one_per_buyer {
            assert!(buyers.insert(buyer), "buyer {buyer} has two checkouts");
        }
        let confirmations: Vec<_> = mails
            .iter()
            .filter(|m| {
                m.kind == "order_confirmation" && m.text_body.contains(&checkout.to_string())
            })
            .collect();
        assert_eq!(
            confirmations.len(),
            1,
            "checkout {checkout} has exactly one confirmation"
        );
        for o in its {
            assert!(
                confirmations[0].text_body.contains(&o.id.to_string()),
                "confirmation lists {}",
                o.id
            );
            let new_order = mails
                .iter()
                .filter(|m| m.kind == "new_order" && m.text_body.contains(&o.id.to_string()))
                .count();
            assert_eq!(
                new_order, 1,
                "order {} has exactly one new-order mail",
                o.id
            );
        }
    }
    let confirmations = mails
        .iter()
        .filter(|m| m.kind == "order_confirmation")
        .count();
    assert_eq!(
        confirmations,
        checkouts.len(),
        "no confirmation without its checkout"
    );
    Audit {
        checkouts: checkouts.len(),
        orders: orders.len(),
        units_sold: sold.values().sum(),
    }
}
