//! The money pages, driven as a browser drives them: an admin sets the
//! commission, a sale is delivered, the seller sees the earning held and then
//! available, the admin pays it out and marks it paid, and the seller sees the
//! payout paid and downloads the statement. Every figure on a page is checked
//! against the library. Refusals are in `money_refusals.rs`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{OutboxStatus, PayoutStatus, RuleScope};

mod support;
use support::dashboard::{
    ADMIN_EMAIL, Browser, deliver, lamp_shop, principal, sale, start_closing, text_of,
};

#[tokio::test]
async fn a_sale_is_earned_held_released_paid_out_and_shown_paid() {
    let site = start_closing().await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let admin_principal = principal(&site.market, ADMIN_EMAIL).await;

    // The admin sets a 10 % default rule through the form.
    let set = admin
        .submit(
            "/admin/commission",
            "/admin/commission",
            &[
                ("scope", "default"),
                ("rate", "10"),
                ("fixed_fee", ""),
                ("minimum", ""),
                ("maximum", ""),
            ],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.has("The default rule is set to 10%"), "{}", set.body);
    assert!(
        set.has("(1000 bps)"),
        "the table shows the rule: {}",
        set.body
    );
    let rules = site
        .market
        .commission_rules(&admin_principal)
        .await
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].scope, rules[0].terms.rate_bps),
        (RuleScope::Default, 1000)
    );

    // Two lamps at 9.00: 18.00, of which 1.80 is commission and 16.20 the net.
    let (shop_user, shop, product) = lamp_shop(&site).await;
    let order = sale(&site, "ada@example.com", product.id, 2).await;
    // The buyer's copy carries no commission; the seller's does.
    assert!(order.commission.is_none());
    let order = site.market.seller_order(&shop, order.id).await.unwrap();
    let commission = order.commission.clone().expect("a commission at checkout");
    assert_eq!(
        (commission.amount.amount, commission.seller_net.amount),
        (180, 1620)
    );
    deliver(&site, &shop, &order).await;

    let seller_browser = Browser::sign_in(&site, "shop@example.com").await;
    let money = seller_browser.get("/seller/money").await;
    assert_eq!(money.status, 200, "{}", money.body);
    assert_eq!(text_of(&money, "pending"), "16.20 USD");
    assert_eq!(text_of(&money, "available"), "0.00 USD");
    assert!(money.has("Sale delivered: earning held"), "{}", money.body);
    assert!(
        money.has("1.80 USD") && money.has("+16.20 USD"),
        "{}",
        money.body
    );
    assert!(money.has(&format!(r#"href="/seller/orders/{}""#, order.id)));
    let order_page = seller_browser
        .get(&format!("/seller/orders/{}", order.id))
        .await;
    assert!(
        order_page.has("Marketplace commission"),
        "{}",
        order_page.body
    );
    assert_eq!(text_of(&order_page, "seller-net"), "16.20 USD");
    assert!(order_page.has("Earning held"), "{}", order_page.body);
    assert!(
        order_page.has("the default rule, 10%"),
        "{}",
        order_page.body
    );
    let home = seller_browser.get("/seller").await;
    assert!(home.has("16.20 USD held"), "{}", home.body);

    // The window closes: the earning is available.
    assert_eq!(site.market.release_earnings(100).await.unwrap(), 1);
    let money = seller_browser.get("/seller/money").await;
    assert_eq!(text_of(&money, "pending"), "0.00 USD");
    assert_eq!(text_of(&money, "available"), "16.20 USD");
    assert!(money.has("Return window closed: earning available"));
    let order_page = seller_browser
        .get(&format!("/seller/orders/{}", order.id))
        .await;
    assert!(
        order_page.has("Earning available since"),
        "{}",
        order_page.body
    );

    // The admin sees the balance due and pays out every seller due.
    let payouts = admin.get("/admin/payouts").await;
    assert_eq!(payouts.status, 200, "{}", payouts.body);
    assert!(payouts.has("Lamp Shop"), "{}", payouts.body);
    assert!(payouts.has(&format!(
        r#"action="/admin/payouts/sellers/{}""#,
        shop_user.id
    )));
    let run = admin
        .submit(
            "/admin/payouts",
            "/admin/payouts/run",
            &[("next", "/admin/payouts")],
        )
        .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.has("1 payout is made, of 16.20 USD."), "{}", run.body);
    let made = site
        .market
        .payouts(&admin_principal, PayoutListQuery::default())
        .await
        .unwrap()
        .items;
    assert_eq!(made.len(), 1);
    let payout = &made[0];
    assert_eq!(
        (payout.amount.amount, payout.status),
        (1620, PayoutStatus::Requested)
    );
    assert!(run.has("badge-requested"), "{}", run.body);
    // Nothing is left to pay: a second run pays nothing.
    let again = admin
        .submit("/admin/payouts", "/admin/payouts/run", &[])
        .await;
    assert!(again.has("No seller is due a payout"), "{}", again.body);
    let overview = admin.get("/admin").await;
    assert_eq!(text_of(&overview, "requested-payouts"), "1");

    // Marked paid without a reference: refused on its row, nothing changes.
    let paid_action = format!("/admin/payouts/{}/paid", payout.id);
    let blank = admin
        .submit("/admin/payouts", &paid_action, &[("reference", " ")])
        .await;
    assert_eq!(blank.status, 422, "{}", blank.body);
    assert!(
        blank.has(&format!(r#"id="e-reference-{}""#, payout.id)),
        "{}",
        blank.body
    );
    let now = site
        .market
        .payout(&admin_principal, payout.id)
        .await
        .unwrap();
    assert_eq!(now.status, PayoutStatus::Requested);

    let paid = admin
        .submit(
            "/admin/payouts?status=requested",
            &paid_action,
            &[("reference", "BANK-2026-0042"), ("next", "/admin/payouts")],
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert!(
        paid.has("The payout of 16.20 USD is marked paid"),
        "{}",
        paid.body
    );
    let now = site
        .market
        .payout(&admin_principal, payout.id)
        .await
        .unwrap();
    assert_eq!(now.status, PayoutStatus::Paid);
    assert_eq!(now.reference.as_deref(), Some("BANK-2026-0042"));
    // Paid once: a second mark is refused, and says why.
    let twice = admin
        .post(&paid_action, &paid.csrf(), &[("reference", "BANK-2")])
        .await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    assert!(twice.has("The payout is already paid"), "{}", twice.body);

    // The seller's payouts page, where the mail links, shows it paid.
    let mine = seller_browser.get("/seller/payouts").await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(
        mine.has("badge-paid") && mine.has("BANK-2026-0042"),
        "{}",
        mine.body
    );
    assert!(mine.has("16.20 USD"));
    assert!(
        seller_browser
            .get("/seller/payouts?status=paid")
            .await
            .has("BANK-2026-0042")
    );
    assert!(
        !seller_browser
            .get("/seller/payouts?status=failed")
            .await
            .has("BANK-2026-0042")
    );
    let mail = site
        .market
        .outbox(
            &admin_principal,
            Some(OutboxStatus::Pending),
            None,
            Some(100),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|m| m.kind == "payout_paid")
        .expect("the payout-paid mail");
    assert_eq!(mail.recipient, "shop@example.com");
    assert!(
        mail.text_body
            .contains(&format!("{}/seller/payouts", site.base)),
        "{}",
        mail.text_body
    );

    // The statement: a header and one row per entry, with balances after each.
    let r = seller_browser
        .http
        .get(format!("{}/seller/money/statement?from=&to=", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"statement-start-to-"),
        "{disposition}"
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date,entry,kind,order_id,payout_id,commission,pending_change,available_change,pending_after,available_after,currency"
    );
    assert_eq!(lines.len(), 4, "earning, release, payout: {csv}");
    assert!(lines[1].contains(",earning,") && lines[1].contains(&order.id.to_string()));
    assert!(
        lines[1].contains(",1.80,16.20,0.00,16.20,0.00,USD"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",release,"), "{}", lines[2]);
    assert!(
        lines[3].contains(",payout,") && lines[3].ends_with(",0.00,0.00,USD"),
        "{}",
        lines[3]
    );
    // Days before the sale: the header alone.
    let empty = seller_browser
        .http
        .get(format!(
            "{}/seller/money/statement?from=2020-01-01&to=2020-01-31",
            site.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(empty.lines().count(), 1, "{empty}");

    // The admin's report: the commission per month and seller, with totals.
    let report = admin.get("/admin/reports").await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.has("Lamp Shop"), "{}", report.body);
    assert_eq!(text_of(&report, "commission-total-USD"), "1.80 USD");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let by_day = admin
        .get(&format!("/admin/reports?from={today}&to={today}&by=day"))
        .await;
    assert_eq!(text_of(&by_day, "commission-total-USD"), "1.80 USD");
    assert!(by_day.has(&format!("<td>{today}</td>")), "{}", by_day.body);
    let before = admin
        .get("/admin/reports?from=2020-01-01&to=2020-12-31&by=month")
        .await;
    assert!(
        before.has("No order was delivered or returned"),
        "{}",
        before.body
    );
}

#[tokio::test]
async fn seller_rules_win_changes_spare_placed_orders_and_a_failed_payout_comes_back() {
    let site = start_closing().await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let admin_principal = principal(&site.market, ADMIN_EMAIL).await;
    let (shop_user, shop, product) = lamp_shop(&site).await;
    let seller_scope = format!("seller:{}", shop_user.id);

    for (scope, rate, fee) in [("default", "10", ""), (seller_scope.as_str(), "5", "0.30")] {
        let set = admin
            .submit(
                "/admin/commission",
                "/admin/commission",
                &[("scope", scope), ("rate", rate), ("fixed_fee", fee)],
            )
            .await;
        assert_eq!(set.status, 200, "{}", set.body);
    }
    let page = admin.get("/admin/commission").await;
    assert!(page.has("Seller “Lamp Shop”"), "{}", page.body);
    // The change link shows the rule in the form.
    let change = admin
        .get(&format!("/admin/commission?scope={seller_scope}"))
        .await;
    assert!(
        change.has(r#"value="5""#) && change.has(r#"value="0.30""#),
        "{}",
        change.body
    );

    // The seller's rule: 5 % of 18.00 plus 0.30.
    let order = sale(&site, "ada@example.com", product.id, 2).await;
    let order = site.market.seller_order(&shop, order.id).await.unwrap();
    assert_eq!(order.commission.as_ref().unwrap().amount.amount, 120);

    // Removing it changes new orders only.
    let removed = admin
        .submit(
            "/admin/commission",
            "/admin/commission/remove",
            &[("scope", &seller_scope)],
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        removed.has("The seller rule is removed"),
        "{}",
        removed.body
    );
    let rules = site
        .market
        .commission_rules(&admin_principal)
        .await
        .unwrap();
    assert_eq!(
        rules.iter().map(|r| r.scope).collect::<Vec<_>>(),
        [RuleScope::Default]
    );
    deliver(&site, &shop, &order).await;
    let placed = site.market.seller_order(&shop, order.id).await.unwrap();
    assert_eq!(placed.commission.unwrap().seller_net.amount, 1800 - 120);
    // Removing it twice: not found, said on the page.
    let gone = admin
        .post(
            "/admin/commission/remove",
            &removed.csrf(),
            &[("scope", &seller_scope)],
        )
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert!(gone.has("Commission rule not found"), "{}", gone.body);

    // Paid out with the row's button, then marked failed: the funds come back.
    site.market.release_earnings(100).await.unwrap();
    let paid_out = admin
        .submit(
            "/admin/payouts",
            &format!("/admin/payouts/sellers/{}", shop_user.id),
            &[],
        )
        .await;
    assert!(
        paid_out.has("A payout of 16.80 USD is made"),
        "{}",
        paid_out.body
    );
    let payout = site
        .market
        .payouts(&admin_principal, PayoutListQuery::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let filtered = admin
        .get(&format!(
            "/admin/payouts?status=requested&seller={}",
            shop_user.id
        ))
        .await;
    assert!(
        filtered.has(&format!("/admin/payouts/{}/failed", payout.id)),
        "{}",
        filtered.body
    );
    let nobody = admin.get("/admin/payouts?status=paid").await;
    assert!(nobody.has("No payouts match"), "{}", nobody.body);
    let failed = admin
        .submit(
            "/admin/payouts",
            &format!("/admin/payouts/{}/failed", payout.id),
            &[("reason", "the account is closed")],
        )
        .await;
    assert!(failed.has("is marked failed"), "{}", failed.body);
    let balance = site.market.seller_balance(&shop).await.unwrap();
    assert_eq!(balance.available.amount, 1680);
    let seller_browser = Browser::sign_in(&site, "shop@example.com").await;
    let mine = seller_browser.get("/seller/payouts").await;
    assert!(
        mine.has("badge-failed") && mine.has("the account is closed"),
        "{}",
        mine.body
    );
    let money = seller_browser.get("/seller/money").await;
    assert_eq!(text_of(&money, "available"), "16.80 USD");
    assert!(
        money.has("Payout failed: funds available again"),
        "{}",
        money.body
    );
}
