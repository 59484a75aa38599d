//! Counted limits under concurrency: what one account may accumulate (addresses,
//! cart lines, images on a product) is never exceeded, however many requests
//! race for the last places.

use std::future::Future;
use std::sync::Arc;

use marketplace_core::{AddressInput, Error, ProductId, Result, Storage};

use crate::{World, address_input, assert_err, new_product, test_config, test_images};

/// Runs `n` calls of `call`, each on a task of its own (the suite runs on a
/// multi-thread runtime) released together, and returns their results.
async fn race<T, F, Fut>(n: usize, call: F) -> Vec<Result<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (start, call) = (Arc::clone(&start), call(i));
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

/// Counts the successes of a race, and checks that every failure is the
/// conflict `code`.
fn winners<T>(results: Vec<Result<T>>, code: &str) -> usize {
    let mut won = 0;
    for r in results {
        match r {
            Ok(_) => won += 1,
            Err(Error::Conflict { code: c, .. }) if c == code => {}
            Err(other) => panic!("a call beyond the limit failed with {other:?}, not {code}"),
        }
    }
    won
}

/// Concurrent address creates never leave a buyer more addresses than
/// `max_addresses`: of 40 racing creates (on an empty book, then on one with two
/// places left) exactly the free places succeed, every other one is refused with
/// `too_many_addresses`, and one address is the default. Editing an address of
/// a full book still works.
pub async fn concurrent_address_creates_never_pass_the_limit<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let max = w.market.config().limits.max_addresses;
    const CONTENDERS: usize = 40;
    for already in [0, max - 2] {
        let buyer = w.buyer().await;
        for i in 0..already {
            w.market
                .add_address(&buyer, address_input(&format!("Earlier {i}")))
                .await
                .unwrap();
        }
        let results = race(CONTENDERS, |i| {
            let (market, buyer) = (w.market.clone(), buyer);
            async move {
                market
                    .add_address(&buyer, address_input(&format!("Racer {i}")))
                    .await
            }
        })
        .await;
        let won = winners(results, "too_many_addresses");
        assert_eq!(
            won,
            max - already,
            "with {already} of {max} addresses kept, {CONTENDERS} concurrent creates \
             must fill exactly the free places"
        );
        let stored = w.market.addresses(&buyer).await.unwrap();
        assert_eq!(
            stored.len(),
            max,
            "after {CONTENDERS} concurrent creates (from {already}): {max} addresses at most"
        );
        assert_eq!(
            stored.iter().filter(|a| a.is_default).count(),
            1,
            "exactly one default address: {stored:?}"
        );
        // The book is full: one more is refused, an edit is not.
        assert_err!(
            w.market
                .add_address(&buyer, address_input("One more"))
                .await,
            Error::Conflict {
                code: "too_many_addresses",
                ..
            }
        );
        let last = stored.last().unwrap();
        let edit = AddressInput {
            city: Some("Shelbyville".to_owned()),
            is_default: Some(true),
            ..Default::default()
        };
        let edited = w
            .market
            .update_address(&buyer, last.id, edit)
            .await
            .unwrap();
        assert_eq!(edited.city, "Shelbyville");
        let stored = w.market.addresses(&buyer).await.unwrap();
        assert_eq!(stored.len(), max);
        assert_eq!(
            stored
                .iter()
                .filter(|a| a.is_default)
                .map(|a| a.id)
                .collect::<Vec<_>>(),
            [last.id],
            "the edited address took the default from the previous one"
        );
        // A freed place can be taken again.
        w.market.delete_address(&buyer, stored[0].id).await.unwrap();
        w.market
            .add_address(&buyer, address_input("Replacement"))
            .await
            .unwrap();
        assert_eq!(w.market.addresses(&buyer).await.unwrap().len(), max);
    }
}

/// Concurrent adds of distinct products never leave a cart more lines than
/// `max_cart_lines`: exactly the free lines are filled, every other add is
/// refused with `cart_full`.
pub async fn concurrent_cart_adds_never_pass_the_line_limit<S: Storage>(storage: S) {
    const MAX_LINES: usize = 5;
    const CONTENDERS: usize = 16;
    let mut config = test_config();
    config.limits.max_cart_lines = MAX_LINES;
    let w = World::with_config(storage, config).await;
    let seller = w.seller().await;
    let mut products: Vec<ProductId> = Vec::new();
    for i in 0..CONTENDERS + 1 {
        let p = w
            .market
            .create_product(&seller, new_product(&format!("Item {i}"), 100, 10))
            .await
            .unwrap();
        products.push(p.id);
    }
    for already in [0, MAX_LINES - 1] {
        let buyer = w.buyer().await;
        for p in &products[CONTENDERS - already..CONTENDERS] {
            w.market.add_to_cart(&buyer, *p, 1).await.unwrap();
        }
        let racing = products[..CONTENDERS - already].to_vec();
        let results = race(racing.len(), |i| {
            let (market, buyer, product) = (w.market.clone(), buyer, racing[i]);
            async move { market.add_to_cart(&buyer, product, 1).await }
        })
        .await;
        let won = winners(results, "cart_full");
        assert_eq!(
            won,
            MAX_LINES - already,
            "with {already} of {MAX_LINES} lines, concurrent adds fill exactly the free ones"
        );
        let cart = w.market.cart(&buyer).await.unwrap();
        let lines: usize = cart.sellers.iter().map(|g| g.items.len()).sum();
        assert_eq!(lines, MAX_LINES, "{cart:?}");
        // A line already in the full cart still takes more units.
        let first = cart.sellers[0].items[0].product_id;
        w.market.add_to_cart(&buyer, first, 1).await.unwrap();
        assert_err!(
            w.market.add_to_cart(&buyer, products[CONTENDERS], 1).await,
            Error::Conflict {
                code: "cart_full",
                ..
            }
        );
    }
}

/// Concurrent uploads never leave a product more images than `max_images`:
/// exactly the free places are filled, every other upload is refused with
/// `too_many_images`.
pub async fn concurrent_image_uploads_never_pass_the_image_limit<S: Storage>(storage: S) {
    const MAX_IMAGES: usize = 3;
    const CONTENDERS: usize = 8;
    let mut config = test_config();
    config.limits.max_images = MAX_IMAGES;
    let w = World::with_config(storage, config).await;
    let seller = w.seller().await;
    let product = w
        .market
        .create_product(&seller, new_product("Lamp", 2500, 3))
        .await
        .unwrap();
    let png = test_images::png(24, 16);
    let results = race(CONTENDERS, |_| {
        let (market, seller, png) = (w.market.clone(), seller, png.clone());
        async move { market.upload_image(&seller, product.id, png).await }
    })
    .await;
    assert_eq!(winners(results, "too_many_images"), MAX_IMAGES);
    let stored = w
        .market
        .storage()
        .product(product.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.images.len(), MAX_IMAGES, "{:?}", stored.images);
    let mut distinct = stored.images.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), MAX_IMAGES, "no image is listed twice");
    for key in &stored.images {
        w.market.image(key).await.unwrap();
    }
}
