//! Mail delivery: the outbox by state, newest first, and the retry of a
//! message the worker gave up on.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{Error, MessageId, OutboxStatus};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::page::{Form, PageError, PageResult, Query, SeeOther, local_path, render};
use crate::session::{SignedIn, Viewer};

/// The outbox pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/outbox", get(list))
        .route("/admin/outbox/{id}/retry", post(retry))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: String,
    cursor: Option<String>,
}

/// `/admin/outbox?status=…`: messages, newest first.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<ListQuery>,
) -> PageResult {
    let status = match q.status.trim() {
        "" => None,
        raw => Some(OutboxStatus::parse(raw).ok_or_else(|| {
            PageError::from(Error::invalid(
                "status",
                "invalid",
                format!("“{raw}” is not a delivery state"),
            ))
        })?),
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
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

#[derive(Debug, Default, Deserialize)]
struct Back {
    next: Option<String>,
}

async fn retry(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    let id: MessageId = id
        .parse()
        .map_err(|_| PageError::from(Error::NotFound("message")))?;
    let message = app.market.retry_message(&s.principal, id).await?;
    Ok(SeeOther::to(local_path(
        back.next.as_deref(),
        "/admin/outbox?status=dead",
    ))
    .flash(format!(
        "The message to {} is queued again; the mail worker sends it shortly.",
        message.recipient
    ))
    .into_response())
}
