//! The authorization matrix: every route of the OpenAPI document, called by
//! {anonymous, buyer, other buyer, seller, other seller, admin} on resources
//! belonging to {the first buyer and seller, the second}, with the exact status
//! each must get. A route missing from the table fails the test, so the matrix
//! always covers the whole API.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;

use marketplace_core::outbox::OutboxQuery;
use marketplace_core::{CommissionTerms, OrderId, OrderStatus, Principal, RuleScope};
use marketplace_e2e::{Api, Session, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Anonymous,
    Buyer,
    OtherBuyer,
    Seller,
    OtherSeller,
    Admin,
}
const ACTORS: [Actor; 6] = [
    Actor::Anonymous,
    Actor::Buyer,
    Actor::OtherBuyer,
    Actor::Seller,
    Actor::OtherSeller,
    Actor::Admin,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Buyer,
    Seller,
    Admin,
}

/// Whose resource a path parameter names: the first pair's (`A`: buyer 1 and
/// seller 1) or the second's (`B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    A,
    B,
}

#[derive(Clone, Copy, Debug)]
enum Param {
    None,
    Address,
    Product,
    Category,
    Order,
    Seller,
    User,
    Message,
    CartItem,
    Wish,
    Media,
    /// A category with a commission rule.
    RuleCategory,
    Payout,
    Checkout,
    Payment,
    /// A payment provider's name.
    Provider,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Nobody,
    Buyer,
    Seller,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    Json(fn(&Fixture, Actor) -> Value),
    Image,
}

struct Route {
    method: &'static str,
    path: &'static str,
    /// `None` for public routes.
    roles: Option<&'static [Role]>,
    param: Param,
    owner: Owner,
    body: Body,
    /// Status for an allowed caller on its own resource.
    own: u16,
    /// Status for an admin, when it differs from `own`.
    admin: Option<u16>,
    idempotency_key: bool,
}

const B: &[Role] = &[Role::Buyer];
const S: &[Role] = &[Role::Seller];
const A: &[Role] = &[Role::Admin];
const SA: &[Role] = &[Role::Seller, Role::Admin];
const BA: &[Role] = &[Role::Buyer, Role::Admin];
const ANY: &[Role] = &[Role::Buyer, Role::Seller, Role::Admin];

const fn r(
    method: &'static str,
    path: &'static str,
    roles: Option<&'static [Role]>,
    param: Param,
    owner: Owner,
    body: Body,
    own: u16,
) -> Route {
    Route {
        method,
        path,
        roles,
        param,
        owner,
        body,
        own,
        admin: None,
        idempotency_key: false,
    }
}

fn routes() -> Vec<Route> {
    use Body::{Image, Json, None as NoBody};
    use Owner::{Buyer as OB, Nobody, Seller as OS};
    use Param::*;
    let p: Option<&'static [Role]> = Option::None;
    vec![
        r(
            "post",
            "/api/v1/auth/register",
            p,
            None,
            Nobody,
            Json(
                |f, _| json!({"email": f.s.email("new"), "password": "correct horse", "role": "buyer"}),
            ),
            201,
        ),
        r(
            "post",
            "/api/v1/auth/login",
            p,
            None,
            Nobody,
            Json(|f, _| json!({"email": f.b1.email, "password": "correct horse"})),
            200,
        ),
        r(
            "post",
            "/api/v1/auth/refresh",
            p,
            None,
            Nobody,
            Json(|f, _| json!({"refresh_token": f.refresh})),
            200,
        ),
        r(
            "post",
            "/api/v1/auth/logout",
            p,
            None,
            Nobody,
            Json(|f, _| json!({"refresh_token": f.refresh})),
            204,
        ),
        r(
            "post",
            "/api/v1/auth/verify-email",
            p,
            None,
            Nobody,
            Json(|f, _| json!({"token": f.verify_token})),
            204,
        ),
        Route {
            admin: Some(409),
            ..r(
                "post",
                "/api/v1/auth/verify-email/resend",
                Some(ANY),
                None,
                Nobody,
                NoBody,
                202,
            )
        },
        r(
            "post",
            "/api/v1/auth/password-reset",
            p,
            None,
            Nobody,
            Json(|f, _| json!({"email": f.b1.email})),
            202,
        ),
        r(
            "post",
            "/api/v1/auth/password-reset/confirm",
            p,
            None,
            Nobody,
            Json(|_, _| json!({"token": "not-a-token", "password": "new password"})),
            400,
        ),
        r("get", "/api/v1/me", Some(ANY), None, Nobody, NoBody, 200),
        r(
            "patch",
            "/api/v1/me",
            Some(ANY),
            None,
            Nobody,
            Json(|_, _| json!({"name": "Renamed"})),
            200,
        ),
        r(
            "get",
            "/api/v1/me/addresses",
            Some(B),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/me/addresses",
            Some(B),
            None,
            Nobody,
            Json(|_, _| address()),
            201,
        ),
        r(
            "patch",
            "/api/v1/me/addresses/{id}",
            Some(B),
            Address,
            OB,
            Json(|_, _| json!({"city": "Shelbyville"})),
            200,
        ),
        r(
            "delete",
            "/api/v1/me/addresses/{id}",
            Some(B),
            Address,
            OB,
            NoBody,
            204,
        ),
        r("get", "/api/v1/products", p, None, Nobody, NoBody, 200),
        r(
            "get",
            "/api/v1/products/{id}",
            p,
            Product,
            Nobody,
            NoBody,
            200,
        ),
        r("get", "/api/v1/categories", p, None, Nobody, NoBody, 200),
        r(
            "post",
            "/api/v1/admin/categories",
            Some(A),
            None,
            Nobody,
            Json(|f, _| json!({"name": f.s.email("category")})),
            201,
        ),
        r(
            "patch",
            "/api/v1/admin/categories/{id}",
            Some(A),
            Category,
            Nobody,
            Json(|f, _| json!({"name": f.s.email("renamed")})),
            200,
        ),
        r(
            "delete",
            "/api/v1/admin/categories/{id}",
            Some(A),
            Category,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "get",
            "/api/v1/seller/products",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/seller/products",
            Some(S),
            None,
            Nobody,
            Json(|_, _| product()),
            201,
        ),
        r(
            "get",
            "/api/v1/seller/products/{id}",
            Some(SA),
            Product,
            OS,
            NoBody,
            200,
        ),
        r(
            "patch",
            "/api/v1/seller/products/{id}",
            Some(SA),
            Product,
            OS,
            Json(|_, _| json!({"title": "Retitled"})),
            200,
        ),
        r(
            "delete",
            "/api/v1/seller/products/{id}",
            Some(SA),
            Product,
            OS,
            NoBody,
            204,
        ),
        r(
            "post",
            "/api/v1/seller/products/{id}/images",
            Some(SA),
            Product,
            OS,
            Image,
            201,
        ),
        r("get", "/api/v1/cart", Some(B), None, Nobody, NoBody, 200),
        r("delete", "/api/v1/cart", Some(B), None, Nobody, NoBody, 200),
        r(
            "post",
            "/api/v1/cart/items",
            Some(B),
            None,
            Nobody,
            Json(|f, _| json!({"product_id": f.p1, "quantity": 1})),
            200,
        ),
        r(
            "patch",
            "/api/v1/cart/items/{product_id}",
            Some(B),
            CartItem,
            OB,
            Json(|_, _| json!({"quantity": 2})),
            200,
        ),
        r(
            "delete",
            "/api/v1/cart/items/{product_id}",
            Some(B),
            CartItem,
            OB,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/wishlist",
            Some(B),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/wishlist",
            Some(B),
            None,
            Nobody,
            Json(|f, _| json!({"product_id": f.p1})),
            201,
        ),
        r(
            "delete",
            "/api/v1/wishlist/{product_id}",
            Some(B),
            Wish,
            OB,
            NoBody,
            204,
        ),
        Route {
            idempotency_key: true,
            ..r(
                "post",
                "/api/v1/checkout",
                Some(B),
                None,
                Nobody,
                Json(|_, _| json!({})),
                201,
            )
        },
        r("get", "/api/v1/orders", Some(B), None, Nobody, NoBody, 200),
        r(
            "get",
            "/api/v1/orders/{id}",
            Some(B),
            Order,
            OB,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/orders/{id}/cancel",
            Some(B),
            Order,
            OB,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/orders/{id}/return",
            Some(B),
            Order,
            OB,
            NoBody,
            409,
        ),
        r(
            "get",
            "/api/v1/seller/orders",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/orders/{id}",
            Some(S),
            Order,
            OS,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/seller/orders/{id}/status",
            Some(SA),
            Order,
            OS,
            Json(|_, _| json!({"status": "accepted"})),
            200,
        ),
        r(
            "get",
            "/api/v1/admin/sellers",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/sellers/{id}/verify",
            Some(A),
            Seller,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/sellers/{id}/reject",
            Some(A),
            Seller,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/users/{id}/deactivate",
            Some(A),
            User,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "post",
            "/api/v1/admin/users/{id}/activate",
            Some(A),
            User,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "post",
            "/api/v1/admin/products/{id}/deactivate",
            Some(A),
            Product,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "post",
            "/api/v1/admin/products/{id}/activate",
            Some(A),
            Product,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "get",
            "/api/v1/admin/orders",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/admin/outbox",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/outbox/{id}/retry",
            Some(A),
            Message,
            Nobody,
            NoBody,
            409,
        ),
        r(
            "get",
            "/api/v1/admin/commission-rules",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "put",
            "/api/v1/admin/commission-rules/default",
            Some(A),
            None,
            Nobody,
            Json(|_, _| json!({"rate_bps": 1500})),
            200,
        ),
        r(
            "delete",
            "/api/v1/admin/commission-rules/default",
            Some(A),
            None,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "put",
            "/api/v1/admin/commission-rules/categories/{id}",
            Some(A),
            RuleCategory,
            Nobody,
            Json(|_, _| json!({"rate_bps": 500, "minimum": {"amount": 10, "currency": "USD"}})),
            200,
        ),
        r(
            "delete",
            "/api/v1/admin/commission-rules/categories/{id}",
            Some(A),
            RuleCategory,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "put",
            "/api/v1/admin/commission-rules/sellers/{id}",
            Some(A),
            Seller,
            Nobody,
            Json(|_, _| json!({"rate_bps": 800, "fixed_fee": {"amount": 30, "currency": "USD"}})),
            200,
        ),
        r(
            "delete",
            "/api/v1/admin/commission-rules/sellers/{id}",
            Some(A),
            Seller,
            Nobody,
            NoBody,
            204,
        ),
        r(
            "get",
            "/api/v1/seller/balance",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/ledger",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/statement",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/statement.csv",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/payouts",
            Some(S),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/seller/payouts/{id}",
            Some(S),
            Payout,
            OS,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/admin/balances",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/admin/payouts",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/admin/payouts/{id}",
            Some(A),
            Payout,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/payouts",
            Some(A),
            None,
            Nobody,
            Json(|_, _| json!({})),
            200,
        ),
        r(
            "post",
            "/api/v1/admin/payouts/{id}/paid",
            Some(A),
            Payout,
            Nobody,
            Json(|_, _| json!({"reference": "BANK-1"})),
            200,
        ),
        r(
            "post",
            "/api/v1/admin/payouts/{id}/failed",
            Some(A),
            Payout,
            Nobody,
            Json(|_, _| json!({"reason": "account closed"})),
            200,
        ),
        r(
            "get",
            "/api/v1/admin/reports/commission",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/checkouts/{id}/payment",
            Some(BA),
            Checkout,
            OB,
            NoBody,
            200,
        ),
        // The manual provider takes no webhooks: no signature can be right.
        r(
            "post",
            "/api/v1/payments/webhooks/{provider}",
            p,
            Provider,
            Nobody,
            Json(|_, _| json!({"id": "evt_1"})),
            422,
        ),
        r(
            "get",
            "/api/v1/admin/payments",
            Some(A),
            None,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "get",
            "/api/v1/admin/payments/{id}",
            Some(A),
            Payment,
            Nobody,
            NoBody,
            200,
        ),
        r(
            "post",
            "/api/v1/admin/payments/{id}/paid",
            Some(A),
            Payment,
            Nobody,
            NoBody,
            200,
        ),
        r("get", "/healthz", p, None, Nobody, NoBody, 200),
        r("get", "/readyz", p, None, Nobody, NoBody, 200),
        r("get", "/api/v1/openapi.json", p, None, Nobody, NoBody, 200),
        r("get", "/media/{key}", p, Media, Nobody, NoBody, 200),
    ]
}

fn address() -> Value {
    json!({"name": "Bo", "line1": "2 Side St", "city": "Springfield", "postal_code": "54321", "country": "US"})
}

fn product() -> Value {
    json!({"title": "Thing", "price": {"amount": 500, "currency": "USD"}, "stock": 3})
}

/// A fresh world: two buyers, two sellers, an admin, and one of each resource for
/// each pair.
struct Fixture<'a> {
    s: &'a TestServer,
    admin: Session,
    b1: Session,
    b2: Session,
    s1: Session,
    s2: Session,
    p1: String,
    p2: String,
    c1: String,
    c2: String,
    ad1: String,
    ad2: String,
    o1: String,
    o2: String,
    m1: String,
    m2: String,
    img1: String,
    img2: String,
    rc1: String,
    rc2: String,
    pay1: String,
    pay2: String,
    ck1: String,
    ck2: String,
    pm1: String,
    pm2: String,
    refresh: String,
    verify_token: String,
}

async fn principal(s: &TestServer, who: &Session) -> Principal {
    s.app.market.authenticate(&who.token).await.unwrap()
}

impl<'a> Fixture<'a> {
    async fn new(s: &'a TestServer) -> Fixture<'a> {
        let admin = s.admin().await;
        let (s1, s2) = (s.seller(&admin).await, s.seller(&admin).await);
        let (b1, b2) = (s.buyer().await, s.buyer().await);
        let (p1, p2) = (
            s.product(&s1, "One", 1000, 50).await,
            s.product(&s2, "Two", 2000, 50).await,
        );
        let cat = |name: String| {
            let admin = admin.token.clone();
            async move {
                s.post(
                    "/api/v1/admin/categories",
                    Some(&admin),
                    json!({"name": name}),
                )
                .await
                .body["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let (c1, c2) = (cat(s.email("cat")).await, cat(s.email("cat")).await);
        let (rc1, rc2) = (cat(s.email("cat")).await, cat(s.email("cat")).await);
        let (ad1, ad2) = (s.address(&b1).await, s.address(&b2).await);
        // A rule at every level, so each removal finds one.
        let admin_p = principal(s, &admin).await;
        let terms = CommissionTerms {
            rate_bps: 1000,
            ..CommissionTerms::default()
        };
        let mut scopes = vec![RuleScope::Default];
        for c in [&rc1, &rc2] {
            scopes.push(RuleScope::Category {
                category_id: c.parse().unwrap(),
            });
        }
        for seller in [&s1, &s2] {
            scopes.push(RuleScope::Seller {
                seller_id: seller.id.parse().unwrap(),
            });
        }
        for scope in scopes {
            s.app
                .market
                .set_commission_rule(&admin_p, scope, terms.clone())
                .await
                .unwrap();
        }
        let mut orders = Vec::new();
        let mut payouts = Vec::new();
        let mut checkouts = Vec::new();
        let mut payments = Vec::new();
        for (buyer, product, seller) in [(&b1, &p1, &s1), (&b2, &p2, &s2)] {
            // A sale delivered, released (the return window is zero) and paid
            // out, for the payout routes.
            s.post(
                "/api/v1/cart/items",
                Some(&buyer.token),
                json!({"product_id": product, "quantity": 1}),
            )
            .await;
            let r = s.checkout(buyer, "fixture-delivered", json!({})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            let sold: OrderId = r.body["orders"][0]["id"].as_str().unwrap().parse().unwrap();
            let seller_p = principal(s, seller).await;
            for to in [
                OrderStatus::Accepted,
                OrderStatus::Packed,
                OrderStatus::Shipped,
                OrderStatus::Delivered,
            ] {
                s.app
                    .market
                    .set_order_status(&seller_p, sold, to)
                    .await
                    .unwrap();
            }
            s.app.market.release_earnings(1000).await.unwrap();
            let payout = s
                .app
                .market
                .pay_out_seller(&admin_p, seller_p.user_id)
                .await
                .unwrap()
                .expect("the released earning is due");
            payouts.push(payout.id.to_string());
            // The order the order routes act on, pending.
            s.post(
                "/api/v1/cart/items",
                Some(&buyer.token),
                json!({"product_id": product, "quantity": 1}),
            )
            .await;
            let r = s.checkout(buyer, "fixture", json!({})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            orders.push(r.body["orders"][0]["id"].as_str().unwrap().to_owned());
            checkouts.push(r.body["checkout_id"].as_str().unwrap().to_owned());
            payments.push(r.body["payment"]["id"].as_str().unwrap().to_owned());
            s.post(
                "/api/v1/cart/items",
                Some(&buyer.token),
                json!({"product_id": product, "quantity": 1}),
            )
            .await;
            s.post(
                "/api/v1/wishlist",
                Some(&buyer.token),
                json!({"product_id": product}),
            )
            .await;
        }
        let mut images = Vec::new();
        for (seller, product) in [(&s1, &p1), (&s2, &p2)] {
            let who = principal(s, seller).await;
            let png = bytes::Bytes::from_static(PNG);
            let v = s
                .app
                .market
                .upload_image(&who, product.parse().unwrap(), png)
                .await
                .unwrap();
            images.push(v.images[0].split("/media/").nth(1).unwrap().to_owned());
        }
        let q = OutboxQuery {
            status: None,
            after: None,
            limit: 10_000,
        };
        let mails = s.app.market.storage().list_outbox(&q).await.unwrap();
        let to = |email: &str| {
            mails
                .iter()
                .find(|m| m.recipient == email && m.kind == "verify_email")
                .unwrap()
                .clone()
        };
        let (m1, m2) = (to(&b1.email), to(&b2.email));
        let verify_token = m1
            .text_body
            .split("token=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        let login = s
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": b1.email, "password": "correct horse"}),
            )
            .await;
        Fixture {
            refresh: login.body["refresh_token"].as_str().unwrap().to_owned(),
            verify_token,
            s,
            admin,
            b1,
            b2,
            s1,
            s2,
            p1,
            p2,
            c1,
            c2,
            ad1,
            ad2,
            o1: orders[0].clone(),
            o2: orders[1].clone(),
            m1: m1.id.to_string(),
            m2: m2.id.to_string(),
            img1: images[0].clone(),
            img2: images[1].clone(),
            rc1,
            rc2,
            pay1: payouts[0].clone(),
            pay2: payouts[1].clone(),
            ck1: checkouts[0].clone(),
            ck2: checkouts[1].clone(),
            pm1: payments[0].clone(),
            pm2: payments[1].clone(),
        }
    }

    fn session(&self, actor: Actor) -> Option<&Session> {
        match actor {
            Actor::Anonymous => None,
            Actor::Buyer => Some(&self.b1),
            Actor::OtherBuyer => Some(&self.b2),
            Actor::Seller => Some(&self.s1),
            Actor::OtherSeller => Some(&self.s2),
            Actor::Admin => Some(&self.admin),
        }
    }

    fn param(&self, param: Param, v: Variant) -> String {
        let pick = |a: &String, b: &String| {
            if v == Variant::A {
                a.clone()
            } else {
                b.clone()
            }
        };
        match param {
            Param::None => String::new(),
            Param::Address => pick(&self.ad1, &self.ad2),
            Param::Product | Param::CartItem | Param::Wish => pick(&self.p1, &self.p2),
            Param::Category => pick(&self.c1, &self.c2),
            Param::Order => pick(&self.o1, &self.o2),
            Param::Seller => pick(&self.s1.id, &self.s2.id),
            Param::User => pick(&self.b1.id, &self.b2.id),
            Param::Message => pick(&self.m1, &self.m2),
            Param::Media => pick(&self.img1, &self.img2),
            Param::RuleCategory => pick(&self.rc1, &self.rc2),
            Param::Payout => pick(&self.pay1, &self.pay2),
            Param::Checkout => pick(&self.ck1, &self.ck2),
            Param::Payment => pick(&self.pm1, &self.pm2),
            Param::Provider => "manual".to_owned(),
        }
    }
}

fn role(actor: Actor) -> Option<Role> {
    match actor {
        Actor::Anonymous => None,
        Actor::Buyer | Actor::OtherBuyer => Some(Role::Buyer),
        Actor::Seller | Actor::OtherSeller => Some(Role::Seller),
        Actor::Admin => Some(Role::Admin),
    }
}

/// The status the rules demand.
fn expected(route: &Route, actor: Actor, v: Variant) -> u16 {
    let Some(roles) = route.roles else {
        return route.own;
    };
    let Some(role) = role(actor) else {
        return 401;
    };
    if !roles.contains(&role) {
        return 403;
    }
    if role == Role::Admin {
        return route.admin.unwrap_or(route.own);
    }
    let owns = match route.owner {
        Owner::Nobody => true,
        Owner::Buyer => matches!(
            (actor, v),
            (Actor::Buyer, Variant::A) | (Actor::OtherBuyer, Variant::B)
        ),
        Owner::Seller => matches!(
            (actor, v),
            (Actor::Seller, Variant::A) | (Actor::OtherSeller, Variant::B)
        ),
    };
    if owns { route.own } else { 404 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_caller() {
    // Hundreds of fixtures: the in-memory store keeps this fast; the same rules
    // are enforced in core whatever the store. A zero return window and a
    // one-cent minimum payout let each fixture pay its sellers out at once.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TestServer::settings("memory:", &dir);
    settings.return_window = std::time::Duration::ZERO;
    settings.minimum_payout = Some("0.01".to_owned());
    let s = TestServer::start_with(settings, dir).await;
    let table = routes();

    // The table covers exactly the documented routes.
    let doc = s.get("/api/v1/openapi.json", None).await.body;
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        documented, tabled,
        "the matrix must cover every documented route, and only those"
    );

    let mut cases = 0;
    let mut failures = Vec::new();
    for route in &table {
        let variants: &[Variant] = if matches!(route.param, Param::None) {
            &[Variant::A]
        } else {
            &[Variant::A, Variant::B]
        };
        for &v in variants {
            for actor in ACTORS {
                // A fresh world per case, so one case's success cannot change
                // another's outcome.
                let f = Fixture::new(&s).await;
                let param = f.param(route.param, v);
                let url_path = ["{id}", "{product_id}", "{key}", "{provider}"]
                    .iter()
                    .fold(route.path.to_owned(), |p, k| p.replace(k, &param));
                let method = Method::from_bytes(route.method.to_uppercase().as_bytes()).unwrap();
                let mut req = s.http.request(method, format!("{}{url_path}", s.base));
                if let Some(who) = f.session(actor) {
                    req = req.bearer_auth(&who.token);
                }
                if route.idempotency_key {
                    req = req.header("Idempotency-Key", format!("matrix-{cases}"));
                }
                req = match route.body {
                    Body::None => req,
                    Body::Json(make) => req.json(&make(&f, actor)),
                    Body::Image => {
                        let part = reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("x.png");
                        req.multipart(reqwest::multipart::Form::new().part("image", part))
                    }
                };
                let res = Api::read(req.send().await.unwrap()).await;
                let want = expected(route, actor, v);
                cases += 1;
                if res.status.as_u16() != want {
                    failures.push(format!(
                        "{} {} as {actor:?} on {v:?}: got {}, want {want}: {}",
                        route.method, route.path, res.status, res.body
                    ));
                }
                if res.status.is_server_error() {
                    failures.push(format!("{} {} answered 5xx", route.method, route.path));
                }
            }
        }
    }
    eprintln!(
        "authorization matrix: {} routes, {cases} cases",
        table.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A real 1 x 1 PNG (uploads are decoded, so a header alone is refused).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xf7, 0x03, 0x41, 0x43, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];
