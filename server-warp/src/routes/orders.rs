//! Orders: the buyer's, the seller's, and their status changes.

use marketplace_core::{Order, OrderId, OrderListQuery, OrderStatus, Page, Principal};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, json, ok, query};
use crate::problem::reject;

/// Order list parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only orders in this status.
    #[param(inline)]
    pub status: Option<OrderStatus>,
}

impl From<OrderParams> for OrderListQuery {
    fn from(p: OrderParams) -> Self {
        OrderListQuery {
            limit: p.limit,
            cursor: p.cursor,
            status: p.status,
        }
    }
}

/// A requested status.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// The next step (`accepted`, `packed`, `shipped`, `delivered`), `cancelled`,
    /// or `returned` to complete a requested return.
    pub status: OrderStatus,
}

/// The buyer's orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(OrderParams),
    responses((status = 200, description = "a page of orders", body = Page<Order>)))]
pub async fn my_orders(app: App, who: Principal, p: OrderParams) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .my_orders(&who, p.into())
        .await
        .map_err(reject)?))
}

/// One of the buyer's orders.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, description = "the order", body = Order)))]
pub async fn my_order(id: OrderId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .buyer_order(&who, id)
        .await
        .map_err(reject)?))
}

/// The buyer cancels a pending order; its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, description = "the cancelled order", body = Order),
              (status = 409, description = "the order is past pending", body = crate::problem::Problem)))]
pub async fn cancel(id: OrderId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .cancel_order(&who, id)
        .await
        .map_err(reject)?))
}

/// The buyer asks to return a delivered order.
#[utoipa::path(post, path = "/api/v1/orders/{id}/return", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, description = "the order, return requested", body = Order),
              (status = 409, description = "the order is not delivered (`invalid_transition`), or its return window has closed (`return_window_closed`)", body = crate::problem::Problem)))]
pub async fn request_return(id: OrderId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .request_return(&who, id)
        .await
        .map_err(reject)?))
}

/// The seller's orders, newest first, optionally of one status.
#[utoipa::path(get, path = "/api/v1/seller/orders", tag = "seller", security(("bearer" = [])), params(OrderParams),
    responses((status = 200, description = "a page of orders", body = Page<Order>)))]
pub async fn seller_orders(
    app: App,
    who: Principal,
    p: OrderParams,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .seller_orders(&who, p.into())
        .await
        .map_err(reject)?))
}

/// One of the seller's orders.
#[utoipa::path(get, path = "/api/v1/seller/orders/{id}", tag = "seller", security(("bearer" = [])),
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, description = "the order", body = Order)))]
pub async fn seller_order(id: OrderId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .seller_order(&who, id)
        .await
        .map_err(reject)?))
}

/// The seller moves an order one step forward, cancels it (while pending or
/// accepted), or completes a requested return.
#[utoipa::path(post, path = "/api/v1/seller/orders/{id}/status", tag = "seller", security(("bearer" = [])), request_body = StatusInput,
    params(("id" = String, Path, description = "order id")),
    responses((status = 200, description = "the updated order", body = Order),
              (status = 409, description = "the transition is not allowed from the current status", body = crate::problem::Problem)))]
pub async fn set_status(
    id: OrderId,
    app: App,
    who: Principal,
    body: StatusInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .set_order_status(&who, id, body.status)
        .await
        .map_err(reject)?))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("orders")
        .and(warp::get())
        .and(authed())
        .and(query::<OrderParams>())
        .and_then(my_orders);
    let r2 = warp::path!("orders" / OrderId)
        .and(warp::get())
        .and(authed())
        .and_then(my_order);
    let r3 = warp::path!("orders" / OrderId / "cancel")
        .and(warp::post())
        .and(authed())
        .and_then(cancel);
    let r4 = warp::path!("orders" / OrderId / "return")
        .and(warp::post())
        .and(authed())
        .and_then(request_return);
    let r5 = warp::path!("seller" / "orders")
        .and(warp::get())
        .and(authed())
        .and(query::<OrderParams>())
        .and_then(seller_orders);
    let r6 = warp::path!("seller" / "orders" / OrderId)
        .and(warp::get())
        .and(authed())
        .and_then(seller_order);
    let r7 = warp::path!("seller" / "orders" / OrderId / "status")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(set_status);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7)
}
