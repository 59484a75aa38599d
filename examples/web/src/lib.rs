//! # marketplace-web
//!
//! The marketplace as web pages, for people who are not developers: a
//! storefront for buyers, a dashboard for sellers and one for admins, on axum,
//! rendered on the server straight from the library (no REST hop, no JavaScript
//! build step; every page works without JavaScript). It runs on the same store
//! as the REST server (the same `DATABASE_URL`), so both can serve one
//! marketplace side by side.
//!
//! - [`session`]: who is signed in, kept in `HttpOnly`, `SameSite=Lax`
//!   cookies (`Secure` over https), refreshed when the access token expires;
//!   and the CSRF token every form carries;
//! - [`page`]: templates, the layout every page shares, and the one place where
//!   a core [`Error`](marketplace_core::Error) becomes a status and a readable
//!   message;
//! - [`storefront`], [`seller`], [`admin`]: the pages, one module per audience;
//! - [`money`]: amounts, commission rates and statement days as the
//!   dashboards' forms read them;
//! - [`media`]: product images and the stylesheet.
//!
//! Authorization is the library's: a page calls the same
//! [`Marketplace`](marketplace_core::Marketplace) method as the API, and a
//! refusal there is the refusal here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use marketplace_host::{Market, Settings};

/// The pages of `templates/{dir}/`, each named `{dir}/{name}.html`, compiled
/// into the binary.
macro_rules! templates {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$((
            concat!($dir, "/", $name, ".html"),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/templates/",
                $dir,
                "/",
                $name,
                ".html"
            )),
        )),*]
    };
}

pub mod admin;
pub mod media;
pub mod money;
pub mod page;
pub mod seller;
pub mod session;
pub mod storefront;

/// What every page handler shares. Cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The marketplace.
    pub market: Market,
    /// The page templates.
    pub templates: Arc<page::Templates>,
    /// Whether cookies are marked `Secure` (the storefront is served over https).
    pub secure_cookies: bool,
    /// The largest request body accepted, in bytes (image uploads).
    pub max_body: usize,
    /// The load balancers whose forwarding headers name the client (for the
    /// login throttle); none by default.
    pub trusted_proxies: Arc<marketplace_host::proxy::TrustedProxies>,
    /// How long one page may take before it is answered with the 503 page
    /// (`MARKETPLACE_REQUEST_TIMEOUT`, set by [`run`]); none by default.
    pub request_timeout: Option<std::time::Duration>,
}

impl App {
    /// The pages of `market`, with cookies marked `Secure` when its
    /// storefront URL is https.
    pub fn new(market: Market, max_body: u64) -> App {
        let secure_cookies = market.config().public_url.starts_with("https://");
        App {
            market,
            templates: Arc::new(page::Templates::new()),
            secure_cookies,
            max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
            trusted_proxies: Arc::default(),
            request_timeout: None,
        }
    }
}

/// Every page, with the session and CSRF layer around them.
pub fn router(app: App) -> Router {
    Router::new()
        .merge(storefront::routes())
        .merge(seller::routes())
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            session::layer,
        ))
        // Images and the stylesheet need no session: they are outside the layer.
        .merge(media::routes())
        .layer(axum::extract::DefaultBodyLimit::max(app.max_body))
        .with_state(app)
}

/// The address the web host listens on: `MARKETPLACE_WEB_LISTEN`, or
/// `127.0.0.1:8081` (beside the REST server's `8080`).
pub fn listen_addr() -> Result<std::net::SocketAddr> {
    match std::env::var("MARKETPLACE_WEB_LISTEN") {
        Ok(v) => v
            .parse()
            .with_context(|| format!("MARKETPLACE_WEB_LISTEN is not an address: {v:?}")),
        Err(_) => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], 8081))),
    }
}

/// Serves the pages on `listener` until `shutdown` completes, beside the mail
/// worker (see [`marketplace_host::Host::run`]); in-flight requests finish.
pub async fn run(
    mut settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    // Links in mail and image URLs point here unless configured otherwise.
    if settings.public_url.is_none() {
        settings.public_url = Some(format!("http://{addr}"));
    }
    let host = marketplace_host::build(&settings).await?;
    tracing::info!(%addr, database = %marketplace_host::redact_url(&settings.database_url), "storefront on http://{addr}");
    let mut app = App::new(host.market.clone(), settings.max_body);
    app.trusted_proxies = Arc::new(settings.trusted_proxies.clone());
    app.request_timeout = settings.request_timeout;
    host.run(&settings, shutdown, move |stop| async move {
        let served = axum::serve(
            listener,
            router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stop.signal())
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the web server stopped");
        }
    })
    .await?;
    Ok(())
}
