//! Addresses, categories, products, offers and browsing.

use std::collections::HashSet;

use chrono::Duration;
use marketplace_core::Clock;
use marketplace_core::{
    AddressInput, CatalogQuery, Discount, DiscountKind, Error, ProductSort, ProductUpdate, Storage,
};

use crate::{World, address_input, assert_err, key, new_product, usd};

/// The first address is the default; making another the default moves the flag;
/// deleting the default hands it to the oldest remaining one; bad fields are
/// all reported.
pub async fn addresses_keep_one_default<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let me = w.buyer().await;
    let a = w
        .market
        .add_address(&me, address_input("Home"))
        .await
        .unwrap();
    assert!(a.is_default);
    assert_eq!(a.country, "US");
    let b = w
        .market
        .add_address(&me, address_input("Work"))
        .await
        .unwrap();
    assert!(!b.is_default);
    let b = w
        .market
        .update_address(
            &me,
            b.id,
            AddressInput {
                is_default: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(b.is_default);
    let all = w.market.addresses(&me).await.unwrap();
    assert_eq!(all.iter().filter(|x| x.is_default).count(), 1);
    assert_eq!(all.iter().find(|x| x.is_default).unwrap().id, b.id);
    w.market.delete_address(&me, b.id).await.unwrap();
    let all = w.market.addresses(&me).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].is_default && all[0].id == a.id);

    let bad = AddressInput {
        name: Some(" ".into()),
        line1: Some("x".repeat(201)),
        city: Some("Paris".into()),
        postal_code: Some("75<01".into()),
        country: Some("XX".into()),
        ..Default::default()
    };
    match w.market.add_address(&me, bad).await {
        Err(Error::Validation(f)) => {
            let fields: HashSet<_> = f.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(
                fields,
                HashSet::from(["name", "line1", "postal_code", "country"])
            );
        }
        other => panic!("expected validation error, got {other:?}"),
    }
    assert_eq!(
        w.market.addresses(&me).await.unwrap().len(),
        1,
        "nothing written"
    );
}

/// Nobody reads or changes another buyer's addresses; sellers have none.
pub async fn addresses_are_private<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (me, other) = (w.buyer().await, w.buyer().await);
    let mine = w.address(&me).await;
    assert!(w.market.addresses(&other).await.unwrap().is_empty());
    assert_err!(
        w.market
            .update_address(&other, mine.id, address_input("Mine now"))
            .await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market.delete_address(&other, mine.id).await,
        Error::NotFound(_)
    );
    let seller = w.seller().await;
    assert_err!(w.market.addresses(&seller).await, Error::Forbidden(_));
    assert_eq!(w.market.addresses(&me).await.unwrap(), vec![mine]);
}

/// Only admins manage categories; names are unique case-insensitively; a used
/// category cannot be deleted.
pub async fn categories_are_admin_managed_unique_and_guarded<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let seller = w.seller().await;
    assert_err!(
        w.market.create_category(&seller, "Books").await,
        Error::Forbidden(_)
    );
    let books = w.market.create_category(&admin, " Books ").await.unwrap();
    assert_eq!(books.name, "Books");
    assert_err!(
        w.market.create_category(&admin, "BOOKS").await,
        Error::Conflict {
            code: "category_exists",
            ..
        }
    );
    assert_err!(
        w.market.create_category(&admin, "").await,
        Error::Validation(_)
    );
    let toys = w.market.create_category(&admin, "Toys").await.unwrap();
    assert_err!(
        w.market.rename_category(&admin, toys.id, "books").await,
        Error::Conflict { .. }
    );
    let games = w
        .market
        .rename_category(&admin, toys.id, "Games")
        .await
        .unwrap();
    let names: Vec<_> = w
        .market
        .categories()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Books", "Games"]);
    let mut p = new_product("Novel", 1500, 3);
    p.category_id = Some(books.id);
    w.market.create_product(&seller, p).await.unwrap();
    assert_err!(
        w.market.delete_category(&admin, books.id).await,
        Error::Conflict {
            code: "category_in_use",
            ..
        }
    );
    w.market.delete_category(&admin, games.id).await.unwrap();
    assert_err!(
        w.market.delete_category(&admin, games.id).await,
        Error::NotFound(_)
    );
    let mut p = new_product("Ghost", 100, 1);
    p.category_id = Some(games.id);
    assert_err!(w.market.create_product(&seller, p).await, Error::Validation(f) if f[0].field == "category_id");
}

/// Products of pending, rejected or deactivated sellers are not listed, cannot be
/// read, added to carts or bought; a pending seller cannot list at all.
pub async fn unverified_sellers_are_neither_listed_nor_buyable<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let pending = w.pending_seller().await;
    assert_err!(
        w.market
            .create_product(&pending, new_product("Early", 100, 5))
            .await,
        Error::Forbidden(_)
    );
    let seller = w.seller().await;
    let p = w.product(&seller, "Lamp", 2500, 5).await;
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    w.market.add_to_cart(&buyer, p.id, 1).await.unwrap();
    assert_eq!(
        w.market
            .browse(CatalogQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    w.market
        .decide_seller(&admin, seller.user_id, false)
        .await
        .unwrap();
    assert!(
        w.market
            .browse(CatalogQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_err!(w.market.product(p.id).await, Error::NotFound(_));
    let other = w.buyer().await;
    assert_err!(
        w.market.add_to_cart(&other, p.id, 1).await,
        Error::Validation(_)
    );
    let cart = w.market.cart(&buyer).await.unwrap();
    assert!(cart.has_problems && !cart.sellers[0].items[0].available);
    assert_err!(w.market.checkout(&buyer, &key("k1"), Default::default()).await, Error::InsufficientStock(s) if s[0].available == 0);
    assert_eq!(w.stock(p.id).await, 5);

    w.market
        .decide_seller(&admin, seller.user_id, true)
        .await
        .unwrap();
    w.market
        .set_user_active(&admin, seller.user_id, false)
        .await
        .unwrap();
    assert!(
        w.market
            .browse(CatalogQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_err!(
        w.market
            .checkout(&buyer, &key("k2"), Default::default())
            .await,
        Error::InsufficientStock(_)
    );
    w.market
        .set_user_active(&admin, seller.user_id, true)
        .await
        .unwrap();
    let done = w
        .market
        .checkout(&buyer, &key("k3"), Default::default())
        .await
        .unwrap();
    assert_eq!(done.orders.len(), 1);
}

/// Product fields are validated together; money is integer minor units in the
/// marketplace currency.
pub async fn product_input_is_validated<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let mut p = new_product("", -5, 1);
    p.price.currency = marketplace_core::Currency::parse("EUR").unwrap();
    p.images = vec!["javascript:alert(1)".into()];
    p.discount = Some(Discount {
        kind: DiscountKind::Percentage { value: 0 },
        starts_at: None,
        ends_at: None,
    });
    match w.market.create_product(&seller, p).await {
        Err(Error::Validation(f)) => {
            let fields: HashSet<_> = f.iter().map(|e| e.field.as_str()).collect();
            let expected = [
                "title",
                "price.currency",
                "price.amount",
                "images[0]",
                "discount.value",
            ];
            assert_eq!(fields, HashSet::from(expected));
        }
        other => panic!("expected validation error, got {other:?}"),
    }
    let mut p = new_product("Huge", marketplace_core::money::MAX_AMOUNT + 1, 1);
    p.title = "\u{202e}Huge\u{0}".into();
    assert_err!(w.market.create_product(&seller, p).await, Error::Validation(f) if f.len() == 2);
    let now = w.clock.now();
    let mut p = new_product("Window", 100, 1);
    p.discount = Some(Discount {
        kind: DiscountKind::Fixed { amount: usd(10) },
        starts_at: Some(now + Duration::days(2)),
        ends_at: Some(now + Duration::days(1)),
    });
    assert_err!(
        w.market.create_product(&seller, p).await,
        Error::Validation(_)
    );
    let ok = w.product(&seller, "  Émoji 🎉 title  ", 0, 0).await;
    assert_eq!(ok.title, "Émoji 🎉 title");
    assert!(
        w.market
            .browse(CatalogQuery::default())
            .await
            .unwrap()
            .items
            .len()
            == 1
    );
}

/// Only the owner (or an admin) changes or archives a product; another seller sees
/// nothing, a buyer is refused.
pub async fn products_belong_to_their_seller<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (owner, rival, buyer, admin) = (
        w.seller().await,
        w.seller().await,
        w.buyer().await,
        w.admin().await,
    );
    let p = w.product(&owner, "Chair", 4000, 2).await;
    let retitle = |t: &str| ProductUpdate {
        title: Some(t.to_owned()),
        ..Default::default()
    };
    assert_err!(
        w.market.update_product(&rival, p.id, retitle("Mine")).await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market.archive_product(&rival, p.id).await,
        Error::NotFound(_)
    );
    assert_err!(w.market.my_product(&rival, p.id).await, Error::NotFound(_));
    assert_err!(
        w.market.update_product(&buyer, p.id, retitle("Mine")).await,
        Error::Forbidden(_)
    );
    assert!(
        w.market
            .my_products(&rival, CatalogQuery::default(), true)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let updated = w
        .market
        .update_product(&owner, p.id, retitle("Armchair"))
        .await
        .unwrap();
    assert_eq!(updated.title, "Armchair");
    assert_eq!(updated.price, p.price, "absent fields stay");
    w.market
        .update_product(&admin, p.id, retitle("Big armchair"))
        .await
        .unwrap();
    assert_eq!(w.market.product(p.id).await.unwrap().title, "Big armchair");
    w.market
        .set_product_blocked(&admin, p.id, true)
        .await
        .unwrap();
    assert_err!(w.market.product(p.id).await, Error::NotFound(_));
    assert_err!(
        w.market.set_product_blocked(&owner, p.id, false).await,
        Error::Forbidden(_)
    );
}

/// A seller's edit and concurrent checkouts both land: the edit never writes back
/// a stale stock figure.
pub async fn concurrent_product_edits_and_checkouts_lose_nothing<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let p = w.product(&seller, "Mug", 800, 40).await;
    let mut buyers = Vec::new();
    for _ in 0..10 {
        let b = w.buyer().await;
        w.address(&b).await;
        w.market.add_to_cart(&b, p.id, 2).await.unwrap();
        buyers.push(b);
    }
    let mut tasks = Vec::new();
    for (i, b) in buyers.into_iter().enumerate() {
        let m = w.market.clone();
        tasks.push(tokio::spawn(async move {
            m.checkout(&b, &key(format!("edit-{i}")), Default::default())
                .await
                .map(|_| ())
        }));
        let m = w.market.clone();
        tasks.push(tokio::spawn(async move {
            m.update_product(
                &seller,
                p.id,
                ProductUpdate {
                    title: Some(format!("Mug v{i}")),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        w.stock(p.id).await,
        40 - 20,
        "every checkout's decrement survived the edits"
    );
}

/// Browsing filters by seller, category, price range, stock and text; sorts by
/// newest and price; walks every page by cursor without gaps or repeats; and
/// clamps a page size beyond the maximum to the maximum.
pub async fn browse_filters_sorts_and_pages_without_gaps<S: Storage>(storage: S) {
    // The largest page (10) is smaller than the catalog (25), so clamping shows.
    const MAX_PAGE: u32 = 10;
    let mut config = crate::test_config();
    config.limits.max_page = MAX_PAGE;
    let w = World::with_config(storage, config).await;
    let admin = w.admin().await;
    let cat = w.market.create_category(&admin, "Kitchen").await.unwrap();
    let (s1, s2) = (w.seller().await, w.seller().await);
    let mut ids = Vec::new();
    for i in 0..25u32 {
        let seller = if i % 2 == 0 { &s1 } else { &s2 };
        let mut p = new_product(&format!("Item {i:02}"), 100 * i64::from(i % 7 + 1), i % 4);
        if i % 5 == 0 {
            p.category_id = Some(cat.id);
            p.description = "Stainless STEEL pan".into();
        }
        ids.push(w.market.create_product(seller, p).await.unwrap().id);
        w.clock.advance(Duration::seconds(1));
    }
    // Hidden products never show.
    let hidden = w
        .market
        .create_product(&s1, {
            let mut p = new_product("Hidden", 100, 1);
            p.active = Some(false);
            p
        })
        .await
        .unwrap();

    let walk = |q: CatalogQuery| {
        let m = w.market.clone();
        async move {
            let mut out = Vec::new();
            let mut q = q;
            loop {
                let page = m.browse(q.clone()).await.unwrap();
                assert!(page.items.len() <= q.limit.unwrap_or(20) as usize);
                out.extend(page.items);
                match page.next_cursor {
                    Some(c) => q.cursor = Some(c),
                    None => break out,
                }
            }
        }
    };
    let all = walk(CatalogQuery {
        limit: Some(4),
        ..Default::default()
    })
    .await;
    assert_eq!(all.len(), 25);
    let seen: HashSet<_> = all.iter().map(|p| p.id).collect();
    assert_eq!(seen.len(), 25, "no repeats across pages");
    assert!(!seen.contains(&hidden.id));
    assert!(
        all.windows(2).all(|p| p[0].created_at >= p[1].created_at),
        "newest first"
    );
    assert_eq!(all[0].id, ids[24]);

    let by_price = walk(CatalogQuery {
        limit: Some(3),
        sort: Some(ProductSort::PriceAsc),
        ..Default::default()
    })
    .await;
    assert_eq!(by_price.len(), 25);
    assert!(
        by_price
            .windows(2)
            .all(|p| (p[0].price.amount, p[0].id) < (p[1].price.amount, p[1].id))
    );
    let desc = walk(CatalogQuery {
        limit: Some(7),
        sort: Some(ProductSort::PriceDesc),
        ..Default::default()
    })
    .await;
    assert!(
        desc.windows(2)
            .all(|p| (p[0].price.amount, p[0].id) > (p[1].price.amount, p[1].id))
    );
    assert_eq!(desc.len(), 25);

    let mine = walk(CatalogQuery {
        seller_id: Some(s2.user_id),
        ..Default::default()
    })
    .await;
    assert_eq!(mine.len(), 12);
    assert!(mine.iter().all(|p| p.seller_id == s2.user_id));
    let in_cat = walk(CatalogQuery {
        category: Some(cat.id),
        ..Default::default()
    })
    .await;
    assert_eq!(in_cat.len(), 5);
    let range = walk(CatalogQuery {
        min_price: Some(300),
        max_price: Some(500),
        ..Default::default()
    })
    .await;
    assert!(!range.is_empty() && range.iter().all(|p| (300..=500).contains(&p.price.amount)));
    let expected = (0..25)
        .filter(|i| (300..=500).contains(&(100 * (i % 7 + 1))))
        .count();
    assert_eq!(range.len(), expected);
    let stocked = walk(CatalogQuery {
        in_stock: Some(true),
        ..Default::default()
    })
    .await;
    assert_eq!(stocked.len(), (0..25).filter(|i| i % 4 != 0).count());
    let text = walk(CatalogQuery {
        q: Some("steel".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(text.len(), 5, "case-insensitive search in descriptions");
    let title = walk(CatalogQuery {
        q: Some("item 1".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(title.len(), 10);
    let none = walk(CatalogQuery {
        q: Some("100%_".into()),
        ..Default::default()
    })
    .await;
    assert!(
        none.is_empty(),
        "LIKE wildcards in the search text match literally"
    );

    // A cursor from one sort is refused by another; garbage cursors are refused.
    let page = w
        .market
        .browse(CatalogQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let cursor = page.next_cursor.unwrap();
    let q = CatalogQuery {
        cursor: Some(cursor),
        sort: Some(ProductSort::PriceAsc),
        ..Default::default()
    };
    assert_err!(w.market.browse(q).await, Error::Validation(_));
    assert_err!(
        w.market
            .browse(CatalogQuery {
                cursor: Some("%%%".into()),
                ..Default::default()
            })
            .await,
        Error::Validation(_)
    );
    assert_err!(
        w.market
            .browse(CatalogQuery {
                min_price: Some(-1),
                ..Default::default()
            })
            .await,
        Error::Validation(_)
    );
    // A page size beyond the maximum gets exactly the maximum, the newest first,
    // and a cursor to the rest; walking at that size still sees every product once.
    let big = w
        .market
        .browse(CatalogQuery {
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(big.items.len(), MAX_PAGE as usize, "clamped to the maximum");
    assert!(big.next_cursor.is_some(), "the rest is a page away");
    assert_eq!(
        big.items.iter().map(|p| p.id).collect::<Vec<_>>(),
        all[..MAX_PAGE as usize]
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    );
    let mut pages = Vec::new();
    let mut q = CatalogQuery {
        limit: Some(10_000),
        ..Default::default()
    };
    loop {
        let page = w.market.browse(q.clone()).await.unwrap();
        pages.push(page.items.len());
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [10, 10, 5],
        "pages of the maximum size, then the rest"
    );
}

/// An offer inside its window sets the effective price shown, the cart's price and
/// the price charged at checkout; outside its window it does not apply.
pub async fn offers_set_the_price_everywhere<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let now = w.clock.now();
    let mut p = new_product("Kettle", 999, 10);
    p.discount = Some(Discount {
        kind: DiscountKind::Percentage { value: 15 },
        starts_at: Some(now + Duration::hours(1)),
        ends_at: Some(now + Duration::hours(3)),
    });
    let p = w.market.create_product(&seller, p).await.unwrap();
    assert_eq!(p.effective_price, usd(999), "not yet");
    w.clock.advance(Duration::hours(2));
    assert_eq!(
        w.market.product(p.id).await.unwrap().effective_price,
        usd(849)
    );
    let buyer = w.buyer().await;
    w.address(&buyer).await;
    let cart = w.market.add_to_cart(&buyer, p.id, 3).await.unwrap();
    assert_eq!(cart.sellers[0].items[0].effective_price, usd(849));
    assert_eq!(cart.total, usd(849 * 3));
    let done = w
        .market
        .checkout(&buyer, &key("offer"), Default::default())
        .await
        .unwrap();
    let item = &done.orders[0].items[0];
    assert_eq!(
        (item.unit_price, item.effective_price, item.line_total),
        (usd(999), usd(849), usd(2547))
    );
    assert_eq!(done.orders[0].total, usd(2547));
    w.clock.advance(Duration::hours(2));
    assert_eq!(
        w.market.product(p.id).await.unwrap().effective_price,
        usd(999),
        "expired"
    );
    // A fixed discount larger than the price makes it free, never negative.
    let upd = ProductUpdate {
        discount: Some(Some(Discount {
            kind: DiscountKind::Fixed { amount: usd(5000) },
            starts_at: None,
            ends_at: None,
        })),
        ..Default::default()
    };
    assert_eq!(
        w.market
            .update_product(&seller, p.id, upd)
            .await
            .unwrap()
            .effective_price,
        usd(0)
    );
    let clear = ProductUpdate {
        discount: Some(None),
        ..Default::default()
    };
    let p = w.market.update_product(&seller, p.id, clear).await.unwrap();
    assert!(p.discount.is_none() && p.effective_price == usd(999));
}

/// Archiving or blocking a product removes it from the catalog, flags it in carts,
/// keeps past orders intact, and stops it being bought.
pub async fn archived_and_blocked_products_leave_catalog_and_carts<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, admin, buyer) = (w.seller().await, w.admin().await, w.buyer().await);
    w.address(&buyer).await;
    let (a, b) = (
        w.product(&seller, "Old", 500, 5).await,
        w.product(&seller, "Risky", 700, 5).await,
    );
    w.market.add_to_cart(&buyer, a.id, 1).await.unwrap();
    let first = w
        .market
        .checkout(&buyer, &key("before"), Default::default())
        .await
        .unwrap();
    w.market.add_to_cart(&buyer, a.id, 1).await.unwrap();
    w.market.add_to_cart(&buyer, b.id, 1).await.unwrap();
    w.market.archive_product(&seller, a.id).await.unwrap();
    w.market
        .set_product_blocked(&admin, b.id, true)
        .await
        .unwrap();
    assert!(
        w.market
            .browse(CatalogQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let cart = w.market.cart(&buyer).await.unwrap();
    assert_eq!(cart.sellers[0].items.len(), 2, "flagged, not hidden");
    assert!(cart.sellers[0].items.iter().all(|l| !l.available));
    assert_eq!(cart.total, usd(0));
    match w
        .market
        .checkout(&buyer, &key("after"), Default::default())
        .await
    {
        Err(Error::InsufficientStock(items)) => assert_eq!(items.len(), 2),
        other => panic!("expected refusal, got {other:?}"),
    }
    let order = w.market.order(&buyer, first.orders[0].id).await.unwrap();
    assert_eq!(
        order.items[0].title, "Old",
        "past orders keep their snapshot"
    );
    assert!(
        w.market
            .my_products(&seller, CatalogQuery::default(), false)
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| p.id != a.id)
    );
    assert!(
        w.market
            .my_products(&seller, CatalogQuery::default(), true)
            .await
            .unwrap()
            .items
            .iter()
            .any(|p| p.id == a.id)
    );
    assert_err!(
        w.market
            .update_product(
                &seller,
                a.id,
                ProductUpdate {
                    stock: Some(9),
                    ..Default::default()
                }
            )
            .await,
        Error::Conflict {
            code: "product_archived",
            ..
        }
    );
}
