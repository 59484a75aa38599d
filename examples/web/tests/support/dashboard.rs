//! The dashboards' tests' browser and people: a `reqwest` client per person
//! that sends each form with the CSRF token of the page showing it, the admin
//! the host is configured with, sellers, buyers and a sale made through the
//! library, delivered, and the pages' figures read back.

use std::time::Duration;

use marketplace_core::{
    AddressInput, CheckoutRequest, IdempotencyKey, Money, NewAccount, NewProduct, Order,
    OrderStatus, Principal, ProductId, ProductView, Role, User,
};
use marketplace_host::{Market, Settings};

use super::Site;

/// The admin every dashboard test can sign in as.
pub const ADMIN_EMAIL: &str = "root@example.com";
/// Every account's password.
pub const PASSWORD: &str = "a long passphrase";

/// The web host, with an admin to sign in as and its own address as the
/// public one (the links in its mail point back to it).
pub async fn start() -> Site {
    start_with(|_| {}).await
}

/// [`start`], with buyers paying through `payments` (a simulated card
/// provider): checkouts wait for the payment, holding their stock.
pub async fn start_paying(payments: std::sync::Arc<dyn marketplace_core::PaymentProvider>) -> Site {
    super::start_paying(payments, |settings, base| {
        settings.bootstrap_admin = Some((ADMIN_EMAIL.into(), PASSWORD.into()));
        settings.public_url = Some(base.to_owned());
    })
    .await
}

/// [`start`], with `configure` seeing the settings last (a return window, a
/// minimum payout).
pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Site {
    super::start(|settings, base| {
        settings.bootstrap_admin = Some((ADMIN_EMAIL.into(), PASSWORD.into()));
        settings.public_url = Some(base.to_owned());
        configure(settings);
    })
    .await
}

/// A page as the browser ended up on it (after redirects).
#[derive(Debug)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The path it ended on.
    pub path: String,
    /// The HTML.
    pub body: String,
}

impl Page {
    /// Whether the HTML holds `text` as written.
    pub fn has(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a form on the page") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_owned()
    }
}

/// One person's browser: its own cookies, redirects followed.
pub struct Browser {
    /// The client, cookies kept.
    pub http: reqwest::Client,
    /// The site.
    pub base: String,
}

impl Browser {
    pub fn new(site: &Site) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: site.base.clone(),
        }
    }

    pub async fn page(&self, r: reqwest::Response) -> Page {
        Page {
            status: r.status().as_u16(),
            path: r.url().path().to_owned(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    /// Opens `from`, checks it has a form posting to `action`, and sends that
    /// form with `fields` and the page's CSRF token.
    pub async fn submit(&self, from: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.get(from).await;
        assert!(
            page.has(&format!(r#"action="{action}""#)),
            "{from} has no form posting to {action}: {}",
            page.body
        );
        self.post(action, &page.csrf(), fields).await
    }

    /// Posts a form straight to `action`, as a hand-made request would.
    pub async fn post(&self, action: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf)];
        form.extend_from_slice(fields);
        let r = self
            .http
            .post(format!("{}{action}", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        self.page(r).await
    }

    pub async fn sign_in(site: &Site, email: &str) -> Browser {
        let b = Browser::new(site);
        let page = b
            .submit(
                "/sign-in",
                "/sign-in",
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, 200, "{email} could not sign in: {}", page.body);
        assert_ne!(
            page.path, "/sign-in",
            "{email} is still on the sign-in page"
        );
        b
    }
}

pub async fn principal(market: &Market, email: &str) -> Principal {
    super::principal(market, email, PASSWORD).await
}

pub async fn seller(site: &Site, email: &str, store: &str, verified: bool) -> User {
    let user = site
        .market
        .register(NewAccount {
            email: email.into(),
            password: PASSWORD.into(),
            role: Role::Seller,
            name: None,
            store_name: Some(store.into()),
        })
        .await
        .unwrap();
    if verified {
        site.market.verify_seller_by_email(email).await.unwrap();
    }
    user
}

pub async fn buyer(site: &Site, email: &str) -> User {
    site.market
        .register(NewAccount {
            email: email.into(),
            password: PASSWORD.into(),
            role: Role::Buyer,
            name: Some("Ada Buyer".into()),
            store_name: None,
        })
        .await
        .unwrap()
}

pub fn lamp(market: &Market, price: i64) -> NewProduct {
    NewProduct {
        sku: None,
        title: "Brass lamp".into(),
        description: "A lamp.".into(),
        price: Money::new(price, market.config().currency),
        stock: 5,
        category_id: None,
        images: Vec::new(),
        discount: None,
        active: Some(true),
    }
}

/// The verified Lamp Shop (`shop@example.com`), signed in through the library,
/// with a lamp listed at 9.00.
pub async fn lamp_shop(site: &Site) -> (User, Principal, ProductView) {
    let user = seller(site, "shop@example.com", "Lamp Shop", true).await;
    let who = principal(&site.market, "shop@example.com").await;
    let product = site
        .market
        .create_product(&who, lamp(&site.market, 900))
        .await
        .unwrap();
    (user, who, product)
}

/// `email` (a buyer, made here) buys `quantity` of `product` through the
/// library, shipped to a London address: the seller's order.
pub async fn sale(site: &Site, email: &str, product: ProductId, quantity: u32) -> Order {
    buyer(site, email).await;
    let who = principal(&site.market, email).await;
    let address = site
        .market
        .add_address(
            &who,
            AddressInput {
                name: Some("Ada Lovelace".into()),
                line1: Some("12 St James's Square".into()),
                city: Some("London".into()),
                postal_code: Some("SW1Y 4JH".into()),
                country: Some("GB".into()),
                ..AddressInput::default()
            },
        )
        .await
        .unwrap();
    site.market
        .add_to_cart(&who, product, quantity)
        .await
        .unwrap();
    let key = IdempotencyKey::parse(&format!("web-{email}")).unwrap();
    let checkout = site
        .market
        .checkout(
            &who,
            &key,
            CheckoutRequest {
                address_id: Some(address.id),
            },
        )
        .await
        .unwrap();
    checkout.orders.into_iter().next().unwrap()
}

/// The host with a return window of zero: an earning can be released as soon
/// as its order is delivered (`release_earnings` stands in for the worker).
pub async fn start_closing() -> Site {
    start_with(|settings| settings.return_window = Duration::ZERO).await
}

/// Moves `order` to delivered, one step at a time, as its seller.
pub async fn deliver(site: &Site, shop: &Principal, order: &Order) {
    let mut status = order.status;
    while let Some(next) = status.next() {
        status = site
            .market
            .set_order_status(shop, order.id, next)
            .await
            .unwrap()
            .status;
    }
    assert_eq!(status, OrderStatus::Delivered);
}

/// The text of the element with `id` on `page` (up to its first tag).
pub fn text_of(page: &Page, id: &str) -> String {
    let marker = format!(r#"id="{id}">"#);
    let start = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {}", page.body))
        + marker.len();
    let end = page.body[start..].find('<').unwrap();
    page.body[start..start + end].trim().to_owned()
}
