//! The two pages the account mails link to, for a marketplace run without a web
//! storefront: `/verify-email` and `/reset-password`. Each shows a small form
//! (no JavaScript) that completes the action with the mailed token. Opening the
//! link changes nothing by itself, so a mail scanner that follows links does not
//! spend the token; the button does.
//!
//! These are pages, not API operations: the API has the same actions under
//! `/api/v1/auth/`.

use std::collections::HashMap;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::App;

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already escaped).
fn page(status: http::StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;line-height:1.5}}\
         label,input,button{{display:block;width:100%;box-sizing:border-box;margin:.4rem 0}}\
         input,button{{padding:.6rem;font-size:1rem}}.error{{color:#a40000}}</style>\
         </head><body><main><h1>{title}</h1>{body}</main></body></html>\n",
        title = escape(title),
    );
    let mut res = Response::new(html.into());
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The token is in the URL: keep it out of other sites' logs and caches.
    h.insert(
        "referrer-policy",
        http::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "content-security-policy",
        http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    res
}

fn token_of(form: &HashMap<String, String>) -> &str {
    form.get("token").map_or("", String::as_str)
}

/// `GET /verify-email?token=…`: a button that confirms the address.
async fn verify_form(query: HashMap<String, String>) -> Result<Response, Rejection> {
    let token = escape(token_of(&query));
    Ok(page(
        http::StatusCode::OK,
        "Confirm your email address",
        &format!(
            "<form method=\"post\" action=\"/verify-email\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <button type=\"submit\">Confirm my email address</button></form>"
        ),
    ))
}

/// `POST /verify-email`: confirms the address with the token.
async fn verify_submit(app: App, form: HashMap<String, String>) -> Result<Response, Rejection> {
    Ok(match app.market.verify_email(token_of(&form)).await {
        Ok(()) => page(
            http::StatusCode::OK,
            "Email address confirmed",
            "<p>Thank you: your email address is confirmed. You can close this page.</p>",
        ),
        Err(e) => refused(
            &e,
            "This link has already been used or has expired. Sign in and ask for a new one.",
        ),
    })
}

/// `GET /reset-password?token=…`: a form for the new password.
async fn reset_form(query: HashMap<String, String>) -> Result<Response, Rejection> {
    Ok(reset_page(http::StatusCode::OK, token_of(&query), ""))
}

fn reset_page(status: http::StatusCode, token: &str, error: &str) -> Response {
    let token = escape(token);
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(error))
    };
    page(
        status,
        "Choose a new password",
        &format!(
            "{error}<form method=\"post\" action=\"/reset-password\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <label for=\"password\">New password (8 to 128 characters)</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"8\" maxlength=\"128\" required autofocus>\
             <button type=\"submit\">Set the new password</button></form>"
        ),
    )
}

/// `POST /reset-password`: sets the new password with the token.
async fn reset_submit(app: App, form: HashMap<String, String>) -> Result<Response, Rejection> {
    let password = form.get("password").map_or("", String::as_str);
    Ok(
        match app.market.reset_password(token_of(&form), password).await {
            Ok(()) => page(
                http::StatusCode::OK,
                "Password changed",
                "<p>Your password is changed and every earlier sign-in has ended. Sign in with the new password.</p>",
            ),
            Err(marketplace_core::Error::Validation(fields)) => {
                let why = fields
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                reset_page(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    token_of(&form),
                    &format!("The password {why}."),
                )
            }
            Err(e) => refused(
                &e,
                "This link has already been used or has expired. Ask for a new password reset.",
            ),
        },
    )
}

/// The page for a refused action: the token's own message, or a plain apology
/// for a failure of ours (logged, never shown).
fn refused(e: &marketplace_core::Error, token_message: &str) -> Response {
    let status = crate::problem::status_of(e);
    if status.is_server_error() {
        tracing::error!(error = %e, "account page failed");
        return page(
            status,
            "Something went wrong",
            "<p>We could not complete this just now. Please try the link again in a moment.</p>",
        );
    }
    page(
        status,
        "This link does not work",
        &format!("<p>{}</p>", escape(token_message)),
    )
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let with = || crate::extract::app(a.clone());
    // A form is small: 8 KiB holds a token and a password many times over.
    let form = || warp::body::content_length_limit(8 * 1024).and(warp::body::form());
    let r1 = warp::path!("verify-email")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(verify_form);
    let r2 = warp::path!("verify-email")
        .and(warp::post())
        .and(with())
        .and(form())
        .and_then(verify_submit);
    let r3 = warp::path!("reset-password")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(reset_form);
    let r4 = warp::path!("reset-password")
        .and(warp::post())
        .and(with())
        .and(form())
        .and_then(reset_submit);
    crate::any_of!(r1, r2, r3, r4)
}
