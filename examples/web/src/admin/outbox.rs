//! Mail delivery: the outbox by state, newest first, and the retry of a
//! message the worker gave up on.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{MessageId, OutboxStatus};
use minijinja::{Value, context};

use super::Back;
use crate::App;
use crate::page::{Form, PageResult, Query, SeeOther, StatusQuery, path_id, render, status_param};
use crate::session::{SignedIn, Viewer};

/// The outbox pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/outbox", get(list))
        .route("/admin/outbox/{id}/retry", post(retry))
}

/// `/admin/outbox?status=…`: messages, newest first.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<StatusQuery>,
) -> PageResult {
    let status = status_param(&q.status, OutboxStatus::parse, "a delivery state")?;
    let cursor = q.cursor();
    let page = app
        .market
        .outbox(&s.principal, status, cursor.as_deref(), None)
        .await?;
    let statuses: Vec<&str> = [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Dead,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    Ok(render(
        &app,
        &viewer,
        "admin/outbox.html",
        context! {
            section => "outbox",
            messages => Value::from_serialize(&page.items),
            statuses,
            status => status.map(|s| s.as_str()),
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
        },
    ))
}

async fn retry(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    let id: MessageId = path_id(&id, "message")?;
    let message = app.market.retry_message(&s.principal, id).await?;
    Ok(SeeOther::to(back.to("/admin/outbox?status=dead"))
        .flash(format!(
            "The message to {} is queued again; the mail worker sends it shortly.",
            message.recipient
        ))
        .into_response())
}
