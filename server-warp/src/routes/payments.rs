//! Payments: a buyer's checkout payment, the providers' webhooks, and for
//! admins every payment with its refunds and the manual "paid" record.

use bytes::Bytes;
use marketplace_core::payment::{PaymentListQuery, WebhookOutcome, WebhookRequest};
use marketplace_core::{CheckoutId, Page, Payment, PaymentId, PaymentStatus, Principal, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, ok, query};
use crate::problem::reject;

/// An admin's payment list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentParams {
    /// Only payments in this status.
    #[param(inline)]
    pub status: Option<PaymentStatus>,
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// What a webhook did.
#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// `applied`, `duplicate` (the event was handled before) or `ignored`
    /// (about nothing this marketplace tracks).
    pub outcome: WebhookOutcome,
}

/// The payment of one of the buyer's checkouts: its status, and what the
/// client needs to pay (the provider's client secret, or instructions).
#[utoipa::path(get, path = "/api/v1/checkouts/{id}/payment", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "checkout id")),
    responses((status = 200, description = "the payment", body = Payment)))]
pub async fn checkout_payment(
    id: CheckoutId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .checkout_payment(&who, id)
        .await
        .map_err(reject)?))
}

/// A payment provider's webhook. No bearer token: the provider's signature
/// over the raw body authenticates it, and an old signature is refused (a
/// replay). The same event delivered again answers `duplicate`; events out of
/// order never move a payment backwards.
#[utoipa::path(post, path = "/api/v1/payments/webhooks/{provider}", tag = "payments",
    params(("provider" = String, Path, description = "the provider's name, e.g. `stripe`")),
    request_body(content = String, description = "the provider's event, signed", content_type = "application/json"),
    responses((status = 200, description = "the event was handled", body = WebhookAnswer),
              (status = 422, description = "the signature is missing, wrong or too old (`validation_failed`, field `signature`)", body = crate::problem::Problem)))]
pub async fn webhook(
    provider: String,
    app: App,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let request = WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let outcome = app
        .market
        .payment_webhook(&provider, &request)
        .await
        .map_err(reject)?;
    Ok(ok(&WebhookAnswer { outcome }))
}

/// Every payment, newest first, optionally of one status.
#[utoipa::path(get, path = "/api/v1/admin/payments", tag = "payments", security(("bearer" = [])), params(PaymentParams),
    responses((status = 200, description = "a page of payments", body = Page<Payment>)))]
pub async fn payments(app: App, who: Principal, p: PaymentParams) -> Result<Response, Rejection> {
    let page = PaymentListQuery {
        limit: p.limit,
        cursor: p.cursor,
        status: p.status,
    };
    Ok(ok(&app
        .market
        .payments(&who, page)
        .await
        .map_err(reject)?))
}

/// One payment, with its refunds.
#[utoipa::path(get, path = "/api/v1/admin/payments/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "payment id")),
    responses((status = 200, description = "the payment", body = Payment)))]
pub async fn payment(id: PaymentId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.payment(&who, id).await.map_err(reject)?))
}

/// Records that the buyer paid a manual payment (on delivery, by bank
/// transfer): it is captured for the orders still live.
#[utoipa::path(post, path = "/api/v1/admin/payments/{id}/paid", tag = "payments", security(("bearer" = [])),
    params(("id" = String, Path, description = "payment id")),
    responses((status = 200, description = "the payment, captured", body = Payment),
              (status = 409, description = "already paid or ended (`payment_settled`), or not a manual payment (`payment_not_manual`)", body = crate::problem::Problem)))]
pub async fn mark_paid(id: PaymentId, app: App, who: Principal) -> Result<Response, Rejection> {
    who.require(Role::Admin).map_err(reject)?;
    Ok(ok(&app
        .market
        .mark_payment_paid(&who, id)
        .await
        .map_err(reject)?))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("checkouts" / CheckoutId / "payment")
        .and(warp::get())
        .and(authed())
        .and_then(checkout_payment);
    let r2 = warp::path!("payments" / "webhooks" / String)
        .and(warp::post())
        .and(crate::extract::app(a.clone()))
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(limit))
        .and(warp::body::bytes())
        .and_then(webhook);
    let r3 = warp::path!("admin" / "payments")
        .and(warp::get())
        .and(authed())
        .and(query::<PaymentParams>())
        .and_then(payments);
    let r4 = warp::path!("admin" / "payments" / PaymentId)
        .and(warp::get())
        .and(authed())
        .and_then(payment);
    let r5 = warp::path!("admin" / "payments" / PaymentId / "paid")
        .and(warp::post())
        .and(authed())
        .and_then(mark_paid);
    crate::any_of!(r1, r2, r3, r4, r5)
}
