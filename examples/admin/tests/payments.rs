//! `marketplace-admin payments ...` as an operator runs it, on a temporary
//! SQLite file whose checkouts are made, and whose orders are cancelled,
//! through the library. The marketplace takes manual payments (the default):
//! the operator marks a checkout's payment paid.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{Duration, Utc};
use marketplace_core::payment::PaymentUpdate;
use marketplace_core::{
    Currency, Money, OrderId, OrderStatus, PaymentId, PaymentStatus, PaymentStore, Principal,
    RefundStatus,
};
use serde_json::{Value, json};

use support::Shop;

/// A money field's minor units.
fn minor(m: &Value) -> i64 {
    assert_eq!(m["currency"], "USD", "{m}");
    m["amount"].as_i64().unwrap()
}

/// The items of `payments list --json`.
fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page: {page}"))
}

/// A shop with two sellers, each with a product, and a buyer.
struct Sale {
    shop: Shop,
    bob: Principal,
    cat: Principal,
    lamp: marketplace_core::ProductId,
    mug: marketplace_core::ProductId,
}

impl Sale {
    async fn new() -> Sale {
        let shop = Shop::new().await;
        let ann = shop.seller("ann@example.com").await;
        let bob = shop.seller("bob@example.com").await;
        let cat = shop.buyer("cat@example.com").await;
        let lamp = shop.product(&ann, "Lamp", 2500).await.id;
        let mug = shop.product(&bob, "Mug", 850).await.id;
        Sale {
            shop,
            bob,
            cat,
            lamp,
            mug,
        }
    }

    /// A checkout of two lamps (Ann's) and three mugs (Bob's): 75.50 USD in
    /// two orders. Returns its id and Bob's order.
    async fn checkout(&self, key: &str) -> (String, OrderId) {
        let orders = self
            .shop
            .sale(&self.cat, &[(self.lamp, 2), (self.mug, 3)], key)
            .await;
        assert_eq!(orders.len(), 2);
        let bobs = orders
            .iter()
            .find(|o| o.seller_id == self.bob.user_id)
            .unwrap();
        (orders[0].checkout_id.to_string(), bobs.id)
    }

    /// The one payment `payments list` shows, as JSON.
    async fn only_payment(&self) -> Value {
        let page = self.shop.ok(&["--json", "payments", "list"]).await.json();
        assert_eq!(items(&page).len(), 1, "{page}");
        items(&page)[0].clone()
    }
}

#[tokio::test]
async fn a_checkouts_payment_is_listed_marked_paid_and_refunded_on_cancellation() {
    let sale = Sale::new().await;
    let shop = &sale.shop;
    assert_eq!(
        shop.ok(&["--json", "payments", "list"]).await.json(),
        json!({"items": [], "next_cursor": null})
    );
    let none = shop.ok(&["payments", "list"]).await;
    assert_eq!(none.stdout.trim(), "no payments");

    // The checkout made one payment, for both orders, awaiting the buyer.
    let (checkout, bobs_order) = sale.checkout("first").await;
    let listed = sale.only_payment().await;
    let id = listed["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["checkout_id"], checkout.as_str());
    assert_eq!(listed["status"], "awaiting_payment");
    assert_eq!(listed["provider"], "manual");
    assert_eq!(
        [&listed["amount"], &listed["captured"], &listed["refunded"]].map(minor),
        [7550, 0, 0]
    );
    let table = shop.ok(&["payments", "list"]).await.stdout;
    for shown in [
        id.as_str(),
        checkout.as_str(),
        "manual",
        "awaiting_payment",
        "75.50 USD",
        "0.00 USD",
    ] {
        assert!(table.contains(shown), "{shown} in\n{table}");
    }
    for header in ["checkout", "provider", "captured", "refunded", "created"] {
        assert!(table.contains(header), "{header} in\n{table}");
    }
    let awaiting = shop
        .ok(&["--json", "payments", "list", "--status", "awaiting_payment"])
        .await
        .json();
    assert_eq!(items(&awaiting).len(), 1);
    let captured = shop
        .ok(&["--json", "payments", "list", "--status", "captured"])
        .await
        .json();
    assert_eq!(items(&captured).len(), 0, "{captured}");

    // The buyer paid on delivery: the whole checkout is captured.
    let paid = shop
        .ok(&["--json", "payments", "mark-paid", &id])
        .await
        .json();
    assert_eq!(paid["id"], id.as_str());
    assert_eq!(paid["status"], "captured");
    assert_eq!(minor(&paid["captured"]), 7550);
    assert_eq!(paid["captured_orders"].as_array().unwrap().len(), 2);
    let operator = Principal::operator();
    let payment_id: PaymentId = id.parse().unwrap();
    let stored = shop.market().payment(&operator, payment_id).await.unwrap();
    assert_eq!(stored.status, PaymentStatus::Captured, "stored so");
    let captured = shop
        .ok(&["--json", "payments", "list", "--status", "captured"])
        .await
        .json();
    assert_eq!(items(&captured).len(), 1, "{captured}");

    // Marking it again is refused, with one line and status 1.
    let again = shop.run(&["payments", "mark-paid", &id]).await;
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    let line = again.error_line();
    assert!(
        line.contains(&format!("cannot mark the payment {id} paid"))
            && line.contains("the payment is already captured"),
        "{line}"
    );
    assert!(again.stdout.is_empty(), "{}", again.stdout);
    let as_json = shop.run(&["--json", "payments", "mark-paid", &id]).await;
    assert_eq!(as_json.code, Some(1));
    assert!(as_json.stdout.is_empty(), "no JSON on a refusal");

    // Bob cancels his order: its 25.50 USD goes back to the buyer.
    shop.market()
        .set_order_status(&sale.bob, bobs_order, OrderStatus::Cancelled)
        .await
        .unwrap();
    let shown = shop.ok(&["--json", "payments", "show", &id]).await.json();
    assert_eq!(shown["status"], "partially_refunded");
    assert_eq!(
        [&shown["captured"], &shown["refunded"]].map(minor),
        [7550, 2550]
    );
    let refunds = shown["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{shown}");
    assert_eq!(refunds[0]["order_id"], bobs_order.to_string().as_str());
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(refunds[0]["reason"], "cancelled");
    assert_eq!(minor(&refunds[0]["amount"]), 2550);
    let human = shop.ok(&["payments", "show", &id]).await.stdout;
    for shown in [
        format!("payment {id} of checkout {checkout} (manual): partially_refunded"),
        "captured 75.50 USD, refunded 25.50 USD".to_owned(),
        bobs_order.to_string(),
        "succeeded".to_owned(),
        "cancelled".to_owned(),
        "25.50 USD".to_owned(),
    ] {
        assert!(human.contains(&shown), "{shown} in\n{human}");
    }
    assert!(!human.contains("no refunds"), "{human}");
    let table = shop.ok(&["payments", "list"]).await.stdout;
    assert!(
        table.contains("partially_refunded") && table.contains("25.50 USD"),
        "{table}"
    );
}

#[tokio::test]
async fn settle_makes_the_refund_a_request_left_undone_and_then_finds_nothing_due() {
    let sale = Sale::new().await;
    let shop = &sale.shop;
    let nothing = shop.ok(&["payments", "settle"]).await;
    assert_eq!(
        nothing.stdout.trim(),
        "no payment is due: looked at 0, changed 0"
    );

    let (_, bobs_order) = sale.checkout("first").await;
    let id = sale.only_payment().await["id"].as_str().unwrap().to_owned();
    let human = shop.ok(&["payments", "mark-paid", &id]).await.stdout;
    assert!(
        human.contains("is captured: 75.50 USD for 2 orders"),
        "{human}"
    );
    shop.market()
        .set_order_status(&sale.bob, bobs_order, OrderStatus::Cancelled)
        .await
        .unwrap();

    // Put the payment back where the cancellation left it before asking the
    // provider, as if the server had stopped right then: the refund recorded
    // and due, not made.
    let operator = Principal::operator();
    let payment_id: PaymentId = id.parse().unwrap();
    let done = shop.market().payment(&operator, payment_id).await.unwrap();
    assert_eq!(done.refunds.len(), 1);
    let mut undone = done.clone();
    undone.version += 1;
    undone.status = PaymentStatus::Captured;
    undone.refunded = Money::zero(Currency::USD);
    undone.refunds[0].status = RefundStatus::Requested;
    undone.refunds[0].reference = None;
    undone.due_at = Some(Utc::now() - Duration::seconds(1));
    let update = PaymentUpdate {
        payment: undone,
        transitions: Vec::new(),
        outbox: Vec::new(),
    };
    shop.market()
        .storage()
        .update_payment(&update)
        .await
        .unwrap()
        .unwrap();
    let waiting = shop.ok(&["--json", "payments", "show", &id]).await.json();
    assert_eq!(waiting["status"], "captured");
    assert_eq!(waiting["refunds"][0]["status"], "requested");
    assert!(waiting["due_at"].is_string(), "{waiting}");
    let human = shop.ok(&["payments", "show", &id]).await.stdout;
    assert!(
        human.contains("requested") && human.contains("(for the payment worker)"),
        "{human}"
    );

    // One run of the worker makes the refund.
    let run = shop.ok(&["payments", "settle"]).await;
    assert_eq!(run.stdout.trim(), "looked at 1 payment due, 1 changed");
    let after = shop.market().payment(&operator, payment_id).await.unwrap();
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(after.refunded, Money::new(2550, Currency::USD));
    assert_eq!(after.due_at, None, "nothing left to do");
    let shown = shop.ok(&["--json", "payments", "show", &id]).await.json();
    assert_eq!(shown["refunds"][0]["status"], "succeeded");
    assert_eq!(minor(&shown["refunded"]), 2550);

    // Nothing is due any more.
    let again = shop.ok(&["--json", "payments", "settle"]).await.json();
    assert_eq!(again, json!({"looked_at": 0, "changed": 0, "limit": 200}));
    let limited = shop
        .ok(&["--json", "payments", "settle", "--limit", "5"])
        .await
        .json();
    assert_eq!(limited["limit"], 5);
    assert_eq!(limited["looked_at"], 0);
}

#[tokio::test]
async fn payments_page_with_a_cursor_and_bad_input_is_refused() {
    let sale = Sale::new().await;
    let shop = &sale.shop;
    let (first, _) = sale.checkout("first").await;
    let (second, _) = sale.checkout("second").await;

    // Newest first, one at a time.
    let page = shop
        .ok(&["--json", "payments", "list", "--limit", "1"])
        .await
        .json();
    assert_eq!(items(&page).len(), 1);
    assert_eq!(items(&page)[0]["checkout_id"], second.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let human = shop.ok(&["payments", "list", "--limit", "1"]).await.stdout;
    assert!(
        human
            .trim_end()
            .ends_with(&format!("more follow: --cursor {cursor}")),
        "{human}"
    );
    let rest = shop
        .ok(&[
            "--json", "payments", "list", "--limit", "1", "--cursor", &cursor,
        ])
        .await
        .json();
    assert_eq!(items(&rest).len(), 1);
    assert_eq!(items(&rest)[0]["checkout_id"], first.as_str());
    assert_eq!(rest["next_cursor"], Value::Null, "{rest}");
    let both = shop.ok(&["--json", "payments", "list"]).await.json();
    assert_eq!(items(&both).len(), 2);
    assert_eq!(both["next_cursor"], Value::Null);

    let unknown = "0190a000-0000-7000-8000-000000000000";
    for (args, why) in [
        (&["payments", "show", unknown][..], "payment not found"),
        (&["payments", "mark-paid", unknown], "payment not found"),
        (
            &["payments", "list", "--cursor", "not-a-cursor"],
            "is not a cursor of this list",
        ),
    ] {
        let run = shop.run(args).await;
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(run.error_line().contains(why), "{why}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    for args in [
        &["payments", "show", "payment-1"][..],
        &["payments", "show"],
        &["payments", "mark-paid"],
        &["payments", "list", "--status", "lost"],
        &["payments", "list", "--limit", "0"],
        &["payments", "settle", "--limit", "0"],
    ] {
        let run = shop.run(args).await;
        assert_eq!(
            run.code,
            Some(2),
            "{args:?} is a usage error: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    let help = shop.ok(&["payments", "--help"]).await.stdout;
    for command in ["list", "show", "mark-paid", "settle"] {
        assert!(help.contains(command), "{command} in\n{help}");
    }
}
