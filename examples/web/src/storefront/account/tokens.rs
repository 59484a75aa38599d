//! The pages the account mails link to: `/verify-email?token=…` and
//! `/reset-password?token=…`, and `/forgot-password`, which asks for the
//! second mail.
//!
//! Opening a mailed link changes nothing by itself (a mail scanner that
//! follows links does not spend the token); the page's button sends the token
//! back. The token is in the address, so these pages tell the browser not to
//! pass their address on to anyone (`Referrer-Policy: no-referrer`).
//! `/forgot-password` answers the same whether or not an account has the
//! address, so it tells nobody which addresses have accounts.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use marketplace_core::{Error, ErrorKind};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::page::{Form, PageResult, Problem, Query, SeeOther, render_with};
use crate::session::{self, Viewer};

/// The token pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/verify-email", get(verify_page).post(verify))
        .route("/reset-password", get(reset_page).post(reset))
        .route("/forgot-password", get(forgot_page).post(forgot))
}

#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

/// `response`, with its address kept from other sites.
fn private(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The problem of a token the library did not take.
fn spent(e: &Error, ask_again: &str) -> Problem {
    let mut problem = Problem::from(e);
    if e.kind() == ErrorKind::InvalidToken {
        problem.message = ask_again.to_owned();
    }
    problem
}

/// The page `template` of a mailed link: its form with `token`, and the
/// problem the token came back with.
fn show_token_page(
    app: &App,
    viewer: &Viewer,
    template: &str,
    status: StatusCode,
    token: &str,
    problem: Option<Problem>,
) -> Response {
    private(render_with(
        app,
        viewer,
        status,
        template,
        context! { token, problem => problem.as_ref().map(Value::from_serialize) },
    ))
}

const VERIFY: &str = "storefront/verify_email.html";
const RESET: &str = "storefront/reset_password.html";

/// `GET /verify-email?token=…`.
async fn verify_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<TokenForm>,
) -> PageResult {
    Ok(show_token_page(
        &app,
        &viewer,
        VERIFY,
        StatusCode::OK,
        &q.token,
        None,
    ))
}

/// `POST /verify-email`.
async fn verify(State(app): State<App>, viewer: Viewer, Form(f): Form<TokenForm>) -> PageResult {
    match app.market.verify_email(f.token.trim()).await {
        Ok(()) => {
            let to = if viewer.signed_in.is_some() {
                "/account"
            } else {
                "/"
            };
            Ok(SeeOther::to(to)
                .flash("Thank you: your email address is confirmed.")
                .into_response())
        }
        Err(e) if e.kind() == ErrorKind::InvalidToken => {
            let problem = spent(
                &e,
                "This link has already been used or has expired. Sign in and ask for a new one on your account page.",
            );
            Ok(show_token_page(
                &app,
                &viewer,
                VERIFY,
                problem.status,
                &f.token,
                Some(problem),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /reset-password?token=…`.
async fn reset_page(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<TokenForm>,
) -> PageResult {
    Ok(show_token_page(
        &app,
        &viewer,
        RESET,
        StatusCode::OK,
        &q.token,
        None,
    ))
}

/// `POST /reset-password`: every login of the account ends, this browser's
/// too.
async fn reset(State(app): State<App>, viewer: Viewer, Form(f): Form<TokenForm>) -> PageResult {
    match app.market.reset_password(f.token.trim(), &f.password).await {
        Ok(()) => Ok(SeeOther::to("/sign-in")
            .cookies(session::signed_out_cookies(&app))
            .flash("Your password is changed and every earlier sign-in has ended. Sign in with the new password.")
            .into_response()),
        Err(e) if matches!(e.kind(), ErrorKind::InvalidToken | ErrorKind::Invalid) => {
            let problem = spent(
                &e,
                "This link has already been used or has expired. Ask for a new one below.",
            );
            Ok(show_token_page(
                &app,
                &viewer,
                RESET,
                problem.status,
                &f.token,
                Some(problem),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// `GET /forgot-password`.
async fn forgot_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    Ok(render_with(
        &app,
        &viewer,
        StatusCode::OK,
        "storefront/forgot_password.html",
        context! {},
    ))
}

/// `POST /forgot-password`: the same answer for every address.
async fn forgot(State(app): State<App>, Form(f): Form<ForgotForm>) -> PageResult {
    app.market.request_password_reset(&f.email).await?;
    Ok(SeeOther::to("/forgot-password")
        .flash("If an account uses this address, we have sent it a link to choose a new password. Please look in your mail; the link works once, for a limited time.")
        .into_response())
}
