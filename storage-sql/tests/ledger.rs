//! The ledger's rules as the SQL schema itself keeps them, through the storage
//! traits directly (the conformance suite reaches them through `Marketplace`,
//! which never asks for what the database must refuse): no bucket below zero
//! and one earning, release and reversal per order, each refusal leaving the
//! whole step unwritten; conditional releases and settlements; a balance taken
//! once under concurrency; one commission rule per scope, the default included.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Utc};
use marketplace_conformance::{World, key, usd};
use marketplace_core::commission::{CommissionRule, CommissionTerms, RuleScope};
use marketplace_core::ledger::{EarningRelease, EntryKind, LedgerEntry, LedgerQuery};
use marketplace_core::order::{OrderTransition, StatusChange};
use marketplace_core::payout::{PayoutRequest, PayoutSettlement, PayoutStatus};
use marketplace_core::{
    Currency, LedgerEntryId, Money, Order, OrderId, OrderStatus, PayoutId, Principal, Storage,
    StorageError, UserId,
};
use uuid::Uuid;

/// A delivered order of `seller` (one unit at 1 000, no commission rule): its
/// earning of 1 000 is pending.
async fn delivered<S: Storage>(w: &World<S>, seller: &Principal) -> Order {
    let p = w.product(seller, "Lamp", 1000, 1).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
    let done = w
        .market
        .checkout(&buyer, &key("sale"), Default::default())
        .await
        .unwrap();
    let id = done.orders[0].id;
    for to in [
        OrderStatus::Accepted,
        OrderStatus::Packed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ] {
        w.market.set_order_status(seller, id, to).await.unwrap();
    }
    w.market.storage().order(id).await.unwrap().unwrap()
}

fn entry(
    seller: UserId,
    kind: EntryKind,
    (pending, available): (i64, i64),
    order: Option<OrderId>,
    payout: Option<PayoutId>,
    at: DateTime<Utc>,
) -> LedgerEntry {
    LedgerEntry {
        id: LedgerEntryId(Uuid::now_v7()),
        seller_id: seller,
        kind,
        pending: usd(pending),
        available: usd(available),
        commission: usd(0),
        order_id: order,
        payout_id: payout,
        created_at: at,
    }
}

/// A transition of a delivered order to itself, writing `ledger`.
fn delivered_again(order: &Order, ledger: LedgerEntry) -> OrderTransition {
    OrderTransition {
        order_id: order.id,
        from: OrderStatus::Delivered,
        to: OrderStatus::Delivered,
        change: StatusChange {
            from: Some(OrderStatus::Delivered),
            to: OrderStatus::Delivered,
            at: ledger.created_at,
            by: order.seller_id,
        },
        restock: Vec::new(),
        return_until: None,
        require_unreleased: false,
        ledger: Some(ledger),
        outbox: Vec::new(),
    }
}

/// (pending, available) of the seller's USD balance.
async fn buckets<S: Storage>(s: &S, seller: UserId) -> (i64, i64) {
    let b = s.balances(Some(seller)).await.unwrap();
    assert!(b.len() <= 1, "{b:?}");
    b.first()
        .map_or((0, 0), |b| (b.pending.amount, b.available.amount))
}

async fn entries<S: Storage>(s: &S, seller: UserId) -> Vec<LedgerEntry> {
    s.ledger_entries(&LedgerQuery {
        seller_id: Some(seller),
        limit: 100,
        ..LedgerQuery::default()
    })
    .await
    .unwrap()
}

fn request(seller: UserId, minimum: i64, at: DateTime<Utc>) -> PayoutRequest {
    PayoutRequest {
        payout_id: PayoutId(Uuid::now_v7()),
        entry_id: LedgerEntryId(Uuid::now_v7()),
        seller_id: seller,
        currency: Currency::USD,
        minimum,
        provider: "manual".into(),
        requested_by: seller,
        at,
    }
}

async fn ledger_refusals_write_nothing<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let order = delivered(&w, &seller).await;
    let s = w.market.storage();
    let me = seller.user_id;
    let at = w.now();
    assert!(order.return_until.is_some(), "{order:?}");
    assert_eq!(buckets(s, me).await, (1000, 0));
    assert_eq!(entries(s, me).await.len(), 1);

    // A second earning of one order: AlreadyExists, and the status change
    // around it is not written either.
    let twin = entry(me, EntryKind::Earning, (1000, 0), Some(order.id), None, at);
    assert!(matches!(
        s.transition_order(&delivered_again(&order, twin)).await,
        Err(StorageError::AlreadyExists("ledger entry"))
    ));
    // A reversal larger than what is pending: the bucket's check refuses it.
    let greedy = entry(
        me,
        EntryKind::Reversal,
        (-1001, 0),
        Some(order.id),
        None,
        at,
    );
    assert!(matches!(
        s.transition_order(&delivered_again(&order, greedy)).await,
        Err(StorageError::Precondition(_))
    ));
    // A release moving more than is pending, through `release_earning`.
    let release = |pending: i64| EarningRelease {
        order_id: order.id,
        entry: entry(
            me,
            EntryKind::Release,
            (-pending, pending),
            Some(order.id),
            None,
            at,
        ),
    };
    assert!(matches!(
        s.release_earning(&release(1001)).await,
        Err(StorageError::Precondition(_))
    ));
    let unchanged = s.order(order.id).await.unwrap().unwrap();
    assert_eq!(unchanged, order, "a refused step writes nothing");
    assert_eq!(buckets(s, me).await, (1000, 0));
    assert_eq!(entries(s, me).await.len(), 1);

    // Taking from a balance that does not exist (another currency) is refused.
    let euro = Currency::parse("EUR").unwrap();
    let mut eur = entry(me, EntryKind::Payout, (0, -1), None, None, at);
    eur.pending = Money::zero(euro);
    eur.available = Money::new(-1, euro);
    eur.commission = Money::zero(euro);
    eur.order_id = Some(order.id);
    assert!(matches!(
        s.transition_order(&delivered_again(&order, eur)).await,
        Err(StorageError::Precondition(_))
    ));

    // Nothing available yet: no payout.
    assert_eq!(s.request_payout(&request(me, 1, at)).await.unwrap(), None);

    // The release, once; the order keeps when.
    assert!(s.release_earning(&release(1000)).await.unwrap());
    assert!(!s.release_earning(&release(1000)).await.unwrap());
    let missing = EarningRelease {
        order_id: OrderId(Uuid::now_v7()),
        ..release(1)
    };
    assert!(matches!(
        s.release_earning(&missing).await,
        Err(StorageError::NotFound)
    ));
    let released = s.order(order.id).await.unwrap().unwrap();
    assert_eq!(released.earning_released_at, Some(at));
    assert_eq!(buckets(s, me).await, (0, 1000));
    assert!(s.orders_to_release(at, 10).await.unwrap().is_empty());
    // A return request requires the earning unreleased: it changes nothing now.
    let mut ask = delivered_again(
        &order,
        entry(me, EntryKind::Earning, (0, 0), None, None, at),
    );
    ask.to = OrderStatus::ReturnRequested;
    ask.ledger = None;
    ask.require_unreleased = true;
    assert_eq!(s.transition_order(&ask).await.unwrap(), None);

    // Below the minimum: no payout; at it: the whole available balance, once.
    assert_eq!(
        s.request_payout(&request(me, 1001, at)).await.unwrap(),
        None
    );
    let payout = s
        .request_payout(&request(me, 1000, at))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payout.amount, usd(1000));
    assert_eq!(payout.status, PayoutStatus::Requested);
    assert_eq!(s.payout(payout.id).await.unwrap(), Some(payout.clone()));
    assert_eq!(buckets(s, me).await, (0, 0));
    assert_eq!(s.request_payout(&request(me, 1, at)).await.unwrap(), None);

    // Settling: only from the statuses given; the funds of a failed payout come
    // back; a reference or failure not given keeps the stored one.
    let settle = |from: Vec<PayoutStatus>, to, entry: Option<LedgerEntry>| PayoutSettlement {
        payout_id: payout.id,
        from,
        to,
        reference: None,
        failure: Some("bank said no".into()),
        at,
        entry,
        outbox: Vec::new(),
    };
    let back = entry(
        me,
        EntryKind::PayoutFailed,
        (0, 1000),
        None,
        Some(payout.id),
        at,
    );
    let none = settle(
        vec![PayoutStatus::Paid],
        PayoutStatus::Failed,
        Some(back.clone()),
    );
    assert_eq!(s.settle_payout(&none).await.unwrap(), None);
    assert!(matches!(
        s.settle_payout(&PayoutSettlement {
            payout_id: PayoutId(Uuid::now_v7()),
            ..none.clone()
        })
        .await,
        Err(StorageError::NotFound)
    ));
    let open = vec![PayoutStatus::Requested, PayoutStatus::Unresolved];
    let failed = s
        .settle_payout(&settle(open.clone(), PayoutStatus::Failed, Some(back)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, PayoutStatus::Failed);
    assert_eq!(failed.failure.as_deref(), Some("bank said no"));
    assert_eq!(buckets(s, me).await, (0, 1000));
    let mut again = settle(vec![PayoutStatus::Failed], PayoutStatus::Failed, None);
    again.failure = None;
    let kept = s.settle_payout(&again).await.unwrap().unwrap();
    assert_eq!(kept.failure.as_deref(), Some("bank said no"));

    // The balance is the sum of its entries.
    let all = entries(s, me).await;
    let sum = all.iter().fold((0, 0), |(p, a), e| {
        (p + e.pending.amount, a + e.available.amount)
    });
    assert_eq!(sum, buckets(s, me).await);
    let kinds: Vec<EntryKind> = all.iter().rev().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Earning,
            EntryKind::Release,
            EntryKind::Payout,
            EntryKind::PayoutFailed
        ]
    );
}

async fn a_balance_is_taken_once<S: Storage + Clone>(storage: S) {
    let w = World::new(storage.clone()).await;
    let seller = w.seller().await;
    let order = delivered(&w, &seller).await;
    let at = w.now();
    let release = EarningRelease {
        order_id: order.id,
        entry: entry(
            seller.user_id,
            EntryKind::Release,
            (-1000, 1000),
            Some(order.id),
            None,
            at,
        ),
    };
    assert!(storage.release_earning(&release).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let s = storage.clone();
        let r = request(seller.user_id, 1, at);
        tasks.spawn(async move {
            loop {
                match s.request_payout(&r).await {
                    Err(StorageError::Transient(_)) => continue,
                    other => return other.unwrap(),
                }
            }
        });
    }
    let taken: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].amount, usd(1000));
    assert_eq!(buckets(&storage, seller.user_id).await, (0, 0));
}

async fn one_rule_per_scope<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let s = w.market.storage();
    let rule = |scope, rate_bps, fee: Option<i64>| CommissionRule {
        scope,
        terms: CommissionTerms {
            rate_bps,
            fixed_fee: fee.map(usd),
            minimum: Some(usd(5)),
            maximum: None,
        },
        updated_at: w.now(),
        updated_by: admin.user_id,
    };
    let seller = RuleScope::Seller {
        seller_id: admin.user_id,
    };
    s.put_commission_rule(&rule(RuleScope::Default, 1000, Some(30)))
        .await
        .unwrap();
    s.put_commission_rule(&rule(RuleScope::Default, 1200, None))
        .await
        .unwrap();
    s.put_commission_rule(&rule(seller, 500, None))
        .await
        .unwrap();
    let mut rules = s.commission_rules().await.unwrap();
    rules.sort_by_key(|r| r.scope);
    assert_eq!(
        rules,
        [
            rule(RuleScope::Default, 1200, None),
            rule(seller, 500, None)
        ]
    );
    let bare = CommissionRule {
        terms: CommissionTerms::default(),
        ..rule(RuleScope::Default, 0, None)
    };
    s.put_commission_rule(&bare).await.unwrap();
    assert!(s.commission_rules().await.unwrap().contains(&bare));
    assert!(s.delete_commission_rule(&RuleScope::Default).await.unwrap());
    assert!(!s.delete_commission_rule(&RuleScope::Default).await.unwrap());
    assert_eq!(
        s.commission_rules().await.unwrap(),
        [rule(seller, 500, None)]
    );
}

#[tokio::test]
async fn sqlite_ledger_refusals_write_nothing() {
    let fresh = common::sqlite().await;
    ledger_refusals_write_nothing(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_ledger_refusals_write_nothing() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    ledger_refusals_write_nothing(fresh.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_balance_is_taken_once() {
    let fresh = common::sqlite().await;
    a_balance_is_taken_once(fresh.storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_a_balance_is_taken_once() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    a_balance_is_taken_once(fresh.storage).await;
}

#[tokio::test]
async fn sqlite_one_rule_per_scope() {
    let fresh = common::sqlite().await;
    one_rule_per_scope(fresh.storage).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_one_rule_per_scope() {
    let Some(fresh) = common::postgres().await else {
        return;
    };
    one_rule_per_scope(fresh.storage).await;
}
