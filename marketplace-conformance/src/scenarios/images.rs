//! Product images: recognised from their bytes, decoded within limits, stored
//! without metadata in the sizes a storefront shows.

use std::sync::Arc;

use bytes::Bytes;
use marketplace_core::images::{LARGE_SIDE, THUMBNAIL_SIDE};
use marketplace_core::{Error, Marketplace, ProductUpdate, Storage};

use crate::test_images::{self, SECRET, dimensions};
use crate::{World, assert_err};

/// The key of a stored image, from its URL.
fn key(url: &str) -> &str {
    url.split("/media/").nth(1).unwrap()
}

/// Uploads are recognised from their bytes, size-limited, stored, and their URL
/// added to the product.
pub async fn images_are_checked_from_their_bytes<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let (seller, rival) = (w.seller().await, w.seller().await);
    let p = w.product(&seller, "Frame", 1200, 1).await;
    let png = test_images::png(40, 30);
    let view = w
        .market
        .upload_image(&seller, p.id, png.clone())
        .await
        .unwrap();
    assert_eq!(view.images.len(), 1);
    assert_eq!(view.thumbnails.len(), 1);
    let url = &view.images[0];
    assert!(url.ends_with(".png") && url.contains(&p.id.to_string()));
    let stored = w.market.image(key(url)).await.unwrap();
    assert_eq!(stored.content_type, "image/png");
    assert_eq!(
        dimensions(&stored.bytes),
        (40, 30),
        "small images keep their size"
    );
    for (bytes, ext) in [
        (test_images::jpeg(20, 20), ".jpg"),
        (test_images::webp(20, 20), ".webp"),
    ] {
        let view = w.market.upload_image(&seller, p.id, bytes).await.unwrap();
        let url = view.images.last().unwrap();
        assert!(url.ends_with(ext), "{url}");
        let stored = w.market.image(key(url)).await.unwrap();
        assert_eq!(dimensions(&stored.bytes), (20, 20));
    }
    assert_err!(
        w.market
            .upload_image(&seller, p.id, Bytes::from_static(b"<html>not an image"))
            .await,
        Error::UnsupportedMediaType(_)
    );
    assert_err!(
        w.market.upload_image(&rival, p.id, png.clone()).await,
        Error::NotFound(_)
    );
    let huge = Bytes::from(vec![0u8; w.market.config().limits.max_image_bytes + 1]);
    assert_err!(
        w.market.upload_image(&seller, p.id, huge).await,
        Error::PayloadTooLarge { .. }
    );
    assert_err!(w.market.image("../../etc/passwd").await, Error::NotFound(_));
    assert_eq!(
        w.market.product(p.id).await.unwrap().images.len(),
        3,
        "failed uploads change nothing"
    );
}

/// Truncated files, headers claiming more pixels than the budget (a
/// decompression bomb) and sides over the bound are refused with a clear
/// validation error; what is stored is re-encoded, without the upload's
/// metadata, at most the large size, with a thumbnail beside it.
pub async fn images_are_decoded_within_limits_and_stored_without_metadata<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let p = w.product(&seller, "Poster", 1200, 1).await;
    let refused = |e: &Error, code: &str| match e {
        Error::Validation(f) => f[0].field == "image" && f[0].code == code,
        _ => false,
    };
    let full = test_images::png(64, 64);
    let cases: Vec<(&str, Bytes, &str)> = vec![
        (
            "signature only",
            Bytes::from_static(b"\x89PNG\r\n\x1a\n"),
            "unreadable",
        ),
        ("truncated", full.slice(..full.len() / 2), "unreadable"),
        (
            "12000 x 12000 bomb",
            test_images::png_claiming(12_000, 12_000),
            "too_large",
        ),
        (
            "100000 x 100000",
            test_images::png_claiming(100_000, 100_000),
            "too_large",
        ),
        (
            "a side too long",
            test_images::png_claiming(20_000, 10),
            "too_large",
        ),
    ];
    for (what, bytes, code) in cases {
        match w.market.upload_image(&seller, p.id, bytes).await {
            Err(e) if refused(&e, code) => {}
            other => panic!("{what}: expected a {code} refusal, got {other:?}"),
        }
    }
    assert!(w.market.product(p.id).await.unwrap().images.is_empty());

    // Metadata is gone from every stored size.
    for upload in [
        test_images::jpeg_with_exif(50, 40),
        test_images::png_with_text(50, 40),
    ] {
        assert!(upload.windows(SECRET.len()).any(|b| b == SECRET.as_bytes()));
        let view = w.market.upload_image(&seller, p.id, upload).await.unwrap();
        for url in [view.images.last().unwrap(), view.thumbnails.last().unwrap()] {
            let stored = w.market.image(key(url)).await.unwrap();
            assert!(
                !stored
                    .bytes
                    .windows(SECRET.len())
                    .any(|b| b == SECRET.as_bytes()),
                "{url} kept the upload's metadata"
            );
            assert!(
                !stored.bytes.windows(4).any(|b| b == b"Exif"),
                "{url} kept an EXIF block"
            );
        }
    }

    // A large photo is stored at the large size with a thumbnail, both keeping
    // its proportions.
    let view = w
        .market
        .upload_image(&seller, p.id, test_images::jpeg(3200, 1600))
        .await
        .unwrap();
    let large = w
        .market
        .image(key(view.images.last().unwrap()))
        .await
        .unwrap();
    assert_eq!(dimensions(&large.bytes), (LARGE_SIDE, LARGE_SIDE / 2));
    let thumb_url = view.thumbnails.last().unwrap();
    assert_ne!(thumb_url, view.images.last().unwrap());
    let thumb = w.market.image(key(thumb_url)).await.unwrap();
    assert_eq!(
        dimensions(&thumb.bytes),
        (THUMBNAIL_SIDE, THUMBNAIL_SIDE / 2)
    );
    assert_eq!(thumb.content_type, "image/jpeg");
}

/// A product stores its uploaded images by key, and every reader names them by
/// its own media base: two marketplaces over one store and one blob store (two
/// instances behind a load balancer, or one moved to a CDN) show the same image
/// under their own base, each serves it, and a seller who sends back the URLs
/// it was shown (reordering them, adding an outside one) keeps keys stored.
pub async fn images_are_stored_by_key_and_named_by_the_reader<S: Storage>(storage: S) {
    let shared = Arc::new(storage);
    let mut config = crate::test_config();
    config.media_url = "https://one.example/media".into();
    let w = World::with_config(shared.clone(), config).await;
    let mut config = crate::test_config();
    config.media_url = "https://cdn.example/shop/".into();
    let other = Marketplace::builder(shared.clone(), config)
        .images(w.market.image_store().clone())
        .build()
        .await
        .unwrap();
    let seller = w.seller().await;
    let p = w.product(&seller, "Vase", 900, 2).await;
    for size in [30, 40] {
        w.market
            .upload_image(&seller, p.id, test_images::png(size, size))
            .await
            .unwrap();
    }
    let stored = shared.product(p.id).await.unwrap().unwrap();
    assert_eq!(stored.images.len(), 2);
    for k in &stored.images {
        assert!(
            k.starts_with(&format!("products/{}/", p.id)) && k.ends_with(".png"),
            "a product stores the key, not a URL: {k}"
        );
    }
    let here = w.market.product(p.id).await.unwrap();
    let there = other.product(p.id).await.unwrap();
    for (i, k) in stored.images.iter().enumerate() {
        assert_eq!(here.images[i], format!("https://one.example/media/{k}"));
        assert_eq!(there.images[i], format!("https://cdn.example/shop/{k}"));
        assert!(there.thumbnails[i].starts_with("https://cdn.example/shop/products/"));
        let a = w.market.image(k).await.unwrap();
        let b = other.image(k).await.unwrap();
        assert_eq!(a.bytes, b.bytes, "every instance serves the same image");
    }
    // The seller sends back the URLs it was shown, reversed, plus an outside
    // image: ours are stored as keys again, the outside URL as given.
    let outside = "https://elsewhere.example/vase.jpg".to_owned();
    let mut images: Vec<String> = there.images.iter().rev().cloned().collect();
    images.push(outside.clone());
    let update = ProductUpdate {
        images: Some(images),
        ..ProductUpdate::default()
    };
    other.update_product(&seller, p.id, update).await.unwrap();
    let stored_after = shared.product(p.id).await.unwrap().unwrap();
    let mut expected: Vec<String> = stored.images.iter().rev().cloned().collect();
    expected.push(outside.clone());
    assert_eq!(stored_after.images, expected);
    let view = w.market.product(p.id).await.unwrap();
    assert_eq!(view.images[2], outside);
    assert_eq!(
        view.thumbnails[2], outside,
        "an outside image is its own thumbnail"
    );
    assert_eq!(
        view.images[0],
        format!("https://one.example/media/{}", expected[0])
    );
}
