//! Many servers, one marketplace: three `marketplace-server` processes behind a
//! real load balancer (HAProxy, round-robin, started here on loopback), on one
//! PostgreSQL database and one S3-compatible bucket (moto), configured only by
//! the binary's variables.
//!
//! 1. The whole journey goes through the balancer, so consecutive requests land
//!    on different instances: a seller registers on one, is verified on
//!    another, uploads an image, a buyer buys, the seller ships.
//! 2. 300 buyers check out at once on two hot products (less stock than
//!    demand) while one instance is SIGKILLed and started again; a client
//!    whose request was cut repeats it with the same `Idempotency-Key`, as a
//!    browser's retry does.
//! 3. Afterwards the stock invariant holds (no oversell, stock + units in live
//!    orders == initial), each checkout has its mails, no mail arrived twice,
//!    every image is readable through every instance, and the login throttle
//!    counts the real client behind the balancer, across instances: a client
//!    guessing from one address is refused after its limit, whatever headers it
//!    forges, while another address signs in.
//!
//! The killed instance runs no mail worker: delivery over SMTP is at least
//! once across a crash in the middle of a send (the Message-ID, the outbox
//! id, lets receivers drop the copy), which `email.rs` covers; here a
//! duplicate would mean two workers shared a lease.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use marketplace_e2e::process::{ServerProcess, free_port};
use marketplace_e2e::smtp::{SMTP_USER, SmtpOptions, SmtpServer};
use marketplace_e2e::{Api, Reply, Session, audit, postgres_schema, s3_bucket};
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "correct horse";
const BUYERS: usize = 300;
const HOT_STOCK: u32 = 110;
/// `MARKETPLACE_TRUSTED_PROXIES`: HAProxy connects from loopback.
const PROXY: &str = "127.0.0.1";

#[tokio::test]
#[ignore = "the server process the tests of this file start"]
async fn server_process() {
    marketplace_e2e::process::serve().await;
}

/// HAProxy in the foreground on loopback, round-robin over `backends`, killed
/// when dropped.
struct Balancer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(backends: &[u16]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(port, backends)).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-q", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start haproxy (Debian package `haproxy`): {e}"));
        Balancer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample configuration of the README's "running several instances", on
/// loopback ports. The client's own `Forwarded` header is dropped and
/// `X-Forwarded-For` gets the address HAProxy saw appended, which the
/// instances believe from [`PROXY`] only. A request refused at connect (an
/// instance down) is sent to another; health checks take a dead instance out
/// within a fraction of a second.
fn haproxy_config(port: u16, backends: &[u16]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server shop{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 2\n"))
        .collect();
    format!(
        "global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch

frontend marketplace
    bind 127.0.0.1:{port}
    http-request del-header forwarded
    option forwardfor
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /readyz
{servers}"
    )
}

/// A client of the balancer whose connections come from `source` (another
/// loopback address is another client).
fn client_from(base: &str, source: IpAddr) -> Api {
    Api {
        base: base.to_owned(),
        http: reqwest::Client::builder()
            .local_address(source)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    }
}

/// Sends `req` until an answer that is not the balancer's or a cut
/// connection's (502/503/504, or no answer): what a client of a marketplace
/// behind a load balancer does with a request it may repeat.
async fn until_answered(make: impl Fn() -> reqwest::RequestBuilder) -> Reply {
    for _ in 0..40 {
        match make().send().await {
            Ok(r)
                if !matches!(
                    r.status(),
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                ) =>
            {
                return Api::read(r).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no answer after 40 attempts");
}

async fn instance(port: u16, vars: &[(&'static str, String)]) -> ServerProcess {
    ServerProcess::start(port, vars).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    any(no_postgres, no_s3, no_haproxy, no_smtp),
    ignore = "needs TEST_POSTGRES_URL (PostgreSQL), TEST_S3_URL (an S3-compatible server such as moto), haproxy on PATH and a Python with aiosmtpd, see README"
)]
async fn three_instances_behind_haproxy_are_one_marketplace() {
    let test = "three_instances_behind_haproxy_are_one_marketplace";
    let Some(schema) = postgres_schema(test).await else {
        return;
    };
    let Some(bucket) = s3_bucket(test).await else {
        return;
    };
    let Some(smtp) = SmtpServer::start(SmtpOptions::default()).await else {
        return;
    };
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let balancer = Balancer::start(&ports);
    let base = format!("http://127.0.0.1:{}", balancer.port);
    let vars = |mail: bool| {
        let mut v = bucket.clone();
        v.extend([
            ("DATABASE_URL", schema.url.clone()),
            ("MARKETPLACE_PUBLIC_URL", base.clone()),
            ("MARKETPLACE_TRUSTED_PROXIES", PROXY.to_owned()),
            ("MARKETPLACE_ADMIN_EMAIL", ADMIN.to_owned()),
            ("MARKETPLACE_ADMIN_PASSWORD", PASSWORD.to_owned()),
            (
                "MARKETPLACE_OUTBOX_POLL_MS",
                if mail { "50" } else { "0" }.to_owned(),
            ),
        ]);
        if mail {
            v.extend(smtp.mail_env(SMTP_USER));
        }
        v
    };
    let mut instances = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        // Instance 2 is the one killed: no mail worker (see the module doc).
        instances.push(instance(*port, &vars(i != 2)).await);
    }
    let lb = client_from(&base, "127.0.0.1".parse().unwrap());
    // The balancer answers once an instance is up; then every instance joins
    // its rotation.
    let ready = until_answered(|| lb.http.get(format!("{base}/readyz"))).await;
    assert_eq!(ready.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(800)).await;

    // 1. The journey, each step through the balancer.
    let admin = lb.login(ADMIN, PASSWORD).await;
    let seller_id = lb
        .register(json!({"email": "potter@example.com", "password": PASSWORD, "role": "seller", "store_name": "Pots"}))
        .await;
    lb.verify_seller(&admin, &seller_id).await;
    let seller = lb.login("potter@example.com", PASSWORD).await;
    let mut products = Vec::new();
    for (title, price) in [("Teapot", 2500), ("Mug", 900)] {
        products.push(lb.product(&seller, title, price, HOT_STOCK).await);
    }
    let png = marketplace_conformance::test_images::png(64, 48).to_vec();
    let mut images = Vec::new();
    for product in &products {
        let v = lb
            .upload_image(&seller, product, png.clone(), "pot.png")
            .await;
        assert_eq!(v.status, StatusCode::CREATED, "{:?}", v.body);
        let url = v.body["images"][0].as_str().unwrap().to_owned();
        assert!(
            url.starts_with(&format!("{base}/media/")),
            "images are named by the public URL, not an instance: {url}"
        );
        images.push(url);
    }
    let first = buyer(&lb, 0).await;
    let journey = buy(&lb, &first, &products[0], 1).await;
    assert_eq!(journey.status, StatusCode::CREATED, "{:?}", journey.body);
    let order = journey.body["orders"][0]["id"].as_str().unwrap().to_owned();
    for status in ["accepted", "packed", "shipped"] {
        let r = lb
            .post(
                &format!("/api/v1/seller/orders/{order}/status"),
                Some(&seller.token),
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{status}: {:?}", r.body);
    }

    // 2. 300 buyers, each with one unit of a hot product in the cart.
    let lb = Arc::new(lb);
    let mut prepared = Vec::new();
    // Ten at a time: every login from behind the balancer comes from one
    // address, whose attempts are counted while they run (20 at once would be
    // the throttle's limit).
    for chunk in (1..=BUYERS).collect::<Vec<_>>().chunks(10) {
        let batch = chunk.iter().map(|&i| {
            let (lb, product) = (lb.clone(), products[i % 2].clone());
            tokio::spawn(async move {
                let b = buyer(&lb, i).await;
                let r = lb
                    .post(
                        "/api/v1/cart/items",
                        Some(&b.0.token),
                        json!({"product_id": product, "quantity": 1}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
                b
            })
        });
        for b in futures_join(batch).await {
            prepared.push(b);
        }
    }
    let checkouts = prepared.into_iter().map(|(b, address)| {
        let lb = lb.clone();
        tokio::spawn(async move {
            let key = uuid::Uuid::new_v4().to_string();
            until_answered(|| {
                lb.http
                    .post(format!("{}/api/v1/checkout", lb.base))
                    .bearer_auth(&b.token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"address_id": address}))
            })
            .await
        })
    });
    let checkouts: Vec<_> = checkouts.collect();
    let load = tokio::spawn(futures_join(checkouts));
    tokio::time::sleep(Duration::from_millis(150)).await;
    instances[2].kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    instances[2] = instance(ports[2], &vars(false)).await;
    let answers = load.await.unwrap();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for r in &answers {
        *by_status.entry(r.status.as_u16()).or_default() += 1;
        assert!(
            r.status == StatusCode::CREATED
                || (r.status == StatusCode::CONFLICT && r.body["code"] == "insufficient_stock")
                || r.status == StatusCode::OK,
            "{}: {:?}",
            r.status,
            r.body
        );
    }
    let sold = answers.iter().filter(|r| r.status.is_success()).count();
    assert_eq!(
        sold,
        2 * HOT_STOCK as usize - 1,
        "every unit sold once and no more: {by_status:?}"
    );

    // 3. The invariants, on the database every instance shares.
    let (store, _) =
        marketplace_host::open_storage(&schema.url, &storage_sql::SqlOptions::default())
            .await
            .unwrap();
    let initial: HashMap<_, _> = products
        .iter()
        .map(|p| (p.parse().unwrap(), HOT_STOCK))
        .collect();
    let found = audit(store.as_ref(), &initial, true).await;
    assert_eq!(found.checkouts, sold + 1);
    for product in &products {
        let p = lb.get(&format!("/api/v1/products/{product}"), None).await;
        assert_eq!(p.body["stock"], 0, "sold out, not below: {:?}", p.body);
    }
    // Mail: every outbox message delivered, none twice.
    let total = outbox_len(store.as_ref()).await;
    let received = smtp.wait_for(total, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in smtp.received() {
        *counts.entry(r.outbox_id().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "mail sent more than once: {twice:?}");
    assert_eq!(counts.len(), total, "{} received", received.len());
    // Every image through every instance, the restarted one too, and through
    // the balancer.
    for url in &images {
        let key = url.split("/media/").nth(1).unwrap();
        for port in &ports {
            let r = reqwest::get(format!("http://127.0.0.1:{port}/media/{key}"))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "instance {port}: {key}");
            assert_eq!(&r.bytes().await.unwrap()[..8], &png_signature()[..]);
        }
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
    }
    // The throttle counts the client behind the balancer, across instances.
    let guesser = client_from(&base, "127.0.0.2".parse().unwrap());
    let guesses = (0..30).map(|i| {
        let g = Api {
            base: guesser.base.clone(),
            http: guesser.http.clone(),
        };
        tokio::spawn(async move {
            until_answered(|| {
                g.http
                    .post(format!("{}/api/v1/auth/login", g.base))
                    .header("X-Forwarded-For", format!("10.0.0.{i}"))
                    .header("Forwarded", format!("for=10.1.0.{i}"))
                    .json(&json!({"email": format!("nobody{i}@example.com"), "password": "guess"}))
            })
            .await
            .status
        })
    });
    let statuses = futures_join(guesses).await;
    let tried = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (tried, refused),
        (20, 10),
        "one client address, 20 failures allowed per window, whatever it forges: {statuses:?}"
    );
    let honest = client_from(&base, "127.0.0.3".parse().unwrap());
    honest.login("potter@example.com", PASSWORD).await;
    println!(
        "3 instances behind HAProxy on PostgreSQL + S3: {BUYERS} checkouts during a SIGKILL and restart: {by_status:?}; {total} mails each delivered once; {} images read through 3 instances; the guessing client: {tried} tried, {refused} refused",
        images.len()
    );
}

/// Registers, signs in and gives an address to buyer `i`; its session and
/// address id.
async fn buyer(api: &Api, i: usize) -> (Session, String) {
    let email = format!("buyer{i}@example.com");
    api.register(json!({"email": email, "password": PASSWORD, "role": "buyer", "name": "Ada"}))
        .await;
    let session = api.login(&email, PASSWORD).await;
    let address = api.address(&session).await;
    (session, address)
}

/// Puts `quantity` of `product` in the cart of `b` and checks out.
async fn buy(api: &Api, b: &(Session, String), product: &str, quantity: u32) -> Reply {
    let r = api
        .post(
            "/api/v1/cart/items",
            Some(&b.0.token),
            json!({"product_id": product, "quantity": quantity}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    api.checkout(
        &b.0,
        &uuid::Uuid::new_v4().to_string(),
        json!({"address_id": b.1}),
    )
    .await
}

async fn outbox_len(store: &dyn marketplace_core::Storage) -> usize {
    use marketplace_core::outbox::{OutboxQuery, OutboxStatus};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let all = store
            .list_outbox(&OutboxQuery {
                status: None,
                after: None,
                limit: 100_000,
            })
            .await
            .unwrap();
        if all.iter().all(|m| m.status == OutboxStatus::Delivered) {
            return all.len();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mail still undelivered after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn png_signature() -> [u8; 8] {
    [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]
}

/// Awaits every task, in order.
async fn futures_join<T: Send + 'static>(
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
