//! Sellers' own SKUs: stored and read back, unique per seller among the products
//! that are not archived (also under concurrency), and looked up by the seller.

use std::collections::HashSet;

use marketplace_core::{CatalogQuery, Error, NewProduct, Principal, ProductUpdate, Storage};

use crate::{World, assert_err, new_product};

/// A new product with a SKU.
fn with_sku(title: &str, sku: &str) -> NewProduct {
    NewProduct {
        sku: Some(sku.to_owned()),
        ..new_product(title, 1200, 5)
    }
}

/// Changes only the SKU (`None` removes it).
fn set_sku(sku: Option<&str>) -> ProductUpdate {
    ProductUpdate {
        sku: Some(sku.map(str::to_owned)),
        ..Default::default()
    }
}

/// The SKUs of the seller's products that are not archived.
async fn live_skus<S: Storage>(w: &World<S>, seller: &Principal) -> Vec<Option<String>> {
    let query = CatalogQuery {
        limit: Some(100),
        ..Default::default()
    };
    w.market
        .my_products(seller, query, false)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.sku)
        .collect()
}

/// A SKU is trimmed and stored as given on create, changed and removed by a
/// patch (absent leaves it), and read back the same by every read; a bad one
/// is a validation error on `sku` that writes nothing.
pub async fn skus_round_trip_and_are_validated<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let p = w
        .market
        .create_product(&seller, with_sku("Kettle", "  KET-1 blue  "))
        .await
        .unwrap();
    assert_eq!(p.sku.as_deref(), Some("KET-1 blue"), "trimmed");
    let stored = w.market.storage().product(p.id).await.unwrap().unwrap();
    assert_eq!(stored.sku.as_deref(), Some("KET-1 blue"));
    assert_eq!(w.market.my_product(&seller, p.id).await.unwrap().sku, p.sku);
    assert_eq!(w.market.product(p.id).await.unwrap().sku, p.sku);
    let found = w
        .market
        .product_by_sku(&seller, "KET-1 blue")
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(p.id));

    let retitled = w
        .market
        .update_product(
            &seller,
            p.id,
            ProductUpdate {
                title: Some("Kettle 2".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(retitled.sku, p.sku, "an absent sku stays");
    let moved = w
        .market
        .update_product(&seller, p.id, set_sku(Some("KET-2")))
        .await
        .unwrap();
    assert_eq!(moved.sku.as_deref(), Some("KET-2"));
    assert!(
        w.market
            .product_by_sku(&seller, "KET-1 blue")
            .await
            .unwrap()
            .is_none(),
        "the old SKU leads nowhere"
    );
    let cleared = w
        .market
        .update_product(&seller, p.id, set_sku(None))
        .await
        .unwrap();
    assert_eq!(cleared.sku, None);
    let stored = w.market.storage().product(p.id).await.unwrap().unwrap();
    assert_eq!(stored.sku, None);
    let plain = w.product(&seller, "No SKU", 100, 1).await;
    assert_eq!(plain.sku, None);

    for bad in [
        String::new(),
        "   ".to_owned(),
        "x".repeat(65),
        "A\u{0}1".to_owned(),
        "A\t1".to_owned(),
        "A\n1".to_owned(),
    ] {
        assert_err!(
            w.market.create_product(&seller, with_sku("Bad", &bad)).await,
            Error::Validation(f) if f.len() == 1 && f[0].field == "sku"
        );
        assert_err!(
            w.market.update_product(&seller, p.id, set_sku(Some(&bad))).await,
            Error::Validation(f) if f[0].field == "sku"
        );
    }
    let longest = "x".repeat(64);
    let p64 = w
        .market
        .create_product(&seller, with_sku("Longest", &longest))
        .await
        .unwrap();
    assert_eq!(p64.sku.as_deref(), Some(longest.as_str()));
    assert_eq!(
        live_skus(&w, &seller).await.len(),
        3,
        "no bad product written"
    );
}

/// One seller's live products never share a SKU (create or patch:
/// `sku_taken`, nothing written); another seller may use the same SKU; SKUs
/// compare exactly; archiving a product gives its SKU up.
pub async fn a_sellers_skus_are_unique_until_archived<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, rival) = (w.seller().await, w.seller().await);
    let first = w
        .market
        .create_product(&seller, with_sku("Mug", "MUG-1"))
        .await
        .unwrap();
    assert_err!(
        w.market
            .create_product(&seller, with_sku("Mug again", " MUG-1 "))
            .await,
        Error::Conflict {
            code: "sku_taken",
            ..
        }
    );
    let other = w
        .market
        .create_product(&seller, with_sku("Cup", "CUP-1"))
        .await
        .unwrap();
    assert_err!(
        w.market
            .update_product(&seller, other.id, set_sku(Some("MUG-1")))
            .await,
        Error::Conflict {
            code: "sku_taken",
            ..
        }
    );
    let other_now = w.market.my_product(&seller, other.id).await.unwrap();
    assert_eq!(
        other_now.sku.as_deref(),
        Some("CUP-1"),
        "the refused patch wrote nothing"
    );
    let stored = w.market.storage().product(other.id).await.unwrap().unwrap();
    assert_eq!(stored.version, 1, "the refused patch wrote nothing");
    // Saving a product with its own SKU is no conflict with itself.
    w.market
        .update_product(&seller, first.id, set_sku(Some("MUG-1")))
        .await
        .unwrap();
    // Exact comparison: another case is another SKU.
    w.market
        .create_product(&seller, with_sku("Small mug", "mug-1"))
        .await
        .unwrap();

    let theirs = w
        .market
        .create_product(&rival, with_sku("Rival mug", "MUG-1"))
        .await
        .unwrap();
    assert_eq!(
        theirs.sku.as_deref(),
        Some("MUG-1"),
        "another seller may reuse it"
    );

    w.market.archive_product(&seller, first.id).await.unwrap();
    assert!(
        w.market
            .product_by_sku(&seller, "MUG-1")
            .await
            .unwrap()
            .is_none(),
        "an archived product is not found by its SKU"
    );
    let second = w
        .market
        .create_product(&seller, with_sku("Mug, new edition", "MUG-1"))
        .await
        .unwrap();
    let found = w.market.product_by_sku(&seller, "MUG-1").await.unwrap();
    assert_eq!(found.map(|p| p.id), Some(second.id));
    // The archived product keeps its SKU on record, for its past orders.
    let archived = w.market.my_product(&seller, first.id).await.unwrap();
    assert!(archived.archived);
    assert_eq!(archived.sku.as_deref(), Some("MUG-1"));
    let mut skus: Vec<_> = live_skus(&w, &seller).await.into_iter().flatten().collect();
    skus.sort();
    assert_eq!(skus, ["CUP-1", "MUG-1", "mug-1"]);
}

/// Concurrent creates with one seller's SKU list exactly one product; concurrent
/// patches moving two products onto one SKU let exactly one through.
pub async fn concurrent_creates_with_one_sku_list_one_product<S: Storage>(storage: S) {
    const RACERS: usize = 8;
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let m = w.market.clone();
        tasks.push(tokio::spawn(async move {
            m.create_product(&seller, with_sku(&format!("Racer {i}"), "RACE-1"))
                .await
        }));
    }
    let (mut won, mut taken) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => {
                assert_eq!(p.sku.as_deref(), Some("RACE-1"));
                won += 1;
            }
            Err(Error::Conflict {
                code: "sku_taken", ..
            }) => taken += 1,
            Err(other) => panic!("expected success or sku_taken, got {other:?}"),
        }
    }
    assert_eq!((won, taken), (1, RACERS - 1));
    assert_eq!(live_skus(&w, &seller).await, [Some("RACE-1".to_owned())]);

    let mut ids = Vec::new();
    for i in 0..RACERS {
        let p = w
            .market
            .create_product(
                &seller,
                with_sku(&format!("Mover {i}"), &format!("MOVE-{i}")),
            )
            .await
            .unwrap();
        ids.push(p.id);
    }
    let mut tasks = Vec::new();
    for id in ids.clone() {
        let m = w.market.clone();
        tasks.push(tokio::spawn(async move {
            m.update_product(&seller, id, set_sku(Some("TARGET"))).await
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(p) => won.push(p.id),
            Err(Error::Conflict {
                code: "sku_taken", ..
            }) => {}
            Err(other) => panic!("expected success or sku_taken, got {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one patch took the SKU");
    let holder = w.market.product_by_sku(&seller, "TARGET").await.unwrap();
    assert_eq!(holder.map(|p| p.id), Some(won[0]));
    let skus: Vec<_> = live_skus(&w, &seller).await.into_iter().flatten().collect();
    assert_eq!(skus.len(), RACERS + 1);
    assert_eq!(
        skus.iter().collect::<HashSet<_>>().len(),
        skus.len(),
        "no SKU twice: {skus:?}"
    );
}

/// A seller looks up only its own products by SKU, in any state but archived;
/// buyers and admins have no SKUs to look up; a malformed SKU is refused.
pub async fn lookup_by_sku_finds_only_own_products<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, rival, buyer, admin) = (
        w.seller().await,
        w.seller().await,
        w.buyer().await,
        w.admin().await,
    );
    let mine = w
        .market
        .create_product(
            &seller,
            NewProduct {
                active: Some(false),
                ..with_sku("Hidden lamp", "LAMP-1")
            },
        )
        .await
        .unwrap();
    let found = w.market.product_by_sku(&seller, "LAMP-1").await.unwrap();
    assert_eq!(
        found.as_ref().map(|p| p.id),
        Some(mine.id),
        "inactive, still found"
    );
    assert_eq!(found.unwrap().sku.as_deref(), Some("LAMP-1"));
    w.market
        .set_product_blocked(&admin, mine.id, true)
        .await
        .unwrap();
    let found = w.market.product_by_sku(&seller, " LAMP-1 ").await.unwrap();
    assert_eq!(found.map(|p| p.id), Some(mine.id), "blocked, still found");

    assert!(
        w.market
            .product_by_sku(&rival, "LAMP-1")
            .await
            .unwrap()
            .is_none(),
        "another seller's SKU is not found"
    );
    let theirs = w
        .market
        .create_product(&rival, with_sku("Rival lamp", "LAMP-1"))
        .await
        .unwrap();
    let found = w.market.product_by_sku(&rival, "LAMP-1").await.unwrap();
    assert_eq!(found.map(|p| p.id), Some(theirs.id));
    let found = w.market.product_by_sku(&seller, "LAMP-1").await.unwrap();
    assert_eq!(found.map(|p| p.id), Some(mine.id));
    assert!(
        w.market
            .product_by_sku(&seller, "lamp-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.market
            .product_by_sku(&seller, "NOPE")
            .await
            .unwrap()
            .is_none()
    );
    assert_err!(
        w.market.product_by_sku(&buyer, "LAMP-1").await,
        Error::Forbidden(_)
    );
    assert_err!(
        w.market.product_by_sku(&admin, "LAMP-1").await,
        Error::Forbidden(_)
    );
    assert_err!(
        w.market.product_by_sku(&seller, "LAMP\u{0}1").await,
        Error::Validation(f) if f[0].field == "sku"
    );
    assert_err!(
        w.market.product_by_sku(&seller, "").await,
        Error::Validation(_)
    );
}
