//! The storefront driven like a browser: the router served in-process on
//! `127.0.0.1:0` over a fresh in-memory marketplace, a reqwest client with
//! cookies, and the CSRF field read from each form's HTML. Sellers, products
//! and categories are made through the library; buyers sign up and shop
//! through the pages.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use marketplace_core::{Category, NewAccount, Principal, ProductId, ProductUpdate, Role};
use marketplace_host::Market;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{StatusCode, Url, redirect};

mod support;
use support::{Site as Shop, principal};

/// The web host, its media in a directory it makes itself.
async fn shop() -> Shop {
    support::start(|settings, _| settings.media_dir = settings.media_dir.join("media")).await
}

/// A browser: a cookie jar, redirects followed.
struct Browser {
    base: String,
    jar: Arc<Jar>,
    client: reqwest::Client,
}

/// A page as the browser ended on it.
struct Page {
    status: StatusCode,
    /// Path and query of the last address (after redirects).
    at: String,
    html: String,
}

impl Page {
    /// Whether the page holds `text`, as written or with its HTML entities
    /// read (the templates write `/` in attributes as `&#x2f;`).
    fn has(&self, text: &str) -> bool {
        self.html.contains(text) || unescape(&self.html).contains(text)
    }
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the hidden field `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in:\n{html}"))
        + marker.len();
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

impl Browser {
    fn new(shop: &Shop) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Browser {
            base: shop.base.clone(),
            jar,
            client,
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let url = response.url().clone();
        let at = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Page {
            status,
            at,
            html: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        Self::page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The browser's CSRF token, as every form of a page carries it.
    async fn csrf(&self) -> String {
        hidden(&self.get("/sign-in").await.html, "csrf")
    }

    /// Sends a form as it is, CSRF field or not.
    async fn send(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends a form with the browser's CSRF field.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(path, &all).await
    }

    /// Adds `quantity` of `product` to the cart, as the product page's form does.
    async fn add_to_cart(&self, product: ProductId, quantity: &str) -> Page {
        self.post(
            "/cart/items",
            &[("product_id", &product.to_string()), ("quantity", quantity)],
        )
        .await
    }

    /// The value of this browser's cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        let url: Url = self.base.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header.to_str().unwrap().split("; ").find_map(|c| {
            c.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
    }

    async fn sign_up(shop: &Shop, email: &str) -> Browser {
        let b = Browser::new(shop);
        let page = b
            .post(
                "/sign-up",
                &[
                    ("email", email),
                    ("password", "a buyer's password"),
                    ("role", "buyer"),
                    ("name", "Ann Buyer"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("Welcome!"), "{}", page.html);
        b
    }
}

const PASSWORD: &str = "a buyer's password";

/// A verified seller.
async fn seller(market: &Market, email: &str, store: &str) -> Principal {
    market
        .register(NewAccount {
            email: email.into(),
            password: "a seller's password".into(),
            role: Role::Seller,
            name: None,
            store_name: Some(store.into()),
        })
        .await
        .unwrap();
    market.verify_seller_by_email(email).await.unwrap();
    principal(market, email, "a seller's password").await
}

async fn product(
    market: &Market,
    who: &Principal,
    title: &str,
    cents: i64,
    stock: u32,
    extra: serde_json::Value,
) -> ProductId {
    let mut body = serde_json::json!({
        "title": title,
        "description": format!("A fine {title}."),
        "price": {"amount": cents, "currency": "USD"},
        "stock": stock,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    market
        .create_product(who, serde_json::from_value(body).unwrap())
        .await
        .unwrap()
        .id
}

async fn category(market: &Market, name: &str) -> Category {
    market
        .create_category(&Principal::operator(), name)
        .await
        .unwrap()
}

fn no_json() -> serde_json::Value {
    serde_json::json!({})
}

/// The inline new address of the checkout form.
fn new_address(key: &str) -> Vec<(&str, &str)> {
    vec![
        ("idempotency_key", key),
        ("address_id", "new"),
        ("name", "Ann Buyer"),
        ("line1", "1 Main Street"),
        ("line2", ""),
        ("postal_code", "12345"),
        ("city", "Springfield"),
        ("region", ""),
        ("country", "us"),
        ("phone", ""),
    ]
}

#[tokio::test]
async fn browsing_finds_by_search_and_a_filter_hides_what_it_excludes() {
    let shop = shop().await;
    let m = &shop.market;
    let kitchen = category(m, "Kitchen").await;
    let clothes = category(m, "Clothes").await;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    let mug = product(
        m,
        &s,
        "Blue mug",
        1250,
        3,
        serde_json::json!({"category_id": kitchen.id}),
    )
    .await;
    product(
        m,
        &s,
        "Red scarf",
        3000,
        0,
        serde_json::json!({"category_id": clothes.id}),
    )
    .await;
    let b = Browser::new(&shop);

    let found = b.get("/?q=mug").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.has("Blue mug") && !found.has("Red scarf"));
    assert!(found.has("12.50 USD"));

    let excluded = b.get(&format!("/?q=mug&category={}", clothes.id)).await;
    assert_eq!(excluded.status, StatusCode::OK);
    assert!(!excluded.has("Blue mug"));
    assert!(excluded.has("No products match these filters."));

    let cheap = b.get("/?max_price=20").await;
    assert!(cheap.has("Blue mug") && !cheap.has("Red scarf"));
    let dear = b.get("/?min_price=20.00").await;
    assert!(!dear.has("Blue mug") && dear.has("Red scarf"));
    let stocked = b.get("/?in_stock=1").await;
    assert!(stocked.has("Blue mug") && !stocked.has("Red scarf"));

    // A filter that cannot be read is a message beside it, not a failure.
    let bad = b
        .get("/?min_price=12,50&sort=cheapest&category=kitchen")
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.has("must be an amount in USD, like 12.50"));
    assert!(bad.has("is not a sort order"));
    assert!(bad.has("aria-invalid=\"true\""));

    // The product page: stock in words, and a way to buy after signing in.
    let page = b.get(&format!("/products/{mug}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has("Only 3 left") && page.has("Kitchen"));
    assert!(page.has(&format!(
        "/sign-in?next=%2Fproducts%2F{mug}\">Sign in to buy"
    )));
    assert_eq!(
        b.get("/products/not-an-id").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_next_page_keeps_the_filters() {
    let shop = shop().await;
    let m = &shop.market;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    for i in 0..26 {
        product(m, &s, &format!("Mug number {i:02}"), 1000 + i, 5, no_json()).await;
    }
    product(m, &s, "Teapot", 500, 5, no_json()).await;
    let b = Browser::new(&shop);
    let first = b.get("/?q=mug&sort=price_asc").await;
    assert!(first.has("Mug number 00") && !first.has("Mug number 25"));
    assert!(!first.has("Teapot"));
    let next = link_href(&first.html, "rel=\"next\"");
    assert!(
        next.contains("q=mug") && next.contains("sort=price_asc"),
        "{next}"
    );
    let second = b.get(&next).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.has("Mug number 25") && !second.has("Mug number 00"));
    assert!(!second.has("Teapot") && !second.has("rel=\"next\""));
}

/// The `href` of the link marked with `marker`.
fn link_href(html: &str, marker: &str) -> String {
    let at = html.find(marker).expect("the link");
    let before = &html[..at];
    let start = before.rfind("href=\"").unwrap() + 6;
    unescape(&html[start..][..html[start..].find('"').unwrap()])
}

#[tokio::test]
async fn a_cart_of_two_sellers_checks_out_into_two_orders_once() {
    let shop = shop().await;
    let m = &shop.market;
    let a = seller(m, "mugs@example.com", "Mugs & Co").await;
    let b = seller(m, "scarves@example.com", "Scarf Shop").await;
    let mug = product(m, &a, "Blue mug", 1250, 10, no_json()).await;
    let scarf = product(
        m,
        &b,
        "Red scarf",
        3000,
        5,
        serde_json::json!({"discount": {"type": "percentage", "value": 10}}),
    )
    .await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;

    let added = buyer.add_to_cart(mug, "2").await;
    assert_eq!(added.at, "/cart");
    assert!(added.has("Added 2 × “Blue mug” to your cart."));
    buyer.add_to_cart(scarf, "1").await;

    let cart = buyer.get("/cart").await;
    let groups: Vec<&str> = cart.html.split("class=\"seller-group\"").skip(1).collect();
    assert_eq!(groups.len(), 2, "{}", cart.html);
    let of = |store: &str| {
        *groups
            .iter()
            .find(|g| g.contains(&format!("From {store}")))
            .unwrap()
    };
    assert!(of("Mugs &amp; Co").contains("<td class=\"subtotal\">25.00 USD</td>"));
    let scarves = of("Scarf Shop");
    assert!(scarves.contains("<td class=\"subtotal\">27.00 USD</td>"));
    assert!(scarves.contains("<del><span class=\"visually-hidden\">Was </span>30.00 USD</del>"));
    assert!(cart.has("<strong>52.00 USD</strong>"));

    // A buyer without an address types one in the checkout form.
    let checkout = buyer.get("/checkout").await;
    assert_eq!(checkout.status, StatusCode::OK);
    assert_eq!(hidden(&checkout.html, "address_id"), "new");
    let key = hidden(&checkout.html, "idempotency_key");
    let placed = buyer.post("/checkout", &new_address(&key)).await;
    assert_eq!(placed.status, StatusCode::OK);
    assert!(placed.at.starts_with("/orders?placed="), "{}", placed.at);
    assert!(placed.has("2 orders, one per seller"));
    assert!(placed.has("Order from Mugs &amp; Co") && placed.has("Order from Scarf Shop"));

    let me = principal(m, "ann@example.com", PASSWORD).await;
    let orders = m.my_orders(&me, Default::default()).await.unwrap().items;
    assert_eq!(orders.len(), 2);
    assert_eq!(m.product(mug).await.unwrap().stock, 8);

    // The same form again (a double click): the same checkout, placed once.
    let again = buyer.post("/checkout", &new_address(&key)).await;
    assert_eq!(again.at, placed.at);
    assert!(again.has("This order was already placed"));
    assert_eq!(
        m.my_orders(&me, Default::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(m.product(mug).await.unwrap().stock, 8);
    assert_eq!(m.product(scarf).await.unwrap().stock, 4);
    assert_eq!(m.addresses(&me).await.unwrap().len(), 1);

    // The order page, and cancelling a pending order.
    let order = orders.iter().find(|o| o.store_name == "Mugs & Co").unwrap();
    let detail = buyer.get(&format!("/orders/{}", order.id)).await;
    assert!(detail.has("Blue mug") && detail.has("1 Main Street") && detail.has("US"));
    assert!(detail.has("Cancel order") && !detail.has("Request a return"));
    let cancelled = buyer
        .post(&format!("/orders/{}/cancel", order.id), &[])
        .await;
    assert!(cancelled.has("Your order is cancelled"));
    assert!(cancelled.has("pending → <span class=\"badge badge-cancelled\">cancelled</span>"));
    assert!(!cancelled.has("Cancel order</button>"));
    assert_eq!(m.product(mug).await.unwrap().stock, 10);
    // Cancelling twice is refused by the library, and said so.
    let twice = buyer
        .post(&format!("/orders/{}/cancel", order.id), &[])
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert!(twice.has("An order cannot go from cancelled to cancelled."));
}

#[tokio::test]
async fn a_short_item_shows_checkout_again_and_changes_nothing() {
    let shop = shop().await;
    let m = &shop.market;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    let mug = product(m, &s, "Blue mug", 1250, 3, no_json()).await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;
    let saved = buyer
        .post("/account/addresses", &new_address("")[2..])
        .await;
    assert_eq!(saved.at, "/account");
    assert!(saved.has("1 Main Street"));
    buyer.add_to_cart(mug, "3").await;
    // Someone else bought two meanwhile.
    m.update_product(
        &s,
        mug,
        ProductUpdate {
            stock: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let checkout = buyer.get("/checkout").await;
    let me = principal(m, "ann@example.com", PASSWORD).await;
    let address = m.addresses(&me).await.unwrap()[0].id.to_string();
    assert!(checkout.has(&format!("value=\"{address}\" checked")));
    let key = hidden(&checkout.html, "idempotency_key");
    let refused = buyer
        .post(
            "/checkout",
            &[("idempotency_key", &key), ("address_id", &address)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.at, "/checkout");
    assert!(
        refused.has("Only 1 left of “Blue mug” (you asked for 3)."),
        "{}",
        refused.html
    );
    assert!(refused.has("Nothing was ordered and your cart is unchanged."));
    assert!(
        m.my_orders(&me, Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(m.product(mug).await.unwrap().stock, 1);
    assert_eq!(m.cart(&me).await.unwrap().sellers[0].items[0].quantity, 3);
}

#[tokio::test]
async fn a_form_without_its_csrf_field_is_refused_and_changes_nothing() {
    let shop = shop().await;
    let m = &shop.market;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    let mug = product(m, &s, "Blue mug", 1250, 3, no_json()).await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;
    let id = mug.to_string();
    let without = buyer
        .send("/cart/items", &[("product_id", &id), ("quantity", "1")])
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    assert!(without.has("Nothing was changed."));
    let forged = buyer
        .send(
            "/cart/items",
            &[
                ("csrf", &"0".repeat(64)),
                ("product_id", &id),
                ("quantity", "1"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let me = principal(m, "ann@example.com", PASSWORD).await;
    assert!(m.cart(&me).await.unwrap().sellers.is_empty());
    // With the field, the same form works.
    let with = buyer
        .post("/cart/items", &[("product_id", &id), ("quantity", "1")])
        .await;
    assert_eq!(with.at, "/cart");
    assert_eq!(m.cart(&me).await.unwrap().item_count, 1);
}

#[tokio::test]
async fn a_buyer_cannot_open_another_buyers_order() {
    let shop = shop().await;
    let m = &shop.market;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    let mug = product(m, &s, "Blue mug", 1250, 3, no_json()).await;
    let ann = Browser::sign_up(&shop, "ann@example.com").await;
    ann.add_to_cart(mug, "1").await;
    let key = hidden(&ann.get("/checkout").await.html, "idempotency_key");
    ann.post("/checkout", &new_address(&key)).await;
    let me = principal(m, "ann@example.com", PASSWORD).await;
    let order = m.my_orders(&me, Default::default()).await.unwrap().items[0].clone();
    assert_eq!(
        ann.get(&format!("/orders/{}", order.id)).await.status,
        StatusCode::OK
    );

    let bob = Browser::sign_up(&shop, "bob@example.com").await;
    let peek = bob.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(peek.status, StatusCode::NOT_FOUND);
    assert!(!peek.has("Blue mug") && !peek.has("Main Street"));
    let cancel = bob.post(&format!("/orders/{}/cancel", order.id), &[]).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    assert_eq!(
        m.buyer_order(&me, order.id).await.unwrap().status,
        order.status
    );
    assert!(!bob.get("/orders").await.has(&order.id.to_string()));
}

#[tokio::test]
async fn signing_out_ends_the_login_everywhere() {
    let shop = shop().await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;
    assert_eq!(buyer.get("/account").await.status, StatusCode::OK);
    let access = buyer.cookie("mp_access").expect("an access cookie");
    let refresh = buyer.cookie("mp_refresh").expect("a refresh cookie");

    // The old cookies, replayed by a client that does not follow redirects.
    let replay = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let with_old = |cookie: String| {
        replay
            .get(format!("{}/account", shop.base))
            .header("cookie", cookie)
            .send()
    };
    let before = with_old(format!("mp_access={access}")).await.unwrap();
    assert_eq!(before.status(), StatusCode::OK);

    let out = buyer.post("/sign-out", &[]).await;
    assert!(out.has("You are signed out."));
    let after = buyer.get("/account").await;
    assert!(after.at.starts_with("/sign-in?next="), "{}", after.at);

    for cookie in [
        format!("mp_access={access}"),
        format!("mp_refresh={refresh}"),
        format!("mp_access={access}; mp_refresh={refresh}"),
    ] {
        let r = with_old(cookie.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            "/sign-in?next=%2Faccount"
        );
    }
}

#[tokio::test]
async fn the_wishlist_keeps_products_and_moves_them_to_the_cart() {
    let shop = shop().await;
    let m = &shop.market;
    let s = seller(m, "mugs@example.com", "Mugs & Co").await;
    let mug = product(m, &s, "Blue mug", 1250, 3, no_json()).await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;
    let saved = buyer
        .post(
            "/wishlist",
            &[
                ("product_id", &mug.to_string()),
                ("next", &format!("/products/{mug}")),
            ],
        )
        .await;
    assert_eq!(saved.at, format!("/products/{mug}"));
    assert!(saved.has("Saved to your wishlist.") && saved.has("in your <a href=\"/wishlist\">"));
    let list = buyer.get("/wishlist").await;
    assert!(list.has("Blue mug") && list.has("Move to cart"));
    let moved = buyer.post(&format!("/wishlist/{mug}/move"), &[]).await;
    assert_eq!(moved.at, "/cart");
    assert!(moved.has("Moved “Blue mug” to your cart."));
    assert!(buyer.get("/wishlist").await.has("Your wishlist is empty."));
}

#[tokio::test]
async fn the_account_pages_edit_the_profile_and_answer_the_mail_links() {
    let shop = shop().await;
    let buyer = Browser::sign_up(&shop, "ann@example.com").await;
    let saved = buyer
        .post("/account/profile", &[("name", "Ann B."), ("phone", "12")])
        .await;
    assert_eq!(saved.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(saved.has("must be a phone number") && saved.has("value=\"Ann B.\""));
    let saved = buyer
        .post(
            "/account/profile",
            &[("name", "Ann B."), ("phone", "+1 555 0100")],
        )
        .await;
    assert!(saved.has("Your profile is saved.") && saved.has("value=\"+1 555 0100\""));
    let resent = buyer.post("/account/verify-email/resend", &[]).await;
    assert!(resent.has("We sent a new confirmation link to ann@example.com."));

    // Opening a mailed link changes nothing; a spent token is said so.
    let link = buyer.get("/verify-email?token=abc").await;
    assert_eq!(link.status, StatusCode::OK);
    assert_eq!(hidden(&link.html, "token"), "abc");
    let spent = buyer.post("/verify-email", &[("token", "abc")]).await;
    assert_eq!(spent.status, StatusCode::BAD_REQUEST);
    assert!(spent.has("already been used or has expired"));

    // Asking for a reset answers the same for any address.
    let anon = Browser::new(&shop);
    let known = anon
        .post("/forgot-password", &[("email", "ann@example.com")])
        .await;
    let unknown = anon
        .post("/forgot-password", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert!(known.has("If an account uses this address"));
    assert_eq!(known.html, unknown.html);
    let reset = anon
        .post(
            "/reset-password",
            &[("token", "abc"), ("password", "a new password")],
        )
        .await;
    assert_eq!(reset.status, StatusCode::BAD_REQUEST);
    assert!(reset.has("Ask for a new one below."));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address_across_accounts() {
    let shop = shop().await;
    let browser = Browser::new(&shop);
    // Each account fails fewer times than its own limit (5): only the count
    // per address the connection comes from (20) can stop the 21st.
    for i in 0..20 {
        let email = format!("guess{}@example.com", i / 4);
        let page = browser
            .post(
                "/sign-in",
                &[("email", email.as_str()), ("password", "wrong guess")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let page = browser
        .post(
            "/sign-in",
            &[
                ("email", "another@example.com"),
                ("password", "wrong guess"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.has("Too many attempts"), "{}", page.html);
}
