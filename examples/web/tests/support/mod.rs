//! What the web host's test files share: the host served in this process on
//! `127.0.0.1:0` over a fresh memory store, and the library's view of a
//! person who signs in; [`dashboard`] adds the dashboards' browser and people.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

// Each test file uses a part of the dashboards' helpers; the storefront's
// tests drive a browser of their own.
#[allow(dead_code)]
pub mod dashboard;

use std::sync::Arc;

use marketplace_core::{HashCost, Marketplace, PaymentProvider, Principal};
use marketplace_host::{Market, Settings};

/// The web host on a port of its own, over a fresh memory store.
pub struct Site {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// The marketplace the pages are served from, to set up and check through.
    pub market: Market,
    _media: tempfile::TempDir,
}

/// Starts the host with a memory store, fast password hashing and its media in
/// a temporary directory; `configure` sees those settings and the site's
/// address before the host is built from them.
pub async fn start(configure: impl FnOnce(&mut Settings, &str)) -> Site {
    serve(configure, None).await
}

/// [`start`], with buyers paying through `payments` (a simulated card
/// provider, say) instead of the provider the settings name.
pub async fn start_paying(
    payments: Arc<dyn PaymentProvider>,
    configure: impl FnOnce(&mut Settings, &str),
) -> Site {
    serve(configure, Some(payments)).await
}

async fn serve(
    configure: impl FnOnce(&mut Settings, &str),
    payments: Option<Arc<dyn PaymentProvider>>,
) -> Site {
    let media = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::default();
    settings.database_url = "memory:".into();
    settings.hash_cost = HashCost::FAST_INSECURE;
    settings.media_dir = media.path().to_owned();
    configure(&mut settings, &base);
    let market = match payments {
        None => marketplace_host::build(&settings).await.unwrap().market,
        // What `build` assembles, with the provider swapped.
        Some(payments) => {
            let (storage, _) =
                marketplace_host::open_storage(&settings.database_url, &settings.sql)
                    .await
                    .unwrap();
            let market = Marketplace::builder(storage, settings.marketplace_config(None).unwrap())
                .images(marketplace_host::image_store(&settings.media_dir).unwrap())
                .payments(payments)
                .build()
                .await
                .unwrap();
            if let Some((email, password)) = &settings.bootstrap_admin {
                marketplace_host::bootstrap_admin(&market, email, password)
                    .await
                    .unwrap();
            }
            market
        }
    };
    let app = marketplace_web::App::new(market.clone(), settings.max_body);
    tokio::spawn(async move {
        axum::serve(
            listener,
            marketplace_web::router(app)
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Site {
        base,
        market,
        _media: media,
    }
}

/// The account `email` as the library sees it once signed in with `password`.
pub async fn principal(market: &Market, email: &str, password: &str) -> Principal {
    let pair = market.login(email, password, None).await.unwrap();
    market.authenticate(&pair.access_token).await.unwrap()
}
