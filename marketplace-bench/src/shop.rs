//! What the benchmark's clients do over HTTP: a buyer's step, a checkout, and the
//! cursors of the deep page.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::Rng;
use serde_json::json;

use crate::load::OpResult;
use crate::seed;

/// `res`, or an error naming `what` when it did not succeed.
pub fn check(res: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    if res.status().is_success() {
        Ok(res)
    } else {
        bail!("{what}: HTTP {}", res.status())
    }
}

/// `s` percent-encoded for a query string.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `(created_at, id)` bound of the deep page, as SQL.
pub async fn deep_keyset_sql(app: &server_warp::App, cursor: &str) -> Result<String> {
    let q: marketplace_core::CatalogQuery =
        serde_json::from_value(json!({"limit": 1, "cursor": cursor}))?;
    let page = app.market.browse(q).await?;
    let p = page.items.first().context("empty deep page")?;
    // The page starts right after the product before this one: bound on this one,
    // inclusive, by bounding on a key just above it.
    let created = p.created_at + chrono::Duration::microseconds(1);
    Ok(format!(
        "('{}'::timestamptz, '{}'::uuid)",
        created.to_rfc3339(),
        p.id
    ))
}

/// The `(created_at ms, id)` bound of the deep page, for the SQLite baseline.
pub async fn deep_keyset(app: &server_warp::App, cursor: &str) -> Result<(i64, uuid::Uuid)> {
    let q: marketplace_core::CatalogQuery =
        serde_json::from_value(json!({"limit": 1, "cursor": cursor}))?;
    let page = app.market.browse(q).await?;
    let p = page.items.first().context("empty deep page")?;
    Ok((p.created_at.timestamp_millis() + 1, p.id.0))
}

/// One buyer step: 3 units from 2 sellers into the cart, then checkout. Returns
/// the time of the checkout call.
pub async fn buyer_step(
    http: &reqwest::Client,
    base: &str,
    seeded: &seed::Seeded,
    client: usize,
    i: u64,
) -> OpResult {
    let buyer = &seeded.buyers[client % seeded.buyers.len()];
    let (a, b, pa1, pa2, pb) = {
        let mut rng = rand::thread_rng();
        let a = rng.gen_range(0..seeded.sellers.len());
        let b = (a + rng.gen_range(1..seeded.sellers.len())) % seeded.sellers.len();
        let per = seeded.sellers[a].products.len();
        let x = rng.gen_range(0..per);
        (
            a,
            b,
            x,
            (x + 1) % per,
            rng.gen_range(0..seeded.sellers[b].products.len()),
        )
    };
    for p in [
        seeded.sellers[a].products[pa1],
        seeded.sellers[a].products[pa2],
        seeded.sellers[b].products[pb],
    ] {
        let r = http
            .post(format!("{base}/cart/items"))
            .bearer_auth(&buyer.token)
            .json(&json!({"product_id": p, "quantity": 1}))
            .send()
            .await?;
        check(r, "add to cart")?.bytes().await?;
    }
    let t = Instant::now();
    checkout(http, base, buyer, &format!("step-{client}-{i}")).await?;
    Ok(Some(t.elapsed()))
}

/// The buyer's checkout to its default address, with an idempotency key made
/// unique from `key`.
pub fn checkout_request(
    http: &reqwest::Client,
    base: &str,
    buyer: &seed::Buyer,
    key: &str,
) -> reqwest::RequestBuilder {
    http.post(format!("{base}/checkout"))
        .bearer_auth(&buyer.token)
        .header(
            "Idempotency-Key",
            format!("{key}-{}", uuid::Uuid::new_v4().simple()),
        )
        .json(&json!({"address_id": buyer.address}))
}

/// Checks out the buyer's cart with a fresh idempotency key.
pub async fn checkout(
    http: &reqwest::Client,
    base: &str,
    buyer: &seed::Buyer,
    key: &str,
) -> Result<()> {
    let r = checkout_request(http, base, buyer, key).send().await?;
    check(r, "checkout")?.bytes().await?;
    Ok(())
}
