//! What the money pages refuse: bad input (rates, amounts, days, ids,
//! cursors) is a page with the problem beside the form, never a 500, and each
//! audience's money pages are refused to the others.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use marketplace_core::payout::PayoutListQuery;

mod support;
use support::dashboard::{ADMIN_EMAIL, Browser, buyer, principal, seller, start, text_of};

#[tokio::test]
async fn bad_money_input_is_a_problem_on_the_page_never_a_500() {
    let site = start().await;
    let admin = Browser::sign_in(&site, ADMIN_EMAIL).await;
    let admin_principal = principal(&site.market, ADMIN_EMAIL).await;
    let ada = buyer(&site, "ada@example.com").await;
    seller(&site, "shop@example.com", "Lamp Shop", true).await;

    let rule = |fields: &'static [(&'static str, &'static str)]| {
        let admin = &admin;
        async move {
            admin
                .submit("/admin/commission", "/admin/commission", fields)
                .await
        }
    };
    for (fields, field) in [
        (&[("scope", "default"), ("rate", "12,5")][..], "rate"),
        (&[("scope", "default"), ("rate", "101")][..], "rate"),
        (&[("scope", "default"), ("rate", "")][..], "rate"),
        (
            &[("scope", "default"), ("rate", "5"), ("fixed_fee", "a lot")][..],
            "fixed_fee",
        ),
        (
            &[
                ("scope", "default"),
                ("rate", "5"),
                ("minimum", "5"),
                ("maximum", "1"),
            ][..],
            "minimum",
        ),
        (&[("scope", "everyone"), ("rate", "5")][..], "scope"),
    ] {
        let refused = rule(fields).await;
        assert_eq!(refused.status, 422, "{fields:?}: {}", refused.body);
        assert!(
            refused.has(&format!(r#"id="e-{field}""#)),
            "{fields:?}: {}",
            refused.body
        );
    }
    // What was typed stays in the form.
    let typed = rule(&[("scope", "default"), ("rate", "12,5")]).await;
    assert!(typed.has(r#"value="12,5""#), "{}", typed.body);
    // A category nobody has: not found, beside the form.
    let unknown = format!("category:{}", uuid::Uuid::now_v7());
    let missing = admin
        .submit(
            "/admin/commission",
            "/admin/commission",
            &[("scope", &unknown), ("rate", "5")],
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(
        missing.has("Set a rule"),
        "the form is still there: {}",
        missing.body
    );
    assert!(
        site.market
            .commission_rules(&admin_principal)
            .await
            .unwrap()
            .is_empty()
    );

    for (path, field) in [
        ("/admin/reports?from=yesterday", "from"),
        ("/admin/reports?from=2026-11-02&to=2026-11-01", "to"),
        ("/admin/reports?by=year", "by"),
    ] {
        let refused = admin.get(path).await;
        assert_eq!(refused.status, 422, "{path}: {}", refused.body);
        assert!(
            refused.has(&format!(r#"id="e-{field}""#)),
            "{path}: {}",
            refused.body
        );
    }

    let csrf = admin.get("/admin/payouts").await.csrf();
    for (path, status) in [
        ("/admin/payouts?status=bogus", 422),
        ("/admin/payouts?seller=nope", 422),
        ("/admin/payouts?cursor=nope", 422),
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
    }
    let nobody = uuid::Uuid::now_v7();
    for (action, fields) in [
        (
            format!("/admin/payouts/{nobody}/paid"),
            vec![("reference", "X")],
        ),
        (
            format!("/admin/payouts/{nobody}/failed"),
            vec![("reason", "X")],
        ),
        (
            "/admin/payouts/nope/paid".to_owned(),
            vec![("reference", "X")],
        ),
        (format!("/admin/payouts/sellers/{}", ada.id), vec![]),
        ("/admin/payouts/sellers/nope".to_owned(), vec![]),
    ] {
        let page = admin.post(&action, &csrf, &fields).await;
        assert_eq!(page.status, 404, "{action}: {}", page.body);
    }

    let shop = Browser::sign_in(&site, "shop@example.com").await;
    let bad = shop
        .get("/seller/money/statement?from=2026-02-30&to=soon")
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.has(r#"id="e-from""#) && bad.has(r#"id="e-to""#),
        "{}",
        bad.body
    );
    assert!(
        bad.has("Download statement (CSV)"),
        "the money page, with its form: {}",
        bad.body
    );
    assert!(bad.has(r#"value="soon""#), "what was typed stays");
    let reversed = shop
        .get("/seller/money/statement?from=2026-11-02&to=2026-11-01")
        .await;
    assert_eq!(reversed.status, 422, "{}", reversed.body);
    for path in [
        "/seller/money?cursor=nope",
        "/seller/payouts?cursor=nope",
        "/seller/payouts?status=bogus",
    ] {
        let page = shop.get(path).await;
        assert_eq!(page.status, 422, "{path}: {}", page.body);
    }
}

#[tokio::test]
async fn the_money_pages_are_for_their_own_audience() {
    let site = start().await;
    let admin_principal = principal(&site.market, ADMIN_EMAIL).await;
    let shop = seller(&site, "shop@example.com", "Lamp Shop", true).await;
    buyer(&site, "ada@example.com").await;

    let seller_browser = Browser::sign_in(&site, "shop@example.com").await;
    for path in [
        "/admin/commission",
        "/admin/payouts",
        "/admin/reports",
        "/admin/payouts?status=requested",
    ] {
        let page = seller_browser.get(path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(page.has("only admins may do this"), "{}", page.body);
    }
    let csrf = seller_browser.get("/seller/money").await.csrf();
    let seller_scope = format!("seller:{}", shop.id);
    for (action, fields) in [
        (
            "/admin/commission".to_owned(),
            vec![("scope", seller_scope.as_str()), ("rate", "0")],
        ),
        ("/admin/payouts/run".to_owned(), vec![]),
        (format!("/admin/payouts/sellers/{}", shop.id), vec![]),
    ] {
        let page = seller_browser.post(&action, &csrf, &fields).await;
        assert_eq!(page.status, 403, "{action}: {}", page.body);
    }
    assert!(
        site.market
            .commission_rules(&admin_principal)
            .await
            .unwrap()
            .is_empty()
    );
    let payouts = site
        .market
        .payouts(&admin_principal, PayoutListQuery::default())
        .await
        .unwrap();
    assert!(payouts.items.is_empty());

    let buyer_browser = Browser::sign_in(&site, "ada@example.com").await;
    for path in [
        "/seller/money",
        "/seller/payouts",
        "/seller/money/statement",
    ] {
        assert_eq!(buyer_browser.get(path).await.status, 403, "{path}");
    }
    // The payout mail's link, opened signed out, asks to sign in and comes back.
    let anonymous = Browser::new(&site).get("/seller/payouts").await;
    assert_eq!(anonymous.path, "/sign-in");
    // The seller's own pages answer, empty.
    let money = seller_browser.get("/seller/money").await;
    assert_eq!(money.status, 200, "{}", money.body);
    assert_eq!(text_of(&money, "total"), "0.00 USD");
    assert!(money.has("Nothing yet"), "{}", money.body);
    assert!(
        seller_browser
            .get("/seller/payouts")
            .await
            .has("No payouts yet")
    );
}
