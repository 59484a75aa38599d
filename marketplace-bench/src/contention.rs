//! The contention phase and its audit: buyers race for a few hot products until
//! every one is sold out, then the store is checked for oversell.
//!
//! The phase is sized so it always reaches the oversell boundary, whatever
//! `--contenders`, `--hot` and `--hot-stock` are: together the buyers want twice
//! the hot stock, and a buyer stops only when it has its share or has seen every
//! hot product refused for lack of stock. So the run ends with every hot product
//! at 0 and refused at least once, unless something is wrong, which the audit
//! then reports: stock read as the database holds it, as a signed number (a
//! `u32` cannot show a negative stock), and per product
//! `initial - units in orders == stock left >= 0`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use marketplace_core::ProductId;
use rand::Rng;
use serde_json::json;
use sqlx::Connection;

use crate::load::{self, Stats};
use crate::seed;

/// Units the buyers want together, per unit of hot stock.
const DEMAND_PER_UNIT: u64 = 2;

/// Longest the phase may take; it ends on its own once everything is sold out.
const LIMIT: Duration = Duration::from_secs(600);

/// Units of each hot product when `--hot-stock` is not given: two per buyer of
/// the phase in all, so a slow backend sells out in a few checkout rounds too.
pub fn default_hot_stock(contenders: usize, hot: usize) -> u32 {
    let per = (2 * contenders).div_ceil(hot.max(1));
    u32::try_from(per.max(1)).unwrap_or(u32::MAX)
}

/// What the contention phase saw.
#[derive(Debug, Default, Clone)]
pub struct Contention {
    /// Buyers.
    pub buyers: usize,
    /// Units each buyer wanted.
    pub wanted: u64,
    /// Units in stock across the hot products at the start.
    pub hot_units: u64,
    /// Checkouts accepted (201).
    pub accepted: u64,
    /// Refused for lack of stock (at add or checkout).
    pub sold_out: u64,
    /// Hot products refused for lack of stock at least once.
    pub products_refused: usize,
    /// Other failures.
    pub failed: u64,
    /// The first other failure.
    pub first_failure: Option<String>,
    /// Checkouts per second while stock lasted, and the checkout latencies.
    pub stats: Stats,
}

/// `Ok` for a refusal for lack of stock (`409 insufficient_stock`), the failure
/// otherwise.
async fn refusal(r: reqwest::Response, what: &str) -> Result<()> {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if status.as_u16() == 409 && body["code"] == "insufficient_stock" {
        return Ok(());
    }
    bail!("{what}: HTTP {status} {body}")
}

/// `buyers` buyers each want their share of twice the hot stock, one unit per
/// checkout of a random hot product not yet seen sold out; a refusal for lack of
/// stock marks that product sold out for everyone. A buyer stops when it has its
/// share or every hot product is marked sold out.
pub async fn run(
    http: &reqwest::Client,
    base: &str,
    seeded: &Arc<seed::Seeded>,
    buyers: usize,
) -> Result<Contention> {
    let hot = seeded.hot.len();
    let hot_units = seeded.hot.iter().map(|(_, s)| u64::from(*s)).sum::<u64>();
    let wanted = (DEMAND_PER_UNIT * hot_units).div_ceil(buyers.max(1) as u64);
    let accepted = Arc::new(AtomicU64::new(0));
    let sold_out = Arc::new(AtomicU64::new(0));
    let bought: Arc<Vec<AtomicU64>> = Arc::new((0..buyers).map(|_| AtomicU64::new(0)).collect());
    let gone: Arc<Vec<AtomicBool>> = Arc::new((0..hot).map(|_| AtomicBool::new(false)).collect());
    let t0 = Instant::now();
    let stats = {
        let (http, base, seeded) = (http.clone(), base.to_owned(), Arc::clone(seeded));
        let (accepted, sold_out, bought, gone) = (
            Arc::clone(&accepted),
            Arc::clone(&sold_out),
            Arc::clone(&bought),
            Arc::clone(&gone),
        );
        load::run(buyers, Duration::ZERO, LIMIT, move |client, i| {
            let (http, base, seeded) = (http.clone(), base.clone(), Arc::clone(&seeded));
            let (accepted, sold_out, bought, gone) = (
                Arc::clone(&accepted),
                Arc::clone(&sold_out),
                Arc::clone(&bought),
                Arc::clone(&gone),
            );
            async move {
                if bought[client].load(Relaxed) >= wanted {
                    return Err(load::Exhausted.into());
                }
                let open: Vec<usize> = (0..hot).filter(|&k| !gone[k].load(Relaxed)).collect();
                if open.is_empty() {
                    return Err(load::Exhausted.into());
                }
                let k = open[rand::thread_rng().gen_range(0..open.len())];
                let buyer = &seeded.buyers[client % seeded.buyers.len()];
                let r = http
                    .post(format!("{base}/cart/items"))
                    .bearer_auth(&buyer.token)
                    .json(&json!({"product_id": seeded.hot[k].0, "quantity": 1}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    refusal(r, "add").await?;
                    gone[k].store(true, Relaxed);
                    sold_out.fetch_add(1, Relaxed);
                    anyhow::bail!("sold out");
                }
                r.bytes().await?;
                let t = Instant::now();
                let r = crate::shop::checkout_request(
                    &http,
                    &base,
                    buyer,
                    &format!("hot-{client}-{i}"),
                )
                .send()
                .await?;
                if r.status().is_success() {
                    r.bytes().await?;
                    let took = t.elapsed();
                    accepted.fetch_add(1, Relaxed);
                    bought[client].fetch_add(1, Relaxed);
                    return Ok(Some(took));
                }
                // Whatever failed, the cart starts empty again.
                let refused = refusal(r, "checkout").await;
                let _ = http
                    .delete(format!("{base}/cart"))
                    .bearer_auth(&buyer.token)
                    .send()
                    .await;
                refused?;
                gone[k].store(true, Relaxed);
                sold_out.fetch_add(1, Relaxed);
                anyhow::bail!("sold out")
            }
        })
        .await
    };
    let mut stats = stats;
    stats.seconds = t0.elapsed().as_secs_f64();
    let refusals = sold_out.load(Relaxed);
    Ok(Contention {
        buyers,
        wanted,
        hot_units,
        accepted: accepted.load(Relaxed),
        sold_out: refusals,
        products_refused: gone.iter().filter(|g| g.load(Relaxed)).count(),
        failed: stats.errors.saturating_sub(refusals),
        first_failure: stats.first_error.clone().filter(|e| e != "sold out"),
        stats,
    })
}

/// Where the audit reads the stock as the database holds it.
pub enum Stored<'a> {
    /// The in-memory store: its own `u32`, read through the store.
    Memory,
    /// PostgreSQL or SQLite at this URL (the server's own).
    Sql(&'a str),
    /// MongoDB at this URL (naming the database).
    Mongo(&'a str),
}

/// The stock of each of `ids` as stored, signed.
async fn stored_stock(
    app: &server_warp::App,
    stored: &Stored<'_>,
    ids: &[ProductId],
) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(ids.len());
    match stored {
        Stored::Memory => {
            for id in ids {
                let p = app.market.storage().product(*id).await?;
                out.push(i64::from(p.context("hot product gone")?.stock));
            }
        }
        Stored::Sql(url) if url.starts_with("sqlite:") => {
            let mut conn = sqlx::SqliteConnection::connect(url).await?;
            for id in ids {
                let stock: i64 = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?1")
                    .bind(id.as_uuid())
                    .fetch_one(&mut conn)
                    .await
                    .with_context(|| format!("stock of {id}"))?;
                out.push(stock);
            }
            conn.close().await?;
        }
        Stored::Sql(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            for id in ids {
                let stock: i64 =
                    sqlx::query_scalar("SELECT stock::bigint FROM products WHERE id = $1")
                        .bind(id.as_uuid())
                        .fetch_one(&mut conn)
                        .await
                        .with_context(|| format!("stock of {id}"))?;
                out.push(stock);
            }
            conn.close().await?;
        }
        Stored::Mongo(url) => {
            use mongodb::bson::{Bson, Document, doc};
            let options = mongodb::options::ClientOptions::parse(*url).await?;
            let name = options
                .default_database
                .clone()
                .context("the MongoDB URL names no database")?;
            let client = mongodb::Client::with_options(options)?;
            let products = client.database(&name).collection::<Document>("products");
            for id in ids {
                let d = products
                    .find_one(doc! { "_id": crate::baseline::mongo_uuid(id.as_uuid()) })
                    .await?
                    .with_context(|| format!("hot product {id} gone"))?;
                let stock = match d.get("stock") {
                    Some(Bson::Int64(n)) => *n,
                    Some(Bson::Int32(n)) => i64::from(*n),
                    other => bail!("stock of {id} is not an integer: {other:?}"),
                };
                out.push(stock);
            }
        }
    }
    Ok(out)
}

/// The invariants after the contention phase.
#[derive(Debug, Default, Clone)]
pub struct Invariants {
    /// Units initially in stock across the hot products.
    pub initial: i64,
    /// Units left, as stored.
    pub left: i64,
    /// Units in orders of hot products.
    pub sold: i64,
    /// Lowest stock stored, signed.
    pub min_stock: i64,
    /// Hot products whose `initial - units in orders` differs from their stock.
    pub mismatched: Vec<String>,
    /// Hot products audited.
    pub hot: usize,
    /// Hot products with stock left.
    pub unsold: usize,
    /// Orders with hot products.
    pub orders: u64,
    /// Orders whose (checkout, seller) pair appeared before.
    pub duplicates: u64,
    /// Checkouts holding hot products.
    pub checkouts: u64,
}

impl Invariants {
    /// Every check of the audit, named, and whether it held.
    pub fn checks(&self, c: &Contention) -> Vec<(String, bool)> {
        vec![
            (
                format!("lowest stock {} >= 0", self.min_stock),
                self.min_stock >= 0,
            ),
            (
                format!(
                    "per product, initial - units in orders == stock left{}",
                    if self.mismatched.is_empty() {
                        String::new()
                    } else {
                        format!(" (not for {})", self.mismatched.join(", "))
                    }
                ),
                self.mismatched.is_empty(),
            ),
            (
                format!(
                    "units sold {} == stock removed {} - {}",
                    self.sold, self.initial, self.left
                ),
                self.initial - self.left == self.sold,
            ),
            (
                format!("sold out: {} hot products with stock left", self.unsold),
                self.unsold == 0 && self.left == 0,
            ),
            (
                format!(
                    "the oversell boundary was reached: {} refusals, on {} of {} hot products",
                    c.sold_out, c.products_refused, self.hot
                ),
                c.sold_out > 0 && c.products_refused == self.hot,
            ),
            (
                format!(
                    "{} orders, {} duplicate (checkout, seller) pairs",
                    self.orders, self.duplicates
                ),
                self.duplicates == 0,
            ),
            (
                format!(
                    "{} checkouts hold hot products, {} were accepted",
                    self.checkouts, c.accepted
                ),
                self.checkouts == c.accepted,
            ),
        ]
    }
}

/// Audits the store after the phase, reading the stock through `stored`.
pub async fn audit(
    app: &server_warp::App,
    stored: &Stored<'_>,
    seeded: &seed::Seeded,
) -> Result<Invariants> {
    use marketplace_core::order::{OrderKey, OrderQuery};
    let storage = app.market.storage();
    let hot: HashSet<_> = seeded.hot.iter().map(|(id, _)| *id).collect();
    let mut sold: HashMap<ProductId, i64> = HashMap::new();
    let mut inv = Invariants {
        hot: seeded.hot.len(),
        ..Invariants::default()
    };
    let mut seen = HashSet::new();
    let mut checkouts = HashSet::new();
    let mut after = None;
    loop {
        let q = OrderQuery {
            buyer_id: None,
            seller_id: None,
            status: None,
            after,
            limit: 1000,
        };
        let page = storage.list_orders(&q).await?;
        let Some(last) = page.last() else { break };
        after = Some(OrderKey {
            created_at: last.created_at,
            id: last.id,
        });
        for o in &page {
            let mut units = 0;
            for i in o.items.iter().filter(|i| hot.contains(&i.product_id)) {
                *sold.entry(i.product_id).or_default() += i64::from(i.quantity);
                units += i64::from(i.quantity);
            }
            if units == 0 {
                continue;
            }
            inv.orders += 1;
            inv.sold += units;
            checkouts.insert(o.checkout_id);
            if !seen.insert((o.checkout_id, o.seller_id)) {
                inv.duplicates += 1;
            }
        }
    }
    inv.checkouts = checkouts.len() as u64;
    let ids: Vec<ProductId> = seeded.hot.iter().map(|(id, _)| *id).collect();
    let stock = stored_stock(app, stored, &ids).await?;
    inv.min_stock = stock.iter().copied().min().unwrap_or(0);
    for ((id, start), left) in seeded.hot.iter().zip(stock) {
        let start = i64::from(*start);
        inv.initial += start;
        inv.left += left;
        if start - sold.get(id).copied().unwrap_or(0) != left {
            inv.mismatched.push(id.to_string());
        }
        if left != 0 {
            inv.unsold += 1;
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that sold out 100 units on 10 products cleanly.
    fn clean() -> (Invariants, Contention) {
        let inv = Invariants {
            initial: 100,
            left: 0,
            sold: 100,
            min_stock: 0,
            hot: 10,
            orders: 100,
            checkouts: 100,
            ..Invariants::default()
        };
        let c = Contention {
            accepted: 100,
            sold_out: 30,
            products_refused: 10,
            ..Contention::default()
        };
        (inv, c)
    }

    fn failed(inv: &Invariants, c: &Contention) -> usize {
        inv.checks(c).iter().filter(|(_, ok)| !ok).count()
    }

    #[test]
    fn the_audit_fails_on_oversell_and_on_a_run_that_never_sold_out() {
        let (inv, c) = clean();
        assert_eq!(failed(&inv, &c), 0, "{:?}", inv.checks(&c));
        // One unit oversold: stored stock -1, one more unit in orders.
        let over = Invariants {
            left: -1,
            sold: 101,
            min_stock: -1,
            checkouts: 101,
            ..inv.clone()
        };
        let c_over = Contention {
            accepted: 101,
            ..c.clone()
        };
        assert!(failed(&over, &c_over) >= 2, "{:?}", over.checks(&c_over));
        // Stock and orders that disagree for one product.
        let mismatched = Invariants {
            mismatched: vec!["p".into()],
            ..inv.clone()
        };
        assert_eq!(failed(&mismatched, &c), 1);
        // Time ran out first: stock left, no refusal.
        let unsold = Invariants {
            left: 40,
            sold: 60,
            unsold: 4,
            orders: 60,
            checkouts: 60,
            ..inv.clone()
        };
        let c_unsold = Contention {
            accepted: 60,
            sold_out: 0,
            products_refused: 0,
            ..c.clone()
        };
        assert_eq!(
            failed(&unsold, &c_unsold),
            2,
            "{:?}",
            unsold.checks(&c_unsold)
        );
    }
}
