//! Money: commission rules snapshotted at checkout, the seller ledger with its
//! hold, returns reversed at the order's own commission, and the money
//! invariants every other money scenario checks at its end.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use marketplace_core::commission::{CommissionTerms, RuleScope, rule_amount};
use marketplace_core::ledger::{EntryKind, LedgerEntry, LedgerListQuery, LedgerQuery, ReportQuery};
use marketplace_core::payout::{Payout, PayoutQuery, PayoutStatus};
use marketplace_core::{
    Error, Order, OrderId, OrderListQuery, OrderStatus, Principal, Storage, UserId,
};

use crate::{World, assert_err, key, new_product, usd};

/// Terms of `rate_bps` with nothing else.
pub(crate) fn rate(rate_bps: u32) -> CommissionTerms {
    CommissionTerms {
        rate_bps,
        ..CommissionTerms::default()
    }
}

/// One order of `units` of a new product of `seller` at `price`, for a new buyer.
pub(crate) async fn sale<S: Storage>(
    w: &World<S>,
    seller: &Principal,
    price: i64,
    units: u32,
) -> (Principal, Order) {
    let p = w.product(seller, "Lamp", price, units).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    w.market.add_to_cart(&buyer, p.id, units).await.unwrap();
    let done = w
        .market
        .checkout(&buyer, &key("sale"), Default::default())
        .await
        .unwrap();
    let order = w.market.order(seller, done.orders[0].id).await.unwrap();
    (buyer, order)
}

/// Moves an order from pending to delivered, one step at a time.
pub(crate) async fn deliver<S: Storage>(w: &World<S>, seller: &Principal, id: OrderId) -> Order {
    let mut last = None;
    for to in [
        OrderStatus::Accepted,
        OrderStatus::Packed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ] {
        last = Some(w.market.set_order_status(seller, id, to).await.unwrap());
    }
    last.unwrap()
}

/// Every ledger entry, oldest first.
pub async fn all_entries<S: Storage>(w: &World<S>) -> Vec<LedgerEntry> {
    let mut all = Vec::new();
    let mut q = LedgerQuery {
        limit: 200,
        ..LedgerQuery::default()
    };
    loop {
        let page = w.market.storage().ledger_entries(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after = Some(marketplace_core::ledger::EntryKey {
            created_at: last.created_at,
            id: last.id,
        });
        all.extend(page);
    }
    all.reverse();
    all
}

/// Every payout.
pub async fn all_payouts<S: Storage>(w: &World<S>) -> Vec<Payout> {
    let mut all = Vec::new();
    let mut q = PayoutQuery {
        limit: 200,
        ..PayoutQuery::default()
    };
    loop {
        let page = w.market.storage().list_payouts(&q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after = Some(marketplace_core::payout::PayoutKey {
            created_at: last.created_at,
            id: last.id,
        });
        all.extend(page);
    }
    all
}

/// Every order, as an admin sees it.
pub async fn all_orders<S: Storage>(w: &World<S>, admin: &Principal) -> Vec<Order> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = w
            .market
            .all_orders(
                admin,
                OrderListQuery {
                    limit: Some(100),
                    cursor: cursor.clone(),
                    status: None,
                },
            )
            .await
            .unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

/// What [`money_invariants`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MoneyFigures {
    /// Sellers with a balance.
    pub sellers: usize,
    /// Ledger entries of each kind.
    pub entries: BTreeMap<&'static str, usize>,
    /// Payouts in each status.
    pub payouts: BTreeMap<&'static str, usize>,
    /// Σ earnings (seller nets of delivered orders), minor units.
    pub earned: i64,
    /// Σ reversals, minor units (positive).
    pub reversed: i64,
    /// Σ payouts not failed, minor units.
    pub paid_out: i64,
    /// Σ balances (pending + available), minor units.
    pub balances: i64,
    /// Σ commission on delivered orders still counted (not returned).
    pub commission: i64,
}

/// Checks every money invariant over the whole store and returns the figures:
/// - for every seller, Σ earnings − Σ reversals − Σ payouts not failed ==
///   balance, each bucket ≥ 0, and the stored balance equals the sum of its
///   entries bucket by bucket;
/// - every order's commission + seller net == its total;
/// - every order that reached delivery earned exactly once; every completed
///   return of such an order reversed exactly once, at the order's own
///   commission; cancelled orders never earned; releases only follow earnings;
/// - every payout has exactly one `payout` entry of its amount, every failed
///   one exactly one `payout_failed` entry, and no other does.
pub async fn money_invariants<S: Storage>(w: &World<S>, admin: &Principal) -> MoneyFigures {
    let entries = all_entries(w).await;
    let payouts = all_payouts(w).await;
    let orders = all_orders(w, admin).await;
    let mut figures = MoneyFigures::default();
    for e in &entries {
        *figures.entries.entry(e.kind.as_str()).or_default() += 1;
    }
    for p in &payouts {
        *figures.payouts.entry(p.status.as_str()).or_default() += 1;
    }

    // Per seller: Σ by kind and by bucket.
    let mut sums: HashMap<UserId, (i64, i64, i64, i64, i64)> = HashMap::new();
    for e in &entries {
        let s = sums.entry(e.seller_id).or_default();
        s.0 += e.pending.amount;
        s.1 += e.available.amount;
        match e.kind {
            EntryKind::Earning => s.2 += e.pending.amount,
            EntryKind::Reversal => s.3 -= e.pending.amount,
            _ => {}
        }
    }
    for p in payouts.iter().filter(|p| p.status != PayoutStatus::Failed) {
        sums.entry(p.seller_id).or_default().4 += p.amount.amount;
    }
    let balances = w.market.storage().balances(None).await.unwrap();
    figures.sellers = balances.len();
    for b in &balances {
        assert!(
            b.pending.amount >= 0 && b.available.amount >= 0,
            "a negative bucket: {b:?}"
        );
        assert_eq!(b.total.amount, b.pending.amount + b.available.amount);
        let (pending, available, earned, reversed, paid) =
            sums.get(&b.seller_id).copied().unwrap_or_default();
        assert_eq!(
            (b.pending.amount, b.available.amount),
            (pending, available),
            "the stored balance is the sum of its entries"
        );
        assert_eq!(
            earned - reversed - paid,
            b.total.amount,
            "earnings - reversals - payouts not failed == balance for {}",
            b.seller_id
        );
        figures.earned += earned;
        figures.reversed += reversed;
        figures.paid_out += paid;
        figures.balances += b.total.amount;
    }
    for seller in sums.keys() {
        assert!(
            balances.iter().any(|b| b.seller_id == *seller),
            "entries without a balance for {seller}"
        );
    }

    // Per order.
    let mut by_order: HashMap<OrderId, Vec<&LedgerEntry>> = HashMap::new();
    for e in &entries {
        if let Some(o) = e.order_id {
            by_order.entry(o).or_default().push(e);
        }
    }
    for o in &orders {
        let c = o
            .commission
            .clone()
            .expect("a seller's view has the commission");
        assert_eq!(
            c.amount.amount + c.seller_net.amount,
            o.total.amount,
            "commission + seller net == total on {}",
            o.id
        );
        assert_eq!(
            c.rules.iter().map(|r| r.amount.amount).sum::<i64>(),
            c.amount.amount
        );
        for r in &c.rules {
            assert_eq!(r.amount.amount, rule_amount(&r.terms, r.base.amount));
        }
        let mine = by_order.remove(&o.id).unwrap_or_default();
        let count = |k| mine.iter().filter(|e| e.kind == k).count();
        let reached_delivery = o.history.iter().any(|h| h.to == OrderStatus::Delivered);
        assert_eq!(
            count(EntryKind::Earning),
            usize::from(reached_delivery),
            "{} earns once when delivered, never otherwise ({:?})",
            o.id,
            o.status
        );
        if let Some(earning) = mine.iter().find(|e| e.kind == EntryKind::Earning) {
            assert_eq!(earning.pending, c.seller_net);
            assert_eq!(earning.commission, c.amount);
            assert_eq!(earning.seller_id, o.seller_id);
            figures.commission += c.amount.amount;
        }
        let returned = o.status == OrderStatus::Returned && reached_delivery;
        assert_eq!(count(EntryKind::Reversal), usize::from(returned));
        if let Some(rev) = mine.iter().find(|e| e.kind == EntryKind::Reversal) {
            assert_eq!(
                rev.pending.amount, -c.seller_net.amount,
                "at its own commission"
            );
            assert_eq!(rev.commission.amount, -c.amount.amount);
            figures.commission -= c.amount.amount;
        }
        let released = count(EntryKind::Release);
        assert!(released <= 1);
        assert_eq!(released == 1, o.earning_released_at.is_some());
        if released == 1 {
            assert_eq!(o.status, OrderStatus::Delivered, "only kept orders release");
            assert_eq!(count(EntryKind::Reversal), 0);
        }
        if o.status == OrderStatus::Cancelled {
            assert!(mine.is_empty(), "a cancelled order never earns");
        }
    }
    assert!(by_order.is_empty(), "entries for unknown orders");

    // Per payout.
    let mut by_payout: HashMap<_, Vec<&LedgerEntry>> = HashMap::new();
    for e in &entries {
        if let Some(p) = e.payout_id {
            by_payout.entry(p).or_default().push(e);
        }
    }
    for p in &payouts {
        let mine = by_payout.remove(&p.id).unwrap_or_default();
        let taken: Vec<_> = mine
            .iter()
            .filter(|e| e.kind == EntryKind::Payout)
            .collect();
        assert_eq!(taken.len(), 1, "one payout entry for {}", p.id);
        assert_eq!(taken[0].available.amount, -p.amount.amount);
        assert!(p.amount.amount > 0);
        let back = mine
            .iter()
            .filter(|e| e.kind == EntryKind::PayoutFailed)
            .count();
        assert_eq!(back, usize::from(p.status == PayoutStatus::Failed));
        assert_eq!(p.idempotency_key, format!("payout-{}", p.id));
    }
    assert!(by_payout.is_empty(), "entries for unknown payouts");
    figures
}

/// Rules at three levels: the most specific wins per line, each order keeps a
/// snapshot (commission, net, the rules), buyers never see it, later rule
/// changes leave it alone; only admins manage rules, and bad terms are refused
/// with every field named.
pub async fn commission_rules_are_snapshotted_on_each_order<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let (s1, s2) = (w.seller().await, w.seller().await);
    let books = w.market.create_category(&admin, "Books").await.unwrap();
    assert_err!(
        w.market
            .set_commission_rule(&s1, RuleScope::Default, rate(100))
            .await,
        Error::Forbidden(_)
    );
    let bad = CommissionTerms {
        rate_bps: 20_000,
        fixed_fee: Some(usd(-1)),
        minimum: Some(usd(500)),
        maximum: Some(usd(100)),
    };
    assert_err!(
        w.market
            .set_commission_rule(&admin, RuleScope::Default, bad)
            .await,
        Error::Validation(f) if f.len() == 3
    );
    assert_err!(
        w.market
            .set_commission_rule(
                &admin,
                RuleScope::Seller {
                    seller_id: w.buyer().await.user_id
                },
                rate(1)
            )
            .await,
        Error::NotFound(_)
    );
    let default = CommissionTerms {
        rate_bps: 1000,
        fixed_fee: Some(usd(30)),
        minimum: None,
        maximum: None,
    };
    w.market
        .set_commission_rule(&admin, RuleScope::Default, default)
        .await
        .unwrap();
    w.market
        .set_commission_rule(
            &admin,
            RuleScope::Category {
                category_id: books.id,
            },
            rate(500),
        )
        .await
        .unwrap();
    let capped = CommissionTerms {
        rate_bps: 2500,
        fixed_fee: None,
        minimum: None,
        maximum: Some(usd(700)),
    };
    w.market
        .set_commission_rule(
            &admin,
            RuleScope::Seller {
                seller_id: s2.user_id,
            },
            capped,
        )
        .await
        .unwrap();
    assert_eq!(w.market.commission_rules(&admin).await.unwrap().len(), 3);

    // s1 sells a book (category rule) and a lamp (default); s2 a lamp (its own rule).
    let mut novel = new_product("Novel", 1234, 10);
    novel.category_id = Some(books.id);
    let novel = w.market.create_product(&s1, novel).await.unwrap();
    let lamp = w.product(&s1, "Lamp", 2000, 10).await;
    let chair = w.product(&s2, "Chair", 4001, 10).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    for (p, n) in [(novel.id, 1), (lamp.id, 2), (chair.id, 1)] {
        w.market.add_to_cart(&buyer, p, n).await.unwrap();
    }
    let done = w
        .market
        .checkout(&buyer, &key("rules"), Default::default())
        .await
        .unwrap();
    assert!(
        done.orders.iter().all(|o| o.commission.is_none()),
        "the buyer's view leaves the commission out"
    );
    let of = |seller: &Principal| {
        done.orders
            .iter()
            .find(|o| o.seller_id == seller.user_id)
            .unwrap()
            .id
    };
    let o1 = w.market.order(&s1, of(&s1)).await.unwrap();
    let c1 = o1.commission.clone().unwrap();
    // Books: 1234 at 5 % = 61.7 -> 62. Default: 4000 at 10 % + 30 = 430.
    assert_eq!(c1.amount, usd(62 + 430));
    assert_eq!(c1.seller_net, usd(1234 + 4000 - 492));
    assert_eq!(c1.rules.len(), 2);
    let o2 = w.market.order(&s2, of(&s2)).await.unwrap();
    let c2 = o2.commission.clone().unwrap();
    // 4001 at 25 % = 1000.25, capped at 700.
    assert_eq!((c2.amount, c2.seller_net), (usd(700), usd(3301)));
    assert_eq!(
        c2.rules[0].scope,
        RuleScope::Seller {
            seller_id: s2.user_id
        }
    );
    assert!(
        w.market
            .order(&buyer, o1.id)
            .await
            .unwrap()
            .commission
            .is_none()
    );

    // Rule changes leave placed orders alone; new orders use the new rules.
    w.market
        .set_commission_rule(&admin, RuleScope::Default, rate(9000))
        .await
        .unwrap();
    w.market
        .remove_commission_rule(
            &admin,
            RuleScope::Seller {
                seller_id: s2.user_id,
            },
        )
        .await
        .unwrap();
    assert_err!(
        w.market
            .remove_commission_rule(
                &admin,
                RuleScope::Seller {
                    seller_id: s2.user_id
                }
            )
            .await,
        Error::NotFound(_)
    );
    let stored = w.market.storage().order(o1.id).await.unwrap().unwrap();
    assert_eq!(stored.commission, Some(c1), "stored as computed");
    let again = w.market.order(&s2, o2.id).await.unwrap();
    assert_eq!(again.commission, Some(c2));
    let (_, next) = sale(&w, &s2, 1000, 1).await;
    assert_eq!(
        next.commission.unwrap().amount,
        usd(900),
        "the default now applies"
    );
}

/// Delivery earns the order's net, held as pending until the return window
/// closes; releasing moves it to available once, however often it runs; after
/// the window no return can be asked for; cancelled orders never earn.
pub async fn ledger_holds_earnings_for_the_return_window<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (admin, seller) = (w.admin().await, w.seller().await);
    w.market
        .set_commission_rule(&admin, RuleScope::Default, rate(1500))
        .await
        .unwrap();
    let (buyer, order) = sale(&w, &seller, 2000, 2).await;
    let (other_buyer, cancelled) = sale(&w, &seller, 999, 1).await;
    w.market
        .cancel_order(&other_buyer, cancelled.id)
        .await
        .unwrap();
    assert_eq!(
        w.market.seller_balance(&seller).await.unwrap().total,
        usd(0)
    );

    let delivered = deliver(&w, &seller, order.id).await;
    let window = w.market.config().money.return_window;
    assert_eq!(delivered.return_until, Some(w.now() + window));
    let b = w.market.seller_balance(&seller).await.unwrap();
    assert_eq!(
        (b.pending, b.available),
        (usd(3400), usd(0)),
        "4000 less 15 %"
    );
    let page = w
        .market
        .seller_ledger(&seller, LedgerListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].kind, EntryKind::Earning);
    assert_eq!(page.items[0].commission, usd(600));
    assert_eq!(page.items[0].order_id, Some(order.id));

    // Inside the window nothing is released.
    w.clock.advance(window - Duration::seconds(1));
    assert_eq!(w.market.release_earnings(100).await.unwrap(), 0);
    w.clock.advance(Duration::seconds(1));
    assert_err!(
        w.market.request_return(&buyer, order.id).await,
        Error::Conflict {
            code: "return_window_closed",
            ..
        }
    );
    let (first, second) = tokio::join!(
        w.market.release_earnings(100),
        w.market.release_earnings(100)
    );
    assert_eq!(first.unwrap() + second.unwrap(), 1, "released once");
    assert_eq!(w.market.release_earnings(100).await.unwrap(), 0);
    let b = w.market.seller_balance(&seller).await.unwrap();
    assert_eq!((b.pending, b.available), (usd(0), usd(3400)));
    let o = w.market.order(&seller, order.id).await.unwrap();
    assert_eq!(o.earning_released_at, Some(w.now()));
    assert_err!(
        w.market.request_return(&buyer, order.id).await,
        Error::Conflict {
            code: "return_window_closed",
            ..
        }
    );
    // Another seller's ledger is out of reach; buyers have none.
    assert_err!(
        w.market
            .seller_ledger(&buyer, LedgerListQuery::default())
            .await,
        Error::Forbidden(_)
    );
    let stranger = w.seller().await;
    assert!(
        w.market
            .seller_ledger(&stranger, LedgerListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let figures = money_invariants(&w, &admin).await;
    assert_eq!(figures.earned, 3400);
    assert_eq!(figures.commission, 600);
}

/// A return completes at the order's own commission, whatever the rules say
/// by then: the reversal takes back exactly the net the delivery earned, from
/// pending, and the commission report nets the two.
pub async fn returns_reverse_at_the_orders_own_commission<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (admin, seller) = (w.admin().await, w.seller().await);
    w.market
        .set_commission_rule(&admin, RuleScope::Default, rate(1000))
        .await
        .unwrap();
    let (buyer, order) = sale(&w, &seller, 5000, 1).await;
    let (_, kept) = sale(&w, &seller, 3000, 1).await;
    w.market
        .set_commission_rule(&admin, RuleScope::Default, rate(5000))
        .await
        .unwrap();
    deliver(&w, &seller, order.id).await;
    deliver(&w, &seller, kept.id).await;
    w.clock.advance(Duration::days(1));
    w.market.request_return(&buyer, order.id).await.unwrap();
    // A requested return holds the earning even after the window closes.
    w.clock.advance(Duration::days(30));
    assert_eq!(
        w.market.release_earnings(100).await.unwrap(),
        1,
        "only the kept order"
    );
    let back = w
        .market
        .set_order_status(&seller, order.id, OrderStatus::Returned)
        .await
        .unwrap();
    assert_eq!(back.status, OrderStatus::Returned);
    let b = w.market.seller_balance(&seller).await.unwrap();
    assert_eq!((b.pending, b.available), (usd(0), usd(2700)));
    let entries = all_entries(&w).await;
    let reversal = entries
        .iter()
        .find(|e| e.kind == EntryKind::Reversal)
        .unwrap();
    assert_eq!(
        reversal.pending,
        usd(-4500),
        "at 10 %, not the 50 % of today"
    );
    assert_eq!(reversal.commission, usd(-500));
    let report = w
        .market
        .commission_report(&admin, ReportQuery::default())
        .await
        .unwrap();
    assert_eq!(report.totals.len(), 1);
    let t = &report.totals[0];
    assert_eq!((t.delivered, t.returned), (2, 1));
    assert_eq!(t.commission, usd(300), "500 + 300 earned, 500 given back");
    assert_eq!(t.gross, usd(3000));
    assert_eq!(t.seller_net, usd(2700));
    let figures = money_invariants(&w, &admin).await;
    assert_eq!((figures.earned, figures.reversed), (4500 + 2700, 4500));
    assert_eq!(figures.commission, 300);
}
