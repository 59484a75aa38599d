//! `marketplace-admin`'s money commands as an operator runs them: commission
//! rules, balances, payouts and the reports, on a temporary SQLite file whose
//! sales are made and delivered through the library.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use marketplace_core::{PayoutId, PayoutStatus, Principal, Role};
use serde_json::Value;

use support::Shop;

/// The levels and rates of `commission list --json`, in order.
fn rules(list: &Value) -> Vec<(String, Option<String>, u64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scope"]["level"].as_str().unwrap().to_owned(),
                r["applies_to"].as_str().map(str::to_owned),
                r["rate_bps"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A money field's minor units.
fn minor(m: &Value) -> i64 {
    assert_eq!(m["currency"], "USD", "{m}");
    m["amount"].as_i64().unwrap()
}

#[tokio::test]
async fn commission_rules_are_set_listed_replaced_and_removed() {
    let shop = Shop::new().await;
    shop.ok(&["categories", "create", "Tea"]).await;
    shop.seller("ann@example.com").await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let none = shop.ok(&["commission", "list"]).await;
    assert!(
        none.stdout.contains("no commission rules"),
        "{}",
        none.stdout
    );

    let default = shop
        .ok(&[
            "--json",
            "commission",
            "set",
            "--default",
            "--rate",
            "10",
            "--fixed",
            "0.30",
            "--min",
            "1.00",
            "--max",
            "50.00",
        ])
        .await
        .json();
    assert_eq!(default["scope"]["level"], "default");
    assert_eq!(default["rate_bps"], 1000);
    assert_eq!(
        [
            &default["fixed_fee"],
            &default["minimum"],
            &default["maximum"]
        ]
        .map(minor),
        [30, 100, 5000]
    );
    let tea = shop
        .ok(&["commission", "set", "--category", "tea", "--rate", "7.5"])
        .await;
    assert!(
        tea.stdout
            .contains("commission for the category Tea is now 7.5 %"),
        "{}",
        tea.stdout
    );
    shop.ok(&[
        "commission",
        "set",
        "--seller",
        "ANN@example.com",
        "--rate",
        "5%",
    ])
    .await;

    let list = shop.ok(&["--json", "commission", "list"]).await.json();
    assert_eq!(
        rules(&list),
        [
            ("default".to_owned(), None, 1000),
            ("category".to_owned(), Some("Tea".to_owned()), 750),
            ("seller".to_owned(), Some("ann@example.com".to_owned()), 500),
        ]
    );
    let stored = shop
        .market()
        .commission_rules(&Principal::operator())
        .await
        .unwrap();
    assert_eq!(stored.len(), 3, "the library sees the same rules");
    let table = shop.ok(&["commission", "list"]).await.stdout;
    for shown in ["7.5 %", "ann@example.com", "0.30 USD", "50.00 USD", "Tea"] {
        assert!(table.contains(shown), "{shown} in\n{table}");
    }

    // Setting a level again replaces its rule whole; the category is named
    // by its id as well as its name.
    shop.ok(&["commission", "set", "--default", "--rate", "12.5"])
        .await;
    let tea_id = stored
        .iter()
        .find(|r| r.scope.level() == "category")
        .and_then(|r| r.scope.target())
        .unwrap()
        .to_string();
    shop.ok(&["commission", "remove", "--category", &tea_id])
        .await;
    let list = shop.ok(&["--json", "commission", "list"]).await.json();
    assert_eq!(
        rules(&list),
        [
            ("default".to_owned(), None, 1250),
            ("seller".to_owned(), Some("ann@example.com".to_owned()), 500),
        ]
    );
    assert!(list[0].get("fixed_fee").is_none(), "replaced whole: {list}");
    let again = shop
        .run(&["commission", "remove", "--category", "Tea"])
        .await;
    assert_eq!(again.code, Some(1));
    assert!(
        again.error_line().contains("commission rule not found"),
        "{}",
        again.stderr
    );

    // Bad input: refused with one line, nothing written.
    for (args, why) in [
        (
            &["--seller", "nobody@example.com", "--rate", "5"][..],
            "user not found",
        ),
        (
            &["--seller", "cat@example.com", "--rate", "5"],
            "not a seller",
        ),
        (&["--seller", "not-an-email", "--rate", "5"], "email"),
        (
            &["--category", "Coffee", "--rate", "5"],
            "no category is named `Coffee`",
        ),
        (
            &["--default", "--rate", "5", "--fixed", "0,30"],
            "`0,30` is not an amount in USD",
        ),
        (
            &["--default", "--rate", "5", "--min=-1"],
            "`-1` is not an amount in USD",
        ),
        (
            &["--default", "--rate", "5", "--min", "5.00", "--max", "1.00"],
            "minimum: must not be above the maximum",
        ),
    ] {
        let run = shop.run(&[&["commission", "set"][..], args].concat()).await;
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(run.error_line().contains(why), "{why}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    for args in [
        &["--default", "--rate", "120"][..],
        &["--default", "--rate", "ten"],
        &["--default", "--rate", "12.345"],
        &["--rate", "5"],
        &["--default", "--seller", "ann@example.com", "--rate", "5"],
        &["--default"],
    ] {
        let run = shop.run(&[&["commission", "set"][..], args].concat()).await;
        assert_eq!(run.code, Some(2), "{args:?} is a usage error");
    }
    let list = shop.ok(&["--json", "commission", "list"]).await.json();
    assert_eq!(rules(&list).len(), 2, "no refused command wrote a rule");
}

#[tokio::test]
async fn a_delivered_sale_is_paid_out_once_settled_and_reported() {
    // Earnings become available the moment an order is delivered.
    let shop = Shop::with_env(&[("MARKETPLACE_RETURN_WINDOW", "0s")]).await;
    let ann = shop.seller("ann@example.com").await;
    let bob = shop.seller("bob@example.com").await;
    shop.seller("dan@example.com").await;
    let cat = shop.buyer("cat@example.com").await;
    shop.ok(&[
        "commission",
        "set",
        "--default",
        "--rate",
        "10",
        "--fixed",
        "0.30",
    ])
    .await;
    shop.ok(&[
        "commission",
        "set",
        "--seller",
        "ann@example.com",
        "--rate",
        "5",
    ])
    .await;
    let lamp = shop.product(&ann, "Lamp", 2500).await;
    let mug = shop.product(&bob, "Mug", 850).await;
    let orders = shop.sale(&cat, &[(lamp.id, 2), (mug.id, 3)], "first").await;
    assert_eq!(orders.len(), 2);
    let order_of = |seller: &Principal| {
        orders
            .iter()
            .find(|o| o.seller_id == seller.user_id)
            .unwrap()
            .id
    };
    shop.deliver(&ann, order_of(&ann)).await;
    shop.deliver(&bob, order_of(&bob)).await;
    // A sale still pending earns nothing yet.
    shop.sale(&cat, &[(lamp.id, 1)], "second").await;

    // Ann: 50.00 at 5 % = 2.50; Bob: 25.50 at 10 % + 0.30 = 2.85.
    let balances = shop.ok(&["--json", "balances"]).await.json();
    let by_email: HashMap<String, &Value> = balances
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["email"].as_str().unwrap().to_owned(), b))
        .collect();
    assert_eq!(by_email.len(), 3, "every seller: {balances}");
    let buckets = |email: &str| {
        let b = by_email[email];
        [&b["pending"], &b["available"], &b["total"]].map(minor)
    };
    assert_eq!(buckets("ann@example.com"), [4750, 0, 4750]);
    assert_eq!(buckets("bob@example.com"), [2265, 0, 2265]);
    assert_eq!(buckets("dan@example.com"), [0, 0, 0]);
    assert_eq!(
        by_email["ann@example.com"]["store_name"],
        "Store of ann@example.com"
    );
    let table = shop.ok(&["balances"]).await.stdout;
    assert!(
        table.contains("47.50 USD") && table.contains("Store of bob@example.com"),
        "{table}"
    );

    // One run releases what is due and pays every seller once.
    let run = shop.ok(&["--json", "payouts", "run"]).await.json();
    assert_eq!(run["released"], 2);
    let paid: HashMap<String, (i64, String)> = run["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["status"], "requested");
            (
                p["email"].as_str().unwrap().to_owned(),
                (minor(&p["amount"]), p["id"].as_str().unwrap().to_owned()),
            )
        })
        .collect();
    assert_eq!(paid.len(), 2, "{run}");
    assert_eq!(paid["ann@example.com"].0, 4750);
    assert_eq!(paid["bob@example.com"].0, 2265);
    let second = shop.ok(&["--json", "payouts", "run"]).await.json();
    assert_eq!(second["payouts"], Value::Array(Vec::new()), "never twice");
    assert_eq!(second["released"], 0);
    let human = shop.ok(&["payouts", "run"]).await.stdout;
    assert!(human.contains("no seller is due a payout"), "{human}");
    let balances = shop.ok(&["--json", "balances"]).await.json();
    for b in balances.as_array().unwrap() {
        assert_eq!(minor(&b["total"]), 0, "every balance taken: {b}");
    }

    let requested = shop
        .ok(&["--json", "payouts", "list", "--status", "requested"])
        .await
        .json();
    assert_eq!(requested.as_array().unwrap().len(), 2);
    let anns = shop
        .ok(&["--json", "payouts", "list", "--seller", "ann@example.com"])
        .await
        .json();
    assert_eq!(anns.as_array().unwrap().len(), 1);
    assert_eq!(anns[0]["id"], paid["ann@example.com"].1.as_str());

    // Ann's transfer went through; Bob's bounced, so his money is back.
    let ann_payout = paid["ann@example.com"].1.as_str();
    let settled = shop
        .ok(&[
            "--json",
            "payouts",
            "mark-paid",
            ann_payout,
            "--reference",
            "BANK-0001",
        ])
        .await
        .json();
    assert_eq!(
        (settled["status"].as_str(), settled["reference"].as_str()),
        (Some("paid"), Some("BANK-0001"))
    );
    let stored = shop
        .market()
        .payout(
            &Principal::operator(),
            ann_payout.parse::<PayoutId>().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stored.status, PayoutStatus::Paid);
    for args in [
        &[
            "payouts",
            "mark-paid",
            ann_payout,
            "--reference",
            "BANK-0002",
        ][..],
        &["payouts", "mark-failed", ann_payout, "--reason", "oops"],
    ] {
        let run = shop.run(args).await;
        assert_eq!(run.code, Some(1), "{args:?}");
        assert!(
            run.error_line().contains("the payout is already paid"),
            "{}",
            run.stderr
        );
    }
    let bob_payout = paid["bob@example.com"].1.as_str();
    let failed = shop
        .ok(&[
            "payouts",
            "mark-failed",
            bob_payout,
            "--reason",
            "account closed",
        ])
        .await;
    assert!(
        failed.stdout.contains("is failed (account closed"),
        "{}",
        failed.stdout
    );
    let balances = shop.ok(&["--json", "balances"]).await.json();
    let bob_balance = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["email"] == "bob@example.com")
        .unwrap();
    assert_eq!(
        minor(&bob_balance["available"]),
        2265,
        "the funds came back"
    );
    let nothing = shop
        .ok(&["payouts", "run", "--seller", "ann@example.com"])
        .await;
    assert!(
        nothing.stdout.contains(
            "no payout for ann@example.com: its available balance, 0.00 USD, is below the minimum payout of 10.00 USD"
        ),
        "{}",
        nothing.stdout
    );
    let retry = shop
        .ok(&["--json", "payouts", "run", "--seller", "bob@example.com"])
        .await
        .json();
    assert_eq!(retry["payouts"].as_array().unwrap().len(), 1);
    assert_eq!(minor(&retry["payouts"][0]["amount"]), 2265);
    let table = shop.ok(&["payouts", "list"]).await.stdout;
    for shown in ["BANK-0001", "account closed", "requested", "22.65 USD"] {
        assert!(table.contains(shown), "{shown} in\n{table}");
    }

    // The commission report: the two deliveries, not the pending sale.
    let report = shop.ok(&["--json", "report", "commission"]).await.json();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    let row = |email: &str| rows.iter().find(|r| r["email"] == email).unwrap();
    assert_eq!(
        [
            &row("ann@example.com")["gross"],
            &row("ann@example.com")["commission"]
        ]
        .map(minor),
        [5000, 250]
    );
    assert_eq!(
        [
            &row("bob@example.com")["gross"],
            &row("bob@example.com")["commission"]
        ]
        .map(minor),
        [2550, 285]
    );
    assert_eq!(row("bob@example.com")["delivered"], 1);
    assert_eq!(minor(&report["totals"][0]["commission"]), 535);
    assert_eq!(minor(&report["totals"][0]["seller_net"]), 7015);
    let by_day = shop
        .ok(&["report", "commission", "--by", "day"])
        .await
        .stdout;
    assert!(
        by_day.contains("total") && by_day.contains("5.35 USD"),
        "{by_day}"
    );
    let csv_run = shop.ok(&["report", "commission", "--csv"]).await;
    let mut reader = csv::Reader::from_reader(csv_run.stdout.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "period",
            "seller_id",
            "email",
            "store_name",
            "delivered",
            "returned",
            "gross",
            "commission",
            "seller_net",
            "currency"
        ]
    );
    let lines: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(lines.len(), 2, "{}", csv_run.stdout);
    let bob_line = lines.iter().find(|r| &r[2] == "bob@example.com").unwrap();
    assert_eq!(
        (&bob_line[6], &bob_line[7], &bob_line[8], &bob_line[9]),
        ("25.50", "2.85", "22.65", "USD")
    );
    let later = shop
        .ok(&["--json", "report", "commission", "--from", "2999-01-01"])
        .await
        .json();
    assert_eq!(later["rows"], Value::Array(Vec::new()));
    let empty = shop
        .ok(&["report", "commission", "--from", "2999-01-01"])
        .await;
    assert!(empty.stdout.contains("no deliveries"), "{}", empty.stdout);

    // Ann's statement: the earning, its release, the payout.
    let statement = shop
        .ok(&[
            "--json",
            "report",
            "statement",
            "--seller",
            "ann@example.com",
        ])
        .await
        .json();
    let kinds: Vec<&str> = statement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["earning", "release", "payout"]);
    assert_eq!(minor(&statement["closing"]["total"]), 0);
    let csv_statement = shop
        .ok(&[
            "report",
            "statement",
            "--seller",
            "ann@example.com",
            "--csv",
        ])
        .await;
    assert_eq!(
        csv_statement.stdout.lines().count(),
        4,
        "{}",
        csv_statement.stdout
    );
}

#[tokio::test]
async fn bad_money_input_is_refused_without_a_panic() {
    let shop = Shop::new().await;
    shop.seller("ann@example.com").await;
    shop.register(Role::Buyer, "cat@example.com").await;
    let unknown = "0190a000-0000-7000-8000-000000000000";
    for (args, why) in [
        (
            &["payouts", "mark-paid", unknown, "--reference", "R-1"][..],
            "payout not found",
        ),
        (
            &["payouts", "mark-failed", unknown, "--reason", "lost"],
            "payout not found",
        ),
        (
            &["payouts", "mark-paid", unknown, "--reference", "  "],
            "reference: must not be empty",
        ),
        (
            &["payouts", "run", "--seller", "nobody@example.com"],
            "user not found",
        ),
        (
            &["payouts", "run", "--seller", "cat@example.com"],
            "not a seller",
        ),
        (
            &["payouts", "list", "--seller", "nobody@example.com"],
            "user not found",
        ),
        (
            &["report", "statement", "--seller", "nobody@example.com"],
            "user not found",
        ),
        (
            &[
                "report",
                "commission",
                "--from",
                "2026-02-01",
                "--to",
                "2026-01-01",
            ],
            "must not be after",
        ),
    ] {
        let run = shop.run(args).await;
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert!(run.error_line().contains(why), "{why}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    for args in [
        &["payouts", "mark-paid", "payout-1", "--reference", "R-1"][..],
        &["payouts", "mark-paid", unknown],
        &["payouts", "list", "--status", "lost"],
        &["report", "commission", "--from", "2026-13-01"],
        &["report", "commission", "--to", "next week"],
        &["report", "commission", "--by", "year"],
        &["--json", "report", "commission", "--csv"],
        &["report", "statement"],
    ] {
        let run = shop.run(args).await;
        assert_eq!(
            run.code,
            Some(2),
            "{args:?} is a usage error: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // With nothing sold, every listing answers, empty.
    assert_eq!(
        shop.ok(&["--json", "payouts", "list"]).await.json(),
        Value::Array(Vec::new())
    );
    let report = shop.ok(&["--json", "report", "commission"]).await.json();
    assert_eq!(report["totals"], Value::Array(Vec::new()));
    let balances = shop.ok(&["--json", "balances"]).await.json();
    assert_eq!(minor(&balances[0]["total"]), 0);
}
