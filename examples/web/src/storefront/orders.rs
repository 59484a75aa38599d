//! Storefront pages: orders.

use axum::Router;

use crate::App;

/// The orders pages.
pub fn routes() -> Router<App> {
    Router::new()
}
