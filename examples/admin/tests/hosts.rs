//! The three hosts on one SQLite file at the same time, seeing one marketplace:
//! the REST server (`server-warp`) and the web storefront (`marketplace-web`)
//! serve from this process, each with its own connection pool, while the
//! operator's command line (`marketplace-admin`) runs as a process of its own
//! on the same file. What one host writes, the others read.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Shop;
use tokio::net::TcpListener;

/// The value of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in the page:\n{html}"))
        + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

/// A browser of the web storefront: keeps its cookies, follows no redirect.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rest_server_the_storefront_and_the_command_line_share_one_marketplace() {
    let shop = Shop::new().await;
    let settings = shop.settings();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The REST server, on the file.
    let (app, _mailer) = server_warp::build(&settings).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let rest = tokio::spawn(server_warp::serve::serve(
        listener,
        app,
        marketplace_host::Cors::Off,
        Default::default(),
        stopped(stop_rx.clone()),
    ));

    // The web storefront, on the same file.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = format!("http://{}", listener.local_addr().unwrap());
    let mut web_settings = settings.clone();
    web_settings.outbox_poll = Duration::ZERO;
    let storefront = tokio::spawn(marketplace_web::run(
        web_settings,
        listener,
        stopped(stop_rx.clone()),
    ));

    // The operator creates the first admin from the command line.
    shop.ok(&[
        "admin",
        "create",
        "--email",
        "root@example.com",
        "--password",
        "root passphrase",
    ])
    .await;

    // A seller signs up through the REST API; the operator verifies it from
    // the command line; the seller lists a product through the API.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{api}/auth/register"))
        .json(
            &json!({"email": "lamps@example.com", "password": "seller passphrase",
                      "role": "seller", "store_name": "Harbour Lamps"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    shop.ok(&["sellers", "verify", "lamps@example.com"]).await;
    let listed = shop
        .ok(&["--json", "sellers", "list", "--status", "verified"])
        .await
        .json();
    assert!(listed.to_string().contains("lamps@example.com"), "{listed}");
    let login: Value = http
        .post(format!("{api}/auth/login"))
        .json(&json!({"email": "lamps@example.com", "password": "seller passphrase"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let product: Value = http
        .post(format!("{api}/seller/products"))
        .bearer_auth(&token)
        .json(
            &json!({"title": "Harbour lamp", "price": {"amount": 4200, "currency": "USD"},
                      "stock": 3}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let product_id = product["id"].as_str().unwrap().to_owned();

    // The storefront shows it, and a buyer buys two through its pages.
    let buyer = browser();
    let page = buyer.get(format!("{web}/?q=harbour")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Harbour lamp"));
    let form = buyer
        .get(format!("{web}/sign-up"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&form, "csrf");
    let r = buyer
        .post(format!("{web}/sign-up"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("role", "buyer"),
            ("email", "ada@example.com"),
            ("password", "buyer passphrase"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = buyer
        .post(format!("{web}/cart/items"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("product_id", product_id.as_str()),
            ("quantity", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let checkout = buyer
        .get(format!("{web}/checkout"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = hidden(&checkout, "idempotency_key");
    let r = buyer
        .post(format!("{web}/checkout"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("idempotency_key", key.as_str()),
            ("address_id", "new"),
            ("name", "Ada Buyer"),
            ("line1", "1 Main Street"),
            ("postal_code", "12345"),
            ("city", "Springfield"),
            ("country", "US"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());

    // The seller sees the storefront's order through the REST API, and the
    // stock the checkout took.
    let orders: Value = http
        .get(format!("{api}/seller/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = orders["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{orders}");
    let order_id = items[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(items[0]["total"]["amount"], 8400);
    let product: Value = http
        .get(format!("{api}/products/{product_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(product["stock"], 1);

    // The operator exports it from the command line, and deactivates the
    // product: the storefront stops showing it at once.
    let csv = shop.path("orders.csv");
    shop.ok(&["export", "orders", "--out", csv.to_str().unwrap()])
        .await;
    let exported = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        exported.lines().count(),
        2,
        "a header and the order:\n{exported}"
    );
    assert!(exported.contains(&order_id));
    shop.ok(&["products", "deactivate", &product_id]).await;
    let page = buyer
        .get(format!("{web}/?q=harbour"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Harbour lamp"),
        "a deactivated product is hidden"
    );
    let r = http
        .get(format!("{api}/products/{product_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    stop_tx.send_replace(true);
    rest.await.unwrap();
    storefront.await.unwrap().unwrap();
}
