//! The baselines that bound the marketplace, measured in the same run: a bare warp
//! handler (the HTTP limit of this machine) and the database doing the same work
//! without us (`pgbench -M prepared` over TCP at the same concurrency; on SQLite
//! the same statements from a minimal sqlx loop, on MongoDB the same operations
//! from a minimal driver loop).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use mongodb::bson::{Bson, Document, doc};
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

/// What a database baseline measured: pgbench, or the minimal sqlx loop on SQLite.
#[derive(Debug, Clone, Copy)]
pub struct DbRun {
    /// Transactions per second.
    pub tps: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Transactions done in the measured time.
    pub transactions: u64,
}

impl DbRun {
    /// The figures of a phase run by the load generator.
    pub fn of(stats: &crate::load::Stats) -> DbRun {
        DbRun {
            tps: stats.rate(),
            p50_ms: stats.ms(0.5),
            p99_ms: stats.ms(0.99),
            transactions: stats.micros.len() as u64,
        }
    }
}

/// Runs `script` with `pgbench -n -M prepared -c clients -j 2 -T seconds` against
/// `url`, with a per-transaction log for the percentiles.
pub fn pgbench(
    url: &str,
    dir: &Path,
    name: &str,
    script: &str,
    clients: usize,
    seconds: u64,
) -> Result<DbRun> {
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, script)?;
    let logs = dir.join(format!("{name}-log"));
    std::fs::create_dir_all(&logs)?;
    let out = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2", "-l"])
        .arg(format!("--log-prefix={}", logs.join("tx").display()))
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
    let tps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no tps in pgbench output")?;
    // Each log line: client, transaction number, latency in microseconds, ...
    let mut micros = Vec::new();
    for entry in std::fs::read_dir(&logs)? {
        for line in std::fs::read_to_string(entry?.path())?.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()) {
                micros.push(us);
            }
        }
    }
    micros.sort_unstable();
    let stats = crate::load::Stats {
        seconds: seconds as f64,
        micros,
        ..Default::default()
    };
    Ok(DbRun {
        tps,
        ..DbRun::of(&stats)
    })
}

/// Removes what the checkout baseline wrote (its orders would not decode as the
/// marketplace's: they are the SQL work, not the domain's).
pub const CLEANUP_SQL: &str = "\
    DELETE FROM orders WHERE checkout_id IN (SELECT id FROM checkouts WHERE idempotency_key LIKE 'baseline-%'); \
    DELETE FROM checkouts WHERE idempotency_key LIKE 'baseline-%';";

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
         WHERE p.seller_selling AND p.active AND NOT p.archived AND NOT p.blocked AND NOT p.archived{bound} \
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
         WITH c AS (INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) SELECT gen_random_uuid(), id, 'baseline-' || gen_random_uuid()::text, 'h', now() FROM bench_buyers WHERE n = :b RETURNING id, buyer_id) \
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

/// The SQLite store's work without the marketplace: its catalog page query and
/// the checkout transaction, on pools opened as the store opens them (a reader
/// pool and one writer connection, WAL).
pub struct SqliteBaseline {
    reader: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    buyers: Vec<uuid::Uuid>,
    /// Products with stock to spare, in id order: id, seller, title, price.
    products: Vec<(uuid::Uuid, uuid::Uuid, String, i64)>,
}

/// The SQLite store's public catalog query, before its keyset bound and order.
fn sqlite_page_sql() -> String {
    format!(
        "SELECT {PRODUCT_COLUMNS} FROM products p \
         CROSS JOIN users u ON u.id = p.seller_id AND u.active = 1 AND u.role = 'seller' \
         AND u.seller_status = 'verified' \
         WHERE p.active = 1 AND p.archived = 0 AND p.blocked = 0 AND p.archived = 0"
    )
}

impl SqliteBaseline {
    /// Opens `url` with `readers` reader connections and reads the seeded buyers
    /// and products.
    pub async fn open(url: &str, readers: u32) -> Result<SqliteBaseline> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        use std::str::FromStr;
        let base = SqliteConnectOptions::from_str(url)?
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers)
            .connect_with(base.read_only(true))
            .await?;
        let buyers = sqlx::query_scalar("SELECT id FROM users WHERE role = 'buyer' ORDER BY id")
            .fetch_all(&reader)
            .await?;
        let products = sqlx::query_as(
            "SELECT id, seller_id, title, price_amount FROM products \
             WHERE stock >= 100000 ORDER BY id",
        )
        .fetch_all(&reader)
        .await?;
        Ok(SqliteBaseline {
            reader,
            writer,
            buyers,
            products,
        })
    }

    /// The first catalog page, or the page after `(created_at ms, id)`.
    pub async fn page(&self, after: Option<(i64, uuid::Uuid)>) -> Result<usize> {
        let rows = match after {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{} ORDER BY p.created_at DESC, p.id DESC LIMIT ?1",
                    sqlite_page_sql()
                )))
                .bind(21i64)
                .fetch_all(&self.reader)
                .await?
            }
            Some((at, id)) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{} AND (p.created_at, p.id) < (?1, ?2) \
                     ORDER BY p.created_at DESC, p.id DESC LIMIT ?3",
                    sqlite_page_sql()
                )))
                .bind(at)
                .bind(id)
                .bind(21i64)
                .fetch_all(&self.reader)
                .await?
            }
        };
        Ok(rows.len())
    }

    /// The checkout as one write transaction: 3 conditional stock decrements in
    /// id order, the idempotency record, one order with a JSON snapshot of its 3
    /// items and the address, the cart emptied.
    pub async fn checkout(&self, n: u64) -> Result<()> {
        let items = three_of(&self.products, n);
        let buyer = self.buyers[n as usize % self.buyers.len()];
        let now = chrono::Utc::now().timestamp_millis();
        let snapshot = serde_json::Value::Array(
            items
                .iter()
                .map(|(id, _, title, price)| {
                    let money = serde_json::json!({"amount": price, "currency": "USD"});
                    serde_json::json!({"product_id": id, "title": title, "unit_price": money,
                        "effective_price": money, "quantity": 1, "line_total": money})
                })
                .collect(),
        )
        .to_string();
        let address = r#"{"name": "Ada Buyer", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}"#;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for (id, ..) in &items {
            let done = sqlx::query(
                "UPDATE products SET stock = stock - 1, version = version + 1 \
                 WHERE id = ?1 AND stock >= 1 AND active = 1 AND archived = 0 AND blocked = 0",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                bail!("baseline product out of stock");
            }
        }
        let checkout = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) \
             VALUES (?1, ?2, ?3, 'h', ?4)",
        )
        .bind(checkout)
        .bind(buyer)
        .bind(format!("baseline-{checkout}"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO orders (id, checkout_id, buyer_id, seller_id, store_name, status, \
             items, address, total_amount, currency, history, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, 'Store', 'pending', ?5, ?6, ?7, 'USD', '[]', ?8, ?8)",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(checkout)
        .bind(buyer)
        .bind(items[0].1)
        .bind(&snapshot)
        .bind(address)
        .bind(items.iter().map(|i| i.3).sum::<i64>())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE carts SET version = version + 1, lines = '[]' WHERE buyer_id = ?1")
            .bind(buyer)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes what [`checkout`](Self::checkout) wrote besides the stock.
    pub async fn cleanup(&self) -> Result<()> {
        sqlx::raw_sql(CLEANUP_SQL).execute(&self.writer).await?;
        self.reader.close().await;
        self.writer.close().await;
        Ok(())
    }
}

/// The MongoDB store's work without the marketplace, through the same driver:
/// its public catalog query and the checkout as one multi-document transaction
/// (snapshot reads, majority writes, retried on `TransientTransactionError`, as
/// the store runs it).
pub struct MongoBaseline {
    client: mongodb::Client,
    db: mongodb::Database,
    buyers: Vec<Bson>,
    /// Products with stock to spare, in id order: id, seller, title, price.
    products: Vec<(Bson, Bson, String, i64)>,
}

impl MongoBaseline {
    /// Connects to `url` (the server's, naming the benchmark's database) and reads
    /// the seeded buyers and products.
    pub async fn open(url: &str) -> Result<MongoBaseline> {
        use futures::TryStreamExt;
        let options = mongodb::options::ClientOptions::parse(url).await?;
        let name = options
            .default_database
            .clone()
            .context("the MongoDB URL names no database")?;
        let client = mongodb::Client::with_options(options)?;
        let db = client.database(&name);
        let buyers = db
            .collection::<Document>("users")
            .find(doc! { "role": "buyer" })
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter_map(|d| d.get("_id").cloned())
            .collect();
        let products = db
            .collection::<Document>("products")
            .find(doc! { "stock": { "$gte": 100_000_i64 } })
            .sort(doc! { "_id": 1 })
            .await?
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .map(|d| -> Result<_> {
                let price = d.get_document("price")?.get_i64("amount")?;
                Ok((
                    d.get("_id").cloned().context("no _id")?,
                    d.get("seller_id").cloned().context("no seller_id")?,
                    d.get_str("title")?.to_owned(),
                    price,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(MongoBaseline {
            client,
            db,
            buyers,
            products,
        })
    }

    /// The first catalog page, or the page after `(created_at ms, id)`.
    pub async fn page(&self, after: Option<(i64, uuid::Uuid)>) -> Result<usize> {
        use futures::TryStreamExt;
        let mut filter = doc! {
            "archived": false, "active": true, "blocked": false, "seller_selling": true,
        };
        if let Some((at, id)) = after {
            let at = Bson::DateTime(mongodb::bson::DateTime::from_millis(at));
            let id = mongo_uuid(id);
            filter.insert(
                "$and",
                vec![Bson::Document(doc! { "$or": [
                    { "created_at": { "$lt": at.clone() } },
                    { "created_at": at, "_id": { "$lt": id } },
                ] })],
            );
        }
        let docs: Vec<Document> = self
            .db
            .collection::<Document>("products")
            .find(filter)
            .sort(doc! { "created_at": -1, "_id": -1 })
            .limit(21)
            .await?
            .try_collect()
            .await?;
        Ok(docs.len())
    }

    /// The checkout as one transaction: 3 conditional stock decrements in id
    /// order, one order with a snapshot of its 3 items and the address, the
    /// idempotency record, the cart emptied.
    pub async fn checkout(&self, n: u64) -> Result<()> {
        use mongodb::error::TRANSIENT_TRANSACTION_ERROR;
        use mongodb::options::{ReadConcern, WriteConcern};
        let items = three_of(&self.products, n);
        let buyer = self.buyers[n as usize % self.buyers.len()].clone();
        let money = |amount: i64| doc! { "amount": amount, "currency": "USD" };
        let now = Bson::DateTime(mongodb::bson::DateTime::now());
        let lines: Vec<Bson> = items
            .iter()
            .map(|(id, _, title, price)| {
                Bson::Document(doc! {
                    "product_id": id.clone(), "title": title, "unit_price": money(*price),
                    "effective_price": money(*price), "quantity": 1_i64,
                    "line_total": money(*price),
                })
            })
            .collect();
        let checkout = mongo_uuid(uuid::Uuid::new_v4());
        let order = doc! {
            "_id": mongo_uuid(uuid::Uuid::new_v4()), "checkout_id": checkout.clone(),
            "buyer_id": buyer.clone(), "seller_id": items[0].1.clone(), "store_name": "Store",
            "status": "pending", "items": lines,
            "address": { "name": "Ada Buyer", "line1": "1 Main St", "line2": Bson::Null,
                "city": "Springfield", "region": Bson::Null, "postal_code": "12345",
                "country": "US", "phone": Bson::Null },
            "total": money(items.iter().map(|i| i.3).sum()), "history": [],
            "created_at": now.clone(), "updated_at": now.clone(),
        };
        let record = doc! {
            "_id": checkout.clone(), "buyer_id": buyer.clone(),
            "key": format!("baseline-{}", uuid::Uuid::new_v4()), "request_hash": "h",
            "created_at": now,
        };
        let products = self.db.collection::<Document>("products");
        let mut s = self.client.start_session().await?;
        loop {
            s.start_transaction()
                .read_concern(ReadConcern::snapshot())
                .write_concern(WriteConcern::majority())
                .await?;
            let body = async {
                for (id, ..) in &items {
                    let taken = products
                        .update_one(
                            doc! { "_id": id.clone(), "active": true, "archived": false,
                            "blocked": false, "stock": { "$gte": 1_i64 } },
                            doc! { "$inc": { "stock": -1_i64, "version": 1_i64 } },
                        )
                        .session(&mut s)
                        .await?;
                    if taken.matched_count != 1 {
                        return Ok(false);
                    }
                }
                self.db
                    .collection::<Document>("orders")
                    .insert_one(order.clone())
                    .session(&mut s)
                    .await?;
                self.db
                    .collection::<Document>("checkouts")
                    .insert_one(record.clone())
                    .session(&mut s)
                    .await?;
                self.db
                    .collection::<Document>("carts")
                    .update_one(
                        doc! { "_id": buyer.clone() },
                        doc! { "$set": { "lines": [] }, "$inc": { "version": 1_i64 } },
                    )
                    .session(&mut s)
                    .await?;
                mongodb::error::Result::Ok(true)
            };
            let done = match body.await {
                Ok(true) => s.commit_transaction().await,
                Ok(false) => {
                    s.abort_transaction().await?;
                    bail!("baseline product out of stock");
                }
                Err(e) => {
                    let _ = s.abort_transaction().await;
                    Err(e)
                }
            };
            match done {
                Ok(()) => return Ok(()),
                Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes what [`checkout`](Self::checkout) wrote besides the stock.
    pub async fn cleanup(&self) -> Result<()> {
        let checkouts = self.db.collection::<Document>("checkouts");
        let filter = doc! { "key": { "$regex": "^baseline-" } };
        let ids: Vec<Bson> = {
            use futures::TryStreamExt;
            checkouts
                .find(filter.clone())
                .await?
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .filter_map(|d| d.get("_id").cloned())
                .collect()
        };
        self.db
            .collection::<Document>("orders")
            .delete_many(doc! { "checkout_id": { "$in": ids } })
            .await?;
        checkouts.delete_many(filter).await?;
        Ok(())
    }
}

/// A UUID as the MongoDB store keeps it (BSON binary subtype 4).
pub fn mongo_uuid(id: uuid::Uuid) -> Bson {
    Bson::Binary(mongodb::bson::Binary {
        subtype: mongodb::bson::spec::BinarySubtype::Uuid,
        bytes: id.as_bytes().to_vec(),
    })
}

/// A database baseline run from this process through the store's own driver.
pub enum DriverBaseline {
    /// SQLite through sqlx.
    Sqlite(SqliteBaseline),
    /// MongoDB through the official driver.
    Mongo(MongoBaseline),
}

impl DriverBaseline {
    /// The first catalog page, or the page after `(created_at ms, id)`.
    pub async fn page(&self, after: Option<(i64, uuid::Uuid)>) -> Result<usize> {
        match self {
            DriverBaseline::Sqlite(b) => b.page(after).await,
            DriverBaseline::Mongo(b) => b.page(after).await,
        }
    }

    /// The `n`th checkout transaction.
    pub async fn checkout(&self, n: u64) -> Result<()> {
        match self {
            DriverBaseline::Sqlite(b) => b.checkout(n).await,
            DriverBaseline::Mongo(b) => b.checkout(n).await,
        }
    }

    /// Removes what the checkouts wrote besides the stock.
    pub async fn cleanup(&self) -> Result<()> {
        match self {
            DriverBaseline::Sqlite(b) => b.cleanup().await,
            DriverBaseline::Mongo(b) => b.cleanup().await,
        }
    }
}

/// The 3 products of the `n`th baseline checkout, one from each third of
/// `products` (so in id order, as the store locks them), spread by a
/// multiplicative hash.
fn three_of<T>(products: &[T], n: u64) -> [&T; 3] {
    let third = (products.len() / 3).max(1);
    let pick = |k: usize| {
        let r = (n as usize)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(k * 97)
            % third;
        &products[(k * third + r) % products.len()]
    };
    [pick(0), pick(1), pick(2)]
}
