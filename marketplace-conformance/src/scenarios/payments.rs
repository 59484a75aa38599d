//! Payments: the manual default, held stock that expires, capture once when the
//! sellers have decided, refunds on cancellation and return, webhooks, provider
//! faults, and the payment invariants under contention.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use marketplace_core::payment::{
    OrderPaymentStatus, Payment, PaymentQuery, PaymentStatus, ProviderState, RefundStatus,
    SimulatedFault, SimulatedPayments, WebhookOutcome, WebhookRequest,
};
use marketplace_core::{
    CapturePolicy, Checkout, Error, Order, OrderStatus, Principal, ProductId, Storage,
};

use super::money::{all_orders, deliver, money_invariants};
use crate::{World, assert_err, key, test_config};

/// A world taking payments through a simulated provider whose buyers pay
/// when told to.
async fn simulated<S: Storage>(
    storage: S,
    policy: CapturePolicy,
) -> (World<S>, Arc<SimulatedPayments>) {
    let sim = Arc::new(SimulatedPayments::default());
    let mut config = test_config();
    config.payments.capture = policy;
    (
        World::with_payments(storage, config, sim.clone()).await,
        sim,
    )
}

/// A checkout by a new buyer of one unit of each product.
async fn buy<S: Storage>(w: &World<S>, products: &[ProductId], k: &str) -> (Principal, Checkout) {
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    for p in products {
        w.market.add_to_cart(&buyer, *p, 1).await.unwrap();
    }
    let done = w
        .market
        .checkout(&buyer, &key(k), Default::default())
        .await
        .unwrap();
    (buyer, done)
}

/// The stored payment of a checkout.
async fn payment_of<S: Storage>(w: &World<S>, c: &Checkout) -> Payment {
    w.market
        .storage()
        .checkout_payments(&[c.checkout_id])
        .await
        .unwrap()
        .pop()
        .expect("every checkout has a payment")
}

/// Delivers webhooks to the marketplace; returns the outcomes.
async fn deliver_webhooks<S: Storage>(
    w: &World<S>,
    hooks: &[WebhookRequest],
) -> Vec<WebhookOutcome> {
    let mut out = Vec::new();
    for h in hooks {
        out.push(w.market.payment_webhook("simulated", h).await.unwrap());
    }
    out
}

/// The buyer pays at the provider, and its webhooks arrive.
async fn pay<S: Storage>(w: &World<S>, sim: &SimulatedPayments, c: &Checkout) -> Payment {
    let p = payment_of(w, c).await;
    assert!(sim.pay(p.reference.as_deref().unwrap()), "payable");
    deliver_webhooks(w, &sim.take_webhooks()).await;
    payment_of(w, c).await
}

/// Runs the payment worker until nothing is due.
async fn drain<S: Storage>(w: &World<S>) {
    for _ in 0..20 {
        let run = w.market.run_payments(500).await.unwrap();
        if run.looked_at == 0 {
            return;
        }
    }
    panic!("payments stayed due after 20 runs");
}

/// What [`payment_invariants`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentFigures {
    /// Payments in each status.
    pub statuses: std::collections::BTreeMap<&'static str, usize>,
    /// Σ captured, minor units.
    pub captured: i64,
    /// Σ refunded, minor units.
    pub refunded: i64,
    /// Refunds made.
    pub refunds: usize,
}

/// Checks every payment invariant over the whole store, once nothing is left
/// due, and returns the figures:
/// - for every checkout, captured − refunded == Σ totals of its orders that are
///   neither cancelled nor returned;
/// - a voided or failed payment captured nothing it kept, and its orders are
///   all cancelled (no order is both expired and paid);
/// - no refund is left open, and an order is refunded at most once;
/// - with a simulated provider: each payment was captured at most once, the
///   provider's captures and refunds equal what the records say, and no refund
///   key was used twice.
pub async fn payment_invariants<S: Storage>(
    w: &World<S>,
    admin: &Principal,
    sim: Option<&SimulatedPayments>,
) -> PaymentFigures {
    let orders = all_orders(w, admin).await;
    let mut by_checkout: HashMap<_, Vec<&Order>> = HashMap::new();
    for o in &orders {
        by_checkout.entry(o.checkout_id).or_default().push(o);
    }
    let payments = all_payments(w).await;
    assert_eq!(
        payments.len(),
        by_checkout.len(),
        "one payment per checkout"
    );
    let book = sim.map(|s| s.payments()).unwrap_or_default();
    let mut figures = PaymentFigures::default();
    for p in &payments {
        *figures.statuses.entry(p.status.as_str()).or_default() += 1;
        figures.captured += p.captured.amount;
        figures.refunded += p.refunded.amount;
        figures.refunds += p.refunds.len();
        let orders = &by_checkout[&p.checkout_id];
        let live: i64 = orders
            .iter()
            .filter(|o| o.status.holds_stock())
            .map(|o| o.total.amount)
            .sum();
        let kept = if p.status.is_captured() {
            p.captured.amount - p.refunded.amount
        } else {
            0
        };
        assert_eq!(
            kept, live,
            "captured - refunded == live order totals for {p:#?}\n{orders:#?}"
        );
        assert_ne!(p.status, PaymentStatus::Capturing, "no capture left midway");
        assert!(
            !p.has_open_refunds(),
            "no refund left open: {:?}",
            p.refunds
        );
        if matches!(p.status, PaymentStatus::Voided | PaymentStatus::Failed) {
            assert!(
                orders.iter().all(|o| o.status == OrderStatus::Cancelled),
                "an ended payment leaves no live order"
            );
        }
        let mut refunded_orders: Vec<_> = p.refunds.iter().map(|r| r.order_id).collect();
        refunded_orders.sort();
        let n = refunded_orders.len();
        refunded_orders.dedup();
        assert_eq!(
            n,
            refunded_orders.len(),
            "an order is refunded at most once"
        );
        if sim.is_some() {
            let Some(reference) = &p.reference else {
                continue;
            };
            let sp = &book[reference];
            assert!(sp.captures.len() <= 1, "captured once: {sp:?}");
            let captured: i64 = sp.captures.iter().map(|(_, m)| m.amount).sum();
            let refunded: i64 = sp.refunds.iter().map(|(_, m)| m.amount).sum();
            let mut keys: Vec<_> = sp.refunds.iter().map(|(k, _)| k).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), sp.refunds.len(), "no refund key twice");
            assert_eq!(
                (captured, refunded),
                (
                    if p.status.is_captured() {
                        p.captured.amount
                    } else {
                        0
                    },
                    p.refunded.amount
                ),
                "the provider's book matches the payment: {p:#?} {sp:#?}"
            );
        }
    }
    figures
}

/// Every payment, newest first.
pub async fn all_payments<S: Storage>(w: &World<S>) -> Vec<Payment> {
    let mut all = Vec::new();
    let mut q = PaymentQuery {
        limit: 200,
        ..PaymentQuery::default()
    };
    loop {
        let page = w.market.storage().list_payments(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after = Some(marketplace_core::payment::PaymentKey {
            created_at: last.created_at,
            id: last.id,
        });
        all.extend(page);
    }
    all
}

/// The manual default: nothing is held, sellers fulfil unpaid orders, an
/// admin marks the checkout paid, and a later cancellation is a refund.
pub async fn manual_payments_are_marked_paid_and_refunded<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let (s1, s2) = (w.seller().await, w.seller().await);
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let p2 = w.product(&s2, "Rug", 2500, 5).await;
    let (buyer, done) = buy(&w, &[p1.id, p2.id], "m1").await;
    let pay = done.payment.clone().expect("the checkout says how to pay");
    assert_eq!(pay.status, PaymentStatus::AwaitingPayment);
    assert_eq!(pay.provider, "manual");
    assert_eq!(pay.amount.amount, 4000);
    assert!(
        pay.expires_at.is_none(),
        "nothing expires when paying on delivery"
    );
    assert!(pay.instructions.as_deref().unwrap_or("").contains("4"));
    assert!(
        done.orders
            .iter()
            .all(|o| o.payment_status == Some(OrderPaymentStatus::AwaitingPayment))
    );
    // Sellers fulfil before payment.
    let o1 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s1.user_id)
        .unwrap();
    let o2 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s2.user_id)
        .unwrap();
    w.market
        .set_order_status(&s1, o1.id, OrderStatus::Accepted)
        .await
        .unwrap();
    assert_err!(
        w.market.mark_payment_paid(&buyer, pay.id).await,
        Error::Forbidden(_)
    );
    let paid = w.market.mark_payment_paid(&admin, pay.id).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Captured);
    assert_eq!(paid.captured.amount, 4000);
    assert_err!(
        w.market.mark_payment_paid(&admin, pay.id).await,
        Error::Conflict {
            code: "payment_settled",
            ..
        }
    );
    let seen = w.market.buyer_order(&buyer, o2.id).await.unwrap();
    assert_eq!(seen.payment_status, Some(OrderPaymentStatus::Paid));
    // A cancellation after payment is refunded, once.
    w.market
        .set_order_status(&s2, o2.id, OrderStatus::Cancelled)
        .await
        .unwrap();
    let after = w.market.payment(&admin, pay.id).await.unwrap();
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunded.amount, 2500);
    assert_eq!(after.refunds.len(), 1);
    assert_eq!(after.refunds[0].status, RefundStatus::Succeeded);
    assert_eq!(after.refunds[0].order_id, Some(o2.id));
    let seen = w.market.buyer_order(&buyer, o2.id).await.unwrap();
    assert_eq!(seen.payment_status, Some(OrderPaymentStatus::Refunded));
    // The buyer reads the payment of their checkout; nobody else does.
    assert_eq!(
        w.market
            .checkout_payment(&buyer, done.checkout_id)
            .await
            .unwrap()
            .id,
        pay.id
    );
    let other = w.buyer().await;
    assert_err!(
        w.market.checkout_payment(&other, done.checkout_id).await,
        Error::NotFound(_)
    );
    drain(&w).await;
    payment_invariants(&w, &admin, None).await;
}

/// An unpaid checkout holds its stock, sellers cannot accept it, and when it
/// expires several workers cancel its orders and return the stock once.
pub async fn unpaid_checkouts_expire_once_and_return_their_stock<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let w = Arc::new(w);
    let admin = w.admin().await;
    let (s1, s2) = (w.seller().await, w.seller().await);
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let p2 = w.product(&s2, "Rug", 2500, 5).await;
    let (_buyer, done) = buy(&w, &[p1.id, p2.id], "e1").await;
    let pay = done.payment.clone().unwrap();
    assert_eq!(pay.status, PaymentStatus::AwaitingPayment);
    assert!(pay.client_secret.is_some(), "the client can pay");
    assert_eq!(
        pay.expires_at,
        Some(w.now() + Duration::minutes(30)),
        "held for the default 30 minutes"
    );
    assert_eq!((w.stock(p1.id).await, w.stock(p2.id).await), (4, 4), "held");
    let o1 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s1.user_id)
        .unwrap();
    assert_err!(
        w.market
            .set_order_status(&s1, o1.id, OrderStatus::Accepted)
            .await,
        Error::Conflict {
            code: "payment_pending",
            ..
        }
    );
    // Not yet due.
    w.clock.advance(Duration::minutes(29));
    w.market.run_payments(100).await.unwrap();
    assert_eq!(
        payment_of(&w, &done).await.status,
        PaymentStatus::AwaitingPayment
    );
    w.clock.advance(Duration::minutes(2));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            w.market.run_payments(100).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = payment_of(&w, &done).await;
    assert_eq!(after.status, PaymentStatus::Voided);
    assert_eq!(
        (w.stock(p1.id).await, w.stock(p2.id).await),
        (5, 5),
        "returned once"
    );
    for o in &done.orders {
        let o = w.market.order(&admin, o.id).await.unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(o.payment_status, Some(OrderPaymentStatus::NotCharged));
        assert_eq!(
            o.history
                .iter()
                .filter(|c| c.to == OrderStatus::Cancelled)
                .count(),
            1
        );
    }
    // The provider's payment was cancelled first: the buyer can no longer pay.
    assert!(!sim.pay(after.reference.as_deref().unwrap()));
    assert_eq!(w.market.run_payments(100).await.unwrap().looked_at, 0);
    payment_invariants(&w, &admin, Some(&sim)).await;
}

/// The capture waits for every seller's decision and takes the sum of the
/// orders still live; a cancellation after it is a refund.
pub async fn capture_waits_for_every_seller_and_takes_the_live_sum<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let admin = w.admin().await;
    let sellers = [w.seller().await, w.seller().await, w.seller().await];
    let mut products = Vec::new();
    for (i, s) in sellers.iter().enumerate() {
        products.push(w.product(s, "Thing", 1000 * (i as i64 + 1), 3).await.id);
    }
    let (buyer, done) = buy(&w, &products, "c1").await;
    let order_of = |s: &Principal| {
        done.orders
            .iter()
            .find(|o| o.seller_id == s.user_id)
            .unwrap()
            .id
    };
    let paid = pay(&w, &sim, &done).await;
    assert_eq!(paid.status, PaymentStatus::Authorized);
    assert_eq!(paid.authorized.amount, 6000);
    assert!(paid.capture_by.is_some());
    let o = w
        .market
        .buyer_order(&buyer, order_of(&sellers[0]))
        .await
        .unwrap();
    assert_eq!(o.payment_status, Some(OrderPaymentStatus::Authorized));

    w.market
        .set_order_status(&sellers[0], order_of(&sellers[0]), OrderStatus::Accepted)
        .await
        .unwrap();
    assert_err!(
        w.market
            .set_order_status(&sellers[0], order_of(&sellers[0]), OrderStatus::Packed)
            .await,
        Error::Conflict {
            code: "payment_not_captured",
            ..
        }
    );
    w.market
        .set_order_status(&sellers[1], order_of(&sellers[1]), OrderStatus::Cancelled)
        .await
        .unwrap();
    assert_eq!(
        payment_of(&w, &done).await.status,
        PaymentStatus::Authorized,
        "one seller is still deciding"
    );
    w.market
        .set_order_status(&sellers[2], order_of(&sellers[2]), OrderStatus::Accepted)
        .await
        .unwrap();
    let captured = payment_of(&w, &done).await;
    assert_eq!(captured.status, PaymentStatus::Captured);
    assert_eq!(captured.captured.amount, 1000 + 3000, "the accepted orders");
    let book = &sim.payments()[captured.reference.as_deref().unwrap()];
    assert_eq!(book.captures.len(), 1);
    assert_eq!(book.captures[0].1.amount, 4000);
    let cancelled = w
        .market
        .buyer_order(&buyer, order_of(&sellers[1]))
        .await
        .unwrap();
    assert_eq!(
        cancelled.payment_status,
        Some(OrderPaymentStatus::NotCharged)
    );

    // After the capture, a cancellation refunds that order.
    w.market
        .set_order_status(&sellers[2], order_of(&sellers[2]), OrderStatus::Cancelled)
        .await
        .unwrap();
    let after = payment_of(&w, &done).await;
    assert_eq!(after.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(after.refunded.amount, 3000);
    // And a completed return refunds, with the ledger's reversal.
    for to in [
        OrderStatus::Packed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ] {
        w.market
            .set_order_status(&sellers[0], order_of(&sellers[0]), to)
            .await
            .unwrap();
    }
    w.market
        .request_return(&buyer, order_of(&sellers[0]))
        .await
        .unwrap();
    w.market
        .set_order_status(&sellers[0], order_of(&sellers[0]), OrderStatus::Returned)
        .await
        .unwrap();
    let after = payment_of(&w, &done).await;
    assert_eq!(after.status, PaymentStatus::Refunded);
    assert_eq!(after.refunded.amount, 4000);
    let money = money_invariants(&w, &admin).await;
    assert_eq!(money.entries.get("reversal"), Some(&1));
    let figures = payment_invariants(&w, &admin, Some(&sim)).await;
    assert_eq!((figures.captured, figures.refunded), (4000, 4000));
}

/// When sellers never decide, the authorization is captured before it
/// lapses, for the orders still live.
pub async fn capture_deadline_takes_what_is_live<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let admin = w.admin().await;
    let (s1, s2) = (w.seller().await, w.seller().await);
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let p2 = w.product(&s2, "Rug", 2500, 5).await;
    let (buyer, done) = buy(&w, &[p1.id, p2.id], "d1").await;
    pay(&w, &sim, &done).await;
    let o2 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s2.user_id)
        .unwrap();
    w.market.cancel_order(&buyer, o2.id).await.unwrap();
    w.clock.advance(Duration::days(5));
    w.market.run_payments(100).await.unwrap();
    assert_eq!(
        payment_of(&w, &done).await.status,
        PaymentStatus::Authorized
    );
    w.clock.advance(Duration::days(1) + Duration::minutes(1));
    drain(&w).await;
    let p = payment_of(&w, &done).await;
    assert_eq!(p.status, PaymentStatus::Captured);
    assert_eq!(p.captured.amount, 1500);
    assert_eq!((w.stock(p1.id).await, w.stock(p2.id).await), (4, 5));
    payment_invariants(&w, &admin, Some(&sim)).await;
}

/// With capture at checkout the buyer is charged at once; orders cancelled
/// before or after, and completed returns, are refunded.
pub async fn immediate_capture_refunds_cancellations_and_returns<S: Storage>(storage: S) {
    let sim = Arc::new(SimulatedPayments::paying());
    let mut config = test_config();
    config.payments.capture = CapturePolicy::AtCheckout;
    let w = World::with_payments(storage, config, sim.clone()).await;
    let admin = w.admin().await;
    let (s1, s2) = (w.seller().await, w.seller().await);
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let p2 = w.product(&s2, "Rug", 2500, 5).await;
    let (buyer, done) = buy(&w, &[p1.id, p2.id], "i1").await;
    let pay = done.payment.clone().unwrap();
    assert_eq!(pay.status, PaymentStatus::Captured);
    assert_eq!(pay.captured.amount, 4000);
    let o1 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s1.user_id)
        .unwrap();
    let o2 = done
        .orders
        .iter()
        .find(|o| o.seller_id == s2.user_id)
        .unwrap();
    assert_eq!(o1.payment_status, Some(OrderPaymentStatus::Paid));
    w.market.cancel_order(&buyer, o1.id).await.unwrap();
    deliver(&w, &s2, o2.id).await;
    w.market.request_return(&buyer, o2.id).await.unwrap();
    w.market
        .set_order_status(&s2, o2.id, OrderStatus::Returned)
        .await
        .unwrap();
    let p = payment_of(&w, &done).await;
    assert_eq!(p.status, PaymentStatus::Refunded);
    assert_eq!(p.refunds.len(), 2);
    assert!(
        p.refunds
            .iter()
            .all(|r| r.status == RefundStatus::Succeeded)
    );
    assert_eq!(
        p.refunds
            .iter()
            .find(|r| r.order_id == Some(o2.id))
            .unwrap()
            .reason,
        "returned"
    );
    money_invariants(&w, &admin).await;
    let f = payment_invariants(&w, &admin, Some(&sim)).await;
    assert_eq!((f.captured, f.refunded), (4000, 4000));
}

/// Webhooks: a bad signature is refused, the same event twice is applied
/// once, events about nothing we know are acknowledged, and a late `failed`
/// after the payment never moves it back.
pub async fn webhooks_are_verified_deduplicated_and_order_tolerant<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let admin = w.admin().await;
    let s1 = w.seller().await;
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let (_buyer, done) = buy(&w, &[p1.id], "w1").await;
    let p = payment_of(&w, &done).await;
    let reference = p.reference.clone().unwrap();
    assert!(sim.decline(&reference));
    assert!(sim.pay(&reference));
    let hooks = sim.take_webhooks();
    assert_eq!(hooks.len(), 2);
    let (failed, paid) = (hooks[0].clone(), hooks[1].clone());

    let mut forged = paid.clone();
    forged.body = String::from_utf8(paid.body.clone())
        .unwrap()
        .replace("1500", "1")
        .into_bytes();
    assert_err!(
        w.market.payment_webhook("simulated", &forged).await,
        Error::Validation(_)
    );
    let mut unsigned = paid.clone();
    unsigned.headers.clear();
    assert_err!(
        w.market.payment_webhook("simulated", &unsigned).await,
        Error::Validation(_)
    );
    assert_err!(
        w.market.payment_webhook("stripe", &paid).await,
        Error::NotFound(_)
    );
    assert_eq!(
        payment_of(&w, &done).await.status,
        PaymentStatus::AwaitingPayment
    );

    // Out of order: the payment arrives before the earlier decline.
    assert_eq!(
        deliver_webhooks(&w, &[paid.clone(), paid.clone(), failed.clone()]).await,
        vec![
            WebhookOutcome::Applied,
            WebhookOutcome::Duplicate,
            WebhookOutcome::Applied
        ]
    );
    let after = payment_of(&w, &done).await;
    assert_eq!(
        after.status,
        PaymentStatus::Authorized,
        "a late decline changes nothing"
    );
    assert_eq!(after.failure, None);
    let stranger = sim.webhook("simpay_999999", "authorized", p.amount);
    assert_eq!(
        deliver_webhooks(&w, &[stranger]).await,
        vec![WebhookOutcome::Ignored]
    );
    // Left undecided, the authorization is captured at its deadline.
    w.clock.advance(Duration::days(7));
    drain(&w).await;
    payment_invariants(&w, &admin, Some(&sim)).await;
}

/// A payment that succeeds after its checkout expired is released (an
/// authorization) or refunded in full (a capture); its orders stay cancelled.
pub async fn payments_after_expiry_are_voided_or_refunded<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::AtCheckout).await;
    let admin = w.admin().await;
    let s1 = w.seller().await;
    let p1 = w.product(&s1, "Lamp", 1500, 5).await;
    let (_b1, late_capture) = buy(&w, &[p1.id], "x1").await;
    let (_b2, expired_first) = buy(&w, &[p1.id], "x2").await;
    w.clock.advance(Duration::minutes(31));
    // The first buyer pays after the deadline, before the worker ran.
    let r1 = payment_of(&w, &late_capture).await.reference.unwrap();
    assert!(sim.pay(&r1));
    deliver_webhooks(&w, &sim.take_webhooks()).await;
    // The second checkout expires first; a payment that still gets through
    // at the provider (it lost our cancel) is refunded when it is reported.
    drain(&w).await;
    let p2 = payment_of(&w, &expired_first).await;
    assert_eq!(p2.status, PaymentStatus::Voided);
    let late = sim.webhook(p2.reference.as_deref().unwrap(), "captured", p2.amount);
    deliver_webhooks(&w, &[late]).await;
    drain(&w).await;

    let p1 = payment_of(&w, &late_capture).await;
    assert_eq!(p1.status, PaymentStatus::Refunded, "{p1:#?}");
    assert_eq!((p1.captured.amount, p1.refunded.amount), (1500, 1500));
    assert_eq!(w.stock(late_capture.orders[0].items[0].product_id).await, 5);
    for c in [&late_capture, &expired_first] {
        let o = w.market.order(&admin, c.orders[0].id).await.unwrap();
        assert_eq!(o.status, OrderStatus::Cancelled);
    }
    let figures = payment_invariants(&w, &admin, Some(&sim)).await;
    assert_eq!(figures.captured, figures.refunded);
}

/// Timeouts and lost answers: the call is repeated with the same key and the
/// buyer is charged, captured and refunded once; a declined payment cancels
/// the checkout and returns its stock.
pub async fn provider_timeouts_never_charge_twice<S: Storage>(storage: S) {
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let admin = w.admin().await;
    let s1 = w.seller().await;
    let p1 = w.product(&s1, "Lamp", 1500, 10).await;
    // Creating the payment times out: the checkout stands, and repeating it
    // (same key) opens the payment.
    sim.fail_next([SimulatedFault::DoThenTimeout]);
    let (buyer, done) = buy(&w, &[p1.id], "t1").await;
    let first = done.payment.clone().unwrap();
    assert!(first.reference.is_none() && first.client_secret.is_none());
    let again = w
        .market
        .checkout(&buyer, &key("t1"), Default::default())
        .await
        .unwrap();
    assert_eq!(again.checkout_id, done.checkout_id);
    let opened = again.payment.unwrap();
    assert!(opened.client_secret.is_some());
    assert_eq!(sim.payments().len(), 1, "one payment at the provider");

    // The capture's answer is lost, and so is the check that follows: the
    // worker repeats the capture (same key) later; captured once.
    assert!(sim.pay(opened.reference.as_deref().unwrap()));
    deliver_webhooks(&w, &sim.take_webhooks()).await;
    sim.fail_next([SimulatedFault::DoThenTimeout, SimulatedFault::Timeout]);
    let order = done.orders[0].id;
    w.market
        .set_order_status(&s1, order, OrderStatus::Accepted)
        .await
        .unwrap();
    assert_eq!(payment_of(&w, &done).await.status, PaymentStatus::Capturing);
    w.clock.advance(Duration::seconds(31));
    drain(&w).await;
    assert_eq!(payment_of(&w, &done).await.status, PaymentStatus::Captured);

    // The refund's answer is lost too.
    sim.fail_next([SimulatedFault::DoThenTimeout]);
    w.market
        .set_order_status(&s1, order, OrderStatus::Cancelled)
        .await
        .unwrap();
    assert_eq!(
        payment_of(&w, &done).await.refunds[0].status,
        RefundStatus::Requested
    );
    w.clock.advance(Duration::seconds(31));
    drain(&w).await;
    assert_eq!(payment_of(&w, &done).await.status, PaymentStatus::Refunded);

    // A declined payment ends the checkout at once.
    sim.fail_next([SimulatedFault::Decline("card declined".into())]);
    let (_b, declined) = buy(&w, &[p1.id], "t2").await;
    let p = declined.payment.unwrap();
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(
        declined.orders[0].status,
        OrderStatus::Cancelled,
        "the answer shows the orders as they are"
    );
    assert_eq!(w.stock(p1.id).await, 10);
    let o = w.market.order(&admin, declined.orders[0].id).await.unwrap();
    assert_eq!(o.status, OrderStatus::Cancelled);
    let f = payment_invariants(&w, &admin, Some(&sim)).await;
    assert_eq!((f.captured, f.refunded), (1500, 1500));
    assert!(matches!(
        sim.payments()[opened.reference.as_deref().unwrap()].state,
        ProviderState::Captured(_)
    ));
}

/// Double-click checkouts, duplicate webhooks, sellers accepting and
/// cancelling while captures run, and workers racing the expiry: afterwards
/// every payment invariant and the stock invariant hold.
pub async fn payment_invariants_hold_under_contention<S: Storage>(storage: S) {
    const BUYERS: usize = 16;
    const STOCK: u32 = 40;
    let (w, sim) = simulated(storage, CapturePolicy::WhenAccepted).await;
    let (w, sim) = (Arc::new(w), sim);
    let admin = w.admin().await;
    let sellers = [w.seller().await, w.seller().await, w.seller().await];
    let mut products = Vec::new();
    for (i, s) in sellers.iter().enumerate() {
        products.push(w.product(s, "Hot", 700 + 100 * i as i64, STOCK).await.id);
    }
    // Every buyer checks out twice at once with one key (a double click).
    let mut tasks = Vec::new();
    for b in 0..BUYERS {
        let (w, products) = (Arc::clone(&w), products.clone());
        tasks.push(tokio::spawn(async move {
            let buyer = w.buyer().await;
            w.address(&buyer).await;
            for k in 0..2 {
                let p = products[(b + k) % products.len()];
                w.market
                    .add_to_cart(&buyer, p, 1 + (b % 2) as u32)
                    .await
                    .unwrap();
            }
            let k = key(format!("hot-{b}"));
            let (x, y) = tokio::join!(
                w.market.checkout(&buyer, &k, Default::default()),
                w.market.checkout(&buyer, &k, Default::default())
            );
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_eq!(
                x.checkout_id, y.checkout_id,
                "one checkout per double click"
            );
            (buyer, x)
        }));
    }
    let mut checkouts = Vec::new();
    for t in tasks {
        checkouts.push(t.await.unwrap());
    }
    // Three of four buyers pay; each webhook is delivered twice, at once.
    for (b, (_, c)) in checkouts.iter().enumerate() {
        if b % 4 != 3 {
            let p = payment_of(&w, c).await;
            assert!(sim.pay(p.reference.as_deref().unwrap()));
        }
    }
    let hooks = sim.take_webhooks();
    let mut tasks = Vec::new();
    for h in [hooks.clone(), hooks].concat() {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            w.market.payment_webhook("simulated", &h).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Sellers decide while workers run: some accept, some cancel, some cancel
    // right after accepting (racing the capture the acceptance started).
    let mut tasks = Vec::new();
    for (b, (_, c)) in checkouts.iter().enumerate() {
        for (n, o) in c.orders.iter().enumerate() {
            let w = Arc::clone(&w);
            let seller = *sellers.iter().find(|s| s.user_id == o.seller_id).unwrap();
            let id = o.id;
            let plan = (b + n) % 3;
            tasks.push(tokio::spawn(async move {
                let accept = w
                    .market
                    .set_order_status(&seller, id, OrderStatus::Accepted)
                    .await;
                match accept {
                    Ok(_)
                    | Err(Error::Conflict {
                        code: "payment_pending",
                        ..
                    }) => {}
                    Err(e) => panic!("accepting: {e:?}"),
                }
                if plan == 0 {
                    match w
                        .market
                        .set_order_status(&seller, id, OrderStatus::Cancelled)
                        .await
                    {
                        Ok(_) | Err(Error::InvalidTransition { .. }) => {}
                        Err(e) => panic!("cancelling: {e:?}"),
                    }
                }
            }));
        }
    }
    for _ in 0..3 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                w.market.run_payments(100).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The unpaid expire, while a late buyer's payment races the workers.
    w.clock.advance(Duration::minutes(31));
    let late = &checkouts[3].1;
    let r = payment_of(&w, late).await.reference.unwrap();
    sim.pay(&r);
    let hooks = sim.take_webhooks();
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            w.market.run_payments(100).await.unwrap();
        }));
    }
    for h in hooks {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            w.market.payment_webhook("simulated", &h).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Past every capture deadline, then everything settles.
    w.clock.advance(Duration::days(7));
    drain(&w).await;

    let f = payment_invariants(&w, &admin, Some(&sim)).await;
    assert!(f.captured > 0, "some payments were captured: {f:?}");
    assert!(
        f.statuses.get("voided").copied().unwrap_or(0) >= BUYERS / 4,
        "{f:?}"
    );
    // The stock invariant: what is left plus what live orders hold.
    let orders = all_orders(&w, &admin).await;
    for p in &products {
        let held: u32 = orders
            .iter()
            .filter(|o| o.status.holds_stock())
            .flat_map(|o| o.items.iter())
            .filter(|i| i.product_id == *p)
            .map(|i| i.quantity)
            .sum();
        assert_eq!(w.stock(*p).await + held, STOCK, "stock + held == initial");
    }
    println!("payment invariants under contention: {f:?}");
}

/// A payment is settled only by the provider that took it: a process
/// configured with another one (the operator switched providers) leaves it
/// as it is, refunds included, instead of recording money that never moved.
pub async fn payments_are_settled_only_by_their_provider<S: Storage>(storage: S) {
    let shared = Arc::new(storage);
    let (card, sim) = simulated(Arc::clone(&shared), CapturePolicy::WhenAccepted).await;
    let manual = World::new(Arc::clone(&shared)).await;
    let admin = card.admin().await;
    let s1 = card.seller().await;
    let p1 = card.product(&s1, "Lamp", 1500, 5).await;
    let (_buyer, done) = buy(&card, &[p1.id], "p1").await;
    pay(&card, &sim, &done).await;
    let before = payment_of(&card, &done).await;
    assert_eq!(before.status, PaymentStatus::Authorized);
    // The other process neither captures nor expires it, and cannot mark it paid.
    manual.clock.advance(Duration::days(8));
    manual.market.run_payments(100).await.unwrap();
    assert_eq!(payment_of(&manual, &done).await, before);
    assert_err!(
        manual.market.mark_payment_paid(&admin, before.id).await,
        Error::Conflict {
            code: "payment_not_manual",
            ..
        }
    );
    // Its own provider settles it.
    card.clock.advance(Duration::days(8));
    drain(&card).await;
    assert_eq!(
        payment_of(&card, &done).await.status,
        PaymentStatus::Captured
    );
    payment_invariants(&card, &admin, Some(&sim)).await;
}
