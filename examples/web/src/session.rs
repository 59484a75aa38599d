//! Who is looking at a page: the signed-in account, kept in cookies, and the
//! CSRF token every form posts back.
//!
//! A session is the library's own login (a [`TokenPair`]): the access token
//! and the refresh token sit in two `HttpOnly`, `SameSite=Lax` cookies
//! (`Secure` when the storefront is served over https). Every page
//! authenticates the access token with the library; once it has expired the
//! refresh token is rotated and both cookies are replaced, so a session lasts
//! as long as the library's refresh tokens do, and ends with them (signing
//! out, a password reset or a deactivation ends it everywhere at once).
//!
//! CSRF: every browser gets a random token in a cookie of its own, and every
//! form carries it back in a hidden field named `csrf` (a multipart form, in
//! its action's query string). A state-changing request whose field does not
//! match the cookie, or that a browser marks as cross-site
//! (`Sec-Fetch-Site: cross-site`), is refused before any handler runs. A
//! foreign site can make a browser send the cookie, but cannot read it to fill
//! the field.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use marketplace_core::{ErrorKind, Principal, TokenPair, User, deadline};
use rand::RngCore;

use crate::App;
use crate::page::{self, Problem};

/// The cookie holding the access token.
pub const ACCESS_COOKIE: &str = "mp_access";
/// The cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "mp_refresh";
/// The cookie holding the browser's CSRF token.
pub const CSRF_COOKIE: &str = "mp_csrf";
/// The cookie carrying a one-time message to the next page.
pub const FLASH_COOKIE: &str = "mp_flash";
/// The form field (or, for multipart forms, query parameter) that carries the
/// CSRF token back.
pub const CSRF_FIELD: &str = "csrf";

/// The account a page is shown to.
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// Who, as the library authorizes it.
    pub principal: Principal,
    /// The account, for its name, email and seller status.
    pub user: User,
}

/// Everything a page knows about the browser asking for it.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The signed-in account, if any.
    pub signed_in: Option<SignedIn>,
    /// The browser's CSRF token, for the forms of the page.
    pub csrf: String,
    /// A message left by the previous request (after a redirect).
    pub flash: Option<String>,
    /// The path and query asked for, to come back to after signing in.
    pub path: String,
    /// The address the request came from, when the server knows it (login
    /// throttling counts failures per address too).
    pub client: Option<std::net::IpAddr>,
}

impl Viewer {
    /// The signed-in principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.signed_in.as_ref().map(|s| &s.principal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Viewer, Response> {
        parts.extensions.get::<Viewer>().cloned().ok_or_else(|| {
            tracing::error!("a page was routed outside the session layer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

/// The signed-in account a page needs; without one the browser is sent to sign
/// in, and back here afterwards.
impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<SignedIn, Response> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        viewer
            .signed_in
            .ok_or_else(|| sign_in_redirect(&viewer.path).into_response())
    }
}

/// Where a browser is sent to sign in before coming back to `path`.
pub fn sign_in_redirect(path: &str) -> Redirect {
    let next: String = url_encode(path);
    Redirect::to(&format!("/sign-in?next={next}"))
}

/// Percent-encodes `s` (all but ASCII letters and digits) for a query string
/// or a cookie value.
pub fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The cookies that hold a new login.
pub fn signed_in_cookies(app: &App, pair: &TokenPair) -> Vec<Cookie<'static>> {
    let max_age = app.market.config().auth.refresh_ttl;
    [
        (ACCESS_COOKIE, pair.access_token.clone()),
        (REFRESH_COOKIE, pair.refresh_token.clone()),
    ]
    .into_iter()
    .map(|(name, value)| {
        let mut c = cookie(app, name, value);
        c.set_max_age(cookie::time::Duration::seconds(max_age.num_seconds()));
        c
    })
    .collect()
}

/// The cookies that end a login in this browser.
pub fn signed_out_cookies(app: &App) -> Vec<Cookie<'static>> {
    [ACCESS_COOKIE, REFRESH_COOKIE]
        .into_iter()
        .map(|name| expired(app, name))
        .collect()
}

/// A cookie of this site: `HttpOnly`, `SameSite=Lax`, the whole site, and
/// `Secure` over https.
pub fn cookie(app: &App, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(app.secure_cookies)
        .build()
}

/// A cookie that removes `name` from the browser.
pub fn expired(app: &App, name: &'static str) -> Cookie<'static> {
    let mut c = cookie(app, name, String::new());
    c.make_removal();
    c
}

/// The session layer: finds who is signed in (rotating an expired login),
/// gives the browser a CSRF token and checks it on every state-changing
/// request, and renders the page of a refusal a handler returned.
///
/// The whole request runs under its deadline ([`App::request_timeout`] from
/// now, see [`marketplace_core::deadline`]), so the storage retries stop there.
/// The handler (with the form it reads) is also cut off at that instant and
/// answered with the 503 page; dropping it at an `.await` is what a crash
/// would do there, which every flow of the library survives. Finding who is
/// signed in is not cut off: a refresh token rotated in the store must reach
/// the browser.
pub async fn layer(State(app): State<App>, req: Request, next: Next) -> Response {
    match app.request_timeout {
        Some(timeout) => {
            let at = tokio::time::Instant::now() + timeout;
            deadline::scope(at, session(app, req, next, Some(at))).await
        }
        None => session(app, req, next, None).await,
    }
}

/// [`layer`], under the request deadline `at` when there is one.
async fn session(app: App, req: Request, next: Next, at: Option<tokio::time::Instant>) -> Response {
    let jar = CookieJar::from_headers(req.headers());
    let mut cookies = Vec::new();
    let signed_in = resolve(&app, &jar, &mut cookies).await;
    let csrf = match jar.get(CSRF_COOKIE) {
        Some(c) if is_token(c.value()) => c.value().to_owned(),
        _ => {
            let token = new_token();
            cookies.push(cookie(&app, CSRF_COOKIE, token.clone()));
            token
        }
    };
    let flash = jar
        .get(FLASH_COOKIE)
        // The jar has already percent-decoded the value (see `flash_cookie`).
        .map(|c| c.value().to_owned())
        .filter(|m| !m.is_empty());
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| app.trusted_proxies.client(c.0.ip(), req.headers()));
    let viewer = Viewer {
        client,
        signed_in,
        csrf,
        flash,
        path,
    };

    let handled = {
        let (viewer, max_body) = (viewer.clone(), app.max_body);
        async move {
            let mut req = req;
            if is_state_changing(req.method()) {
                match checked(req, &viewer.csrf, max_body).await {
                    Ok(checked) => {
                        req = checked;
                        req.extensions_mut().insert(viewer);
                        next.run(req).await
                    }
                    Err(problem) => problem.into_response(),
                }
            } else {
                req.extensions_mut().insert(viewer);
                next.run(req).await
            }
        }
    };
    let mut response = match at {
        Some(at) => deadline::until(at, handled)
            .await
            .unwrap_or_else(|exceeded| {
                tracing::warn!("page cut off at its deadline");
                Problem::from(&marketplace_core::Error::from(exceeded)).into_response()
            }),
        None => handled.await,
    };

    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = page::problem_page(&app, &viewer, problem);
    }
    // The message was shown on this page; a redirect carries it on.
    if viewer.flash.is_some() && !response.status().is_redirection() {
        cookies.push(expired(&app, FLASH_COOKIE));
    }
    // This layer's cookies first: a handler's own (signing in or out) come
    // later and win.
    let theirs: Vec<HeaderValue> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let headers = response.headers_mut();
    headers.remove(header::SET_COOKIE);
    append_cookies(headers, &cookies);
    for v in theirs {
        headers.append(header::SET_COOKIE, v);
    }
    // Pages show who is signed in: never to be kept by a shared cache.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Appends `cookies` as `Set-Cookie` headers.
pub fn append_cookies(headers: &mut HeaderMap, cookies: &[Cookie<'static>]) {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// The login the cookies hold, rotated when its access token has expired.
async fn resolve(
    app: &App,
    jar: &CookieJar,
    cookies: &mut Vec<Cookie<'static>>,
) -> Option<SignedIn> {
    let market = &app.market;
    if let Some(access) = jar.get(ACCESS_COOKIE) {
        match market.authenticate(access.value()).await {
            Ok(principal) => return account(app, principal).await,
            // The store cannot answer: keep the cookies for the next request.
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
                return None;
            }
            Err(_) => {}
        }
    }
    let refresh = jar.get(REFRESH_COOKIE)?;
    match market.refresh(refresh.value()).await {
        Ok(pair) => {
            cookies.extend(signed_in_cookies(app, &pair));
            let principal = market.authenticate(&pair.access_token).await.ok()?;
            account(app, principal).await
        }
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => None,
        Err(_) => {
            cookies.extend(signed_out_cookies(app));
            None
        }
    }
}

async fn account(app: &App, principal: Principal) -> Option<SignedIn> {
    let user = app.market.profile(&principal).await.ok()?;
    Some(SignedIn { principal, user })
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `req` if it carries the browser's CSRF token and is not cross-site; the
/// body of a urlencoded form is read to find the field, and put back.
async fn checked(req: Request, expected: &str, max_body: usize) -> Result<Request, Problem> {
    let refused = || {
        Problem::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site",
            "Nothing was changed. Go back, reload the page and send the form again.",
        )
    };
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(refused());
    }
    if let Some(token) = req.uri().query().and_then(|q| field(q.as_bytes())) {
        return if same(&token, expected) {
            Ok(req)
        } else {
            Err(refused())
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, max_body).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large",
            "Nothing was changed.",
        )
    })?;
    match field(&bytes) {
        Some(token) if same(&token, expected) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(refused()),
    }
}

/// The CSRF field of a urlencoded form or query string.
fn field(form: &[u8]) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(form)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cookie carrying `message` to the next page, percent-encoded (any text:
/// `&`, `;`, quotes, non-ASCII), as the jar decodes it back. Not `Secure`: it
/// holds nothing secret, and the redirect that sets it knows no scheme.
pub fn flash_cookie(message: &str) -> Cookie<'static> {
    Cookie::build((FLASH_COOKIE, url_encode(message)))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found_in_a_form_or_a_query() {
        assert_eq!(field(b"a=1&csrf=abc&b=2").as_deref(), Some("abc"));
        assert_eq!(field(b"a=1&b=2"), None);
        assert_eq!(field(b"%ZZ"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        let t = new_token();
        assert!(is_token(&t));
        assert!(same(&t, &t.clone()));
        assert!(!same(&t, &t[..63]));
        assert!(!same(&t, &new_token()));
    }

    #[test]
    fn a_flash_message_survives_its_cookie() {
        let m = "“Lamps & lights” = 100% + more; thank you!";
        let header = format!("{FLASH_COOKIE}={}; other=1", url_encode(m));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&header).unwrap_or(HeaderValue::from_static("")),
        );
        let jar = CookieJar::from_headers(&headers);
        assert_eq!(
            jar.get(FLASH_COOKIE)
                .map(|c| c.value().to_owned())
                .as_deref(),
            Some(m)
        );
    }
}
