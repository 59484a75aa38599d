//! What the conformance suite cannot see: the database itself defends the
//! invariants, migrations are idempotent, SQLite data survives reopening, and
//! driver errors map to the core's error kinds.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration as StdDuration;

use chrono::{DateTime, TimeZone, Utc};
use marketplace_core::catalog::{Category, Product, ProductQuery, ProductSort};
use marketplace_core::fields::Email;
use marketplace_core::{
    AccountStore, CatalogStore, CategoryId, Currency, Money, ProductId, Role, SellerStatus,
    Storage, StorageError, User, UserId,
};
use sqlx::Connection;
use storage_sql::{PostgresStorage, SqlOptions, SqliteStorage};
use uuid::Uuid;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_767_225_600_000 + ms).unwrap()
}

fn seller(email: &str) -> User {
    User {
        id: UserId(Uuid::now_v7()),
        email: Email::parse(email).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::Seller,
        name: Some("Séller".into()),
        phone: None,
        store_name: Some("Store".into()),
        seller_status: Some(SellerStatus::Verified),
        email_verified: false,
        active: true,
        created_at: at(123),
    }
}

fn product(seller: UserId, category: Option<CategoryId>, stock: u32) -> Product {
    Product {
        id: ProductId(Uuid::now_v7()),
        seller_id: seller,
        sku: None,
        title: "Kettle".into(),
        description: "Boils 100%_ of water".into(),
        price: Money::new(1999, Currency::USD),
        discount: None,
        stock,
        images: vec!["https://example.com/k.png".into()],
        category_id: category,
        active: true,
        archived: false,
        blocked: false,
        version: 1,
        created_at: at(456),
        updated_at: at(789),
    }
}

/// Runs one statement on a connection of its own, bypassing the storage.
async fn raw(url: &str, sql: &'static str) -> Result<u64, sqlx::Error> {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        Ok(sqlx::query(sql).execute(&mut c).await?.rows_affected())
    }
}

async fn database_defends_invariants(storage: &impl Storage, url: &str) {
    let s = seller("owner@example.com");
    storage.create_user(&s, None, &[]).await.unwrap();

    // Unique rules come back as AlreadyExists naming what was duplicated.
    let mut twin = seller("OWNER@example.com");
    twin.email = Email::from_trusted("owner@example.com");
    assert!(matches!(
        storage.create_user(&twin, None, &[]).await,
        Err(StorageError::AlreadyExists("email"))
    ));
    let cat = Category {
        id: CategoryId(Uuid::now_v7()),
        name: "Éclairs".into(),
    };
    storage.insert_category(&cat).await.unwrap();
    let shouting = Category {
        id: CategoryId(Uuid::now_v7()),
        name: "ÉCLAIRS".into(),
    };
    assert!(matches!(
        storage.insert_category(&shouting).await,
        Err(StorageError::AlreadyExists("category name"))
    ));

    // Foreign keys: no product in a missing category, no deleting a used one.
    let ghost = product(s.id, Some(CategoryId(Uuid::now_v7())), 1);
    assert!(matches!(
        storage.insert_product(&ghost).await,
        Err(StorageError::Precondition(_))
    ));
    let p = product(s.id, Some(cat.id), 3);
    storage.insert_product(&p).await.unwrap();
    assert!(matches!(
        storage.delete_category(cat.id).await,
        Err(StorageError::Precondition(_))
    ));

    // Whatever a writer does, stock never goes below zero.
    let refused = raw(url, "UPDATE products SET stock = stock - 4").await;
    assert!(
        matches!(&refused, Err(sqlx::Error::Database(db)) if db.is_check_violation()),
        "negative stock must be refused by the database, got {refused:?}"
    );
    assert_eq!(storage.product(p.id).await.unwrap().unwrap().stock, 3);

    // Values come back exactly as written, times to the millisecond.
    assert_eq!(storage.product(p.id).await.unwrap().unwrap(), p);
    assert_eq!(storage.user(s.id).await.unwrap().unwrap(), s);
}

#[tokio::test]
async fn sqlite_database_defends_invariants() {
    let g = common::sqlite().await;
    database_defends_invariants(&g.storage, &g.url).await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_database_defends_invariants() {
    let Some(g) = common::postgres().await else {
        return;
    };
    database_defends_invariants(&g.storage, &g.url).await;
}

#[tokio::test]
async fn sqlite_file_survives_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    let s = seller("kept@example.com");
    let p = product(s.id, None, 7);
    {
        let storage = SqliteStorage::connect(&url, SqlOptions::default())
            .await
            .unwrap();
        storage.create_user(&s, None, &[]).await.unwrap();
        storage.insert_product(&p).await.unwrap();
        // A second store on the same file while the first is open: migrations
        // already applied are skipped.
        let second = SqliteStorage::connect(&url, SqlOptions::default())
            .await
            .unwrap();
        assert_eq!(second.product(p.id).await.unwrap().unwrap(), p);
        second.close().await;
        storage.close().await;
    }
    let reopened = SqliteStorage::connect(&url, SqlOptions::default())
        .await
        .unwrap();
    assert_eq!(reopened.user(s.id).await.unwrap().unwrap(), s);
    assert_eq!(reopened.product(p.id).await.unwrap().unwrap(), p);
    reopened.close().await;
}

#[tokio::test]
async fn sqlite_missing_file_is_refused_when_creation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("absent.db").display());
    let refused =
        SqliteStorage::connect(&url, SqlOptions::default().create_if_missing(false)).await;
    assert!(matches!(refused, Err(StorageError::Backend(_))));
}

#[tokio::test]
async fn sqlite_in_memory_database_works() {
    let storage = SqliteStorage::connect("sqlite::memory:", SqlOptions::default())
        .await
        .unwrap();
    storage.ping().await.unwrap();
    let s = seller("mem@example.com");
    storage.create_user(&s, None, &[]).await.unwrap();
    assert_eq!(
        storage.user_by_email("mem@example.com").await.unwrap(),
        Some(s)
    );
}

#[tokio::test]
async fn unknown_url_schemes_are_refused() {
    let refused = SqliteStorage::connect("mysql://localhost/shop", SqlOptions::default()).await;
    assert!(matches!(refused, Err(StorageError::Backend(_))));
    let refused = PostgresStorage::connect("mysql://localhost/shop", SqlOptions::default()).await;
    assert!(matches!(refused, Err(StorageError::Backend(_))));
}

/// Each dialect refuses the other's URLs, saying which store opens them (and
/// without connecting anywhere).
#[tokio::test]
async fn each_dialect_refuses_the_other_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite://{}", dir.path().join("never.db").display());
    let refused = PostgresStorage::connect(&file, SqlOptions::default()).await;
    let Err(StorageError::Backend(why)) = refused else {
        panic!("a sqlite: URL must be refused, got {refused:?}");
    };
    assert!(why.to_string().contains("SqliteStorage"), "{why}");
    assert!(!dir.path().join("never.db").exists());
    for url in [
        "postgres://user:secret@127.0.0.1:1/shop",
        "postgresql://user:secret@127.0.0.1:1/shop",
    ] {
        let refused = SqliteStorage::connect(url, SqlOptions::default()).await;
        let Err(StorageError::Backend(why)) = refused else {
            panic!("{url} must be refused, got {refused:?}");
        };
        assert!(why.to_string().contains("PostgresStorage"), "{why}");
        assert!(!why.to_string().contains("secret"), "{why}");
    }
}

/// `Debug` names the database file.
#[tokio::test]
async fn sqlite_debug_output_names_the_file() {
    let g = common::sqlite().await;
    let shown = format!("{:?}", g.storage);
    assert!(shown.starts_with("SqliteStorage"), "{shown}");
    assert!(shown.contains("marketplace.db"), "{shown}");
}

/// `Debug` never shows the URL's password.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_debug_output_hides_credentials() {
    let Some(g) = common::postgres().await else {
        return;
    };
    let shown = format!("{:?}", g.storage);
    assert!(shown.starts_with("PostgresStorage"), "{shown}");
    let password = g
        .url
        .split('@')
        .next()
        .and_then(|auth| auth.rsplit(':').next());
    if let Some(password) = password.filter(|p| !p.starts_with("//")) {
        assert!(!shown.contains(password), "{shown}");
    }
}

#[tokio::test]
async fn sqlite_busy_database_is_a_transient_failure() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("busy.db").display());
    let options = SqlOptions::default().busy_timeout(StdDuration::from_millis(20));
    let storage = SqliteStorage::connect(&url, options).await.unwrap();
    // Another process holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let s = seller("busy@example.com");
    assert!(matches!(
        storage.create_user(&s, None, &[]).await,
        Err(StorageError::Transient(_))
    ));
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    storage.create_user(&s, None, &[]).await.unwrap();
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_migrations_are_idempotent() {
    let Some(g) = common::postgres().await else {
        return;
    };
    let s = seller("twice@example.com");
    g.storage.create_user(&s, None, &[]).await.unwrap();
    let again = PostgresStorage::connect(&g.url, SqlOptions::default())
        .await
        .unwrap();
    assert_eq!(again.user(s.id).await.unwrap(), Some(s));
    again.close().await;
}

/// Two stores on one database behave like two server processes: their
/// concurrent checkouts of one hot product sell exactly the stock, never more.
async fn two_stores_share_one_database<S: Storage + Clone>(a: S, b: S) {
    use marketplace_conformance::{World, key, test_config};
    use marketplace_core::{Error, Marketplace};

    const STOCK: u32 = 30;
    const BUYERS: usize = 48;
    let w = World::new(a).await;
    let other = Marketplace::builder(b, test_config())
        .clock(w.clock.clone())
        .build()
        .await
        .unwrap();
    let seller = w.seller().await;
    let hot = w.product(&seller, "Hot", 500, STOCK).await.id;
    let mut buyers = Vec::new();
    for _ in 0..BUYERS {
        let buyer = w.buyer().await;
        w.address(&buyer).await;
        w.market.add_to_cart(&buyer, hot, 1).await.unwrap();
        buyers.push(buyer);
    }
    let tasks: Vec<_> = buyers
        .into_iter()
        .enumerate()
        .map(|(i, buyer)| {
            let market = if i % 2 == 0 {
                w.market.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                match market
                    .checkout(&buyer, &key("once"), Default::default())
                    .await
                {
                    Ok(_) => true,
                    Err(Error::InsufficientStock(_)) => false,
                    Err(e) => panic!("checkout failed: {e:?}"),
                }
            })
        })
        .collect();
    let mut sold = 0;
    for t in tasks {
        if t.await.unwrap() {
            sold += 1;
        }
    }
    assert_eq!(sold, STOCK as usize);
    assert_eq!(w.stock(hot).await, 0);
    assert_eq!(
        other.storage().product(hot).await.unwrap().unwrap().stock,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_stores_on_one_file_never_oversell() {
    let g = common::sqlite().await;
    let second = SqliteStorage::connect(&g.url, SqlOptions::default())
        .await
        .unwrap();
    two_stores_share_one_database(g.storage.clone(), second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_two_stores_on_one_database_never_oversell() {
    let Some(g) = common::postgres().await else {
        return;
    };
    let second = PostgresStorage::connect(&g.url, SqlOptions::default().max_connections(4))
        .await
        .unwrap();
    two_stores_share_one_database(g.storage.clone(), second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_stores_opening_a_new_file_at_once_all_connect() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("race.db").display());
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SqliteStorage::connect(&url, SqlOptions::default()).await })
        })
        .collect();
    for open in opens {
        let storage = open.await.unwrap().unwrap();
        storage.ping().await.unwrap();
        storage.close().await;
    }
}

/// The catalog search's `ILIKE '%term%'` on title and description can be served
/// by the trigram indexes of the second migration (where pg_trgm is available,
/// as on every PostgreSQL that ships its contrib modules): the plan of the
/// statement the store itself runs for a search, with its values, reads them.
#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_catalog_search_can_use_trigram_indexes() {
    let Some(g) = common::postgres().await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&g.url).await.unwrap();
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes \
         WHERE schemaname = current_schema() AND tablename = 'products' \
         AND indexname LIKE '%trgm%' ORDER BY indexname",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        ["products_description_trgm_idx", "products_title_trgm_idx"]
    );
    let s = seller("zoo@example.com");
    g.storage.create_user(&s, None, &[]).await.unwrap();
    let mut zebra = product(s.id, None, 1);
    zebra.title = "Striped zebra mug".into();
    g.storage.insert_product(&zebra).await.unwrap();
    g.storage
        .insert_product(&product(s.id, None, 1))
        .await
        .unwrap();
    // A second store on the same schema whose connections rule out sequential
    // scans: the planner then reads the trigram indexes wherever the search
    // statement lets it, whatever the size of the table.
    assert!(g.url.contains("options=-c%20search_path"), "{}", g.url);
    let no_seqscan = PostgresStorage::connect(
        &format!("{}%20-c%20enable_seqscan%3Doff", g.url),
        SqlOptions::default().max_connections(1),
    )
    .await
    .unwrap();
    for public_only in [true, false] {
        let q = ProductQuery {
            public_only,
            include_archived: false,
            seller_id: None,
            category_id: None,
            min_price: None,
            max_price: None,
            in_stock: false,
            text: Some("ZEBRA".into()),
            sort: ProductSort::Newest,
            after: None,
            limit: 24,
        };
        // The statement explained is the search itself: it finds the product.
        let found: Vec<ProductId> = no_seqscan
            .list_products(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(found, [zebra.id], "public_only: {public_only}");
        let plan = no_seqscan
            .explain_list_products(&q)
            .await
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("products_title_trgm_idx"),
            "public_only: {public_only}\n{plan}"
        );
        assert!(
            plan.contains("products_description_trgm_idx"),
            "public_only: {public_only}\n{plan}"
        );
    }
    no_seqscan.close().await;
}

/// The public catalog's `seller_selling` copy stays exact while sellers are
/// verified, rejected, deactivated and reactivated and products are inserted for
/// them at the same time, from two pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_seller_selling_follows_the_seller_under_concurrent_changes() {
    let Some(g) = common::postgres().await else {
        return;
    };
    let second = PostgresStorage::connect(&g.url, SqlOptions::default().max_connections(8))
        .await
        .unwrap();
    let mut sellers = Vec::new();
    for i in 0..6 {
        let s = seller(&format!("seller{i}@example.com"));
        g.storage.create_user(&s, None, &[]).await.unwrap();
        sellers.push(s.id);
    }
    let mut tasks = Vec::new();
    // Inserts: 6 tasks x 30 products, round robin over the sellers.
    for t in 0..6 {
        let store = if t % 2 == 0 {
            g.storage.clone()
        } else {
            second.clone()
        };
        let sellers = sellers.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..30 {
                let p = product(sellers[(t + k) % sellers.len()], None, 5);
                store.insert_product(&p).await.unwrap();
            }
        }));
    }
    // Changes: 3 tasks x 30 status or activation changes.
    for t in 0..3 {
        let store = if t % 2 == 0 {
            second.clone()
        } else {
            g.storage.clone()
        };
        let sellers = sellers.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..30usize {
                let who = sellers[(t * 7 + k) % sellers.len()];
                match k % 4 {
                    0 => store
                        .set_seller_status(who, SellerStatus::Rejected, &[])
                        .await
                        .unwrap(),
                    1 => store.set_user_active(who, false).await.unwrap(),
                    2 => store
                        .set_seller_status(who, SellerStatus::Verified, &[])
                        .await
                        .unwrap(),
                    _ => store.set_user_active(who, true).await.unwrap(),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Which sellers sell, from their final state as the store reports it.
    let mut selling_sellers = std::collections::HashSet::new();
    for &id in &sellers {
        let u = g.storage.user(id).await.unwrap().unwrap();
        if u.active && u.seller_status == Some(SellerStatus::Verified) {
            selling_sellers.insert(id);
        }
    }
    let mut c = sqlx::PgConnection::connect(&g.url).await.unwrap();
    let rows: Vec<(Uuid, Uuid, bool)> =
        sqlx::query_as("SELECT id, seller_id, seller_selling FROM products")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(rows.len(), 180);
    // Round robin: every seller has 30 of them.
    for id in &sellers {
        let theirs = rows.iter().filter(|(_, s, _)| *s == id.0).count();
        assert_eq!(theirs, 30, "products of seller {id:?}");
    }
    let wrong: Vec<_> = rows
        .iter()
        .filter(|(_, seller, flag)| *flag != selling_sellers.contains(&UserId(*seller)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} products disagree with their seller ({} of 6 sellers sell): {wrong:?}",
        wrong.len(),
        rows.len(),
        selling_sellers.len()
    );
    // So exactly the selling sellers' products are listed.
    let selling = rows.iter().filter(|(_, _, flag)| *flag).count();
    assert_eq!(
        selling,
        30 * selling_sellers.len(),
        "{selling} products listed for {} selling sellers",
        selling_sellers.len()
    );
    second.close().await;
}
