//! Payouts: a seller's own, and for admins every payout, payout runs, and the
//! outcome of manual transfers.

use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{Page, Payout, PayoutId, PayoutStatus, Principal, Role, UserId};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, json, ok, optional_json, query};
use crate::problem::reject;

/// A seller's payout list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only payouts in this status.
    #[param(inline)]
    pub status: Option<PayoutStatus>,
}

/// An admin's payout list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminPayoutParams {
    /// Only payouts in this status.
    #[param(inline)]
    pub status: Option<PayoutStatus>,
    /// Only this seller's payouts.
    #[param(value_type = Option<String>, format = Uuid)]
    pub seller_id: Option<UserId>,
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Which sellers a payout run pays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutRunInput {
    /// Only this seller; every seller due a payout when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub seller_id: Option<UserId>,
}

/// The transfer that paid a payout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaidInput {
    /// The bank's or provider's reference for the transfer (1..=200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reference: String,
}

/// Why a payout did not reach the seller.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailedInput {
    /// The reason (1..=200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub reason: String,
}

/// The seller's payouts, newest first.
#[utoipa::path(get, path = "/api/v1/seller/payouts", tag = "money", security(("bearer" = [])), params(PayoutParams),
    responses((status = 200, description = "a page of payouts", body = Page<Payout>)))]
pub async fn seller_payouts(
    app: App,
    who: Principal,
    p: PayoutParams,
) -> Result<Response, Rejection> {
    let page = PayoutListQuery {
        limit: p.limit,
        cursor: p.cursor,
        status: p.status,
        seller_id: None,
    };
    Ok(ok(&app
        .market
        .seller_payouts(&who, page)
        .await
        .map_err(reject)?))
}

/// One of the seller's payouts.
#[utoipa::path(get, path = "/api/v1/seller/payouts/{id}", tag = "money", security(("bearer" = [])),
    params(("id" = String, Path, description = "payout id")),
    responses((status = 200, description = "the payout", body = Payout)))]
pub async fn seller_payout(id: PayoutId, app: App, who: Principal) -> Result<Response, Rejection> {
    // Admins read payouts under /admin: this is the seller's own view.
    who.require(Role::Seller).map_err(reject)?;
    Ok(ok(&app.market.payout(&who, id).await.map_err(reject)?))
}

/// Every payout, newest first, optionally of one seller or status.
#[utoipa::path(get, path = "/api/v1/admin/payouts", tag = "money", security(("bearer" = [])), params(AdminPayoutParams),
    responses((status = 200, description = "a page of payouts", body = Page<Payout>)))]
pub async fn payouts(
    app: App,
    who: Principal,
    p: AdminPayoutParams,
) -> Result<Response, Rejection> {
    let page = PayoutListQuery {
        limit: p.limit,
        cursor: p.cursor,
        status: p.status,
        seller_id: p.seller_id,
    };
    Ok(ok(&app.market.payouts(&who, page).await.map_err(reject)?))
}

/// One payout.
#[utoipa::path(get, path = "/api/v1/admin/payouts/{id}", tag = "money", security(("bearer" = [])),
    params(("id" = String, Path, description = "payout id")),
    responses((status = 200, description = "the payout", body = Payout)))]
pub async fn payout(id: PayoutId, app: App, who: Principal) -> Result<Response, Rejection> {
    who.require(Role::Admin).map_err(reject)?;
    Ok(ok(&app.market.payout(&who, id).await.map_err(reject)?))
}

/// Pays out every seller whose available balance reaches the minimum payout, or
/// only `seller_id`; answers the payouts made (none when nothing was due). Each
/// takes the whole available balance in one atomic step, so two runs at once
/// never pay a balance twice.
#[utoipa::path(post, path = "/api/v1/admin/payouts", tag = "money", security(("bearer" = [])),
    request_body(content = Option<PayoutRunInput>, description = "optional: no body, `null` or `{}` pays every seller due a payout", content_type = "application/json"),
    responses((status = 200, description = "the payouts made (one page: `next_cursor` is null)", body = Page<Payout>)))]
pub async fn run_payouts(
    app: App,
    who: Principal,
    body: Option<PayoutRunInput>,
) -> Result<Response, Rejection> {
    let items = match body.and_then(|b| b.seller_id) {
        Some(seller) => app
            .market
            .pay_out_seller(&who, seller)
            .await
            .map_err(reject)?
            .into_iter()
            .collect(),
        None => app.market.run_payouts(&who).await.map_err(reject)?,
    };
    Ok(ok(&Page {
        items,
        next_cursor: None,
    }))
}

/// Records that an open (`requested` or `unresolved`) payout reached the
/// seller, with the transfer's reference; the seller gets a mail.
#[utoipa::path(post, path = "/api/v1/admin/payouts/{id}/paid", tag = "money", security(("bearer" = [])), request_body = PaidInput,
    params(("id" = String, Path, description = "payout id")),
    responses((status = 200, description = "the payout, paid", body = Payout),
              (status = 409, description = "the payout is already paid or failed (`payout_settled`)", body = crate::problem::Problem)))]
pub async fn mark_paid(
    id: PayoutId,
    app: App,
    who: Principal,
    body: PaidInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .mark_payout_paid(&who, id, &body.reference)
        .await
        .map_err(reject)?))
}

/// Records that an open payout did not reach the seller; its amount returns to
/// the seller's available balance.
#[utoipa::path(post, path = "/api/v1/admin/payouts/{id}/failed", tag = "money", security(("bearer" = [])), request_body = FailedInput,
    params(("id" = String, Path, description = "payout id")),
    responses((status = 200, description = "the payout, failed", body = Payout),
              (status = 409, description = "the payout is already paid or failed (`payout_settled`)", body = crate::problem::Problem)))]
pub async fn mark_failed(
    id: PayoutId,
    app: App,
    who: Principal,
    body: FailedInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .mark_payout_failed(&who, id, &body.reason)
        .await
        .map_err(reject)?))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("seller" / "payouts")
        .and(warp::get())
        .and(authed())
        .and(query::<PayoutParams>())
        .and_then(seller_payouts);
    let r2 = warp::path!("seller" / "payouts" / PayoutId)
        .and(warp::get())
        .and(authed())
        .and_then(seller_payout);
    let r3 = warp::path!("admin" / "payouts")
        .and(warp::get())
        .and(authed())
        .and(query::<AdminPayoutParams>())
        .and_then(payouts);
    let r4 = warp::path!("admin" / "payouts" / PayoutId)
        .and(warp::get())
        .and(authed())
        .and_then(payout);
    let r5 = warp::path!("admin" / "payouts")
        .and(warp::post())
        .and(authed())
        .and(optional_json(limit))
        .and_then(run_payouts);
    let r6 = warp::path!("admin" / "payouts" / PayoutId / "paid")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(mark_paid);
    let r7 = warp::path!("admin" / "payouts" / PayoutId / "failed")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(mark_failed);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7)
}
