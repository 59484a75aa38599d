//! Signing up, in and out; the account page ([`profile`]: name, phone,
//! addresses, the verification mail) and the pages the account mails link to
//! ([`tokens`]: confirm an email address, choose a new password, ask for one).

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use marketplace_core::{NewAccount, Role};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::page::{Form, PageResult, Problem, Query, SeeOther, local_path, render, render_with};
use crate::session::{self, Viewer};

pub mod profile;
pub mod tokens;

/// The account pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-up", get(sign_up_page).post(sign_up))
        .route("/sign-out", post(sign_out))
        .merge(profile::routes())
        .merge(tokens::routes())
}

#[derive(Debug, Default, Deserialize)]
struct Next {
    next: Option<String>,
}

async fn sign_in_page(State(app): State<App>, viewer: Viewer, Query(q): Query<Next>) -> PageResult {
    let next = local_path(q.next.as_deref(), "/");
    Ok(render(
        &app,
        &viewer,
        "storefront/sign_in.html",
        context! { next, email => "" },
    ))
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// Where an account lands after signing in, unless it came from a page.
fn home_of(role: Role) -> &'static str {
    match role {
        Role::Seller => "/seller",
        Role::Admin => "/admin",
        _ => "/",
    }
}

async fn sign_in(State(app): State<App>, viewer: Viewer, Form(f): Form<SignInForm>) -> PageResult {
    // Failures are throttled per account and per address the connection came
    // from (behind a proxy, the proxy's).
    match app.market.login(&f.email, &f.password, viewer.client).await {
        Ok(pair) => {
            let role = app
                .market
                .authenticate(&pair.access_token)
                .await
                .map(|p| p.role)
                .unwrap_or(Role::Buyer);
            let next = local_path(f.next.as_deref(), home_of(role)).to_owned();
            // A login from the sign-in page itself goes home, not back to it.
            let next = if next.starts_with("/sign-") {
                home_of(role).to_owned()
            } else {
                next
            };
            Ok(SeeOther::to(next)
                .cookies(session::signed_in_cookies(&app, &pair))
                .flash("You are signed in.")
                .into_response())
        }
        Err(e) => {
            let problem = Problem::from(&e);
            let status = problem.status;
            if status.is_server_error() {
                return Err(problem.into());
            }
            Ok(render_with(
                &app,
                &viewer,
                status,
                "storefront/sign_in.html",
                context! {
                    next => local_path(f.next.as_deref(), "/"),
                    email => f.email,
                    problem => Value::from_serialize(&problem),
                },
            ))
        }
    }
}

async fn sign_up_page(State(app): State<App>, viewer: Viewer) -> PageResult {
    Ok(render(
        &app,
        &viewer,
        "storefront/sign_up.html",
        context! { form => context! { role => "buyer" } },
    ))
}

#[derive(Deserialize, serde::Serialize)]
struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    store_name: String,
}

async fn sign_up(State(app): State<App>, viewer: Viewer, Form(f): Form<SignUpForm>) -> PageResult {
    let role = match f.role.as_str() {
        "seller" => Role::Seller,
        _ => Role::Buyer,
    };
    let blank = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let account = NewAccount {
        email: f.email.clone(),
        password: f.password.clone(),
        role,
        name: blank(&f.name),
        store_name: if role == Role::Seller {
            blank(&f.store_name)
        } else {
            None
        },
    };
    let refused = |problem: Problem| {
        let status = problem.status;
        render_with(
            &app,
            &viewer,
            status,
            "storefront/sign_up.html",
            context! { form => Value::from_serialize(&f), problem => Value::from_serialize(&problem) },
        )
    };
    match app.market.register(account).await {
        Ok(_) => match app.market.login(&f.email, &f.password, None).await {
            Ok(pair) => {
                let message = match role {
                    Role::Seller => {
                        "Welcome! An admin reviews new stores; you can list products once yours is verified. We sent you a mail to confirm your address."
                    }
                    _ => "Welcome! We sent you a mail to confirm your address.",
                };
                Ok(SeeOther::to(home_of(role))
                    .cookies(session::signed_in_cookies(&app, &pair))
                    .flash(message)
                    .into_response())
            }
            Err(e) => Err(e.into()),
        },
        Err(e) => {
            let problem = Problem::from(&e);
            if problem.status.is_server_error() {
                return Err(problem.into());
            }
            Ok(refused(problem))
        }
    }
}

async fn sign_out(State(app): State<App>, jar: CookieJar) -> PageResult {
    // The session layer has checked the CSRF token. The login ends in the
    // library, so its tokens stop working everywhere, not only in this browser.
    if let Some(refresh) = jar.get(session::REFRESH_COOKIE) {
        app.market.logout(refresh.value()).await?;
    }
    Ok(SeeOther::to("/")
        .cookies(session::signed_out_cookies(&app))
        .flash("You are signed out.")
        .into_response())
}
