//! Order status machine, cancellation, returns, isolation and listings.

use std::sync::Arc;

use marketplace_core::{Error, OrderListQuery, OrderStatus, Principal, ProductId, Storage};

use crate::{World, assert_err, key};

/// Places an order of `units` of `product` for a new buyer; returns the buyer and
/// the order id.
async fn place<S: Storage>(
    w: &World<S>,
    product: ProductId,
    units: u32,
) -> (Principal, marketplace_core::OrderId) {
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    w.market.add_to_cart(&buyer, product, units).await.unwrap();
    let done = w
        .market
        .checkout(&buyer, &key("place"), Default::default())
        .await
        .unwrap();
    (buyer, done.orders[0].id)
}

/// The seller moves an order one step at a time to delivered; each step is kept in
/// the history with who and when, and mails the buyer; skipping, going back and
/// buyer steps are refused with the current status unchanged.
pub async fn orders_move_one_step_at_a_time_with_history<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, admin) = (w.seller().await, w.admin().await);
    let p = w.product(&seller, "Desk", 15000, 3).await;
    let (buyer, id) = place(&w, p.id, 1).await;
    assert_err!(
        w.market
            .set_order_status(&seller, id, OrderStatus::Shipped)
            .await,
        Error::InvalidTransition {
            from: OrderStatus::Pending,
            to: OrderStatus::Shipped
        }
    );
    assert_err!(
        w.market
            .set_order_status(&buyer, id, OrderStatus::Accepted)
            .await,
        Error::Forbidden(_)
    );
    let mut expected = vec![OrderStatus::Pending];
    for (who, to) in [
        (&seller, OrderStatus::Accepted),
        (&seller, OrderStatus::Packed),
        (&admin, OrderStatus::Shipped),
        (&seller, OrderStatus::Delivered),
    ] {
        w.clock.advance(chrono::Duration::minutes(5));
        let o = w.market.set_order_status(who, id, to).await.unwrap();
        assert_eq!(o.status, to);
        let last = o.history.last().unwrap();
        assert_eq!(
            (last.from, last.to, last.by),
            (expected.last().copied(), to, who.user_id)
        );
        assert_eq!(last.at, w.now());
        expected.push(to);
    }
    let o = w.market.order(&buyer, id).await.unwrap();
    assert_eq!(o.history.iter().map(|h| h.to).collect::<Vec<_>>(), expected);
    assert_err!(
        w.market
            .set_order_status(&seller, id, OrderStatus::Shipped)
            .await,
        Error::InvalidTransition { .. }
    );
    assert_err!(
        w.market
            .set_order_status(&seller, id, OrderStatus::Cancelled)
            .await,
        Error::InvalidTransition { .. }
    );
    assert_err!(
        w.market.cancel_order(&buyer, id).await,
        Error::InvalidTransition { .. }
    );
    assert_eq!(
        w.market.order(&buyer, id).await.unwrap().status,
        OrderStatus::Delivered
    );
    let mails = w.mails("status_changed").await;
    assert_eq!(mails.len(), 4, "one mail per change");
    assert!(mails.iter().any(|m| m.subject.contains("delivered")));
    assert_eq!(w.stock(p.id).await, 2, "fulfilment does not touch stock");
}

/// Cancelling returns the stock exactly once, even when the buyer and the seller
/// cancel at the same moment; the buyer may cancel only while pending, the seller
/// while pending or accepted.
pub async fn cancellation_restocks_exactly_once<S: Storage>(storage: S) {
    let w = Arc::new(World::new(storage).await);
    let seller = w.seller().await;
    let p = w.product(&seller, "Vase", 2000, 10).await;
    let (buyer, id) = place(&w, p.id, 3).await;
    assert_eq!(w.stock(p.id).await, 7);
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let w = Arc::clone(&w);
            let who = if i % 2 == 0 { buyer } else { seller };
            tokio::spawn(async move {
                if who.role == marketplace_core::Role::Buyer {
                    w.market.cancel_order(&who, id).await
                } else {
                    w.market
                        .set_order_status(&who, id, OrderStatus::Cancelled)
                        .await
                }
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::InvalidTransition {
                from: OrderStatus::Cancelled,
                ..
            }) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(w.stock(p.id).await, 10, "restocked exactly once");
    let o = w.market.order(&buyer, id).await.unwrap();
    assert_eq!(
        o.history
            .iter()
            .filter(|h| h.to == OrderStatus::Cancelled)
            .count(),
        1
    );

    let (buyer2, id2) = place(&w, p.id, 2).await;
    w.market
        .set_order_status(&seller, id2, OrderStatus::Accepted)
        .await
        .unwrap();
    assert_err!(
        w.market.cancel_order(&buyer2, id2).await,
        Error::InvalidTransition { .. }
    );
    w.market
        .set_order_status(&seller, id2, OrderStatus::Cancelled)
        .await
        .unwrap();
    assert_eq!(w.stock(p.id).await, 10);
    let (_, id3) = place(&w, p.id, 1).await;
    w.market
        .set_order_status(&seller, id3, OrderStatus::Accepted)
        .await
        .unwrap();
    w.market
        .set_order_status(&seller, id3, OrderStatus::Packed)
        .await
        .unwrap();
    assert_err!(
        w.market
            .set_order_status(&seller, id3, OrderStatus::Cancelled)
            .await,
        Error::InvalidTransition { .. }
    );
    assert_eq!(w.stock(p.id).await, 9);
}

/// A delivered order may be returned: the buyer asks, the seller completes it, and
/// the stock comes back once.
pub async fn returns_restock<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let p = w.product(&seller, "Shoes", 6000, 4).await;
    let (buyer, id) = place(&w, p.id, 2).await;
    assert_err!(
        w.market.request_return(&buyer, id).await,
        Error::InvalidTransition { .. }
    );
    for s in [
        OrderStatus::Accepted,
        OrderStatus::Packed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ] {
        w.market.set_order_status(&seller, id, s).await.unwrap();
    }
    assert_err!(
        w.market
            .set_order_status(&seller, id, OrderStatus::Returned)
            .await,
        Error::InvalidTransition { .. }
    );
    let o = w.market.request_return(&buyer, id).await.unwrap();
    assert_eq!(o.status, OrderStatus::ReturnRequested);
    assert_eq!(w.stock(p.id).await, 2, "requesting does not restock");
    let o = w
        .market
        .set_order_status(&seller, id, OrderStatus::Returned)
        .await
        .unwrap();
    assert_eq!(o.status, OrderStatus::Returned);
    assert_eq!(w.stock(p.id).await, 4);
    assert_err!(
        w.market
            .set_order_status(&seller, id, OrderStatus::Returned)
            .await,
        Error::InvalidTransition { .. }
    );
    assert_eq!(w.stock(p.id).await, 4);
}

/// Buyers see only their orders and sellers only theirs; someone else's order is
/// indistinguishable from a missing one.
pub async fn orders_are_private<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, rival, admin) = (w.seller().await, w.seller().await, w.admin().await);
    let p = w.product(&seller, "Lamp", 3000, 5).await;
    let (buyer, id) = place(&w, p.id, 1).await;
    let stranger = w.buyer().await;
    let missing = marketplace_core::OrderId(uuid::Uuid::new_v4());
    for who in [&stranger, &rival] {
        let theirs = format!("{:?}", w.market.order(who, id).await.unwrap_err());
        let none = format!("{:?}", w.market.order(who, missing).await.unwrap_err());
        assert_eq!(theirs, none);
    }
    assert_err!(
        w.market.cancel_order(&stranger, id).await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market
            .set_order_status(&rival, id, OrderStatus::Accepted)
            .await,
        Error::NotFound(_)
    );
    assert!(
        w.market
            .my_orders(&stranger, OrderListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        w.market
            .seller_orders(&rival, OrderListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        w.market
            .my_orders(&buyer, OrderListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        w.market
            .seller_orders(&seller, OrderListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        w.market
            .all_orders(&admin, OrderListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_err!(
        w.market
            .all_orders(&seller, OrderListQuery::default())
            .await,
        Error::Forbidden(_)
    );
    assert_err!(
        w.market
            .seller_orders(&buyer, OrderListQuery::default())
            .await,
        Error::Forbidden(_)
    );
    assert_err!(
        w.market.my_orders(&seller, OrderListQuery::default()).await,
        Error::Forbidden(_)
    );
    w.market.order(&admin, id).await.unwrap();
}

/// Order lists are newest first, paged by cursor without gaps, and filter by status.
pub async fn order_lists_page_and_filter<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let p = w.product(&seller, "Coin", 100, 100).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
        ids.push(
            w.market
                .checkout(&buyer, &key(format!("o{i}")), Default::default())
                .await
                .unwrap()
                .orders[0]
                .id,
        );
        if i % 3 != 2 {
            w.clock.advance(chrono::Duration::seconds(1)); // some share a timestamp
        }
    }
    for id in &ids[..3] {
        w.market
            .set_order_status(&seller, *id, OrderStatus::Accepted)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut q = OrderListQuery {
        limit: Some(2),
        ..Default::default()
    };
    loop {
        let page = w.market.my_orders(&buyer, q.clone()).await.unwrap();
        seen.extend(page.items.iter().map(|o| (o.created_at, o.id)));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(
        seen.windows(2).all(|x| x[0] > x[1]),
        "strictly newest first, no repeats"
    );
    let accepted = w
        .market
        .seller_orders(
            &seller,
            OrderListQuery {
                status: Some(OrderStatus::Accepted),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(accepted.items.len(), 3);
    assert!(
        accepted
            .items
            .iter()
            .all(|o| o.status == OrderStatus::Accepted)
    );
    let bad = OrderListQuery {
        cursor: Some("nope".into()),
        ..Default::default()
    };
    assert_err!(w.market.my_orders(&buyer, bad).await, Error::Validation(_));
}
