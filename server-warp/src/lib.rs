//! # server-warp
//!
//! The marketplace over HTTP/JSON: REST under `/api/v1` on warp, errors as
//! `application/problem+json`, an OpenAPI document generated from the handlers,
//! health and readiness probes, request ids in logs and responses, CORS, body
//! limits and graceful shutdown. Handlers are thin: parse, call one
//! [`Marketplace`](marketplace_core::Marketplace) method, map the result; every
//! rule lives in `marketplace-core`, and everything a host needs besides HTTP
//! (settings, the store, the mailer, the secret, the mail worker's lifecycle)
//! in [`marketplace_host`].
//!
//! - [`routes`]: one module per area, each with its models, handlers and filters;
//! - [`extract`]: the filters every route shares (caller, JSON bodies, queries);
//! - [`problem`]: the one place errors become statuses, one match on
//!   [`ErrorKind`](marketplace_core::ErrorKind);
//! - [`serve`]: the listener around the routes.
//!
//! The binary `marketplace-server` runs [`run`]; tests and embedders call
//! [`build`] and [`serve::serve`] with their own listener (`127.0.0.1:0`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use marketplace_core::Mailer;

pub mod extract;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod serve;

pub use extract::App;
pub use marketplace_host::Settings;

/// Assembles the marketplace `settings` describe (see [`marketplace_host::build`])
/// and the application the routes serve, with the mailer the outbox is
/// delivered through.
pub async fn build(settings: &Settings) -> Result<(App, Arc<dyn Mailer>)> {
    let host = marketplace_host::build(settings).await?;
    let app = App {
        market: host.market,
        max_body: settings.max_body,
        request_timeout: settings.request_timeout,
    };
    Ok((app, host.mailer))
}

/// Serves with `settings` until `shutdown` completes: the API and, unless
/// disabled, the mail delivery worker. Both stop gracefully.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let host = marketplace_host::build(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %marketplace_host::redact_url(&settings.database_url), "marketplace listening on http://{addr}");
    let app = App {
        market: host.market.clone(),
        max_body: settings.max_body,
        request_timeout: settings.request_timeout,
    };
    let cors = settings.cors.clone();
    let proxies = settings.trusted_proxies.clone();
    host.run(&settings, shutdown, move |stop| {
        serve::serve(listener, app, cors, proxies, stop.signal())
    })
    .await?;
    Ok(())
}
