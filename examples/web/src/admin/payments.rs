//! Buyers' payments: one per checkout, newest first and by status, each with
//! its amounts and refunds, and the button that records a manual payment paid
//! (the buyer paid on delivery, or the bank transfer quoting the checkout
//! arrived).
//!
//! Marking paid is the library's `mark_payment_paid`: it captures the payment
//! for the checkout's orders still live in one conditional step, so pressing
//! the button twice captures once, and the second press is refused with the
//! payment's status (`payment_settled`). A payment through a provider that
//! reports payments itself (Stripe) is never marked paid here.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::payment::PaymentListQuery;
use marketplace_core::{CheckoutId, Error, Payment, PaymentId, PaymentStatus};
use minijinja::{Value, context};
use serde::Deserialize;

use super::Back;
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Problem, Query, SeeOther, form_problem, path_id, render_with,
    status_param,
};
use crate::session::{SignedIn, Viewer};

/// The payment pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/payments", get(list))
        .route("/admin/payments/{id}", get(detail))
        .route("/admin/payments/{id}/paid", post(paid))
}

/// The list's filter, cursor, and the checkout looked up:
/// `?status=…&cursor=…` or `?checkout=…`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PaymentsQuery {
    /// A payment status; blank is every status.
    status: String,
    /// Where the page starts; none or blank is the first page.
    cursor: Option<String>,
    /// A checkout number, as a bank transfer quotes it: its payment is shown.
    checkout: String,
}

/// `/admin/payments?status=…`: payments newest first; `?checkout=…` goes to
/// that checkout's payment.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<PaymentsQuery>,
) -> PageResult {
    let who = &s.principal;
    let status = status_param(&q.status, PaymentStatus::parse, "a payment status")?;
    let mut problem = None;
    let checkout = q.checkout.trim();
    if !checkout.is_empty() {
        let found = match checkout.parse::<CheckoutId>() {
            Ok(id) => app.market.checkout_payment(who, id).await,
            Err(_) => Err(Error::NotFound("payment")),
        };
        match found {
            Ok(p) => return Ok(SeeOther::to(format!("/admin/payments/{}", p.id)).into_response()),
            Err(Error::NotFound(_)) => {
                problem = Some(Problem::new(
                    StatusCode::NOT_FOUND,
                    "No payment has this checkout number",
                    "Check the number the buyer quoted: it is the checkout's, as the payment instructions give it.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let cursor = q.cursor.clone().filter(|c| !c.is_empty());
    let page = app
        .market
        .payments(
            who,
            PaymentListQuery {
                limit: None,
                cursor: cursor.clone(),
                status,
            },
        )
        .await?;
    let statuses: Vec<&str> = PaymentStatus::ALL.iter().map(|s| s.as_str()).collect();
    let code = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        &app,
        &viewer,
        code,
        "admin/payments.html",
        context! {
            section => "payments",
            payments => Value::from_serialize(&page.items),
            statuses,
            status => status.map(|s| s.as_str()),
            checkout,
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// Whether an admin may record `p` paid here: a manual payment the buyer has
/// not paid yet. An offer, not a rule: the library still judges the press.
fn can_mark_paid(p: &Payment) -> bool {
    p.provider == "manual"
        && matches!(
            p.status,
            PaymentStatus::AwaitingPayment | PaymentStatus::Authorized
        )
}

/// One payment, with what its button came back with.
async fn payment_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    id: PaymentId,
    problem: Option<Problem>,
) -> PageResult {
    let payment = app.market.payment(&s.principal, id).await?;
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "admin/payment.html",
        context! {
            section => "payments",
            can_mark_paid => can_mark_paid(&payment),
            // The client secret is the buyer's browser's, not the page's.
            payment => Value::from_serialize(Payment {
                client_secret: None,
                ..payment
            }),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `/admin/payments/{id}`: one payment and its refunds.
async fn detail(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    payment_page(&app, &viewer, &s, path_id(&id, "payment")?, None).await
}

/// Records a manual payment paid: captured for the orders still live.
async fn paid(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    let id: PaymentId = path_id(&id, "payment")?;
    match app.market.mark_payment_paid(&s.principal, id).await {
        Ok(p) => {
            let orders = match p.captured_orders.len() {
                1 => "its order".to_owned(),
                n => format!("its {n} orders"),
            };
            let fallback = format!("/admin/payments/{id}");
            Ok(SeeOther::to(back.to(&fallback))
                .flash(format!(
                    "The payment is marked paid: {} is captured for {orders}.",
                    p.captured
                ))
                .into_response())
        }
        Err(e) => {
            // On the payment's page (a payment nobody has is that page's 404).
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            payment_page(&app, &viewer, &s, id, Some(problem)).await
        }
    }
}
