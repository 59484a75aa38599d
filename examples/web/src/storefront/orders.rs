//! Storefront pages: the buyer's orders, newest first and paged, one order's
//! detail with its status history, and the two things a buyer may ask of an
//! order: cancel it, or return it.
//!
//! Each order shows its payment in words (awaiting payment, paid, refunded,
//! not charged...). The page a checkout lands on (`/orders?placed=…`) is its
//! confirmation and the payment step: the amount, where the payment stands,
//! and how to pay it — the manual provider's instructions (on delivery, or by
//! bank transfer quoting the checkout number), or, for a provider that takes
//! the card in the browser, the payment's reference, the card form being the
//! provider's own script where the shop configures one. While the payment is
//! awaited, an order's page shows the same step again.
//!
//! An order is read with the library's `buyer_order`, so another buyer's order
//! is not found, like one that does not exist. Whether an order may be
//! cancelled or returned is the library's to say: the page offers the button
//! only where the status makes it likely, and a refusal is shown beside it.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{
    CheckoutId, Error, OrderId, OrderListQuery, OrderStatus, Payment, PaymentStatus, Role,
};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{blank, with_query};
use crate::App;
use crate::page::{
    Fixable, PageResult, Problem, Query, SeeOther, form_problem, path_id, render_with,
};
use crate::session::{SignedIn, Viewer};

/// Orders on one page of the history.
const PAGE_SIZE: u32 = 20;

/// The orders pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/orders", get(orders))
        .route("/orders/{id}", get(order))
        .route("/orders/{id}/cancel", post(cancel))
        .route("/orders/{id}/return", post(request_return))
}

#[derive(Debug, Default, Deserialize)]
struct OrdersParams {
    #[serde(default)]
    cursor: String,
    /// The checkout just placed, to confirm.
    #[serde(default)]
    placed: String,
}

/// `/orders`.
async fn orders(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Query(q): Query<OrdersParams>,
) -> PageResult {
    let page = app
        .market
        .my_orders(
            &who.principal,
            OrderListQuery {
                limit: Some(PAGE_SIZE),
                cursor: blank(&q.cursor),
                status: None,
            },
        )
        .await?;
    let placed: Vec<_> = page
        .items
        .iter()
        .filter(|o| !q.placed.is_empty() && o.checkout_id.to_string() == q.placed.trim())
        .collect();
    let payment = match placed.first() {
        Some(o) => checkout_payment(&app, &who, o.checkout_id).await?,
        None => None,
    };
    let next_url = page
        .next_cursor
        .as_deref()
        .map(|c| with_query("/orders", &[("cursor", c)]));
    Ok(render_with(
        &app,
        &viewer,
        StatusCode::OK,
        "storefront/orders.html",
        context! {
            orders => Value::from_serialize(&page.items),
            placed => Value::from_serialize(&placed),
            payment => payment.as_ref().map(Value::from_serialize),
            next_url,
            paged => !q.cursor.is_empty(),
        },
    ))
}

/// `/orders/{id}`.
async fn order(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = path_id(&id, "order")?;
    show_order(&app, &viewer, &who, id, StatusCode::OK, None).await
}

async fn show_order(
    app: &App,
    viewer: &Viewer,
    who: &SignedIn,
    id: OrderId,
    status: StatusCode,
    problem: Option<Problem>,
) -> PageResult {
    let order = app.market.buyer_order(&who.principal, id).await?;
    // How to pay, while the payment is awaited.
    let payment = checkout_payment(app, who, order.checkout_id)
        .await?
        .filter(|p| p.status == PaymentStatus::AwaitingPayment && order.status.holds_stock());
    Ok(render_with(
        app,
        viewer,
        status,
        "storefront/order.html",
        context! {
            // Offers, not rules: the library decides when the button is used.
            can_cancel => order.status.can_move(Role::Buyer, OrderStatus::Cancelled),
            can_return => order.status.can_move(Role::Buyer, OrderStatus::ReturnRequested),
            order => Value::from_serialize(&order),
            payment => payment.as_ref().map(Value::from_serialize),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// The payment of the buyer's checkout `id`; `None` for a checkout without
/// one (placed before payments were taken).
async fn checkout_payment(
    app: &App,
    who: &SignedIn,
    id: CheckoutId,
) -> Result<Option<Payment>, Error> {
    match app.market.checkout_payment(&who.principal, id).await {
        Ok(p) => Ok(Some(p)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `POST /orders/{id}/cancel`.
async fn cancel(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = path_id(&id, "order")?;
    let done = app.market.cancel_order(&who.principal, id).await;
    after_button(
        &app,
        &viewer,
        &who,
        id,
        done,
        "Your order is cancelled; nothing will be sent.",
    )
    .await
}

/// `POST /orders/{id}/return`.
async fn request_return(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id = path_id(&id, "order")?;
    let done = app.market.request_return(&who.principal, id).await;
    after_button(
        &app,
        &viewer,
        &who,
        id,
        done,
        "Your return is requested; the seller will tell you how to send it back.",
    )
    .await
}

/// The answer to an order page's button: back to the order with `flash` when
/// the library `done` it, or the order again with the reason it refused.
async fn after_button<T>(
    app: &App,
    viewer: &Viewer,
    who: &SignedIn,
    id: OrderId,
    done: Result<T, Error>,
    flash: &str,
) -> PageResult {
    match done {
        Ok(_) => Ok(SeeOther::to(format!("/orders/{id}"))
            .flash(flash)
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            show_order(app, viewer, who, id, problem.status, Some(problem)).await
        }
    }
}
