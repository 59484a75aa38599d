//! Sellers and accounts: the sellers to verify or reject, an account found by
//! email, and deactivation (which ends every login of the account and takes a
//! seller's products out of the shop) or reactivation.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{SellerListQuery, SellerStatus, UserId};
use minijinja::{Value, context};
use serde::Deserialize;

use super::Back;
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Query, SeeOther, StatusQuery, form_problem, path_id, render,
    render_with, status_param,
};
use crate::session::{SignedIn, Viewer};

/// The seller and account pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/sellers", get(sellers))
        .route("/admin/sellers/{id}/verify", post(verify))
        .route("/admin/sellers/{id}/reject", post(reject))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}/deactivate", post(deactivate))
        .route("/admin/users/{id}/activate", post(activate))
}

/// `/admin/sellers?status=…`: sellers by id, with their decisions.
async fn sellers(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<StatusQuery>,
) -> PageResult {
    let status = status_param(&q.status, SellerStatus::parse, "a seller status")?;
    let cursor = q.cursor();
    let page = app
        .market
        .sellers(
            &s.principal,
            SellerListQuery {
                status,
                cursor: cursor.clone(),
                limit: None,
            },
        )
        .await?;
    let statuses: Vec<&str> = [
        SellerStatus::Pending,
        SellerStatus::Verified,
        SellerStatus::Rejected,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    Ok(render(
        &app,
        &viewer,
        "admin/sellers.html",
        context! {
            section => "sellers",
            sellers => Value::from_serialize(&page.items),
            statuses,
            status => status.map(|s| s.as_str()),
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
        },
    ))
}

async fn decide(app: &App, s: &SignedIn, id: &str, back: &Back, verified: bool) -> PageResult {
    let id: UserId = path_id(id, "seller")?;
    let seller = app.market.decide_seller(&s.principal, id, verified).await?;
    let message = if verified {
        format!(
            "{} is verified: its listed products are in the shop. The seller was told by mail.",
            seller.store_name
        )
    } else {
        format!(
            "{} is rejected: its products are out of the shop. The seller was told by mail.",
            seller.store_name
        )
    };
    Ok(SeeOther::to(back.to("/admin/sellers"))
        .flash(message)
        .into_response())
}

async fn verify(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    decide(&app, &s, &id, &back, true).await
}

async fn reject(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    decide(&app, &s, &id, &back, false).await
}

#[derive(Debug, Default, Deserialize)]
struct UsersQuery {
    #[serde(default)]
    email: String,
}

/// `/admin/users?email=…`: one account found by its email.
async fn users(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<UsersQuery>,
) -> PageResult {
    let email = q.email.trim();
    if email.is_empty() {
        return Ok(render(
            &app,
            &viewer,
            "admin/users.html",
            context! { section => "users", email },
        ));
    }
    match app.market.find_user(&s.principal, email).await {
        Ok(user) => Ok(render(
            &app,
            &viewer,
            "admin/users.html",
            context! { section => "users", email, user => Value::from_serialize(&user) },
        )),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            Ok(render_with(
                &app,
                &viewer,
                problem.status,
                "admin/users.html",
                context! { section => "users", email, problem => Value::from_serialize(&problem) },
            ))
        }
    }
}

async fn set_active(app: &App, s: &SignedIn, id: &str, back: &Back, active: bool) -> PageResult {
    let id: UserId = path_id(id, "user")?;
    app.market.set_user_active(&s.principal, id, active).await?;
    let message = if active {
        "The account is active again: it can sign in, and a seller's products are back in the shop."
    } else {
        "The account is deactivated: every login of it has ended, it cannot sign in, and a seller's products are out of the shop."
    };
    Ok(SeeOther::to(back.to("/admin/users"))
        .flash(message)
        .into_response())
}

async fn deactivate(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    set_active(&app, &s, &id, &back, false).await
}

async fn activate(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    set_active(&app, &s, &id, &back, true).await
}
