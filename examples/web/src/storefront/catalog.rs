//! Storefront pages: catalog.

use axum::Router;

use crate::App;

/// The catalog pages.
pub fn routes() -> Router<App> {
    Router::new()
}
