//! # server-warp
//!
//! The marketplace over HTTP/JSON: REST under `/api/v1` on warp, errors as
//! `application/problem+json`, an OpenAPI document generated from the handlers,
//! health and readiness probes, request ids in logs and responses, CORS, body
//! limits and graceful shutdown. Handlers are thin: parse, call one
//! [`Marketplace`](marketplace_core::Marketplace) method, map the result; every
//! rule lives in `marketplace-core`.
//!
//! - [`routes`]: one module per area, each with its models, handlers and filters;
//! - [`problem`]: the one place errors become statuses;
//! - [`serve`]: the listener around the routes;
//! - [`config`]: settings from the environment and the assembly of a marketplace.
//!
//! The binary `marketplace-server` runs [`run`]; tests and embedders call
//! [`build`] and [`serve::serve`] with their own listener (`127.0.0.1:0`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};
use marketplace_core::OutboxWorker;

pub mod config;
pub mod extract;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod serve;

pub use config::{Settings, build};
pub use extract::App;

/// Serves with `settings` until `shutdown` completes: the API and, unless
/// disabled, the mail delivery worker. Both stop gracefully.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (app, mailer) = build(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, database = %config::redact_url(&settings.database_url), "marketplace listening on http://{addr}");

    if let Some(smtp) = settings.smtp.clone() {
        // Tell the operator now, not at the first order, when the mail server
        // cannot be reached or refuses the login; mail waits in the outbox.
        tokio::spawn(async move {
            let checked = match marketplace_smtp::SmtpMailer::new(&smtp) {
                Ok(mailer) => mailer.check_connection().await,
                Err(e) => Err(marketplace_core::MailError::Permanent(e.to_string())),
            };
            match checked {
                Ok(()) => {
                    tracing::info!(server = %smtp.server, port = smtp.port, "SMTP server reachable, login accepted")
                }
                Err(e) => {
                    tracing::warn!(server = %smtp.server, port = smtp.port, error = %e, "SMTP check failed; mail stays in the outbox and is retried")
                }
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = (!settings.outbox_poll.is_zero()).then(|| {
        let worker = OutboxWorker::new(app.market.clone(), Arc::clone(&mailer));
        let mut rx = stop_rx.clone();
        tokio::spawn(worker.run(settings.outbox_poll, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    });
    let mut rx = stop_rx;
    let server = tokio::spawn(serve::serve(
        listener,
        app,
        settings.cors.clone(),
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        },
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    server.await.context("the server task failed")?;
    if let Some(worker) = worker {
        worker.await.context("the mail worker failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}
