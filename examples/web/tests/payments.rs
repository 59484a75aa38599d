//! Buyers' payments through the pages, as a browser without JavaScript drives
//! them: the checkout's confirmation is the payment step (the manual
//! provider's instructions; a card provider's reference and the time the
//! items are held), the admin marks a manual payment paid and the buyer sees
//! it paid, a seller's cancellation after that is a refund the buyer and the
//! admin see, and a card payment keeps the seller from accepting until it
//! comes. Every status on a page is checked against the library.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use marketplace_core::{
    Address, AddressInput, CheckoutId, Order, OrderStatus, Payment, PaymentStatus, ProductId,
    RefundStatus, SimulatedPayments,
};

mod support;
use support::Site;
use support::dashboard::{
    ADMIN_EMAIL, Browser, Page, buyer, lamp_shop, principal, start, start_paying, text_of,
};

/// The payment badge inside the element `id` of `page`: its status class and
/// its words (`("paid", "Paid")`).
fn payment_of(page: &Page, id: &str) -> (String, String) {
    let marker = format!(r#"id="{id}""#);
    let at = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {}", page.body));
    let badge = r#"class="badge badge-payment badge-"#;
    let start = at
        + page.body[at..]
            .find(badge)
            .unwrap_or_else(|| panic!("no payment badge in #{id}: {}", page.body))
        + badge.len();
    let rest = &page.body[start..];
    let class_end = rest.find('"').unwrap();
    let words_start = rest.find('>').unwrap() + 1;
    let words_end = rest.find("</span>").unwrap();
    (
        rest[..class_end].to_owned(),
        rest[words_start..words_end].to_owned(),
    )
}

/// `(status, words)` as the badges write them.
fn shown(status: &str, words: &str) -> (String, String) {
    (status.to_owned(), words.to_owned())
}

/// `email`, a buyer made here, with a London address and `quantity` of
/// `product` in the cart, signed in in a browser of their own.
async fn shopper(
    site: &Site,
    email: &str,
    product: ProductId,
    quantity: u32,
) -> (Browser, Address) {
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
    (Browser::sign_in(site, email).await, address)
}

/// Places the cart with the checkout page's form: the confirmation page.
async fn check_out(b: &Browser, address: &Address, key: &str) -> Page {
    let placed = b
        .submit(
            "/checkout",
            "/checkout",
            &[
                ("idempotency_key", key),
                ("address_id", &address.id.to_string()),
            ],
        )
        .await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_eq!(placed.path, "/orders", "{}", placed.body);
    assert!(
        placed.has("Thank you! Your order is placed."),
        "{}",
        placed.body
    );
    placed
}

/// The buyer's only order, and its checkout's payment, through the library.
async fn the_order(site: &Site, email: &str) -> (Order, Payment) {
    let who = principal(&site.market, email).await;
    let mut orders = site
        .market
        .my_orders(&who, Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(orders.len(), 1);
    let order = orders.remove(0);
    let payment = site
        .market
        .checkout_payment(&who, order.checkout_id)
        .await
        .unwrap();
    (order, payment)
}

async fn payment_now(site: &Site, checkout: CheckoutId) -> Payment {
    let admin = principal(&site.market, ADMIN_EMAIL).await;
    site.market
        .checkout_payment(&admin, checkout)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_manual_payment_is_told_marked_paid_once_and_refunded_on_cancellation() {
    let site = start().await;
    let (_, shop, product) = lamp_shop(&site).await;
    let (ada, address) = shopper(&site, "ada@example.com", product.id, 2).await;

    // The confirmation is the payment step: two lamps at 9.00, how to pay.
    let placed = check_out(&ada, &address, "web-pay-manual").await;
    let (order, payment) = the_order(&site, "ada@example.com").await;
    assert_eq!(payment.status, PaymentStatus::AwaitingPayment);
    assert_eq!(payment.amount.amount, 1800);
    assert!(placed.has("Pay for your order"), "{}", placed.body);
    assert_eq!(text_of(&placed, "payment-amount"), "18.00 USD");
    assert_eq!(
        payment_of(&placed, "payment-status"),
        shown("awaiting_payment", "Awaiting payment")
    );
    assert_eq!(
        text_of(&placed, "payment-instructions"),
        format!(
            "Pay 18.00 USD on delivery, or by bank transfer quoting {}.",
            order.checkout_id
        )
    );
    assert_eq!(
        payment.instructions.as_deref(),
        Some(text_of(&placed, "payment-instructions").as_str())
    );
    // Nothing is held and no card is asked for with the manual provider.
    assert!(!placed.has(r#"id="payment-held""#), "{}", placed.body);
    assert!(!placed.has(r#"id="pay""#), "{}", placed.body);
    // The history and the order page say the same, in words.
    let list = ada.get("/orders").await;
    assert!(
        list.has(r#"badge-awaiting_payment">Awaiting payment</span>"#),
        "{}",
        list.body
    );
    let order_path = format!("/orders/{}", order.id);
    let page = ada.get(&order_path).await;
    assert_eq!(
        payment_of(&page, "order-payment"),
        shown("awaiting_payment", "Awaiting payment")
    );
    assert!(
        page.has(r#"id="payment-instructions""#),
        "how to pay stays on the order while it is awaited: {}",
        page.body
    );

    // The admin finds the payment by the checkout number the transfer quotes.
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let detail_path = format!("/admin/payments/{}", payment.id);
    let listed = admin.get("/admin/payments").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed.has(&format!(r#"href="{}""#, detail_path)),
        "{}",
        listed.body
    );
    assert!(listed.has("badge-awaiting_payment") && listed.has("18.00 USD"));
    let captured_only = admin.get("/admin/payments?status=captured").await;
    assert!(
        captured_only.has("No payments are captured."),
        "{}",
        captured_only.body
    );
    let found = admin
        .get(&format!("/admin/payments?checkout={}", order.checkout_id))
        .await;
    assert_eq!(found.path, detail_path, "{}", found.body);
    let unknown = admin
        .get(&format!(
            "/admin/payments?checkout={}",
            uuid::Uuid::now_v7()
        ))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(
        unknown.has("No payment has this checkout number"),
        "{}",
        unknown.body
    );
    let overview = admin.get("/admin").await;
    assert_eq!(text_of(&overview, "awaiting-payments"), "1");

    // Marked paid with the detail page's button: captured for the order.
    let paid_action = format!("/admin/payments/{}/paid", payment.id);
    let paid = admin.submit(&detail_path, &paid_action, &[]).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.path, detail_path);
    assert!(
        paid.has("The payment is marked paid: 18.00 USD is captured for its order."),
        "{}",
        paid.body
    );
    let now = payment_now(&site, order.checkout_id).await;
    assert_eq!(now.status, PaymentStatus::Captured);
    assert_eq!(now.captured.amount, 1800);
    assert_eq!(now.captured_orders, [order.id]);
    assert_eq!(text_of(&paid, "payment-captured"), "18.00 USD");
    assert!(
        !paid.has(&format!(r#"action="{}""#, paid_action)),
        "no button once paid: {}",
        paid.body
    );
    // Twice: refused with the payment's status, and nothing changes.
    let twice = admin.post(&paid_action, &paid.csrf(), &[]).await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(
        twice.has("The payment is already captured."),
        "{}",
        twice.body
    );
    assert!(twice.has("This could not be done"), "{}", twice.body);
    assert_eq!(
        payment_now(&site, order.checkout_id).await.version,
        now.version
    );

    // The buyer sees it paid, and how to pay is gone.
    let page = ada.get(&order_path).await;
    assert_eq!(payment_of(&page, "order-payment"), shown("paid", "Paid"));
    assert!(!page.has(r#"id="payment-instructions""#), "{}", page.body);
    let list = ada.get("/orders").await;
    assert!(list.has(r#"badge-paid">Paid</span>"#), "{}", list.body);
    assert!(!list.has("Awaiting payment"), "{}", list.body);

    // The seller sees it paid, then cancels: the payment is refunded.
    let seller = Browser::sign_in(&site, "shop@example.com").await;
    let seller_path = format!("/seller/orders/{}", order.id);
    let seller_page = seller.get(&seller_path).await;
    assert_eq!(
        payment_of(&seller_page, "order-payment"),
        shown("paid", "Paid")
    );
    let cancelled = seller
        .submit(
            &seller_path,
            &format!("{seller_path}/status"),
            &[("status", "cancelled")],
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert!(
        cancelled.has("The order is cancelled"),
        "{}",
        cancelled.body
    );
    assert_eq!(
        payment_of(&cancelled, "order-payment"),
        shown("refunded", "Refunded")
    );
    let now = payment_now(&site, order.checkout_id).await;
    assert_eq!(now.status, PaymentStatus::Refunded);
    assert_eq!(now.refunds.len(), 1);
    let refund = &now.refunds[0];
    assert_eq!(
        (refund.order_id, refund.amount.amount, refund.status),
        (Some(order.id), 1800, RefundStatus::Succeeded)
    );
    let seller_now = site.market.seller_order(&shop, order.id).await.unwrap();
    assert_eq!(seller_now.status, OrderStatus::Cancelled);

    let page = ada.get(&order_path).await;
    assert_eq!(
        payment_of(&page, "order-payment"),
        shown("refunded", "Refunded")
    );
    assert!(
        ada.get("/orders")
            .await
            .has(r#"badge-refunded">Refunded</span>"#)
    );

    // The admin's page lists the refund, to pay back by hand.
    let detail = admin.get(&detail_path).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert_eq!(text_of(&detail, "payment-refunded"), "18.00 USD");
    let refunds = &detail.body[detail.body.find("<h2>Refunds</h2>").unwrap()..];
    assert!(
        refunds.contains(&format!("<code>{}</code>", order.id)),
        "{refunds}"
    );
    assert!(
        refunds.contains("<td class=\"price\">18.00 USD</td>"),
        "{refunds}"
    );
    assert!(refunds.contains("<td>cancelled</td>"), "{refunds}");
    assert!(refunds.contains("badge-succeeded"), "{refunds}");
    let reference = refund.reference.clone().expect("the refund's reference");
    assert!(
        refunds.contains(&format!("<code>{}</code>", reference)),
        "{reference}: {refunds}"
    );
    assert!(
        detail.has("Refunds of a manual payment are recorded, not sent"),
        "{}",
        detail.body
    );
    // A refunded payment cannot be marked paid either.
    let late = admin.post(&paid_action, &detail.csrf(), &[]).await;
    assert_eq!(late.status, 409, "{}", late.body);
    assert!(
        late.has("The payment is already refunded."),
        "{}",
        late.body
    );
}

#[tokio::test]
async fn a_card_payment_holds_the_items_and_the_seller_accepts_once_it_is_paid() {
    let card = Arc::new(SimulatedPayments::default());
    let site = start_paying(card.clone()).await;
    let (_, shop, product) = lamp_shop(&site).await;
    let (ada, address) = shopper(&site, "ada@example.com", product.id, 1).await;

    // The payment step: the provider's reference, no card form of ours, and
    // until when the lamp is held.
    let placed = check_out(&ada, &address, "web-pay-card").await;
    let (order, payment) = the_order(&site, "ada@example.com").await;
    let reference = payment.reference.clone().expect("created at the provider");
    let secret = payment.client_secret.clone().expect("a client secret");
    let expires = payment.expires_at.expect("stock held");
    assert_eq!(
        payment_of(&placed, "payment-status"),
        shown("awaiting_payment", "Awaiting payment")
    );
    assert_eq!(text_of(&placed, "payment-amount"), "9.00 USD");
    assert!(placed.has(r#"id="pay""#), "{}", placed.body);
    assert_eq!(text_of(&placed, "payment-reference"), reference);
    assert!(
        placed.has(&format!(r#"data-client-secret="{secret}""#)),
        "{}",
        placed.body
    );
    assert!(
        placed.has("this page never asks for card details"),
        "{}",
        placed.body
    );
    assert!(!placed.has("card number") && !placed.has(r#"name="card"#));
    assert!(!placed.has(r#"id="payment-instructions""#));
    assert!(
        text_of(&placed, "payment-held").contains(&format!(
            "held for you until {}",
            expires.format("%Y-%m-%d %H:%M UTC")
        )),
        "{}",
        placed.body
    );

    // The seller is told to wait, and accepting is refused in those words.
    let seller = Browser::sign_in(&site, "shop@example.com").await;
    let seller_path = format!("/seller/orders/{}", order.id);
    let action = format!("{seller_path}/status");
    let page = seller.get(&seller_path).await;
    assert!(
        text_of(&page, "payment-first").starts_with("Awaiting the buyer's payment"),
        "{}",
        page.body
    );
    let refused = seller
        .submit(&seller_path, &action, &[("status", "accepted")])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.has("The buyer has not paid yet"),
        "{}",
        refused.body
    );
    assert!(
        refused.has("This order cannot be accepted before its payment arrives."),
        "{}",
        refused.body
    );
    assert_eq!(
        site.market
            .seller_order(&shop, order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Pending
    );

    // A card payment is the provider's to report: no button, and a press
    // anyway is refused.
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let detail_path = format!("/admin/payments/{}", payment.id);
    let paid_action = format!("/admin/payments/{}/paid", payment.id);
    let detail = admin.get(&detail_path).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(!detail.has(&format!(r#"action="{}""#, paid_action)));
    assert!(detail.has("reports the payment itself"), "{}", detail.body);
    assert!(!detail.has(&secret), "the client secret is the buyer's");
    let pressed = admin.post(&paid_action, &detail.csrf(), &[]).await;
    assert_eq!(pressed.status, 409, "{}", pressed.body);
    assert!(
        pressed.has("This payment goes through simulated; its provider reports it paid."),
        "{}",
        pressed.body
    );
    assert_eq!(
        payment_now(&site, order.checkout_id).await.status,
        PaymentStatus::AwaitingPayment
    );

    // The buyer pays at the provider; its webhook arrives.
    assert!(card.pay(&reference));
    for hook in card.take_webhooks() {
        site.market
            .payment_webhook("simulated", &hook)
            .await
            .unwrap();
    }
    let page = ada.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(
        payment_of(&page, "order-payment"),
        shown("authorized", "Authorized")
    );
    assert!(!page.has(r#"id="pay""#), "{}", page.body);

    // Now the seller accepts; the payment is captured, and the buyer sees it paid.
    let page = seller.get(&seller_path).await;
    assert!(!page.has(r#"id="payment-first""#), "{}", page.body);
    let accepted = seller
        .submit(&seller_path, &action, &[("status", "accepted")])
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert!(
        accepted.has("The order is now accepted."),
        "{}",
        accepted.body
    );
    assert_eq!(
        payment_now(&site, order.checkout_id).await.status,
        PaymentStatus::Captured
    );
    let page = ada.get(&format!("/orders/{}", order.id)).await;
    assert_eq!(payment_of(&page, "order-payment"), shown("paid", "Paid"));
}

#[tokio::test]
async fn buyers_and_sellers_cannot_open_or_use_the_admin_payments_pages() {
    let site = start().await;
    let (_, _, product) = lamp_shop(&site).await;
    let (ada, address) = shopper(&site, "ada@example.com", product.id, 1).await;
    check_out(&ada, &address, "web-pay-refused").await;
    let (order, payment) = the_order(&site, "ada@example.com").await;
    let detail = format!("/admin/payments/{}", payment.id);
    let paid_action = format!("{detail}/paid");

    let seller = Browser::sign_in(&site, "shop@example.com").await;
    for (who, b) in [("buyer", &ada), ("seller", &seller)] {
        for path in ["/admin/payments", detail.as_str()] {
            let page = b.get(path).await;
            assert_eq!(page.status, 403, "{who} on {path}: {}", page.body);
            assert!(page.has("only admins may do this"), "{}", page.body);
            assert!(!page.has("18.00 USD") && !page.has(&payment.id.to_string()));
        }
        let csrf = b.get("/").await.csrf();
        let pressed = b.post(&paid_action, &csrf, &[]).await;
        assert_eq!(pressed.status, 403, "{who}: {}", pressed.body);
    }
    assert_eq!(
        payment_now(&site, order.checkout_id).await.status,
        PaymentStatus::AwaitingPayment
    );
    // The admin's navigation links the page; a buyer's does not.
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    assert!(
        admin
            .get("/admin")
            .await
            .has(r#"<a href="/admin/payments">Payments</a>"#)
    );
    assert!(!ada.get("/orders").await.has("/admin/payments"));
    // Nobody signed in is sent to sign in.
    let anonymous = Browser::new(&site).get("/admin/payments").await;
    assert_eq!(anonymous.path, "/sign-in");

    // What cannot be read is a page, never a 500.
    for (path, status) in [
        ("/admin/payments?status=bogus", 422),
        ("/admin/payments?cursor=nope", 422),
        ("/admin/payments/nope", 404),
        ("/admin/payments?checkout=nope", 404),
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
    }
    let csrf = admin.get("/admin/payments").await.csrf();
    let nobody = admin
        .post(
            &format!("/admin/payments/{}/paid", uuid::Uuid::now_v7()),
            &csrf,
            &[],
        )
        .await;
    assert_eq!(nobody.status, 404, "{}", nobody.body);
}
