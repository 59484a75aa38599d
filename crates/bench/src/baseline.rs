//! The baselines that bound the marketplace, measured in the same run: a bare warp
//! handler (the HTTP limit of this machine) and the database doing the same work
//! without us (`pgbench -M prepared` over TCP at the same concurrency).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use warp::Filter;

#[derive(Serialize)]
struct Item {
    id: String,
    seller_id: String,
    title: String,
    description: String,
    price: serde_json::Value,
    stock: u32,
    images: Vec<String>,
}

/// Serves `GET /items`: a 20-item JSON list shaped like a catalog page, serialised
/// on every request as the marketplace does. Returns its address.
pub async fn bare_warp() -> Result<SocketAddr> {
    let items: Vec<Item> = (0..20)
        .map(|i| Item {
            id: uuid::Uuid::new_v4().to_string(),
            seller_id: uuid::Uuid::new_v4().to_string(),
            title: format!("Product {i} lamp"),
            description: format!("A fine lamp, number {i} of the catalog."),
            price: serde_json::json!({"amount": 1234, "currency": "USD"}),
            stock: 1_000_000,
            images: Vec::new(),
        })
        .collect();
    let items = std::sync::Arc::new(items);
    let route = warp::path!("items").and(warp::get()).map(move || {
        warp::reply::json(&serde_json::json!({"items": &*items, "next_cursor": null}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok(addr)
}

/// What pgbench measured.
#[derive(Debug, Clone, Copy)]
pub struct PgBench {
    /// Transactions per second (without connection time).
    pub tps: f64,
    /// Average latency, milliseconds.
    pub avg_ms: f64,
    /// Failed transactions (pgbench 15 aborts the client instead).
    pub transactions: u64,
}

/// Runs `script` with `pgbench -n -M prepared -c clients -j 2 -T seconds` against
/// `url` and reads its summary.
pub fn pgbench(
    url: &str,
    dir: &Path,
    name: &str,
    script: &str,
    clients: usize,
    seconds: u64,
) -> Result<PgBench> {
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, script)?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(clients.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output()
        .context("cannot run pgbench (is it installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench {name} failed: {}\n{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Ok(PgBench {
        tps: field("tps = ").context("no tps in pgbench output")?,
        avg_ms: field("latency average = ").unwrap_or(f64::NAN),
        transactions: field("number of transactions actually processed: ")
            .map(|v| v as u64)
            .unwrap_or(0),
    })
}

/// Removes what the checkout baseline wrote (its orders would not decode as the
/// marketplace's: they are the SQL work, not the domain's).
pub const CLEANUP_SQL: &str = "\
    DELETE FROM orders WHERE checkout_id IN (SELECT id FROM checkouts WHERE idempotency_key LIKE 'pgbench-%'); \
    DELETE FROM checkouts WHERE idempotency_key LIKE 'pgbench-%';";

/// The columns the catalog reads (as the store's list query does).
const PRODUCT_COLUMNS: &str = "p.id, p.seller_id, p.title, p.description, p.price_amount, \
     p.currency, p.discount, p.stock, p.images, p.category_id, p.active, p.archived, \
     p.blocked, p.version, p.created_at, p.updated_at";

/// The public catalog's keyset page query, newest first, 21 rows (one to know a
/// next page exists); `after` is a `(created_at, id)` keyset bound in SQL.
pub fn keyset_page_sql(after: Option<&str>) -> String {
    let bound = after
        .map(|b| format!(" AND (p.created_at, p.id) < {b}"))
        .unwrap_or_default();
    format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p \
         JOIN users u ON u.id = p.seller_id AND u.active AND u.role = 'seller' \
         AND u.seller_status = 'verified' \
         WHERE p.active AND NOT p.archived AND NOT p.blocked AND NOT p.archived{bound} \
         ORDER BY p.created_at DESC, p.id DESC LIMIT 21;\n"
    )
}

/// Tables numbering the seeded buyers and products (products in id order), so a
/// pgbench script can pick them with `\set` integers.
pub const NUMBERING_SQL: &str = "\
    CREATE TABLE bench_buyers AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM users WHERE role = 'buyer'; \
    CREATE UNIQUE INDEX ON bench_buyers (n); \
    CREATE TABLE bench_products AS SELECT row_number() OVER (ORDER BY id) AS n, id, seller_id, title, price_amount FROM products WHERE stock >= 100000; \
    CREATE UNIQUE INDEX ON bench_products (n);";

/// The checkout as one transaction: the idempotency record, 3 conditional stock
/// decrements in product-id order, one order with a JSON snapshot of its 3 items
/// and the address, and the cart emptied.
pub fn checkout_sql(buyers: usize, products: usize) -> String {
    let third = products / 3;
    format!(
        "\\set b random(1, {buyers})\n\
         \\set p1 random(1, {third})\n\
         \\set p2 {third} + random(1, {third})\n\
         \\set p3 {two} + random(1, {third})\n\
         BEGIN;\n\
         UPDATE products SET stock = stock - 1, version = version + 1 WHERE id = (SELECT id FROM bench_products WHERE n = :p1) AND stock >= 1 AND active AND NOT archived AND NOT blocked;\n\
         UPDATE products SET stock = stock - 1, version = version + 1 WHERE id = (SELECT id FROM bench_products WHERE n = :p2) AND stock >= 1 AND active AND NOT archived AND NOT blocked;\n\
         UPDATE products SET stock = stock - 1, version = version + 1 WHERE id = (SELECT id FROM bench_products WHERE n = :p3) AND stock >= 1 AND active AND NOT archived AND NOT blocked;\n\
         WITH c AS (INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) SELECT gen_random_uuid(), id, 'pgbench-' || gen_random_uuid()::text, 'h', now() FROM bench_buyers WHERE n = :b RETURNING id, buyer_id) \
         INSERT INTO orders (id, checkout_id, buyer_id, seller_id, store_name, status, items, address, total_amount, currency, history, created_at, updated_at) \
         SELECT gen_random_uuid(), c.id, c.buyer_id, p.seller_id, 'Store', 'pending', \
         (SELECT jsonb_agg(jsonb_build_object('product_id', q.id, 'title', q.title, 'unit_price', jsonb_build_object('amount', q.price_amount, 'currency', 'USD'), 'effective_price', jsonb_build_object('amount', q.price_amount, 'currency', 'USD'), 'quantity', 1, 'line_total', jsonb_build_object('amount', q.price_amount, 'currency', 'USD'))) FROM bench_products q WHERE q.n IN (:p1, :p2, :p3)), \
         '{{\"name\": \"Ada Buyer\", \"line1\": \"1 Main St\", \"city\": \"Springfield\", \"postal_code\": \"12345\", \"country\": \"US\"}}'::jsonb, \
         p.price_amount, 'USD', '[]'::jsonb, now(), now() \
         FROM c, bench_products p WHERE p.n = :p1;\n\
         UPDATE carts SET version = version + 1, lines = '[]' WHERE buyer_id = (SELECT id FROM bench_buyers WHERE n = :b);\n\
         COMMIT;\n",
        two = 2 * third,
    )
}
