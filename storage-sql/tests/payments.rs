//! A payment change as the SQL stores make it, through the storage traits
//! directly (the conformance suite reaches them through `Marketplace`, which
//! never sends a stale change on purpose): the conditional write on the
//! payment's version and its order transitions are one step, so a stale
//! version, or an order that moved, writes nothing at all (payment, orders,
//! stock, mails); a change that applies writes all of it, and reads back as
//! written through every lookup; of concurrent changes from one version, one
//! wins; a provider's event is recorded once.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Duration, Utc};
use marketplace_conformance::{World, key};
use marketplace_core::order::{OrderTransition, StatusChange};
use marketplace_core::outbox::{OutboxMessage, OutboxStatus};
use marketplace_core::payment::{
    MARKETPLACE, Payment, PaymentKey, PaymentQuery, PaymentStatus, PaymentUpdate,
};
use marketplace_core::{
    CheckoutId, MessageId, Order, OrderId, OrderStatus, PaymentId, Principal, ProductId, Storage,
    StorageError,
};
use uuid::Uuid;

/// A checkout of one unit from each of two sellers: its payment, its two orders
/// (by seller id, as `checkout_orders` lists them) and each order's product.
struct Bought {
    payment: Payment,
    orders: Vec<Order>,
    products: Vec<ProductId>,
    buyer: Principal,
}

async fn bought<S: Storage>(w: &World<S>, name: &str) -> Bought {
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    let mut products = Vec::new();
    for title in ["Lamp", "Vase"] {
        let seller = w.seller().await;
        let p = w.product(&seller, title, 1000, 3).await;
        w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
        products.push((seller.user_id, p.id));
    }
    let done = w
        .market
        .checkout(&buyer, &key(name), Default::default())
        .await
        .unwrap();
    let s = w.market.storage();
    let orders = s.checkout_orders(done.checkout_id).await.unwrap();
    assert_eq!(orders.len(), 2, "{orders:?}");
    let products = orders
        .iter()
        .map(|o| {
            products
                .iter()
                .find(|(seller, _)| *seller == o.seller_id)
                .unwrap()
                .1
        })
        .collect();
    let mut payments = s.checkout_payments(&[done.checkout_id]).await.unwrap();
    assert_eq!(payments.len(), 1, "{payments:?}");
    Bought {
        payment: payments.pop().unwrap(),
        orders,
        products,
        buyer,
    }
}

/// The marketplace's cancellation at `at` of `order`, from `from`, returning
/// its one unit of `product`.
fn cancel(
    order: &Order,
    product: ProductId,
    from: OrderStatus,
    at: DateTime<Utc>,
) -> OrderTransition {
    OrderTransition {
        order_id: order.id,
        from,
        to: OrderStatus::Cancelled,
        change: StatusChange {
            from: Some(from),
            to: OrderStatus::Cancelled,
            at,
            by: MARKETPLACE,
        },
        restock: vec![(product, 1)],
        return_until: None,
        require_unreleased: false,
        ledger: None,
        outbox: vec![mail(at, "order_cancelled")],
    }
}

fn mail(at: DateTime<Utc>, kind: &str) -> OutboxMessage {
    OutboxMessage {
        id: MessageId(Uuid::now_v7()),
        kind: kind.into(),
        recipient: "buyer@example.com".into(),
        subject: kind.into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
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

/// `p` voided, as its next version.
fn voided(p: &Payment, at: DateTime<Utc>) -> Payment {
    Payment {
        status: PaymentStatus::Voided,
        due_at: None,
        reference: Some(format!("ref-{}", p.id)),
        failure: Some("expired".into()),
        version: p.version + 1,
        updated_at: at,
        ..p.clone()
    }
}

async fn stock<S: Storage>(s: &S, ids: &[ProductId]) -> Vec<u32> {
    let mut out = Vec::new();
    for id in ids {
        out.push(s.product(*id).await.unwrap().unwrap().stock);
    }
    out
}

async fn orders<S: Storage>(s: &S, b: &Bought) -> Vec<Order> {
    let mut out = Vec::new();
    for o in &b.orders {
        out.push(s.order(o.id).await.unwrap().unwrap());
    }
    out
}

/// Asserts that nothing of `b` changed: its payment, its orders, their stock
/// (still `stock_was`) and the outbox (still `mails` messages).
async fn unchanged<S: Storage>(
    w: &World<S>,
    b: &Bought,
    stock_was: &[u32],
    mails: usize,
    what: &str,
) {
    let s = w.market.storage();
    assert_eq!(
        s.payment(b.payment.id).await.unwrap().as_ref(),
        Some(&b.payment),
        "{what}: the payment is unchanged"
    );
    assert_eq!(
        orders(s, b).await,
        b.orders,
        "{what}: the orders are unchanged"
    );
    assert_eq!(
        stock(s, &b.products).await,
        stock_was,
        "{what}: the stock is unchanged"
    );
    assert_eq!(w.outbox().await.len(), mails, "{what}: no mail is stored");
}

async fn stale_or_moved_writes_nothing<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let b = bought(&w, "stale").await;
    let s = w.market.storage();
    let at = w.now();
    let mails = w.outbox().await.len();
    let before_stock = stock(s, &b.products).await;
    assert_eq!(before_stock, [2, 2]);
    let cancel_both = vec![
        cancel(&b.orders[0], b.products[0], OrderStatus::Pending, at),
        cancel(&b.orders[1], b.products[1], OrderStatus::Pending, at),
    ];
    // A stale version: the stored one, or one too far ahead.
    for version in [b.payment.version, b.payment.version + 2] {
        let u = PaymentUpdate {
            payment: Payment {
                version,
                ..voided(&b.payment, at)
            },
            transitions: cancel_both.clone(),
            outbox: vec![mail(at, "payment_voided")],
        };
        assert_eq!(s.update_payment(&u).await.unwrap(), None);
        unchanged(&w, &b, &before_stock, mails, "stale version").await;
    }

    // No such payment.
    let ghost = PaymentUpdate {
        payment: Payment {
            id: PaymentId(Uuid::now_v7()),
            ..voided(&b.payment, at)
        },
        transitions: cancel_both.clone(),
        outbox: Vec::new(),
    };
    assert!(matches!(
        s.update_payment(&ghost).await,
        Err(StorageError::NotFound)
    ));
    unchanged(&w, &b, &before_stock, mails, "missing payment").await;

    // The second order moved (its seller accepted it): the first transition,
    // which would apply, and the payment's change are rolled back with it.
    let mut moved = cancel_both.clone();
    moved[1].from = OrderStatus::Accepted;
    let u = PaymentUpdate {
        payment: voided(&b.payment, at),
        transitions: moved,
        outbox: vec![mail(at, "payment_voided")],
    };
    assert_eq!(s.update_payment(&u).await.unwrap(), None);
    unchanged(&w, &b, &before_stock, mails, "an order moved").await;

    // A transition of an order that does not exist: NotFound, nothing written.
    let mut missing = cancel_both.clone();
    missing[1].order_id = OrderId(Uuid::now_v7());
    let u = PaymentUpdate {
        payment: voided(&b.payment, at),
        transitions: missing,
        outbox: Vec::new(),
    };
    assert!(matches!(
        s.update_payment(&u).await,
        Err(StorageError::NotFound)
    ));
    unchanged(&w, &b, &before_stock, mails, "a missing order").await;

    // The change that applies writes all of it, and returns the orders in
    // the transitions' order.
    let mut reversed = cancel_both.clone();
    reversed.reverse();
    let u = PaymentUpdate {
        payment: voided(&b.payment, at),
        transitions: reversed,
        outbox: vec![mail(at, "payment_voided")],
    };
    let changed = s.update_payment(&u).await.unwrap().unwrap();
    let ids: Vec<_> = changed.iter().map(|o| o.id).collect();
    assert_eq!(ids, [b.orders[1].id, b.orders[0].id]);
    assert!(changed.iter().all(|o| o.status == OrderStatus::Cancelled));
    assert!(changed.iter().all(|o| o.payment_status.is_none()));
    let stored = orders(s, &b).await;
    assert!(stored.iter().all(|o| o.status == OrderStatus::Cancelled));
    assert_eq!(stored[0].history.len(), b.orders[0].history.len() + 1);
    assert_eq!(stock(s, &b.products).await, [3, 3]);
    assert_eq!(w.outbox().await.len(), mails + 3);
    assert_eq!(
        s.payment(b.payment.id).await.unwrap(),
        Some(u.payment.clone())
    );
    // Once applied, the same change is stale.
    assert_eq!(s.update_payment(&u).await.unwrap(), None);
    assert_eq!(stock(s, &b.products).await, [3, 3]);
}

/// Stores `p` with `change` made, as its next version (without order
/// changes), and returns it as stored.
async fn store<S: Storage>(s: &S, p: &Payment, change: impl FnOnce(&mut Payment)) -> Payment {
    let mut next = Payment {
        version: p.version + 1,
        ..p.clone()
    };
    change(&mut next);
    let u = PaymentUpdate {
        payment: next,
        transitions: Vec::new(),
        outbox: Vec::new(),
    };
    assert_eq!(s.update_payment(&u).await.unwrap(), Some(Vec::new()));
    assert_eq!(s.payment(p.id).await.unwrap().as_ref(), Some(&u.payment));
    u.payment
}

async fn lookups_read_what_was_written<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let first = bought(&w, "first").await;
    w.clock.advance(Duration::seconds(10));
    let second = bought(&w, "second").await;
    let s = w.market.storage();
    let at = w.now();
    let (a, b) = (&first.payment, &second.payment);
    // Opened at the (manual) provider by the checkout: nothing left to do.
    assert!(a.reference.is_some() && a.due_at.is_none(), "{a:?}");
    assert!(s.payments_due(at, 10).await.unwrap().is_empty());

    // Due: the earliest first, at or before the time asked.
    let a = store(s, a, |p| p.due_at = Some(at + Duration::seconds(5))).await;
    let b = store(s, b, |p| p.due_at = Some(at + Duration::seconds(1))).await;
    let later = at + Duration::seconds(10);
    assert_eq!(
        s.payments_due(later, 10).await.unwrap(),
        [b.clone(), a.clone()]
    );
    assert_eq!(s.payments_due(later, 1).await.unwrap(), vec![b.clone()]);
    assert_eq!(
        s.payments_due(at + Duration::seconds(1), 10).await.unwrap(),
        vec![b.clone()]
    );
    assert!(s.payments_due(at, 10).await.unwrap().is_empty());

    // By the provider's reference, which names one payment.
    let reference = a.reference.clone().unwrap();
    assert_eq!(
        s.payment_by_reference(&a.provider, &reference)
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.payment_by_reference("another", &reference).await.unwrap(),
        None
    );
    let taken = PaymentUpdate {
        payment: Payment {
            reference: Some(reference.clone()),
            version: b.version + 1,
            ..b.clone()
        },
        transitions: Vec::new(),
        outbox: Vec::new(),
    };
    assert!(matches!(
        s.update_payment(&taken).await,
        Err(StorageError::AlreadyExists(_))
    ));
    assert_eq!(s.payment(b.id).await.unwrap().as_ref(), Some(&b));

    // Voided, with a new reference: no longer due, found by the new one only.
    let a = store(s, &a, |p| {
        let next = voided(p, at);
        *p = Payment {
            version: p.version,
            ..next
        }
    })
    .await;
    assert_eq!(s.payments_due(later, 10).await.unwrap(), vec![b.clone()]);
    assert_eq!(
        s.payment_by_reference(&a.provider, &reference)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.payment_by_reference(&a.provider, a.reference.as_deref().unwrap())
            .await
            .unwrap(),
        Some(a.clone())
    );

    // By checkout, in one call; unknown checkouts have none.
    let mut found = s
        .checkout_payments(&[b.checkout_id, CheckoutId(Uuid::now_v7()), a.checkout_id])
        .await
        .unwrap();
    found.sort_by_key(|p| p.created_at);
    assert_eq!(found, [a.clone(), b.clone()]);
    assert!(s.checkout_payments(&[]).await.unwrap().is_empty());
    assert_eq!(s.payment(PaymentId(Uuid::now_v7())).await.unwrap(), None);

    // Listings: newest first, by status and buyer, after a cursor.
    let all = PaymentQuery {
        limit: 10,
        ..PaymentQuery::default()
    };
    let cases = [
        (all.clone(), vec![b.clone(), a.clone()]),
        (
            PaymentQuery {
                status: Some(PaymentStatus::Voided),
                ..all.clone()
            },
            vec![a.clone()],
        ),
        (
            PaymentQuery {
                status: Some(PaymentStatus::Captured),
                ..all.clone()
            },
            vec![],
        ),
        (
            PaymentQuery {
                buyer_id: Some(second.buyer.user_id),
                ..all.clone()
            },
            vec![b.clone()],
        ),
        (
            PaymentQuery {
                buyer_id: Some(second.buyer.user_id),
                status: Some(PaymentStatus::Voided),
                ..all.clone()
            },
            vec![],
        ),
        (
            PaymentQuery {
                after: Some(PaymentKey {
                    created_at: b.created_at,
                    id: b.id,
                }),
                ..all.clone()
            },
            vec![a.clone()],
        ),
        (
            PaymentQuery {
                limit: 1,
                ..all.clone()
            },
            vec![b.clone()],
        ),
    ];
    for (q, expected) in cases {
        assert_eq!(s.list_payments(&q).await.unwrap(), expected, "{q:?}");
    }

    // A provider's event is recorded once, per provider.
    assert!(!s.payment_event_seen("simulated", "evt_1").await.unwrap());
    assert!(
        s.record_payment_event("simulated", "evt_1", at)
            .await
            .unwrap()
    );
    assert!(
        !s.record_payment_event("simulated", "evt_1", at)
            .await
            .unwrap()
    );
    assert!(s.payment_event_seen("simulated", "evt_1").await.unwrap());
    assert!(!s.payment_event_seen("stripe", "evt_1").await.unwrap());
    assert!(s.record_payment_event("stripe", "evt_1", at).await.unwrap());
}

async fn one_change_per_version<S: Storage + Clone>(storage: S) {
    let w = World::new(storage.clone()).await;
    let b = bought(&w, "race").await;
    let at = w.now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let s = storage.clone();
        // Half of them cancel both orders with the change, half change the
        // payment alone.
        let transitions = if i % 2 == 0 {
            vec![
                cancel(&b.orders[0], b.products[0], OrderStatus::Pending, at),
                cancel(&b.orders[1], b.products[1], OrderStatus::Pending, at),
            ]
        } else {
            Vec::new()
        };
        let u = PaymentUpdate {
            payment: Payment {
                failure: Some(format!("change {i}")),
                ..voided(&b.payment, at)
            },
            transitions,
            outbox: Vec::new(),
        };
        tasks.spawn(async move {
            loop {
                match s.update_payment(&u).await {
                    Err(StorageError::Transient(_)) => continue,
                    other => return (u, other.unwrap()),
                }
            }
        });
    }
    let won: Vec<_> = tasks
        .join_all()
        .await
        .into_iter()
        .filter(|(_, done)| done.is_some())
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let (u, changed) = &won[0];
    let s = &storage;
    assert_eq!(
        s.payment(b.payment.id).await.unwrap().as_ref(),
        Some(&u.payment)
    );
    let cancelled = !u.transitions.is_empty();
    assert_eq!(changed.as_ref().unwrap().len(), u.transitions.len());
    let expected_stock = if cancelled { [3, 3] } else { [2, 2] };
    assert_eq!(stock(s, &b.products).await, expected_stock);
    for o in orders(s, &b).await {
        let history = if cancelled { 2 } else { 1 };
        assert_eq!(o.history.len(), history, "{o:?}");
    }
}

#[tokio::test]
async fn sqlite_stale_or_moved_writes_nothing() {
    let fresh = common::sqlite().await;
    stale_or_moved_writes_nothing(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_stale_or_moved_writes_nothing() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    stale_or_moved_writes_nothing(fresh.storage).await;
}

#[tokio::test]
async fn sqlite_lookups_read_what_was_written() {
    let fresh = common::sqlite().await;
    lookups_read_what_was_written(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_lookups_read_what_was_written() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    lookups_read_what_was_written(fresh.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_change_per_version() {
    let fresh = common::sqlite().await;
    one_change_per_version(fresh.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_one_change_per_version() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    one_change_per_version(fresh.storage).await;
}
