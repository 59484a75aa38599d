//! The seller and admin dashboards, driven as a browser without JavaScript
//! drives them: the web host runs in this process on `127.0.0.1:0` over a
//! memory store, each person is a `reqwest` client with its own cookies, and
//! every form is sent with the CSRF token read from the page that shows it.
//! What the pages do is checked against the library itself: a price typed
//! `12.50` is stored as 1250 minor units, a refused step leaves the order
//! where it was, a rejected seller's products cannot be bought.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Cursor;
use std::sync::Arc;

use marketplace_core::{
    AddressInput, CatalogQuery, CheckoutRequest, IdempotencyKey, MailError, Mailer, OrderStatus,
    OutboxMessage, OutboxStatus, OutboxWorker,
};

mod support;
use support::dashboard::{
    ADMIN_EMAIL, Browser, PASSWORD, buyer, lamp, lamp_shop, principal, seller, start,
};

/// `text` as the templates write it into HTML.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// A PNG of noise, which compresses badly: larger than a form body may be.
fn noisy_png(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        let mut px = [0u8; 3];
        for c in &mut px {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *c = (state & 0xff) as u8;
        }
        image::Rgb(px)
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test]
async fn an_admin_verifies_a_pending_seller_and_the_seller_dashboard_says_so() {
    let site = start().await;
    let shop = seller(&site, "shop@example.com", "Lamp Shop", false).await;
    let seller_browser = Browser::sign_in(&site, "shop@example.com").await;
    let home = seller_browser.get("/seller").await;
    assert_eq!(home.status, 200);
    assert!(
        home.has("An admin is reviewing your store"),
        "{}",
        home.body
    );
    assert!(!home.has("Your store is verified"));

    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let overview = admin.get("/admin").await;
    assert!(
        overview.has(r#"<p class="tally">1</p>"#),
        "one seller waits: {}",
        overview.body
    );
    let verified = admin
        .submit(
            "/admin/sellers?status=pending",
            &format!("/admin/sellers/{}/verify", shop.id),
            &[("next", "/admin/sellers?status=pending")],
        )
        .await;
    assert_eq!(verified.status, 200);
    assert!(verified.has("Lamp Shop is verified"), "{}", verified.body);
    assert!(
        !verified.has(&format!("/admin/sellers/{}/verify", shop.id)),
        "the seller left the pending list"
    );

    let home = seller_browser.get("/seller").await;
    assert!(home.has("Your store is verified"), "{}", home.body);
    // The library agrees: the seller may list now.
    let who = principal(&site.market, "shop@example.com").await;
    site.market
        .create_product(&who, lamp(&site.market, 900))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_rejected_sellers_products_cannot_be_bought() {
    let site = start().await;
    let (shop, _, product) = lamp_shop(&site).await;
    site.market.product(product.id).await.unwrap();

    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let rejected = admin
        .submit(
            "/admin/sellers",
            &format!("/admin/sellers/{}/reject", shop.id),
            &[("next", "/admin/sellers")],
        )
        .await;
    assert!(rejected.has("Lamp Shop is rejected"), "{}", rejected.body);

    assert!(site.market.product(product.id).await.is_err());
    let listed = site.market.browse(CatalogQuery::default()).await.unwrap();
    assert!(listed.items.is_empty(), "still listed: {listed:?}");
    buyer(&site, "ada@example.com").await;
    let ada = principal(&site.market, "ada@example.com").await;
    assert!(site.market.add_to_cart(&ada, product.id, 1).await.is_err());

    let home = Browser::sign_in(&site, "shop@example.com")
        .await
        .get("/seller")
        .await;
    assert!(home.has("An admin rejected your store"), "{}", home.body);
}

#[tokio::test]
async fn a_product_made_with_the_form_has_the_price_typed() {
    let site = start().await;
    seller(&site, "shop@example.com", "Lamp Shop", true).await;
    let admin = principal(&site.market, ADMIN_EMAIL).await;
    let lighting = site
        .market
        .create_category(&admin, "Lighting")
        .await
        .unwrap();
    let b = Browser::sign_in(&site, "shop@example.com").await;
    let category = lighting.id.to_string();
    let saved = b
        .submit(
            "/seller/products/new",
            "/seller/products",
            &[
                ("title", "Brass lamp"),
                ("description", "Warm light."),
                ("price", "12.50"),
                ("stock", "7"),
                ("category_id", &category),
                ("discount_kind", "percentage"),
                ("discount_value", "10"),
                ("discount_starts_at", ""),
                ("discount_ends_at", "2099-01-01T00:00"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.has("is saved"), "{}", saved.body);

    let who = principal(&site.market, "shop@example.com").await;
    let mine = site
        .market
        .my_products(&who, CatalogQuery::default(), true)
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
    let p = &mine.items[0];
    assert_eq!(saved.path, format!("/seller/products/{}", p.id));
    assert_eq!(p.price.amount, 1250);
    assert_eq!(p.price.currency, site.market.config().currency);
    assert_eq!(p.effective_price.amount, 1125, "10% off");
    assert_eq!(p.stock, 7);
    assert_eq!(p.category_id, Some(lighting.id));
    assert!(p.active);
    // The edit form shows the price as it was typed.
    assert!(saved.has(r#"value="12.50""#), "{}", saved.body);

    // Changed through the same form: hidden, no offer.
    let path = format!("/seller/products/{}", p.id);
    let changed = b
        .submit(
            &path,
            &path,
            &[
                ("title", "Brass lamp"),
                ("price", "20"),
                ("stock", "3"),
                ("category_id", ""),
                ("discount_kind", "none"),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let p = site.market.my_product(&who, p.id).await.unwrap();
    assert_eq!(
        (p.price.amount, p.stock, p.active, p.category_id),
        (2000, 3, false, None)
    );
    assert!(p.discount.is_none());

    // Archived after the confirmation step; still in the seller's list, marked.
    let archive = format!("/seller/products/{}/archive", p.id);
    let confirm = b.get(&archive).await;
    assert!(confirm.has("cannot be undone"), "{}", confirm.body);
    let archived = b.submit(&archive, &archive, &[]).await;
    assert!(archived.has("is archived"), "{}", archived.body);
    assert!(archived.has("badge-archived"), "{}", archived.body);
    assert!(site.market.my_product(&who, p.id).await.unwrap().archived);
}

#[tokio::test]
async fn an_unreadable_price_shows_the_form_again_and_creates_nothing() {
    let site = start().await;
    seller(&site, "shop@example.com", "Lamp Shop", true).await;
    let b = Browser::sign_in(&site, "shop@example.com").await;
    let refused = b
        .submit(
            "/seller/products/new",
            "/seller/products",
            &[
                ("title", "Brass lamp"),
                ("price", "12,50"),
                ("stock", "7"),
                ("discount_kind", "none"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.path, "/seller/products");
    assert!(
        refused.has(r#"id="e-price""#) && refused.has("write an amount in USD"),
        "the price field carries its message: {}",
        refused.body
    );
    assert!(refused.has(r#"value="Brass lamp""#), "what was typed stays");
    assert!(refused.has(r#"value="12,50""#), "the price typed stays");

    // A range the library refuses is shown on the same field.
    let refused = b
        .submit(
            "/seller/products/new",
            "/seller/products",
            &[
                ("title", "Brass lamp"),
                ("price", "10"),
                ("stock", "1"),
                ("discount_kind", "percentage"),
                ("discount_value", "0"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.has(r#"id="e-discount_value""#), "{}", refused.body);

    let who = principal(&site.market, "shop@example.com").await;
    let mine = site
        .market
        .my_products(&who, CatalogQuery::default(), true)
        .await
        .unwrap();
    assert!(mine.items.is_empty(), "created: {mine:?}");
}

#[tokio::test]
async fn a_pending_seller_is_told_why_the_product_is_not_saved() {
    let site = start().await;
    seller(&site, "new@example.com", "New Shop", false).await;
    let b = Browser::sign_in(&site, "new@example.com").await;
    let refused = b
        .submit(
            "/seller/products/new",
            "/seller/products",
            &[("title", "Lamp"), ("price", "5"), ("stock", "1")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.has("the seller account is not verified yet"),
        "{}",
        refused.body
    );
    let who = principal(&site.market, "new@example.com").await;
    let mine = site
        .market
        .my_products(&who, CatalogQuery::default(), true)
        .await
        .unwrap();
    assert!(mine.items.is_empty());
}

#[tokio::test]
async fn an_uploaded_image_is_added_and_served() {
    let site = start().await;
    let (_, who, product) = lamp_shop(&site).await;
    let b = Browser::sign_in(&site, "shop@example.com").await;
    let edit = format!("/seller/products/{}", product.id);
    let page = b.get(&edit).await;
    let action = format!(
        "/seller/products/{}/images?csrf={}",
        product.id,
        page.csrf()
    );
    assert!(page.has(&format!(r#"action="{action}""#)), "{}", page.body);

    // Larger than a form body may be (64 KiB): the upload's limit is the
    // library's image limit.
    let png = noisy_png(300, 300);
    assert!(png.len() > 64 * 1024);
    let upload = |bytes: Vec<u8>, name: &'static str| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
        b.http
            .post(format!("{}{action}", site.base))
            .multipart(reqwest::multipart::Form::new().part("image", part))
            .send()
    };
    let done = b.page(upload(png, "lamp.png").await.unwrap()).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.path, edit);
    assert!(done.has("The image is added"), "{}", done.body);

    let p = site.market.my_product(&who, product.id).await.unwrap();
    assert_eq!(p.images.len(), 1);
    assert!(
        done.has(&escaped(&p.thumbnails[0])),
        "the page shows the thumbnail: {}",
        done.body
    );
    for url in [&p.images[0], &p.thumbnails[0]] {
        let path = url.strip_prefix(&site.base).expect("served by this host");
        assert!(path.starts_with("/media/"), "{url}");
        let r = reqwest::get(url).await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "image/png");
        let served = r.bytes().await.unwrap();
        image::load_from_memory(&served).expect("a real image");
    }

    // Not an image: refused on the page, nothing added.
    let refused = b
        .page(
            upload(
                b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
                "x.png",
            )
            .await
            .unwrap(),
        )
        .await;
    assert_eq!(refused.status, 415, "{}", refused.body);
    assert!(refused.has("JPEG, PNG or WebP"), "{}", refused.body);
    let p = site.market.my_product(&who, product.id).await.unwrap();
    assert_eq!(p.images.len(), 1);

    // Without the form's token nothing is read.
    let forged = b
        .http
        .post(format!(
            "{}/seller/products/{}/images",
            site.base, product.id
        ))
        .multipart(reqwest::multipart::Form::new().part(
            "image",
            reqwest::multipart::Part::bytes(noisy_png(8, 8)).file_name("a.png"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let p = site.market.my_product(&who, product.id).await.unwrap();
    assert_eq!(p.images.len(), 1);
}

#[tokio::test]
async fn a_seller_moves_an_order_one_step_at_a_time() {
    let site = start().await;
    let (_, shop, product) = lamp_shop(&site).await;
    buyer(&site, "ada@example.com").await;
    let ada = principal(&site.market, "ada@example.com").await;
    let address = site
        .market
        .add_address(
            &ada,
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
    site.market.add_to_cart(&ada, product.id, 2).await.unwrap();
    let checkout = site
        .market
        .checkout(
            &ada,
            &IdempotencyKey::parse("web-test-1").unwrap(),
            CheckoutRequest {
                address_id: Some(address.id),
            },
        )
        .await
        .unwrap();
    let order = checkout.orders[0].id;

    let b = Browser::sign_in(&site, "shop@example.com").await;
    let list = b.get("/seller/orders?status=pending").await;
    assert!(
        list.has(&format!("/seller/orders/{order}")),
        "{}",
        list.body
    );
    assert!(
        !b.get("/seller/orders?status=shipped")
            .await
            .has(&format!("/seller/orders/{order}"))
    );
    let path = format!("/seller/orders/{order}");
    let action = format!("{path}/status");
    let page = b.get(&path).await;
    assert!(
        page.has("Ada Lovelace") && page.has("SW1Y 4JH"),
        "{}",
        page.body
    );
    assert!(page.has("Brass lamp"));

    // A later status posted by hand: the library refuses, the page says so.
    let skipped = b
        .post(&action, &page.csrf(), &[("status", "shipped")])
        .await;
    assert_eq!(skipped.status, 409, "{}", skipped.body);
    assert!(
        skipped.has("An order cannot go from pending to shipped"),
        "{}",
        skipped.body
    );
    let now = site.market.seller_order(&shop, order).await.unwrap();
    assert_eq!(now.status, OrderStatus::Pending);

    let mut expected = OrderStatus::Pending;
    while let Some(next) = expected.next() {
        let page = b.get(&path).await;
        let button = format!(r#"name="status" value="{}""#, next.as_str());
        assert!(page.has(&button), "no button for {next}: {}", page.body);
        let cancellable = page.has(r#"name="status" value="cancelled""#);
        assert_eq!(
            cancellable,
            matches!(expected, OrderStatus::Pending | OrderStatus::Accepted),
            "cancel offered at {expected}"
        );
        let moved = b.submit(&path, &action, &[("status", next.as_str())]).await;
        assert_eq!(moved.status, 200, "{}", moved.body);
        assert!(
            moved.has(&format!("The order is now {next}")),
            "{}",
            moved.body
        );
        let now = site.market.seller_order(&shop, order).await.unwrap();
        assert_eq!(now.status, next);
        expected = next;
    }
    assert_eq!(expected, OrderStatus::Delivered);
    let done = b.get(&path).await;
    assert!(!done.has("Mark as"), "{}", done.body);
    assert!(done.has("badge-delivered"));
    // Five entries: placed and four steps, each shown.
    let now = site.market.seller_order(&shop, order).await.unwrap();
    assert_eq!(now.history.len(), 5);
}

#[tokio::test]
async fn buyers_and_sellers_are_refused_the_admin_pages() {
    let site = start().await;
    buyer(&site, "ada@example.com").await;
    seller(&site, "shop@example.com", "Lamp Shop", true).await;
    let pages = [
        "/admin",
        "/admin/sellers",
        "/admin/users?email=ada@example.com",
        "/admin/products",
        "/admin/categories",
        "/admin/outbox?status=dead",
    ];
    for email in ["ada@example.com", "shop@example.com"] {
        let b = Browser::sign_in(&site, email).await;
        for path in pages {
            let page = b.get(path).await;
            assert_eq!(page.status, 403, "{email} on {path}: {}", page.body);
            assert!(page.has("only admins may do this"), "{}", page.body);
        }
        // A form sent anyway changes nothing.
        let csrf = b.get("/").await.csrf();
        let posted = b
            .post("/admin/categories", &csrf, &[("name", "Sneaky")])
            .await;
        assert_eq!(posted.status, 403);
    }
    assert!(site.market.categories().await.unwrap().is_empty());
    // A buyer is not a seller either.
    let ada = Browser::sign_in(&site, "ada@example.com").await;
    assert_eq!(ada.get("/seller").await.status, 403);
    assert_eq!(ada.get("/seller/orders").await.status, 403);
    // Nobody signed in is sent to sign in, and back.
    let anonymous = Browser::new(&site).get("/admin/outbox").await;
    assert_eq!(anonymous.path, "/sign-in");
    // The library's own lookup is the admins' too.
    let buyer_principal = principal(&site.market, "ada@example.com").await;
    assert!(
        site.market
            .find_user(&buyer_principal, "shop@example.com")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_admin_finds_an_account_by_email_and_deactivates_it() {
    let site = start().await;
    let ada = buyer(&site, "ada@example.com").await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;

    let found = admin.get("/admin/users?email=ADA%40example.com").await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.has("buyer") && found.has(&ada.id.to_string()));
    let missing = admin.get("/admin/users?email=nobody%40example.com").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let malformed = admin.get("/admin/users?email=not-an-email").await;
    assert_eq!(malformed.status, 422, "{}", malformed.body);
    assert!(malformed.has(r#"id="e-email""#), "{}", malformed.body);

    let from = "/admin/users?email=ada%40example.com";
    let off = admin
        .submit(
            from,
            &format!("/admin/users/{}/deactivate", ada.id),
            &[("next", from)],
        )
        .await;
    assert!(off.has("The account is deactivated"), "{}", off.body);
    assert!(off.has("badge-deactivated"), "{}", off.body);
    assert!(
        site.market
            .login("ada@example.com", PASSWORD, None)
            .await
            .is_err()
    );

    let on = admin
        .submit(
            from,
            &format!("/admin/users/{}/activate", ada.id),
            &[("next", from)],
        )
        .await;
    assert!(on.has("The account is active again"), "{}", on.body);
    site.market
        .login("ada@example.com", PASSWORD, None)
        .await
        .unwrap();

    // The library's rule, shown as a page: an admin cannot deactivate itself.
    let me = principal(&site.market, ADMIN_EMAIL).await;
    let myself = format!("/admin/users?email={ADMIN_EMAIL}");
    let refused = admin
        .submit(
            &myself,
            &format!("/admin/users/{}/deactivate", me.user_id),
            &[],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
}

#[tokio::test]
async fn an_admin_takes_a_product_out_of_the_shop_and_puts_it_back() {
    let site = start().await;
    let (_, _, product) = lamp_shop(&site).await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let off = admin
        .submit(
            "/admin/products",
            &format!("/admin/products/{}/deactivate", product.id),
            &[("next", "/admin/products")],
        )
        .await;
    assert!(off.has("The product is deactivated"), "{}", off.body);
    assert!(site.market.product(product.id).await.is_err());
    assert!(!off.has(&format!("/admin/products/{}/deactivate", product.id)));

    let bad = admin
        .submit(
            "/admin/products",
            "/admin/products/reactivate",
            &[("product_id", "lamp")],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.has(r#"id="e-product_id""#));
    let id = product.id.to_string();
    let on = admin
        .submit(
            "/admin/products",
            "/admin/products/reactivate",
            &[("product_id", &id)],
        )
        .await;
    assert!(on.has("is reactivated"), "{}", on.body);
    site.market.product(product.id).await.unwrap();
}

/// A mail server that refuses every message for good.
struct Refusing;

#[async_trait::async_trait]
impl Mailer for Refusing {
    async fn send(&self, _: &OutboxMessage) -> Result<(), MailError> {
        Err(MailError::Permanent("550 5.1.1 mailbox unavailable".into()))
    }
}

#[tokio::test]
async fn the_admin_retries_a_dead_message() {
    let site = start().await;
    buyer(&site, "ada@example.com").await;
    let report = OutboxWorker::new(site.market.clone(), Arc::new(Refusing))
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.dead, 1, "the verification mail died: {report:?}");
    let admin_principal = principal(&site.market, ADMIN_EMAIL).await;
    let dead = site
        .market
        .outbox(&admin_principal, Some(OutboxStatus::Dead), None, None)
        .await
        .unwrap();
    let message = &dead.items[0];

    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    assert!(
        admin.get("/admin").await.has(r#"<p class="tally">1</p>"#),
        "one dead message"
    );
    let list = admin.get("/admin/outbox?status=dead").await;
    assert!(list.has("ada@example.com"), "{}", list.body);
    assert!(list.has("550 5.1.1 mailbox unavailable"), "{}", list.body);
    assert!(list.has(&message.subject));
    let retried = admin
        .submit(
            "/admin/outbox?status=dead",
            &format!("/admin/outbox/{}/retry", message.id),
            &[("next", "/admin/outbox?status=dead")],
        )
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert!(
        retried.has("The message to ada@example.com is queued again"),
        "{}",
        retried.body
    );
    let pending = site
        .market
        .outbox(&admin_principal, Some(OutboxStatus::Pending), None, None)
        .await
        .unwrap();
    assert!(pending.items.iter().any(|m| m.id == message.id));

    // A message that is not dead is not retried: the library says why.
    let again = admin
        .post(
            &format!("/admin/outbox/{}/retry", message.id),
            &retried.csrf(),
            &[],
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(
        again.has("Only dead messages can be retried"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn categories_are_created_renamed_and_deleted() {
    let site = start().await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let created = admin
        .submit(
            "/admin/categories",
            "/admin/categories",
            &[("name", "Lamps")],
        )
        .await;
    assert!(
        created.has("The category “Lamps” is created"),
        "{}",
        created.body
    );
    let taken = admin
        .submit(
            "/admin/categories",
            "/admin/categories",
            &[("name", "lamps")],
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert!(taken.has("A category with this name already exists"));
    let blank = admin
        .submit("/admin/categories", "/admin/categories", &[("name", " ")])
        .await;
    assert_eq!(blank.status, 422, "{}", blank.body);
    assert!(blank.has(r#"id="e-name""#), "{}", blank.body);

    let lamps = site.market.categories().await.unwrap().remove(0);
    let renamed = admin
        .submit(
            "/admin/categories",
            &format!("/admin/categories/{}/rename", lamps.id),
            &[("name", "Lighting")],
        )
        .await;
    assert!(renamed.has("renamed “Lighting”"), "{}", renamed.body);
    let all = site.market.categories().await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Lighting"]
    );

    // In use: the library refuses, the page says so.
    seller(&site, "shop@example.com", "Lamp Shop", true).await;
    let shop = principal(&site.market, "shop@example.com").await;
    let mut product = lamp(&site.market, 900);
    product.category_id = Some(lamps.id);
    let product = site.market.create_product(&shop, product).await.unwrap();
    let delete = format!("/admin/categories/{}/delete", lamps.id);
    let in_use = admin.submit("/admin/categories", &delete, &[]).await;
    assert_eq!(in_use.status, 409, "{}", in_use.body);
    assert!(in_use.has("Products still use this category"));

    // Moved out of it, the category is free and goes.
    let update = marketplace_core::ProductUpdate {
        category_id: Some(None),
        ..Default::default()
    };
    site.market
        .update_product(&shop, product.id, update)
        .await
        .unwrap();
    let deleted = admin.submit("/admin/categories", &delete, &[]).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert!(deleted.has("The category is deleted"), "{}", deleted.body);
    assert!(site.market.categories().await.unwrap().is_empty());
}
