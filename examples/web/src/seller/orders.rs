//! The seller's orders: the list by status, one order with its buyer's
//! address, items and history, and the buttons that move it.
//!
//! The next step an order can take is the library's
//! ([`OrderStatus::next`]); a button posts that status, and whatever status is
//! posted, the library decides whether the order may take it.
//!
//! Each order shows its payment as its buyer sees it. Where the buyer pays
//! before the sellers fulfil (a card through Stripe), an order awaiting its
//! payment cannot be accepted yet: the page says so above the button, and
//! the library's refusal (`payment_pending`) is told in those words.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{Error, OrderId, OrderListQuery, OrderPaymentStatus, OrderStatus, Role};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::page::{
    Fixable, Form, PageError, PageResult, Problem, Query, SeeOther, StatusQuery, form_problem,
    path_id, render_with, status_param,
};
use crate::session::{SignedIn, Viewer};

/// The order pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/seller/orders", get(list))
        .route("/seller/orders/{id}", get(detail))
        .route("/seller/orders/{id}/status", post(set_status))
}

/// The library's refusal to accept an order its buyer has not paid for.
const PAYMENT_PENDING: &str = "payment_pending";

/// A status as a form or a link names it; blank is none.
fn order_status(raw: &str) -> Result<Option<OrderStatus>, PageError> {
    status_param(raw, OrderStatus::parse, "an order status")
}

/// `/seller/orders?status=…`: the store's orders, newest first.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<StatusQuery>,
) -> PageResult {
    let status = order_status(&q.status)?;
    let cursor = q.cursor();
    let page = app
        .market
        .seller_orders(
            &s.principal,
            OrderListQuery {
                cursor: cursor.clone(),
                limit: None,
                status,
            },
        )
        .await?;
    let statuses: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
    Ok(render_with(
        &app,
        &viewer,
        StatusCode::OK,
        "seller/orders.html",
        context! {
            section => "orders",
            orders => Value::from_serialize(&page.items),
            statuses,
            status => status.map(|s| s.as_str()),
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
        },
    ))
}

/// One order, with the problem a button came back with.
async fn order_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    id: OrderId,
    problem: Option<Problem>,
) -> PageResult {
    let order = app.market.seller_order(&s.principal, id).await?;
    // Which buttons to offer, by the library's rule; the library still judges
    // the status a button posts.
    let next = order
        .status
        .next()
        .filter(|n| order.status.can_move(Role::Seller, *n))
        .map(|n| n.as_str());
    let cancellable = order.status.can_move(Role::Seller, OrderStatus::Cancelled);
    // Whether the buyer must pay before the order is accepted: the provider
    // collects upfront, and the payment has not come.
    let payment_first = app.market.payment_provider().collects_upfront()
        && order.payment_status == Some(OrderPaymentStatus::AwaitingPayment);
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "seller/order.html",
        context! {
            section => "orders",
            order => Value::from_serialize(&order),
            next,
            cancellable,
            payment_first,
            me => s.principal.user_id.to_string(),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

async fn detail(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    order_page(&app, &viewer, &s, path_id(&id, "order")?, None).await
}

#[derive(Debug, Deserialize)]
struct StatusForm {
    #[serde(default)]
    status: String,
}

/// A button of the order page: the status it posts, for the library to take
/// or refuse.
async fn set_status(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> PageResult {
    let id: OrderId = path_id(&id, "order")?;
    let moved = match order_status(&f.status) {
        Ok(Some(to)) => app.market.set_order_status(&s.principal, id, to).await,
        Ok(None) => Err(Error::invalid("status", "required", "choose a status")),
        Err(PageError(p)) => return order_page(&app, &viewer, &s, id, Some(p)).await,
    };
    match moved {
        Ok(order) => Ok(SeeOther::to(format!("/seller/orders/{id}"))
            .flash(match order.status {
                OrderStatus::Cancelled => {
                    "The order is cancelled; its stock is back on sale.".to_owned()
                }
                s => format!("The order is now {}.", s.as_str().replace('_', " ")),
            })
            .into_response()),
        Err(e) => {
            let mut problem = form_problem(&e, Fixable::AllButOurs)?;
            if e.code() == PAYMENT_PENDING {
                problem.title = "The buyer has not paid yet".to_owned();
                problem.message = "This order cannot be accepted before its payment arrives. Nothing changed: the order stays pending, its stock held; once the buyer pays, accept it. If the payment does not come in time, the marketplace cancels the order and puts its stock back on sale.".to_owned();
            }
            order_page(&app, &viewer, &s, id, Some(problem)).await
        }
    }
}
