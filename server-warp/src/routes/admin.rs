//! Moderation: sellers, users, products, all orders, and the mail outbox.

use marketplace_core::{
    MessageId, Order, OrderListQuery, OutboxMessage, OutboxStatus, Page, Principal, ProductId,
    SellerListQuery, SellerStatus, SellerSummary, UserId,
};
use serde::Deserialize;
use utoipa::IntoParams;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, no_content, ok, query};
use crate::problem::reject;
use crate::routes::orders::OrderParams;

/// Seller list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SellerParams {
    /// Only sellers in this status.
    #[param(inline)]
    pub status: Option<SellerStatus>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
}

/// Outbox list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// Only messages in this state (`pending`, `delivered`, `dead`).
    #[param(inline)]
    pub status: Option<OutboxStatus>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
}

/// Sellers, optionally of one status, by id.
#[utoipa::path(get, path = "/api/v1/admin/sellers", tag = "admin", security(("bearer" = [])), params(SellerParams),
    responses((status = 200, description = "a page of sellers", body = Page<SellerSummary>)))]
pub async fn sellers(app: App, who: Principal, p: SellerParams) -> Result<Response, Rejection> {
    let query = SellerListQuery {
        status: p.status,
        cursor: p.cursor,
        limit: p.limit,
    };
    Ok(ok(&app
        .market
        .sellers(&who, query)
        .await
        .map_err(reject)?))
}

/// Verifies a seller: its products become visible and sellable.
#[utoipa::path(post, path = "/api/v1/admin/sellers/{id}/verify", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "seller's user id")),
    responses((status = 200, description = "the seller", body = SellerSummary)))]
pub async fn verify(id: UserId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .decide_seller(&who, id, true)
        .await
        .map_err(reject)?))
}

/// Rejects a seller.
#[utoipa::path(post, path = "/api/v1/admin/sellers/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "seller's user id")),
    responses((status = 200, description = "the seller", body = SellerSummary)))]
pub async fn reject_seller(id: UserId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .decide_seller(&who, id, false)
        .await
        .map_err(reject)?))
}

/// Deactivates a user: no sign-in, every login revoked, a seller's products hidden.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "deactivated")))]
pub async fn deactivate_user(id: UserId, app: App, who: Principal) -> Result<Response, Rejection> {
    app.market
        .set_user_active(&who, id, false)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Reactivates a user.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "activated")))]
pub async fn activate_user(id: UserId, app: App, who: Principal) -> Result<Response, Rejection> {
    app.market
        .set_user_active(&who, id, true)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Deactivates a product: it leaves the catalog and cannot be bought.
#[utoipa::path(post, path = "/api/v1/admin/products/{id}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "product id")),
    responses((status = 204, description = "deactivated")))]
pub async fn deactivate_product(
    id: ProductId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    app.market
        .set_product_blocked(&who, id, true)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Reactivates a product.
#[utoipa::path(post, path = "/api/v1/admin/products/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "product id")),
    responses((status = 204, description = "activated")))]
pub async fn activate_product(
    id: ProductId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    app.market
        .set_product_blocked(&who, id, false)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Every order, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin", security(("bearer" = [])), params(OrderParams),
    responses((status = 200, description = "a page of orders", body = Page<Order>)))]
pub async fn orders(app: App, who: Principal, p: OrderParams) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .all_orders(&who, OrderListQuery::from(p))
        .await
        .map_err(reject)?))
}

/// Mail delivery state, newest first; `status=dead` lists what needs attention.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin", security(("bearer" = [])), params(OutboxParams),
    responses((status = 200, description = "a page of messages", body = Page<OutboxMessage>)))]
pub async fn outbox(app: App, who: Principal, p: OutboxParams) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .outbox(&who, p.status, p.cursor.as_deref(), p.limit)
        .await
        .map_err(reject)?))
}

/// Sends a dead message again.
#[utoipa::path(post, path = "/api/v1/admin/outbox/{id}/retry", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, description = "the message, pending again", body = OutboxMessage),
              (status = 409, description = "the message is not dead", body = crate::problem::Problem)))]
pub async fn retry(id: MessageId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .retry_message(&who, id)
        .await
        .map_err(reject)?))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("admin" / "sellers")
        .and(warp::get())
        .and(authed())
        .and(query::<SellerParams>())
        .and_then(sellers);
    let r2 = warp::path!("admin" / "sellers" / UserId / "verify")
        .and(warp::post())
        .and(authed())
        .and_then(verify);
    let r3 = warp::path!("admin" / "sellers" / UserId / "reject")
        .and(warp::post())
        .and(authed())
        .and_then(reject_seller);
    let r4 = warp::path!("admin" / "users" / UserId / "deactivate")
        .and(warp::post())
        .and(authed())
        .and_then(deactivate_user);
    let r5 = warp::path!("admin" / "users" / UserId / "activate")
        .and(warp::post())
        .and(authed())
        .and_then(activate_user);
    let r6 = warp::path!("admin" / "products" / ProductId / "deactivate")
        .and(warp::post())
        .and(authed())
        .and_then(deactivate_product);
    let r7 = warp::path!("admin" / "products" / ProductId / "activate")
        .and(warp::post())
        .and(authed())
        .and_then(activate_product);
    let r8 = warp::path!("admin" / "orders")
        .and(warp::get())
        .and(authed())
        .and(query::<OrderParams>())
        .and_then(orders);
    let r9 = warp::path!("admin" / "outbox")
        .and(warp::get())
        .and(authed())
        .and(query::<OutboxParams>())
        .and_then(outbox);
    let r10 = warp::path!("admin" / "outbox" / MessageId / "retry")
        .and(warp::post())
        .and(authed())
        .and_then(retry);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7, r8, r9, r10)
}
