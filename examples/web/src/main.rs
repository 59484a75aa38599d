//! `marketplace-web`: the storefront and dashboards, on the marketplace the
//! environment describes (the same variables as `marketplace-server`; it
//! listens on `MARKETPLACE_WEB_LISTEN`, default `127.0.0.1:8081`).

use anyhow::{Context, Result};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let settings = marketplace_host::Settings::from_env()?;
    let addr = marketplace_web::listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    marketplace_web::run(settings, listener, marketplace_host::shutdown_signal()).await
}
