//! Cart, wishlist and checkout.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use marketplace_core::checkout::CheckoutRequest;
use marketplace_core::order::OrderQuery;
use marketplace_core::{AddressId, Error, IdempotencyKey, OrderStatus, ProductId, Role, Storage};

use crate::{World, assert_err, key, usd};

/// The cart groups lines by seller with subtotals and a grand total; adding a
/// product again adds to its line.
pub async fn cart_groups_by_seller_with_totals<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (s1, s2, buyer) = (w.seller().await, w.seller().await, w.buyer().await);
    let a = w.product(&s1, "Pen", 150, 10).await;
    let b = w.product(&s1, "Ink", 400, 10).await;
    let c = w.product(&s2, "Paper", 999, 10).await;
    w.market.add_to_cart(&buyer, a.id, 2).await.unwrap();
    w.market.add_to_cart(&buyer, b.id, 1).await.unwrap();
    w.market.add_to_cart(&buyer, c.id, 1).await.unwrap();
    let cart = w.market.add_to_cart(&buyer, a.id, 1).await.unwrap();
    assert_eq!(cart.sellers.len(), 2);
    let g1 = cart
        .sellers
        .iter()
        .find(|g| g.seller_id == s1.user_id)
        .unwrap();
    let g2 = cart
        .sellers
        .iter()
        .find(|g| g.seller_id == s2.user_id)
        .unwrap();
    assert_eq!(g1.items.len(), 2);
    assert_eq!(
        g1.items
            .iter()
            .find(|l| l.product_id == a.id)
            .unwrap()
            .quantity,
        3
    );
    assert_eq!(g1.subtotal, usd(3 * 150 + 400));
    assert_eq!(g2.subtotal, usd(999));
    assert!(g1.store_name.starts_with("Store of"));
    assert_eq!(cart.total, usd(3 * 150 + 400 + 999));
    assert_eq!(cart.item_count, 5);
    assert!(!cart.has_problems);
    let cart = w.market.set_cart_quantity(&buyer, c.id, 4).await.unwrap();
    assert_eq!(cart.total, usd(3 * 150 + 400 + 4 * 999));
    let cart = w.market.remove_from_cart(&buyer, b.id).await.unwrap();
    assert_eq!(cart.total, usd(3 * 150 + 4 * 999));
    assert_err!(
        w.market.remove_from_cart(&buyer, b.id).await,
        Error::NotFound(_)
    );
    let cart = w.market.clear_cart(&buyer).await.unwrap();
    assert!(cart.sellers.is_empty() && cart.total == usd(0));
}

/// Quantities are 1..=999 per line and never beyond stock; unknown products are
/// refused; a failed change leaves the cart as it was.
pub async fn cart_quantities_are_bounded<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, buyer) = (w.seller().await, w.buyer().await);
    let p = w.product(&seller, "Bolt", 10, 2000).await;
    assert_err!(
        w.market.add_to_cart(&buyer, p.id, 0).await,
        Error::Validation(_)
    );
    assert_err!(
        w.market.add_to_cart(&buyer, p.id, 1000).await,
        Error::Validation(_)
    );
    w.market.add_to_cart(&buyer, p.id, 990).await.unwrap();
    assert_err!(
        w.market.add_to_cart(&buyer, p.id, 10).await,
        Error::Validation(_)
    );
    assert_err!(
        w.market.set_cart_quantity(&buyer, p.id, 0).await,
        Error::Validation(_)
    );
    let few = w.product(&seller, "Rare", 10, 3).await;
    match w.market.add_to_cart(&buyer, few.id, 4).await {
        Err(Error::InsufficientStock(items)) => {
            assert_eq!((items[0].requested, items[0].available), (4, 3))
        }
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    assert_err!(
        w.market
            .add_to_cart(&buyer, ProductId(uuid::Uuid::new_v4()), 1)
            .await,
        Error::Validation(_)
    );
    assert_err!(
        w.market.set_cart_quantity(&buyer, few.id, 1).await,
        Error::NotFound(_)
    );
    let cart = w.market.cart(&buyer).await.unwrap();
    assert_eq!(
        cart.item_count, 990,
        "failed changes left the cart as it was"
    );
}

/// Only buyers have carts and wishlists, and each sees only their own.
pub async fn carts_are_private_to_buyers<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, me, other, admin) = (
        w.seller().await,
        w.buyer().await,
        w.buyer().await,
        w.admin().await,
    );
    let p = w.product(&seller, "Hat", 1000, 5).await;
    w.market.add_to_cart(&me, p.id, 2).await.unwrap();
    assert!(w.market.cart(&other).await.unwrap().sellers.is_empty());
    assert_err!(
        w.market.remove_from_cart(&other, p.id).await,
        Error::NotFound(_)
    );
    w.market.clear_cart(&other).await.unwrap();
    assert_eq!(
        w.market.cart(&me).await.unwrap().item_count,
        2,
        "another buyer's clear does not touch mine"
    );
    for who in [&seller, &admin] {
        assert_err!(w.market.cart(who).await, Error::Forbidden(_));
        assert_err!(
            w.market.add_to_cart(who, p.id, 1).await,
            Error::Forbidden(_)
        );
        assert_err!(w.market.wishlist(who).await, Error::Forbidden(_));
        assert_err!(
            w.market.checkout(who, &key("k"), Default::default()).await,
            Error::Forbidden(_)
        );
    }
}

/// A product is in a wishlist once; removed products are reported as such.
pub async fn wishlist_holds_a_product_once<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, me, other) = (w.seller().await, w.buyer().await, w.buyer().await);
    let (a, b) = (
        w.product(&seller, "Book", 900, 1).await,
        w.product(&seller, "Map", 300, 1).await,
    );
    w.market.add_to_wishlist(&me, a.id).await.unwrap();
    w.clock.advance(chrono::Duration::seconds(1));
    w.market.add_to_wishlist(&me, b.id).await.unwrap();
    let list = w.market.add_to_wishlist(&me, a.id).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].product_id, b.id, "newest first");
    assert!(w.market.wishlist(&other).await.unwrap().is_empty());
    assert_err!(
        w.market.remove_from_wishlist(&other, a.id).await,
        Error::NotFound(_)
    );
    w.market.archive_product(&seller, a.id).await.unwrap();
    let list = w.market.wishlist(&me).await.unwrap();
    assert!(
        list.iter()
            .find(|i| i.product_id == a.id)
            .unwrap()
            .product
            .is_none()
    );
    w.market.remove_from_wishlist(&me, a.id).await.unwrap();
    assert_eq!(w.market.wishlist(&me).await.unwrap().len(), 1);
    assert_err!(
        w.market
            .add_to_wishlist(&me, ProductId(uuid::Uuid::new_v4()))
            .await,
        Error::Validation(_)
    );
}

/// One checkout makes one order per seller with item and address snapshots and
/// totals, takes the stock, empties the cart, and writes exactly one buyer mail
/// and one mail per seller.
pub async fn checkout_splits_into_one_order_per_seller<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (s1, s2, buyer) = (w.seller().await, w.seller().await, w.buyer().await);
    let addr = w.address(&buyer).await;
    let a = w.product(&s1, "Tea", 450, 10).await;
    let b = w.product(&s1, "Cup", 1200, 5).await;
    let c = w.product(&s2, "Honey", 800, 3).await;
    w.market.add_to_cart(&buyer, a.id, 2).await.unwrap();
    w.market.add_to_cart(&buyer, b.id, 1).await.unwrap();
    w.market.add_to_cart(&buyer, c.id, 3).await.unwrap();
    let mails_before = w.outbox().await.len();
    let req = CheckoutRequest {
        address_id: Some(addr.id),
    };
    let done = w.market.checkout(&buyer, &key("split"), req).await.unwrap();
    assert!(!done.replayed);
    assert_eq!(done.orders.len(), 2);
    for o in &done.orders {
        assert_eq!(o.checkout_id, done.checkout_id);
        assert_eq!(o.status, OrderStatus::Pending);
        assert_eq!(o.buyer_id, buyer.user_id);
        assert_eq!(o.address, addr);
        assert_eq!(o.history.len(), 1);
        assert_eq!(
            (o.history[0].from, o.history[0].to),
            (None, OrderStatus::Pending)
        );
        let sum = o.items.iter().map(|i| i.line_total.amount).sum::<i64>();
        assert_eq!(o.total.amount, sum);
    }
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
    assert_eq!(o1.items.len(), 2);
    assert_eq!(o1.total, usd(2 * 450 + 1200));
    assert_eq!(o2.total, usd(2400));
    let tea = o1.items.iter().find(|i| i.product_id == a.id).unwrap();
    assert_eq!(
        (
            tea.title.as_str(),
            tea.quantity,
            tea.unit_price,
            tea.line_total
        ),
        ("Tea", 2, usd(450), usd(900))
    );
    assert_eq!(
        (
            w.stock(a.id).await,
            w.stock(b.id).await,
            w.stock(c.id).await
        ),
        (8, 4, 0)
    );
    assert!(w.market.cart(&buyer).await.unwrap().sellers.is_empty());
    // Stored exactly as returned (the buyer's view leaves out the commission,
    // and adds the payment's status, which is read, not stored).
    let mut stored: Vec<_> = w
        .market
        .storage()
        .checkout_orders(done.checkout_id)
        .await
        .unwrap()
        .into_iter()
        .map(marketplace_core::Order::for_buyer)
        .collect();
    stored.sort_by_key(|o| o.seller_id);
    let mut returned = done.orders.clone();
    returned.sort_by_key(|o| o.seller_id);
    for o in &mut returned {
        assert_eq!(
            o.payment_status,
            Some(marketplace_core::OrderPaymentStatus::AwaitingPayment)
        );
        o.payment_status = None;
    }
    assert_eq!(stored, returned);
    // Mails: one confirmation listing both orders, one per seller.
    let mails = w.outbox().await;
    assert_eq!(mails.len() - mails_before, 3);
    let confirmations = w.mails("order_confirmation").await;
    assert_eq!(confirmations.len(), 1);
    let buyer_email = w.market.profile(&buyer).await.unwrap().email;
    assert_eq!(confirmations[0].recipient, buyer_email.as_str());
    for o in &done.orders {
        assert!(confirmations[0].text_body.contains(&o.id.to_string()));
    }
    assert!(
        confirmations[0].text_body.contains("45.00 USD"),
        "grand total in money format"
    );
    let new_orders = w.mails("new_order").await;
    assert_eq!(new_orders.len(), 2);
    for (o, seller) in [(o1, &s1), (o2, &s2)] {
        let email = w.market.profile(seller).await.unwrap().email;
        let mail = new_orders
            .iter()
            .find(|m| m.recipient == email.as_str())
            .unwrap();
        assert!(mail.text_body.contains(&o.id.to_string()));
    }
    // The snapshot survives later edits of the product and the address.
    let upd = marketplace_core::ProductUpdate {
        title: Some("Green tea".into()),
        price: Some(usd(1)),
        ..Default::default()
    };
    w.market.update_product(&s1, a.id, upd).await.unwrap();
    w.market
        .update_address(&buyer, addr.id, crate::address_input("Moved"))
        .await
        .unwrap();
    let again = w.market.order(&buyer, o1.id).await.unwrap();
    assert_eq!(&again, o1);
}

/// A cart with one short item changes nothing at all, and the error lists every
/// short item with what is available.
pub async fn checkout_with_a_short_item_changes_nothing<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (s1, s2, buyer) = (w.seller().await, w.seller().await, w.buyer().await);
    w.address(&buyer).await;
    let plenty = w.product(&s1, "Plenty", 100, 50).await;
    let few = w.product(&s2, "Few", 100, 5).await;
    let fewer = w.product(&s2, "Fewer", 100, 4).await;
    w.market.add_to_cart(&buyer, plenty.id, 10).await.unwrap();
    w.market.add_to_cart(&buyer, few.id, 5).await.unwrap();
    w.market.add_to_cart(&buyer, fewer.id, 4).await.unwrap();
    // Someone else buys some of the few.
    let other = w.buyer().await;
    w.address(&other).await;
    w.market.add_to_cart(&other, few.id, 2).await.unwrap();
    w.market.add_to_cart(&other, fewer.id, 3).await.unwrap();
    w.market
        .checkout(&other, &key("first"), Default::default())
        .await
        .unwrap();
    let mails_before = w.outbox().await.len();
    let cart_before = w.market.cart(&buyer).await.unwrap();
    match w
        .market
        .checkout(&buyer, &key("second"), Default::default())
        .await
    {
        Err(Error::InsufficientStock(mut items)) => {
            items.sort_by_key(|i| i.available);
            assert_eq!(items.len(), 2, "every short item is listed");
            assert_eq!(
                (items[0].product_id, items[0].requested, items[0].available),
                (fewer.id, 4, 1)
            );
            assert_eq!(
                (items[1].product_id, items[1].requested, items[1].available),
                (few.id, 5, 3)
            );
        }
        other => panic!("expected insufficient stock, got {other:?}"),
    }
    assert_eq!(
        (
            w.stock(plenty.id).await,
            w.stock(few.id).await,
            w.stock(fewer.id).await
        ),
        (50, 3, 1)
    );
    assert_eq!(
        w.market.cart(&buyer).await.unwrap().sellers,
        cart_before.sellers,
        "the cart stays"
    );
    let q = OrderQuery {
        buyer_id: Some(buyer.user_id),
        seller_id: None,
        status: None,
        after: None,
        limit: 10,
    };
    assert!(w.market.storage().list_orders(&q).await.unwrap().is_empty());
    assert_eq!(w.outbox().await.len(), mails_before, "no mail");
    assert!(
        w.market
            .storage()
            .checkout_by_key(buyer.user_id, &key("second"))
            .await
            .unwrap()
            .is_none()
    );
    // After fixing the cart, the same key works.
    w.market.set_cart_quantity(&buyer, few.id, 3).await.unwrap();
    w.market
        .set_cart_quantity(&buyer, fewer.id, 1)
        .await
        .unwrap();
    w.market
        .checkout(&buyer, &key("second"), Default::default())
        .await
        .unwrap();
    assert_eq!(
        (
            w.stock(plenty.id).await,
            w.stock(few.id).await,
            w.stock(fewer.id).await
        ),
        (40, 0, 0)
    );
}

/// Repeating a checkout with the same key returns the same orders and takes the
/// stock once; the same key with another request is refused.
pub async fn checkout_replays_by_idempotency_key<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, buyer) = (w.seller().await, w.buyer().await);
    let home = w.address(&buyer).await;
    let work = w
        .market
        .add_address(&buyer, crate::address_input("Work"))
        .await
        .unwrap();
    let p = w.product(&seller, "Soap", 300, 10).await;
    w.market.add_to_cart(&buyer, p.id, 2).await.unwrap();
    let first = w
        .market
        .checkout(
            &buyer,
            &key("key-1"),
            CheckoutRequest {
                address_id: Some(home.id),
            },
        )
        .await
        .unwrap();
    let again = w
        .market
        .checkout(
            &buyer,
            &key("key-1"),
            CheckoutRequest {
                address_id: Some(home.id),
            },
        )
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.checkout_id, first.checkout_id);
    assert_eq!(again.orders, first.orders);
    assert_eq!(w.stock(p.id).await, 8);
    assert_eq!(w.mails("order_confirmation").await.len(), 1);
    assert_err!(
        w.market
            .checkout(
                &buyer,
                &key("key-1"),
                CheckoutRequest {
                    address_id: Some(work.id)
                }
            )
            .await,
        Error::Conflict {
            code: "idempotency_key_reused",
            ..
        }
    );
    // Keys are per buyer: another buyer's identical key is independent.
    let other = w.buyer().await;
    w.address(&other).await;
    w.market.add_to_cart(&other, p.id, 1).await.unwrap();
    let theirs = w
        .market
        .checkout(&other, &key("key-1"), Default::default())
        .await
        .unwrap();
    assert_ne!(theirs.checkout_id, first.checkout_id);
    // Keys are checked where they enter: empty, with a space, or too long.
    for bad in [String::new(), "sp ace".to_owned(), "k".repeat(256)] {
        let refused = IdempotencyKey::parse(&bad).unwrap_err();
        assert_eq!(refused.field, "idempotency_key", "{bad:?}");
    }
    assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
}

/// Checkout needs a non-empty cart and one of the buyer's own addresses.
pub async fn checkout_needs_an_own_address_and_a_cart<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, buyer, other) = (w.seller().await, w.buyer().await, w.buyer().await);
    let p = w.product(&seller, "Rope", 100, 5).await;
    assert_err!(
        w.market
            .checkout(&buyer, &key("k0"), Default::default())
            .await,
        Error::Conflict {
            code: "cart_empty",
            ..
        }
    );
    w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
    assert_err!(w.market.checkout(&buyer, &key("k1"), Default::default()).await, Error::Validation(f) if f[0].field == "address_id");
    let theirs = w.address(&other).await;
    let req = CheckoutRequest {
        address_id: Some(theirs.id),
    };
    assert_err!(
        w.market.checkout(&buyer, &key("k2"), req).await,
        Error::Validation(_)
    );
    let req = CheckoutRequest {
        address_id: Some(AddressId(uuid::Uuid::new_v4())),
    };
    assert_err!(
        w.market.checkout(&buyer, &key("k3"), req).await,
        Error::Validation(_)
    );
    assert_eq!(w.stock(p.id).await, 5);
    let mine = w.address(&buyer).await;
    let done = w
        .market
        .checkout(
            &buyer,
            &key("k4"),
            CheckoutRequest {
                address_id: Some(mine.id),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.orders[0].address.id, mine.id);
}

/// Hundreds of concurrent checkouts (and cancellations) on a few hot products never
/// oversell: stock never goes negative and `initial == left + units in live
/// orders` for every product.
pub async fn concurrent_checkouts_never_oversell<S: Storage>(storage: S) {
    const BUYERS: usize = 200;
    const HOT: usize = 4;
    const STOCK: u32 = 60;
    let w = Arc::new(World::new(storage).await);
    let (s1, s2) = (w.seller().await, w.seller().await);
    let mut products = Vec::new();
    for i in 0..HOT {
        let seller = if i % 2 == 0 { &s1 } else { &s2 };
        products.push(
            w.product(seller, &format!("Hot {i}"), 1000 + i as i64, STOCK)
                .await
                .id,
        );
    }
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let b = w.buyer().await;
        w.address(&b).await;
        // Each buyer wants two hot products, 1 to 3 units each.
        for k in 0..2 {
            let p = products[(i + k) % HOT];
            w.market
                .add_to_cart(&b, p, (i % 3) as u32 + 1)
                .await
                .unwrap();
        }
        buyers.push(b);
    }
    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (w, b) = (Arc::clone(&w), *b);
            tokio::spawn(async move {
                match w
                    .market
                    .checkout(&b, &key(format!("hot-{i}")), Default::default())
                    .await
                {
                    Ok(done) => {
                        // Every third successful buyer cancels right away.
                        if i % 3 == 0 {
                            w.market.cancel_order(&b, done.orders[0].id).await.unwrap();
                        }
                        Some(done)
                    }
                    Err(Error::InsufficientStock(items)) => {
                        assert!(!items.is_empty());
                        None
                    }
                    Err(e) => panic!("checkout failed unexpectedly: {e:?}"),
                }
            })
        })
        .collect();
    let mut succeeded = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            succeeded += 1;
        }
    }
    assert!(succeeded > 0, "some checkouts must succeed");
    assert!(
        succeeded < BUYERS,
        "demand exceeds supply, so some must fail"
    );
    let q = OrderQuery {
        buyer_id: None,
        seller_id: None,
        status: None,
        after: None,
        limit: 10_000,
    };
    let orders = w.market.storage().list_orders(&q).await.unwrap();
    let mut sold: HashMap<ProductId, u32> = HashMap::new();
    for o in orders.iter().filter(|o| o.status.holds_stock()) {
        for (p, n) in o.units() {
            *sold.entry(p).or_default() += n;
        }
    }
    for p in &products {
        let left = w.stock(*p).await;
        assert_eq!(
            left + sold.get(p).copied().unwrap_or(0),
            STOCK,
            "stock accounting for {p}"
        );
    }
    let checkouts: HashSet<_> = orders.iter().map(|o| o.checkout_id).collect();
    assert_eq!(
        checkouts.len(),
        succeeded,
        "one checkout per successful buyer"
    );
    assert_eq!(w.mails("order_confirmation").await.len(), succeeded);
    assert_eq!(w.mails("new_order").await.len(), orders.len());
}

/// Two checkouts of one cart at the same moment make one set of orders: with the
/// same key both get it; with different keys the loser hears the cart is gone.
pub async fn a_cart_checks_out_at_most_once<S: Storage>(storage: S) {
    let w = Arc::new(World::new(storage).await);
    let seller = w.seller().await;
    let p = w.product(&seller, "Clicky", 500, 1000).await;
    for round in 0..10 {
        let buyer = w.register(Role::Buyer, &w.email("double")).await;
        w.address(&buyer).await;
        w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
        let same_key = round % 2 == 0;
        let attempts: Vec<_> = (0..4)
            .map(|k| {
                let w = Arc::clone(&w);
                let key = if same_key {
                    "click".to_owned()
                } else {
                    format!("click-{k}")
                };
                tokio::spawn(async move {
                    w.market
                        .checkout(&buyer, &crate::key(&key), Default::default())
                        .await
                })
            })
            .collect();
        let mut ids = HashSet::new();
        for a in attempts {
            match a.await.unwrap() {
                Ok(done) => {
                    ids.insert(done.checkout_id);
                }
                Err(Error::Conflict { code, .. }) if !same_key => {
                    assert!(
                        code == "cart_changed" || code == "cart_empty",
                        "unexpected conflict {code}"
                    );
                }
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(
            ids.len(),
            1,
            "exactly one checkout happened (round {round})"
        );
        let q = OrderQuery {
            buyer_id: Some(buyer.user_id),
            seller_id: None,
            status: None,
            after: None,
            limit: 10,
        };
        assert_eq!(w.market.storage().list_orders(&q).await.unwrap().len(), 1);
    }
    assert_eq!(w.stock(p.id).await, 990);
}
