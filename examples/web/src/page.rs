//! Pages: the templates, the layout every page shares, and the one place where
//! a core [`Error`] becomes a status and a message a person can read.
//!
//! Templates are compiled into the binary (nothing to install beside it) and
//! escaped as HTML. Every page extends `base.html`, which gets the
//! [`Viewer`] as `viewer`: who is signed in, the CSRF token for forms
//! (`{{ viewer.csrf }}`), and the flash message the previous request left.
//! Handlers answer a page with [`render`], a redirect after a form with
//! [`SeeOther`], and a refusal with [`PageError`] (usually `?` on a core call);
//! the session layer renders a refusal as a page with [`problem_page`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::Cookie;
use marketplace_core::{Error, ErrorKind, FieldError, Money, ShortItem};
use minijinja::{Environment, Value, context};
use serde::Serialize;

use crate::App;
use crate::session::{self, Viewer};

/// The layout and the pages every audience shares.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("problem.html", include_str!("../templates/problem.html")),
];

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    /// Every page's template, with the filters they use: `money` (an amount in
    /// its currency's decimals), `when` (a timestamp, to the minute, UTC) and
    /// `percent` (basis points as a percentage: 1250 is `12.5`).
    pub fn new() -> Templates {
        let mut env = Environment::new();
        let all = TEMPLATES
            .iter()
            .chain(crate::storefront::TEMPLATES)
            .chain(crate::seller::TEMPLATES)
            .chain(crate::admin::TEMPLATES);
        for (name, source) in all {
            if let Err(e) = env.add_template(name, source) {
                // Templates are part of the binary: a broken one is a bug the
                // tests catch, and the page that uses it answers 500.
                tracing::error!(template = name, error = %e, "a template does not compile");
            }
        }
        env.add_filter("money", money);
        env.add_filter("when", when);
        env.add_filter("percent", crate::money::percent);
        Templates { env }
    }

    /// Renders `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// `{{ price | money }}`: `12.50 USD`.
fn money(value: Value) -> Result<String, minijinja::Error> {
    let json = serde_json::to_value(&value).map_err(template_error)?;
    let money: Money = serde_json::from_value(json).map_err(template_error)?;
    Ok(money.to_string())
}

/// `{{ order.created_at | when }}`: `2026-12-02 14:05 UTC`.
fn when(value: String) -> Result<String, minijinja::Error> {
    let t = chrono::DateTime::parse_from_rfc3339(&value).map_err(template_error)?;
    Ok(t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string())
}

fn template_error(e: impl std::fmt::Display) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
}

/// What the layout knows of the viewer.
#[derive(Serialize)]
struct ViewerContext<'a> {
    signed_in: bool,
    email: Option<&'a str>,
    name: Option<&'a str>,
    role: Option<&'static str>,
    store_name: Option<&'a str>,
    seller_status: Option<&'static str>,
    csrf: &'a str,
    flash: Option<&'a str>,
    path: &'a str,
}

impl<'a> ViewerContext<'a> {
    fn of(v: &'a Viewer) -> ViewerContext<'a> {
        let user = v.signed_in.as_ref().map(|s| &s.user);
        ViewerContext {
            signed_in: user.is_some(),
            email: user.map(|u| u.email.as_str()),
            name: user.and_then(|u| u.name.as_deref()),
            role: user.map(|u| u.role.as_str()),
            store_name: user.and_then(|u| u.store_name.as_deref()),
            seller_status: user.and_then(|u| u.seller_status).map(|s| s.as_str()),
            csrf: &v.csrf,
            flash: v.flash.as_deref(),
            path: &v.path,
        }
    }
}

/// Renders the page `name` for `viewer` with `ctx` (200).
pub fn render(app: &App, viewer: &Viewer, name: &str, ctx: Value) -> Response {
    render_with(app, viewer, StatusCode::OK, name, ctx)
}

/// Renders the page `name` for `viewer` with `ctx`, answering `status` (a form
/// shown again with its problems answers 422, say).
pub fn render_with(
    app: &App,
    viewer: &Viewer,
    status: StatusCode,
    name: &str,
    ctx: Value,
) -> Response {
    let ctx = context! { viewer => Value::from_serialize(ViewerContext::of(viewer)), ..ctx };
    match app.templates.render(name, ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "a page cannot be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><h1>Something went wrong</h1><p>The page could not be shown; it has been logged.</p>"),
            )
                .into_response()
        }
    }
}

/// A refusal, as a page shows it: a status, a heading, a sentence, and the
/// details a person needs to fix it (the fields in error, the items short).
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The status the page answers with.
    #[serde(skip)]
    pub status: StatusCode,
    /// What kind of refusal, when it came from the library.
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
    /// The heading.
    pub title: String,
    /// The sentence under it.
    pub message: String,
    /// The fields in error, with what is wrong with each.
    pub fields: Vec<FieldError>,
    /// The items checkout could not reserve.
    pub items: Vec<ShortItem>,
}

impl Problem {
    /// A problem with a status, a heading and a sentence.
    pub fn new(status: StatusCode, title: &str, message: &str) -> Problem {
        Problem {
            status,
            kind: None,
            title: title.to_owned(),
            message: message.to_owned(),
            fields: Vec::new(),
            items: Vec::new(),
        }
    }

    /// The message for `field`, if it is one of the fields in error.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.message.as_str())
    }
}

/// The status a page answers for `kind`: the same as the REST API's.
pub use marketplace_host::status_of;

impl From<&Error> for Problem {
    fn from(e: &Error) -> Problem {
        let kind = e.kind();
        let status = status_of(kind);
        let title = match kind {
            ErrorKind::Invalid | ErrorKind::Malformed => "Please check the form",
            ErrorKind::InvalidToken => "This link has expired or was already used",
            ErrorKind::Unauthenticated => "Please sign in",
            ErrorKind::Forbidden => "You cannot do this",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Conflict => "This could not be done",
            ErrorKind::PayloadTooLarge => "The file is too large",
            ErrorKind::UnsupportedMediaType => "This kind of file is not accepted",
            ErrorKind::RateLimited => "Too many attempts",
            ErrorKind::Unavailable => "The shop is busy",
            _ => "Something went wrong",
        };
        let message = if status.is_server_error() && kind != ErrorKind::Unavailable {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), "a page failed");
            "The page could not be shown; it has been logged.".to_owned()
        } else if let Error::DeadlineExceeded(_) = e {
            // Steps done before the deadline stay done: "nothing was changed"
            // may not hold.
            "This took too long. Please try again in a moment.".to_owned()
        } else if kind == ErrorKind::Unavailable {
            "Please try again in a moment; nothing was changed.".to_owned()
        } else {
            sentence(&e.to_string())
        };
        let items = match e {
            Error::InsufficientStock(items) => items.clone(),
            _ => Vec::new(),
        };
        Problem {
            status,
            kind: Some(kind),
            title: title.to_owned(),
            message,
            fields: e.field_errors().to_vec(),
            items,
        }
    }
}

/// `s` with a capital first letter and a full stop.
fn sentence(s: &str) -> String {
    let mut out: String = s.chars().take(1).flat_map(char::to_uppercase).collect();
    out.push_str(&s[s.chars().next().map_or(0, char::len_utf8)..]);
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A refusal a handler returns; the session layer renders it as a page (or,
/// for a missing login, sends the browser to sign in).
#[derive(Debug)]
pub struct PageError(pub Problem);

impl From<Error> for PageError {
    fn from(e: Error) -> PageError {
        PageError(Problem::from(&e))
    }
}

impl From<Problem> for PageError {
    fn from(p: Problem) -> PageError {
        PageError(p)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = self.status.into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// What a page handler answers.
pub type PageResult = Result<Response, PageError>;

/// The page of a refusal (or a redirect to sign in, when a login is missing).
pub fn problem_page(app: &App, viewer: &Viewer, problem: Problem) -> Response {
    if problem.kind == Some(ErrorKind::Unauthenticated) {
        return session::sign_in_redirect(&viewer.path).into_response();
    }
    let status = problem.status;
    render_with(
        app,
        viewer,
        status,
        "problem.html",
        context! { problem => Value::from_serialize(&problem) },
    )
}

/// A `303 See Other` after a form, with a message for the next page and any
/// cookies to set.
#[derive(Debug)]
#[must_use]
pub struct SeeOther {
    location: String,
    flash: Option<String>,
    cookies: Vec<Cookie<'static>>,
}

impl SeeOther {
    /// Sends the browser to `location`.
    pub fn to(location: impl Into<String>) -> SeeOther {
        SeeOther {
            location: location.into(),
            flash: None,
            cookies: Vec::new(),
        }
    }

    /// Shows `message` on the next page.
    pub fn flash(mut self, message: impl Into<String>) -> SeeOther {
        self.flash = Some(message.into());
        self
    }

    /// Sets `cookies` too.
    pub fn cookies(mut self, cookies: Vec<Cookie<'static>>) -> SeeOther {
        self.cookies.extend(cookies);
        self
    }
}

impl IntoResponse for SeeOther {
    fn into_response(self) -> Response {
        let mut r = StatusCode::SEE_OTHER.into_response();
        let headers = r.headers_mut();
        match HeaderValue::from_str(&self.location) {
            Ok(v) => {
                headers.insert(header::LOCATION, v);
            }
            Err(_) => {
                headers.insert(header::LOCATION, HeaderValue::from_static("/"));
            }
        }
        let mut cookies = self.cookies;
        if let Some(m) = self.flash {
            cookies.push(session::flash_cookie(&m));
        }
        session::append_cookies(headers, &cookies);
        r
    }
}

/// A local path to come back to after a form (`next=`), or `fallback`: never
/// another site (`//evil.example`, `https://…`).
pub fn local_path<'a>(next: Option<&'a str>, fallback: &'a str) -> &'a str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        let all = TEMPLATES
            .iter()
            .chain(crate::storefront::TEMPLATES)
            .chain(crate::seller::TEMPLATES)
            .chain(crate::admin::TEMPLATES);
        for (name, source) in all {
            if let Err(e) = env.add_template(name, source) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/orders/1"), "/"), "/orders/1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "orders",
        ] {
            assert_eq!(local_path(Some(bad), "/"), "/", "{bad}");
        }
        assert_eq!(local_path(None, "/cart"), "/cart");
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("email already taken"), "Email already taken.");
        assert_eq!(sentence("Done!"), "Done!");
        assert_eq!(sentence(""), ".");
    }

    #[test]
    fn an_id_that_cannot_be_one_names_nothing() {
        let e = path_id::<marketplace_core::ProductId>("nope", "product").err();
        assert_eq!(e.map(|PageError(p)| p.status), Some(StatusCode::NOT_FOUND));
    }

    #[test]
    fn money_reads_in_its_currency() {
        let v = Value::from_serialize(Money::new(1250, marketplace_core::Currency::USD));
        assert_eq!(money(v).ok().as_deref(), Some("12.50 USD"));
    }
}

/// A urlencoded form, read into `T`; a form that cannot be read is refused
/// with a page, not a bare status.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Form<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Form<T>, Problem> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(t)) => Ok(Form(t)),
            Err(e) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                &sentence(&e.body_text()),
            )),
        }
    }
}

/// A query string, read into `T`; one that cannot be read is refused with a
/// page.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Query<T>, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(t)) => Ok(Query(t)),
            Err(e) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "This address could not be read",
                &sentence(&e.body_text()),
            )),
        }
    }
}

/// Refuses a page to anyone but an account of `role`, with the library's own
/// words for it (a missing login is sent to sign in). For the dashboards,
/// whose pages also show what the library lets anyone read (the catalog, the
/// categories); every change they make is still the library's to refuse.
pub fn require_role(viewer: &Viewer, role: marketplace_core::Role) -> Result<(), PageError> {
    match viewer.principal() {
        None => Err(Error::Unauthenticated.into()),
        Some(p) => Ok(p.require(role)?),
    }
}

/// How many items one of the library's paged lists holds, read a page of 100
/// at a time through `page(cursor, limit)`: `"12"`, or `"1000+"` once `cap` is
/// reached (a summary, not an audit; the library keeps no counts).
pub async fn tally<T, F, Fut>(cap: usize, mut page: F) -> Result<String, Error>
where
    F: FnMut(Option<String>, u32) -> Fut,
    Fut: std::future::Future<Output = Result<marketplace_core::Page<T>, Error>>,
{
    let mut seen = 0;
    let mut cursor = None;
    loop {
        let p = page(cursor.take(), 100).await?;
        seen += p.items.len();
        match p.next_cursor {
            _ if seen > cap => return Ok(format!("{cap}+")),
            Some(next) => cursor = Some(next),
            None => return Ok(seen.to_string()),
        }
    }
}

/// Which refusals a form is shown again with, beside it; any other refusal is
/// the page's own answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixable {
    /// What the person can fix there: a field, a conflict with the state, too
    /// many attempts. A missing login, a page that is not theirs or a failure
    /// of ours is the page's own answer (the storefront's forms).
    OnTheForm,
    /// Every refusal but a failure of ours or a login that ended: a
    /// dashboard's form shows "not found" or "you cannot" beside it too.
    AllButOurs,
}

/// The problem a refused form is shown again with, or, when `which` says the
/// form is not the place for it, the page for it.
pub fn form_problem(e: &Error, which: Fixable) -> Result<Problem, PageError> {
    let problem = Problem::from(e);
    let beside_form = match which {
        Fixable::OnTheForm => matches!(
            problem.kind,
            Some(
                ErrorKind::Invalid
                    | ErrorKind::Malformed
                    | ErrorKind::Conflict
                    | ErrorKind::RateLimited
            )
        ),
        Fixable::AllButOurs => {
            !problem.status.is_server_error() && problem.kind != Some(ErrorKind::Unauthenticated)
        }
    };
    if beside_form {
        Ok(problem)
    } else {
        Err(PageError(problem))
    }
}

/// The id in a page's path (or a form's id field); one that cannot be an id
/// names nothing, like an id nobody has (`what` is the library's own word:
/// `product`, `order`...).
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, PageError> {
    raw.parse()
        .map_err(|_| PageError::from(Error::NotFound(what)))
}

/// The query of a list filtered by status and paged by cursor:
/// `?status=…&cursor=…`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct StatusQuery {
    /// The status picked; blank is every status.
    #[serde(default)]
    pub status: String,
    /// Where the page starts; none or blank is the first page.
    pub cursor: Option<String>,
}

impl StatusQuery {
    /// Where the page starts, `None` on the first page.
    pub fn cursor(&self) -> Option<String> {
        self.cursor.clone().filter(|c| !c.is_empty())
    }
}

/// A status as a form or a link names it (`?status=…`): blank is none, and
/// one `parse` does not know is refused as `what` (`an order status`).
pub fn status_param<S>(
    raw: &str,
    parse: impl FnOnce(&str) -> Option<S>,
    what: &str,
) -> Result<Option<S>, PageError> {
    match raw.trim() {
        "" => Ok(None),
        s => parse(s).map(Some).ok_or_else(|| {
            PageError::from(Error::invalid(
                "status",
                "invalid",
                format!("“{s}” is not {what}"),
            ))
        }),
    }
}
