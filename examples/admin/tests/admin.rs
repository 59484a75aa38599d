//! `marketplace-admin` as an operator runs it: the built binary on a temporary
//! SQLite file, its answers read as people and scripts read them, its effects
//! checked through the library on the same file.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use marketplace_core::{
    CheckoutRequest, Error, IdempotencyKey, MailError, Mailer, OrderListQuery, OutboxMessage,
    OutboxWorker, Principal, Role,
};
use serde_json::Value;

use support::Shop;

/// The statuses `sellers list --json` shows, by email.
fn statuses(list: &Value) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["email"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_admin_is_created_once() {
    let shop = Shop::new().await;
    let run = shop
        .ok(&[
            "--json",
            "admin",
            "create",
            "--email",
            "Root@Example.com",
            "--password",
            "a long passphrase",
        ])
        .await;
    let admin = run.json();
    assert_eq!(admin["email"], "root@example.com");
    assert_eq!(admin["role"], "admin");
    assert!(admin.get("password_hash").is_none(), "never printed");
    // The library sees the admin, and its password works.
    let tokens = shop
        .market()
        .login("root@example.com", "a long passphrase", None)
        .await
        .unwrap();
    let me = shop
        .market()
        .authenticate(&tokens.access_token)
        .await
        .unwrap();
    assert_eq!(me.role, Role::Admin);

    // The same email again (any case), the password from the environment.
    let again = shop
        .run_with(
            &["admin", "create", "--email", "ROOT@example.com"],
            &[("MARKETPLACE_ADMIN_PASSWORD", "another passphrase")],
        )
        .await;
    assert_eq!(again.code, Some(1));
    assert!(
        again.error_line().contains("already exists"),
        "{}",
        again.stderr
    );
    assert!(again.stdout.is_empty());

    let short = shop
        .run(&[
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "short",
        ])
        .await;
    assert_eq!(short.code, Some(1));
    assert!(short.error_line().contains("password"), "{}", short.stderr);
    let missing = shop
        .run(&["admin", "create", "--email", "ops@example.com"])
        .await;
    assert_eq!(missing.code, Some(2), "no password at all is a usage error");
}

#[tokio::test]
async fn seller_decisions_show_in_the_seller_list() {
    let shop = Shop::new().await;
    shop.register(Role::Seller, "ann@example.com").await;
    shop.register(Role::Seller, "bob@example.com").await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let list = shop.ok(&["--json", "sellers", "list"]).await.json();
    assert_eq!(
        statuses(&list),
        [
            ("ann@example.com".to_owned(), "pending".to_owned()),
            ("bob@example.com".to_owned(), "pending".to_owned()),
        ]
    );

    let verified = shop
        .ok(&["--json", "sellers", "verify", "ann@example.com"])
        .await;
    assert_eq!(verified.json()["status"], "verified");
    let rejected = shop.ok(&["sellers", "reject", "BOB@example.com"]).await;
    assert!(
        rejected.stdout.contains("is rejected"),
        "{}",
        rejected.stdout
    );
    let list = shop.ok(&["--json", "sellers", "list"]).await.json();
    assert_eq!(
        statuses(&list),
        [
            ("ann@example.com".to_owned(), "verified".to_owned()),
            ("bob@example.com".to_owned(), "rejected".to_owned()),
        ]
    );
    let only = shop
        .ok(&["--json", "sellers", "list", "--status", "rejected"])
        .await
        .json();
    assert_eq!(
        statuses(&only),
        [("bob@example.com".to_owned(), "rejected".to_owned())]
    );
    let table = shop.ok(&["sellers", "list"]).await;
    assert!(table.stdout.contains("ann@example.com") && table.stdout.contains("verified"));
    // Each decision was mailed, as an admin's through the API is.
    let mails = shop
        .market()
        .outbox(&Principal::operator(), None, None, None)
        .await
        .unwrap();
    assert_eq!(
        mails
            .items
            .iter()
            .filter(|m| m.kind == "seller_decision")
            .count(),
        2
    );

    for (email, why) in [
        ("cat@example.com", "seller not found"),
        ("nobody@example.com", "seller not found"),
        ("not-an-email", "email"),
    ] {
        let run = shop.run(&["sellers", "verify", email]).await;
        assert_eq!(run.code, Some(1), "{email}");
        assert!(run.error_line().contains(why), "{email}: {}", run.stderr);
    }
    let bad = shop.run(&["sellers", "list", "--status", "famous"]).await;
    assert_eq!(bad.code, Some(2));
}

#[tokio::test]
async fn accounts_and_products_are_deactivated_and_reactivated() {
    let shop = Shop::new().await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let run = shop
        .ok(&["--json", "users", "deactivate", "cat@example.com"])
        .await;
    assert_eq!(run.json()["active"], false);
    assert!(matches!(
        shop.market()
            .login("cat@example.com", "correct horse", None)
            .await,
        Err(Error::InvalidCredentials)
    ));
    shop.ok(&["users", "activate", "cat@example.com"]).await;
    shop.market()
        .login("cat@example.com", "correct horse", None)
        .await
        .unwrap();
    let nobody = shop
        .run(&["users", "deactivate", "nobody@example.com"])
        .await;
    assert_eq!(nobody.code, Some(1));
    assert!(nobody.error_line().contains("user not found"));

    let seller = shop.seller("ann@example.com").await;
    let p = shop.product(&seller, "Lamp", 2500).await;
    let id = p.id.to_string();
    let off = shop
        .ok(&["--json", "products", "deactivate", &id])
        .await
        .json();
    assert_eq!(
        (off["id"].as_str(), off["blocked"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    assert!(matches!(
        shop.market().product(p.id).await,
        Err(Error::NotFound(_))
    ));
    shop.ok(&["products", "activate", &id]).await;
    assert_eq!(shop.market().product(p.id).await.unwrap().id, p.id);

    let unknown = shop
        .run(&[
            "products",
            "deactivate",
            "0190a000-0000-7000-8000-000000000000",
        ])
        .await;
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.error_line().contains("product not found"));
    let garbled = shop.run(&["products", "deactivate", "lamp"]).await;
    assert_eq!(garbled.code, Some(2), "not an id: a usage error");
}

#[tokio::test]
async fn categories_are_managed() {
    let shop = Shop::new().await;
    let tea = shop
        .ok(&["--json", "categories", "create", " Tea "])
        .await
        .json();
    assert_eq!(tea["name"], "Tea");
    let id = tea["id"].as_str().unwrap().to_owned();
    let taken = shop.run(&["categories", "create", "TEA"]).await;
    assert_eq!(taken.code, Some(1));
    assert!(taken.error_line().contains("already exists"));
    shop.ok(&["categories", "rename", &id, "Teas"]).await;
    let all = shop.ok(&["--json", "categories", "list"]).await.json();
    assert_eq!(all[0]["name"], "Teas");
    shop.ok(&["categories", "delete", &id]).await;
    let all = shop.ok(&["--json", "categories", "list"]).await.json();
    assert_eq!(all, Value::Array(Vec::new()));
    let gone = shop.run(&["categories", "delete", &id]).await;
    assert_eq!(gone.code, Some(1));
    assert!(gone.error_line().contains("category not found"));
}

/// Refuses every message for good, so it goes dead at once.
struct Refusing;

#[async_trait]
impl Mailer for Refusing {
    async fn send(&self, _: &OutboxMessage) -> Result<(), MailError> {
        Err(MailError::Permanent("mailbox unavailable".into()))
    }
}

#[tokio::test]
async fn dead_mail_is_listed_and_retried() {
    let shop = Shop::new().await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let pending = shop
        .ok(&["--json", "outbox", "list", "--status", "pending"])
        .await
        .json();
    assert_eq!(
        pending.as_array().unwrap().len(),
        1,
        "the verification mail"
    );
    assert_eq!(pending[0]["recipient"], "cat@example.com");
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let not_dead = shop.run(&["outbox", "retry", &id]).await;
    assert_eq!(not_dead.code, Some(1));
    assert!(not_dead.error_line().contains("only dead messages"));

    let worker = OutboxWorker::new(shop.market().clone(), Arc::new(Refusing));
    assert_eq!(worker.run_once().await.unwrap().dead, 1);
    let dead = shop
        .ok(&["--json", "outbox", "list", "--status", "dead"])
        .await
        .json();
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["last_error"], "mailbox unavailable");
    let table = shop.ok(&["outbox", "list"]).await;
    assert!(table.stdout.contains("dead") && table.stdout.contains("mailbox unavailable"));
    let retried = shop.ok(&["--json", "outbox", "retry", &id]).await.json();
    assert_eq!(retried["status"], "pending");
    let sent = shop
        .ok(&["--json", "outbox", "list", "--status", "sent"])
        .await
        .json();
    assert_eq!(sent, Value::Array(Vec::new()));
}

#[tokio::test]
async fn migrate_reports_the_store() {
    let shop = Shop::new().await;
    let report = shop.ok(&["--json", "migrate"]).await.json();
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["schema"], "current");
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("at migration"), "{detail}");
    let human = shop.ok(&["migrate"]).await;
    assert!(
        human.stdout.contains("schema is current"),
        "{}",
        human.stdout
    );
}

/// The import's file: three good rows (one of them spanning two lines) and six
/// refused ones.
const CATALOG: &str = "\
sku,title,description,price,stock,category,active
T-1,Sencha,Steamed green tea,8.50,20,Tea,yes
T-2,Matcha,\"Stone-ground,
shade-grown\",24.00,5,tea,no
T-3,Genmaicha,,12,10,,
BAD-PRICE,Hojicha,,12.505,3,,
BAD-TITLE,,An empty title,5.00,1,,
BAD-CAT,Oolong,,9.00,2,Coffee,
T-1,Sencha again,,8.50,20,Tea,
BAD-STOCK,Puer,,30.00,-4,,
SHORT,Rooibos
";

/// The refused rows of an import report, as (line, first field at fault).
fn refused(report: &Value) -> Vec<(u64, String)> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| {
            let problems = r["problems"].as_array().unwrap();
            assert!(!problems.is_empty(), "a refused row says why: {r}");
            let field = problems[0]["field"].as_str().unwrap_or("").to_owned();
            (r["line"].as_u64().unwrap(), field)
        })
        .collect()
}

fn counts(report: &Value) -> [u64; 4] {
    ["created", "updated", "unchanged", "refused"].map(|k| report[k].as_u64().unwrap())
}

#[tokio::test]
async fn an_import_creates_the_good_rows_once_and_refuses_the_bad_ones_whole() {
    let shop = Shop::new().await;
    shop.ok(&["categories", "create", "Tea"]).await;
    let seller = shop.seller("ann@example.com").await;
    let file = shop.write("catalog.csv", CATALOG);
    let file = file.to_str().unwrap();
    let args = [
        "--json",
        "import",
        "products",
        "--seller",
        "ann@example.com",
        file,
    ];

    let first = shop.run(&args).await;
    assert_eq!(first.code, Some(1), "refused rows fail the run");
    assert!(
        first.error_line().contains("6 of 9 rows refused"),
        "{}",
        first.stderr
    );
    let report = first.json();
    assert_eq!(counts(&report), [3, 0, 0, 6]);
    assert_eq!(
        refused(&report),
        [
            (6, "price".to_owned()),
            (7, "title".to_owned()),
            (8, "category".to_owned()),
            (9, "sku".to_owned()),
            (10, "stock".to_owned()),
            (11, String::new()),
        ]
    );
    let mut products = shop.products_of(&seller).await;
    products.sort_by(|a, b| a.sku.cmp(&b.sku));
    let skus: Vec<_> = products.iter().map(|p| p.sku.as_deref().unwrap()).collect();
    assert_eq!(skus, ["T-1", "T-2", "T-3"], "exactly the good rows");
    let matcha = &products[1];
    assert_eq!(matcha.title, "Matcha");
    assert_eq!(matcha.description, "Stone-ground,\nshade-grown");
    assert_eq!(
        (matcha.price.amount, matcha.stock, matcha.active),
        (2400, 5, false)
    );
    assert!(matcha.category_id.is_some());
    assert_eq!(products[0].price.amount, 850);
    assert_eq!(
        (products[2].price.amount, products[2].category_id),
        (1200, None)
    );
    for sku in ["BAD-PRICE", "BAD-TITLE", "BAD-CAT", "BAD-STOCK", "SHORT"] {
        let found = shop.market().product_by_sku(&seller, sku).await.unwrap();
        assert!(
            found.is_none(),
            "{sku}: nothing of a refused row is written"
        );
    }

    // The same file again changes nothing.
    let again = shop.run(&args).await.json();
    assert_eq!(counts(&again), [0, 0, 3, 6]);
    assert_eq!(shop.products_of(&seller).await.len(), 3);
    let versions: Vec<u64> = {
        let mut v = Vec::new();
        for p in &products {
            v.push(
                shop.market()
                    .storage()
                    .product(p.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .version,
            );
        }
        v
    };
    assert_eq!(versions, [1, 1, 1], "not even rewritten");

    // One row edited: exactly one update; a row whose update is refused is
    // refused whole (its valid price change is not applied either).
    let edited = "\
sku,title,description,price,stock,category,active
T-1,Sencha,Steamed green tea,8.50,20,Tea,yes
T-2,Matcha,\"Stone-ground,
shade-grown\",22.00,5,tea,no
T-3,,,99.00,10,,
";
    let file = shop.write("edited.csv", edited);
    let run = shop
        .run(&[
            "--json",
            "import",
            "products",
            "--seller",
            "ann@example.com",
            file.to_str().unwrap(),
        ])
        .await;
    let report = run.json();
    assert_eq!(counts(&report), [0, 1, 1, 1]);
    let updated: Vec<_> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "updated")
        .collect();
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["sku"], "T-2");
    assert_eq!(updated[0]["changed"], serde_json::json!(["price"]));
    assert_eq!(refused(&report), [(5, "title".to_owned())]);
    let matcha = shop
        .market()
        .product_by_sku(&seller, "T-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(matcha.price.amount, 2200);
    let genmaicha = shop
        .market()
        .product_by_sku(&seller, "T-3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (genmaicha.title.as_str(), genmaicha.price.amount),
        ("Genmaicha", 1200)
    );

    // People read the refused rows with their lines, and the counts.
    let human = shop
        .run(&[
            "import",
            "products",
            "--seller",
            "ann@example.com",
            shop.path("catalog.csv").to_str().unwrap(),
        ])
        .await;
    assert_eq!(human.code, Some(1));
    assert!(human.stdout.contains("12.505"), "{}", human.stdout);
    assert!(human.stdout.contains("BAD-STOCK"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .contains("9 rows: 0 created, 1 updated, 2 unchanged, 6 refused"),
        "the edited price put back: {}",
        human.stdout
    );
}

#[tokio::test]
async fn an_import_that_cannot_start_writes_nothing() {
    let shop = Shop::new().await;
    let seller = shop.seller("ann@example.com").await;
    shop.register(Role::Seller, "new@example.com").await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let good = shop.write("good.csv", "sku,title,price,stock\nA-1,Kettle,20.00,3\n");
    let good = good.to_str().unwrap();
    let bad_header = shop.write(
        "bad.csv",
        "sku,title,price,stock,colour\nA-1,Kettle,20.00,3,red\n",
    );
    let not_csv = shop.write("binary.csv", "\u{0}\u{1}garbage");
    for (seller_email, file, why) in [
        (
            "new@example.com",
            good,
            "cannot list products: it is pending",
        ),
        ("cat@example.com", good, "not a seller"),
        ("nobody@example.com", good, "user not found"),
        (
            "ann@example.com",
            bad_header.to_str().unwrap(),
            "unknown column `colour`",
        ),
        (
            "ann@example.com",
            not_csv.to_str().unwrap(),
            "unknown column",
        ),
        ("ann@example.com", "/nonexistent/file.csv", "cannot open"),
    ] {
        let run = shop
            .run(&["import", "products", "--seller", seller_email, file])
            .await;
        assert_eq!(run.code, Some(1), "{seller_email} {file}");
        assert!(run.error_line().contains(why), "{why}: {}", run.stderr);
    }
    assert!(shop.products_of(&seller).await.is_empty());
    // An empty file with a header imports nothing and succeeds.
    let empty = shop.write("empty.csv", "sku,title,price,stock\n");
    let run = shop
        .ok(&[
            "--json",
            "import",
            "products",
            "--seller",
            "ann@example.com",
            empty.to_str().unwrap(),
        ])
        .await;
    assert_eq!(counts(&run.json()), [0, 0, 0, 0]);
}

#[tokio::test]
async fn the_export_has_one_line_per_order() {
    let shop = Shop::new().await;
    let (ann, bob) = (
        shop.seller("ann@example.com").await,
        shop.seller("bob@example.com").await,
    );
    let lamp = shop.product(&ann, "Lamp", 2500).await;
    let mug = shop.product(&bob, "Mug", 850).await;
    let buyer = shop.buyer("cat@example.com").await;
    let m = shop.market();
    m.add_to_cart(&buyer, lamp.id, 2).await.unwrap();
    m.add_to_cart(&buyer, mug.id, 3).await.unwrap();
    let first = m
        .checkout(
            &buyer,
            &IdempotencyKey::parse("first").unwrap(),
            CheckoutRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(first.orders.len(), 2, "one order per seller");
    m.add_to_cart(&buyer, mug.id, 1).await.unwrap();
    m.checkout(
        &buyer,
        &IdempotencyKey::parse("second").unwrap(),
        CheckoutRequest::default(),
    )
    .await
    .unwrap();
    let all = m
        .all_orders(&Principal::operator(), OrderListQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 3);

    let out = shop.path("orders.csv");
    let run = shop
        .ok(&["--json", "export", "orders", "--out", out.to_str().unwrap()])
        .await;
    assert_eq!(run.json()["orders"], 3);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "order_id",
            "checkout_id",
            "created_at",
            "status",
            "buyer_id",
            "seller_id",
            "item_count",
            "total",
            "currency"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "one line per order");
    let ids: HashSet<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    let expected: HashSet<String> = all.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(ids, expected);
    let lamp_order = rows
        .iter()
        .find(|r| r[5] == ann.user_id.to_string())
        .unwrap();
    assert_eq!(&lamp_order[1], first.checkout_id.to_string().as_str());
    assert_eq!(
        (&lamp_order[3], &lamp_order[4]),
        ("pending", buyer.user_id.to_string().as_str())
    );
    assert_eq!(
        (&lamp_order[6], &lamp_order[7], &lamp_order[8]),
        ("2", "50.00", "USD")
    );

    // To standard output, and filtered by status.
    let stdout = shop.ok(&["export", "orders"]).await;
    assert_eq!(stdout.stdout.lines().count(), 4, "{}", stdout.stdout);
    let none = shop
        .ok(&["export", "orders", "--status", "delivered"])
        .await;
    assert_eq!(none.stdout.lines().count(), 1, "the header only");
    let bad = shop.run(&["export", "orders", "--status", "lost"]).await;
    assert_eq!(bad.code, Some(2));
}
