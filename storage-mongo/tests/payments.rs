//! `update_payment` is one transaction: a stale version, or an order that moved
//! under one of its transitions, writes nothing at all (not the payment, not the
//! other transitions, not the mails); a current one writes everything.
//!
//! Runs against `TEST_MONGODB_URL` like the conformance suite (see
//! `tests/support`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use chrono::{DateTime, Utc};
use marketplace_conformance::{World, key};
use marketplace_core::order::{OrderTransition, StatusChange};
use marketplace_core::outbox::{OutboxMessage, OutboxStatus};
use marketplace_core::payment::{Payment, PaymentUpdate};
use marketplace_core::{MessageId, Order, OrderStatus, PaymentId, Principal, StorageError, UserId};
use marketplace_core::{OrderStore, PaymentStore};
use storage_mongo::MongoStorage;

/// A checkout of one unit from each of two sellers: its orders (by seller
/// id, as stored) and its payment.
async fn two_seller_checkout(w: &World<MongoStorage>) -> (Principal, Vec<Order>, Payment) {
    let (a, b) = (w.seller().await, w.seller().await);
    let pa = w.product(&a, "Lamp", 2500, 5).await;
    let pb = w.product(&b, "Rug", 9000, 5).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    w.market.add_to_cart(&buyer, pa.id, 1).await.unwrap();
    w.market.add_to_cart(&buyer, pb.id, 1).await.unwrap();
    let done = w
        .market
        .checkout(&buyer, &key("pay"), Default::default())
        .await
        .unwrap();
    let s = w.market.storage();
    let orders = s.checkout_orders(done.checkout_id).await.unwrap();
    assert_eq!(orders.len(), 2);
    let mut payments = s.checkout_payments(&[done.checkout_id]).await.unwrap();
    assert_eq!(payments.len(), 1, "one payment per checkout");
    (buyer, orders, payments.remove(0))
}

/// A cancellation of `order` (from its current status), restocking it.
fn cancel(order: &Order, by: UserId, at: DateTime<Utc>) -> OrderTransition {
    OrderTransition {
        order_id: order.id,
        from: order.status,
        to: OrderStatus::Cancelled,
        change: StatusChange {
            from: Some(order.status),
            to: OrderStatus::Cancelled,
            at,
            by,
        },
        restock: order.units(),
        return_until: None,
        require_unreleased: false,
        ledger: None,
        outbox: vec![mail("order_status", at)],
    }
}

fn mail(kind: &str, at: DateTime<Utc>) -> OutboxMessage {
    OutboxMessage {
        id: MessageId(uuid::Uuid::new_v4()),
        kind: kind.to_owned(),
        recipient: "buyer@example.com".to_owned(),
        subject: kind.to_owned(),
        text_body: kind.to_owned(),
        html_body: kind.to_owned(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        created_at: at,
        delivered_at: None,
        claimed_by: None,
        claimed_until: None,
    }
}

/// `p` as the next version, with a visible change.
fn next(p: &Payment, failure: &str, at: DateTime<Utc>) -> Payment {
    let mut n = p.clone();
    n.version += 1;
    n.failure = Some(failure.to_owned());
    n.updated_at = at;
    n
}

/// What an update could have written: the payment, the orders, the stock of
/// their products and the outbox.
async fn snapshot(
    w: &World<MongoStorage>,
    p: &Payment,
    orders: &[Order],
) -> (Payment, Vec<Order>, Vec<u32>, usize) {
    let s = w.market.storage();
    let payment = s.payment(p.id).await.unwrap().unwrap();
    let mut now = Vec::new();
    let mut stock = Vec::new();
    for o in orders {
        now.push(s.order(o.id).await.unwrap().unwrap());
        for (product, _) in o.units() {
            stock.push(w.stock(product).await);
        }
    }
    (payment, now, stock, w.outbox().await.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn a_stale_payment_update_writes_nothing() {
    let Some((storage, guard)) = support::fresh().await else {
        return;
    };
    let w = World::new(storage).await;
    let (buyer, orders, p) = two_seller_checkout(&w).await;
    let s = w.market.storage();
    let at = w.now();

    // Someone else's update wins first.
    let won = PaymentUpdate {
        payment: next(&p, "first", at),
        transitions: Vec::new(),
        outbox: Vec::new(),
    };
    assert_eq!(s.update_payment(&won).await.unwrap(), Some(Vec::new()));
    let before = snapshot(&w, &p, &orders).await;
    assert_eq!(before.0, won.payment);

    // The same version again is stale: no payment, order, stock or mail change.
    let stale = PaymentUpdate {
        payment: next(&p, "second", at),
        transitions: vec![cancel(&orders[0], buyer.user_id, at)],
        outbox: vec![mail("payment_stale", at)],
    };
    assert_eq!(s.update_payment(&stale).await.unwrap(), None);
    assert_eq!(snapshot(&w, &p, &orders).await, before);

    // So is a version from the past, and a version 0 follows nothing.
    let mut older = stale.clone();
    older.payment.version = p.version;
    assert_eq!(s.update_payment(&older).await.unwrap(), None);
    let mut zero = stale.clone();
    zero.payment.version = 0;
    assert_eq!(s.update_payment(&zero).await.unwrap(), None);
    assert_eq!(snapshot(&w, &p, &orders).await, before);

    // No such payment.
    let mut missing = stale.clone();
    missing.payment.id = PaymentId(uuid::Uuid::new_v4());
    assert!(matches!(
        s.update_payment(&missing).await,
        Err(StorageError::NotFound)
    ));
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn a_transition_whose_order_moved_rolls_the_payment_back() {
    let Some((storage, guard)) = support::fresh().await else {
        return;
    };
    let w = World::new(storage).await;
    let (buyer, orders, _) = two_seller_checkout(&w).await;
    let s = w.market.storage();

    // The second order moves after the step was planned from the stored orders.
    let planned: Vec<OrderTransition> = orders
        .iter()
        .map(|o| cancel(o, buyer.user_id, w.now()))
        .collect();
    let seller = Principal {
        user_id: orders[1].seller_id,
        role: marketplace_core::Role::Seller,
    };
    w.market
        .set_order_status(&seller, orders[1].id, OrderStatus::Accepted)
        .await
        .unwrap();
    // Read the payment after the move (a move may bump it), so only the order's
    // condition fails.
    let p = stored_payment(s, &orders[0]).await;
    let before = snapshot(&w, &p, &orders).await;
    assert_eq!(before.1[1].status, OrderStatus::Accepted);

    let u = PaymentUpdate {
        payment: next(&p, "rolled back", w.now()),
        transitions: planned.clone(),
        outbox: vec![mail("payment_changed", w.now())],
    };
    assert_eq!(s.update_payment(&u).await.unwrap(), None);
    // The first transition applied, and the payment was replaced, before the
    // second found its order moved: all of it is rolled back.
    let after = snapshot(&w, &p, &orders).await;
    assert_eq!(after, before);
    assert_eq!(after.1[0].status, OrderStatus::Pending);

    // Planned from the current statuses, the same step applies in full, and
    // returns the orders in the order of the transitions.
    let current: Vec<Order> = after.1.clone();
    let u = PaymentUpdate {
        payment: next(&p, "applied", w.now()),
        transitions: vec![
            cancel(&current[1], buyer.user_id, w.now()),
            cancel(&current[0], buyer.user_id, w.now()),
        ],
        outbox: vec![mail("payment_changed", w.now())],
    };
    let moved = s.update_payment(&u).await.unwrap().expect("applies");
    assert_eq!(
        moved.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![current[1].id, current[0].id]
    );
    assert!(moved.iter().all(|o| o.status == OrderStatus::Cancelled));
    assert!(moved.iter().all(|o| o.payment_status.is_none()));
    let done = snapshot(&w, &p, &orders).await;
    assert_eq!(done.0, u.payment);
    assert!(done.1.iter().all(|o| o.status == OrderStatus::Cancelled));
    assert_eq!(
        done.2,
        before.2.iter().map(|n| n + 1).collect::<Vec<_>>(),
        "each cancellation restocks its unit"
    );
    // Two transition mails and the step's own.
    assert_eq!(done.3, before.3 + 3);
    drop(guard);
}

/// The stored payment of `order`'s checkout, which its provider reference
/// finds too.
async fn stored_payment(s: &MongoStorage, order: &Order) -> Payment {
    let mut v = s.checkout_payments(&[order.checkout_id]).await.unwrap();
    assert_eq!(v.len(), 1);
    let p = v.remove(0);
    if let Some(r) = &p.reference {
        let by_reference = s
            .payment_by_reference(&p.provider, r)
            .await
            .unwrap()
            .expect("found by its reference");
        assert_eq!(by_reference, p);
    }
    p
}
