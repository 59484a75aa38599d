//! Payouts: an available balance taken once under any concurrency, the manual
//! and simulated providers' outcomes, statements, and the money invariants after
//! a storm of concurrent checkouts, deliveries, returns, releases and payouts.

use std::sync::Arc;

use chrono::Duration;
use marketplace_core::commission::RuleScope;
use marketplace_core::ledger::{EarningRelease, EntryKind, LedgerEntry, Period};
use marketplace_core::order::{OrderTransition, StatusChange};
use marketplace_core::payout::{PayoutListQuery, PayoutStatus, SimulatedOutcome};
use marketplace_core::{Error, OrderStatus, SimulatedPayouts, Storage};

use super::money::{all_payouts, deliver, money_invariants, rate, sale};
use crate::{World, assert_err, key, test_config, usd};

/// A zero return window: earnings can be released at once.
fn no_hold() -> marketplace_core::Config {
    let mut config = test_config();
    config.money.return_window = Duration::zero();
    config.money.minimum_payout = 500;
    config
}

/// Manual payouts: two admins paying the same seller at once make one payout of
/// the whole available balance; a balance below the minimum is left alone; the
/// admin marks a payout paid (the seller gets a mail) or failed (its funds come
/// back), once; sellers see only their own payouts.
pub async fn payouts_take_the_available_balance_once<S: Storage>(storage: S) {
    let w = Arc::new(World::with_config(storage, no_hold()).await);
    let (a1, a2) = (w.admin().await, w.admin().await);
    let (seller, other) = (w.seller().await, w.seller().await);
    w.market
        .set_commission_rule(&a1, RuleScope::Default, rate(1000))
        .await
        .unwrap();
    for price in [1000, 2500] {
        let (_, o) = sale(&w, &seller, price, 1).await;
        deliver(&w, &seller, o.id).await;
    }
    let (_, small) = sale(&w, &other, 400, 1).await;
    deliver(&w, &other, small.id).await;
    assert_eq!(w.market.release_earnings(100).await.unwrap(), 3);
    assert_err!(w.market.run_payouts(&seller).await, Error::Forbidden(_));

    let runs: Vec<_> = [a1, a2, a1, a2]
        .into_iter()
        .map(|admin| {
            let w = Arc::clone(&w);
            let who = seller.user_id;
            tokio::spawn(async move { w.market.pay_out_seller(&admin, who).await.unwrap() })
        })
        .collect();
    let mut made = Vec::new();
    for r in runs {
        made.extend(r.await.unwrap());
    }
    assert_eq!(made.len(), 1, "one payout however many admins ask at once");
    let payout = made.remove(0);
    assert_eq!(payout.amount, usd(900 + 2250));
    assert_eq!(
        payout.status,
        PayoutStatus::Requested,
        "manual: awaiting the admin"
    );
    assert_eq!(payout.provider, "manual");
    assert_eq!(payout.idempotency_key, format!("payout-{}", payout.id));
    let b = w.market.seller_balance(&seller).await.unwrap();
    assert_eq!((b.available, b.total), (usd(0), usd(0)));
    // 360 available is below the minimum of 500: a run pays nobody.
    assert!(w.market.run_payouts(&a1).await.unwrap().is_empty());
    assert!(
        w.market
            .pay_out_seller(&a1, other.user_id)
            .await
            .unwrap()
            .is_none()
    );

    assert_err!(
        w.market.mark_payout_paid(&a1, payout.id, "  ").await,
        Error::Validation(_)
    );
    let mails_before = w.mails("payout_paid").await.len();
    let (x, y) = tokio::join!(
        w.market.mark_payout_paid(&a1, payout.id, "BANK-42"),
        w.market
            .mark_payout_failed(&a2, payout.id, "account closed"),
    );
    let paid = match (x, y) {
        (Ok(p), Err(Error::Conflict { code, .. })) => {
            assert_eq!(code, "payout_settled");
            assert_eq!(p.reference.as_deref(), Some("BANK-42"));
            assert_eq!(w.mails("payout_paid").await.len(), mails_before + 1);
            true
        }
        (Err(Error::Conflict { code, .. }), Ok(p)) => {
            assert_eq!(code, "payout_settled");
            assert_eq!(p.status, PayoutStatus::Failed);
            let b = w.market.seller_balance(&seller).await.unwrap();
            assert_eq!(
                b.available,
                usd(3150),
                "a failed payout gives its funds back"
            );
            false
        }
        other => panic!("exactly one settlement wins: {other:?}"),
    };
    assert_err!(
        w.market.mark_payout_paid(&a1, payout.id, "again").await,
        Error::Conflict {
            code: "payout_settled",
            ..
        }
    );
    if paid {
        let mail = w.mails("payout_paid").await.pop().unwrap();
        assert!(mail.text_body.contains("31.50 USD"), "{}", mail.text_body);
        assert!(mail.text_body.contains("BANK-42"));
    }

    // Sellers see their own payouts only.
    let mine = w
        .market
        .seller_payouts(&seller, PayoutListQuery::default())
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
    assert!(
        w.market
            .seller_payouts(&other, PayoutListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_err!(w.market.payout(&other, payout.id).await, Error::NotFound(_));
    assert_eq!(
        w.market.payout(&seller, payout.id).await.unwrap().id,
        payout.id
    );
    let figures = money_invariants(&w, &a1).await;
    assert_eq!(figures.payouts.values().sum::<usize>(), 1);
}

/// Through a provider: a paid answer settles the payout with the provider's
/// reference; a decline fails it and returns the funds; an unknown outcome
/// leaves it `unresolved`, never sent again by later runs, until an admin
/// resolves it. Every call carries the payout's own key, and no key is paid
/// twice.
pub async fn provider_outcomes_settle_payouts<S: Storage>(storage: S) {
    let provider = Arc::new(SimulatedPayouts::new());
    let w = World::with_payouts(storage, no_hold(), provider.clone()).await;
    let admin = w.admin().await;
    let sellers = [
        w.seller().await,
        w.seller().await,
        w.seller().await,
        w.seller().await,
    ];
    for s in &sellers {
        let (_, o) = sale(&w, s, 1000, 1).await;
        deliver(&w, s, o.id).await;
    }
    w.market.release_earnings(100).await.unwrap();
    provider.script([
        SimulatedOutcome::Pay,
        SimulatedOutcome::Decline("no such account".into()),
        SimulatedOutcome::Timeout,
        SimulatedOutcome::PayThenTimeout,
    ]);
    let made = w.market.run_payouts(&admin).await.unwrap();
    assert_eq!(made.len(), 4);
    let status = |st| made.iter().filter(|p| p.status == st).count();
    assert_eq!(
        (
            status(PayoutStatus::Paid),
            status(PayoutStatus::Failed),
            status(PayoutStatus::Unresolved)
        ),
        (1, 1, 2)
    );
    let paid = made
        .iter()
        .find(|p| p.status == PayoutStatus::Paid)
        .unwrap();
    let transfers = provider.transfers();
    assert_eq!(
        transfers.get(&paid.idempotency_key).map(|t| t.1.clone()),
        paid.reference.clone(),
        "the provider's reference is kept"
    );
    let failed = made
        .iter()
        .find(|p| p.status == PayoutStatus::Failed)
        .unwrap();
    assert_eq!(failed.failure.as_deref(), Some("no such account"));
    let b = w
        .market
        .seller_balance(
            &sellers
                .iter()
                .find(|s| s.user_id == failed.seller_id)
                .unwrap()
                .clone(),
        )
        .await;
    assert_eq!(
        b.unwrap().available,
        usd(1000),
        "the declined payout's funds are back"
    );

    // A second run pays the failed seller again (a new payout, a new key) and
    // leaves the unresolved ones alone.
    let calls = provider.calls();
    let again = w.market.run_payouts(&admin).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seller_id, failed.seller_id);
    assert_ne!(again[0].idempotency_key, failed.idempotency_key);
    assert_eq!(again[0].status, PayoutStatus::Paid);
    assert_eq!(
        provider.calls(),
        calls + 1,
        "unresolved payouts are not sent again"
    );

    // The admin resolves the unresolved ones after asking the provider.
    for p in made.iter().filter(|p| p.status == PayoutStatus::Unresolved) {
        let done = if transfers.contains_key(&p.idempotency_key) {
            w.market
                .mark_payout_paid(&admin, p.id, "checked: sent")
                .await
                .unwrap()
        } else {
            w.market
                .mark_payout_failed(&admin, p.id, "checked: never sent")
                .await
                .unwrap()
        };
        assert!(!done.status.is_open());
    }
    let payouts = all_payouts(&w).await;
    let paid_keys: Vec<_> = payouts
        .iter()
        .filter(|p| p.status == PayoutStatus::Paid)
        .map(|p| p.idempotency_key.clone())
        .collect();
    let transfers = provider.transfers();
    assert_eq!(
        paid_keys.len(),
        transfers.len(),
        "paid exactly what was transferred"
    );
    for k in &paid_keys {
        assert!(transfers.contains_key(k));
    }
    money_invariants(&w, &admin).await;
}

/// A statement lists a period's entries oldest first with the balance before
/// and after; its CSV has one row per entry; the closing balance is the
/// seller's balance.
pub async fn statements_add_up_to_the_balance<S: Storage>(storage: S) {
    let w = World::with_config(storage, no_hold()).await;
    let (admin, seller) = (w.admin().await, w.seller().await);
    w.market
        .set_commission_rule(&admin, RuleScope::Default, rate(1000))
        .await
        .unwrap();
    let (_, first) = sale(&w, &seller, 2000, 1).await;
    deliver(&w, &seller, first.id).await;
    w.market.release_earnings(10).await.unwrap();
    w.clock.advance(Duration::days(3));
    let split = w.now();
    w.market
        .pay_out_seller(&admin, seller.user_id)
        .await
        .unwrap()
        .unwrap();
    let (_, second) = sale(&w, &seller, 1000, 1).await;
    deliver(&w, &seller, second.id).await;
    let all = w
        .market
        .seller_statement(&seller, Period::default())
        .await
        .unwrap();
    let kinds: Vec<_> = all.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Earning,
            EntryKind::Release,
            EntryKind::Payout,
            EntryKind::Earning
        ]
    );
    let balance = w.market.seller_balance(&seller).await.unwrap();
    assert_eq!(all.closing, balance);
    assert_eq!(all.opening.total, usd(0));
    let later = w
        .market
        .seller_statement(
            &seller,
            Period {
                from: Some(split),
                to: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(later.entries.len(), 2);
    assert_eq!(later.opening.available, usd(1800));
    assert_eq!(later.closing, balance);
    let csv = later.to_csv();
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("date,entry,kind,"));
    assert!(
        lines[1].contains(",payout,") && lines[1].contains("-18.00"),
        "{csv}"
    );
    assert!(
        lines[2].contains(",earning,") && lines[2].contains(",9.00,"),
        "{csv}"
    );
    assert_err!(
        w.market
            .seller_statement(
                &seller,
                Period {
                    from: Some(split),
                    to: Some(split - Duration::days(1)),
                },
            )
            .await,
        Error::Validation(_)
    );
}

/// A return request and the release of the same earning never both succeed:
/// storage refuses a return of a released order and a release of an order whose
/// return was asked for, and many of both racing at the window's edge leave
/// every order either returned-for or released.
pub async fn a_return_and_a_release_never_both_win<S: Storage>(storage: S) {
    const ORDERS: usize = 12;
    let w = Arc::new(World::new(storage).await);
    let (admin, seller) = (w.admin().await, w.seller().await);
    let mut sales = Vec::new();
    for _ in 0..ORDERS {
        let (buyer, o) = sale(&w, &seller, 1500, 1).await;
        deliver(&w, &seller, o.id).await;
        sales.push((buyer, o.id));
    }
    let window = w.market.config().money.return_window;
    w.clock.advance(window - Duration::milliseconds(1));
    let mut tasks = Vec::new();
    for (buyer, id) in sales.clone() {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            match w.market.request_return(&buyer, id).await {
                Ok(_) => true,
                Err(Error::Conflict {
                    code: "return_window_closed",
                    ..
                }) => false,
                Err(e) => panic!("{e:?}"),
            }
        }));
    }
    let releaser = {
        let w = Arc::clone(&w);
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            w.clock.advance(Duration::milliseconds(1));
            let mut n = 0;
            for _ in 0..5 {
                n += w.market.release_earnings(ORDERS as u32).await.unwrap();
            }
            n
        })
    };
    let mut returns = 0;
    for t in tasks {
        returns += usize::from(t.await.unwrap());
    }
    let released = releaser.await.unwrap() + w.market.release_earnings(100).await.unwrap();
    assert_eq!(
        returns + released,
        ORDERS,
        "each order went exactly one way"
    );
    for (_, id) in &sales {
        let o = w.market.order(&seller, *id).await.unwrap();
        match o.status {
            OrderStatus::ReturnRequested => assert!(o.earning_released_at.is_none()),
            OrderStatus::Delivered => assert!(o.earning_released_at.is_some()),
            s => panic!("{s:?}"),
        }
    }
    // The storage rules themselves, called directly on two more orders.
    let (_, a) = sale(&w, &seller, 700, 1).await;
    let (_, b) = sale(&w, &seller, 800, 1).await;
    deliver(&w, &seller, a.id).await;
    deliver(&w, &seller, b.id).await;
    w.clock.advance(window);
    let ask_return = |id| OrderTransition {
        order_id: id,
        from: OrderStatus::Delivered,
        to: OrderStatus::ReturnRequested,
        change: StatusChange {
            from: Some(OrderStatus::Delivered),
            to: OrderStatus::ReturnRequested,
            at: w.now(),
            by: seller.user_id,
        },
        restock: Vec::new(),
        return_until: None,
        require_unreleased: true,
        ledger: None,
        outbox: Vec::new(),
    };
    let storage = w.market.storage();
    assert!(
        storage
            .transition_order(&ask_return(b.id))
            .await
            .unwrap()
            .is_some()
    );
    let due = storage.orders_to_release(w.now(), 100).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.id).collect::<Vec<_>>(),
        [a.id],
        "only the delivered one"
    );
    assert_eq!(w.market.release_earnings(100).await.unwrap(), 1);
    assert!(
        storage
            .transition_order(&ask_return(a.id))
            .await
            .unwrap()
            .is_none(),
        "a released order cannot be returned"
    );
    let release_b = EarningRelease {
        order_id: b.id,
        entry: LedgerEntry {
            id: marketplace_core::LedgerEntryId(uuid::Uuid::now_v7()),
            seller_id: seller.user_id,
            kind: EntryKind::Release,
            pending: usd(-800),
            available: usd(800),
            commission: usd(0),
            order_id: Some(b.id),
            payout_id: None,
            created_at: w.now(),
        },
    };
    assert!(
        !storage.release_earning(&release_b).await.unwrap(),
        "b's return was asked for"
    );
    money_invariants(&w, &admin).await;
}

/// Many tasks at once: checkouts, sellers moving orders to delivery, buyers
/// cancelling and returning, sellers completing returns, releases, and two
/// admins paying everyone out while a flaky provider pays, declines and times
/// out; then the clock passes every window and a last round runs. Afterwards
/// every money invariant holds.
pub async fn money_invariants_hold_under_contention<S: Storage>(storage: S) {
    const SELLERS: usize = 4;
    const BUYERS: usize = 24;
    let provider = Arc::new(SimulatedPayouts::new());
    let mut config = test_config();
    config.money.return_window = Duration::minutes(10);
    config.money.minimum_payout = 1;
    let w = Arc::new(World::with_payouts(storage, config, provider.clone()).await);
    let (a1, a2) = (w.admin().await, w.admin().await);
    w.market
        .set_commission_rule(&a1, RuleScope::Default, rate(1234))
        .await
        .unwrap();
    let mut sellers = Vec::new();
    let mut products = Vec::new();
    for i in 0..SELLERS {
        let s = w.seller().await;
        products.push(w.product(&s, "Widget", 1000 + 37 * i as i64, 1000).await.id);
        sellers.push(s);
    }
    w.market
        .set_commission_rule(
            &a1,
            RuleScope::Seller {
                seller_id: sellers[0].user_id,
            },
            marketplace_core::CommissionTerms {
                rate_bps: 800,
                fixed_fee: Some(usd(25)),
                minimum: Some(usd(100)),
                maximum: Some(usd(900)),
            },
        )
        .await
        .unwrap();
    provider.script((0..400).map(|i| match i % 5 {
        0 => SimulatedOutcome::Decline("declined".into()),
        1 => SimulatedOutcome::Timeout,
        2 => SimulatedOutcome::PayThenTimeout,
        _ => SimulatedOutcome::Pay,
    }));

    let shoppers = Arc::new(std::sync::atomic::AtomicUsize::new(BUYERS));
    let mut tasks = Vec::new();
    for b in 0..BUYERS {
        let (w, sellers, products) = (Arc::clone(&w), sellers.clone(), products.clone());
        let shoppers = Arc::clone(&shoppers);
        tasks.push(tokio::spawn(async move {
            let buyer = w.buyer().await;
            w.address(&buyer).await;
            for round in 0..2 {
                for k in 0..2 {
                    let p = products[(b + k + round) % SELLERS];
                    w.market
                        .add_to_cart(&buyer, p, 1 + (b % 3) as u32)
                        .await
                        .unwrap();
                }
                let done = w
                    .market
                    .checkout(&buyer, &key(format!("c{b}-{round}")), Default::default())
                    .await
                    .unwrap();
                for (n, o) in done.orders.iter().enumerate() {
                    let seller = sellers.iter().find(|s| s.user_id == o.seller_id).unwrap();
                    match (b + n + round) % 4 {
                        0 => {
                            w.market.cancel_order(&buyer, o.id).await.unwrap();
                        }
                        1 | 2 => {
                            deliver(&w, seller, o.id).await;
                            // The clock may pass the window meanwhile: then the
                            // return is refused and the earning stays.
                            match w.market.request_return(&buyer, o.id).await {
                                Ok(_) if (b + n + round) % 4 == 1 => {
                                    w.market
                                        .set_order_status(seller, o.id, OrderStatus::Returned)
                                        .await
                                        .unwrap();
                                }
                                Ok(_) => {}
                                Err(Error::Conflict { code, .. }) => {
                                    assert_eq!(code, "return_window_closed")
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        _ => {
                            deliver(&w, seller, o.id).await;
                        }
                    }
                }
                if b % 2 == 0 {
                    w.clock.advance(Duration::minutes(3));
                }
            }
            shoppers.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    // Two admins release and pay out for as long as the shopping goes on.
    for admin in [a1, a2] {
        let (w, provider) = (Arc::clone(&w), Arc::clone(&provider));
        let shoppers = Arc::clone(&shoppers);
        tasks.push(tokio::spawn(async move {
            while shoppers.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                w.market.release_earnings(50).await.unwrap();
                for p in w.market.run_payouts(&admin).await.unwrap() {
                    if p.status == PayoutStatus::Unresolved {
                        // The admin asks the provider, then resolves.
                        let sent = provider.transfers().contains_key(&p.idempotency_key);
                        let _ = if sent {
                            w.market.mark_payout_paid(&admin, p.id, "checked").await
                        } else {
                            w.market.mark_payout_failed(&admin, p.id, "checked").await
                        };
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every window closes; a last round releases and pays out everything.
    w.clock.advance(Duration::hours(2));
    while w.market.release_earnings(100).await.unwrap() > 0 {}
    let (r1, r2) = tokio::join!(w.market.run_payouts(&a1), w.market.run_payouts(&a2));
    let last: Vec<_> = r1.unwrap().into_iter().chain(r2.unwrap()).collect();
    // No new money came in: only a failed payout's funds can be paid again.
    let mut kept: Vec<_> = last
        .iter()
        .filter(|p| p.status != PayoutStatus::Failed)
        .map(|p| p.seller_id)
        .collect();
    let all = kept.len();
    kept.sort();
    kept.dedup();
    assert_eq!(kept.len(), all, "a balance is taken once: {last:?}");

    let figures = money_invariants(&w, &a1).await;
    assert!(
        figures.earned > 0 && figures.reversed > 0 && figures.paid_out > 0,
        "{figures:?}"
    );
    assert!(
        figures.payouts.get("failed").copied().unwrap_or(0) > 0,
        "{figures:?}"
    );
    // Paid payouts match the provider's transfers one to one: nothing was sent
    // for a failed payout, nothing paid twice.
    let payouts = all_payouts(&w).await;
    let transfers = provider.transfers();
    for p in &payouts {
        let sent = transfers.get(&p.idempotency_key).map(|t| t.0);
        match p.status {
            PayoutStatus::Paid => assert_eq!(sent, Some(p.amount)),
            PayoutStatus::Failed => assert_eq!(sent, None, "{p:?}"),
            _ => {}
        }
    }
    assert!(transfers.len() <= payouts.len());
    println!("money figures after contention: {figures:?}");
}
