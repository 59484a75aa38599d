//! Storefront pages: cart.

use axum::Router;

use crate::App;

/// The cart pages.
pub fn routes() -> Router<App> {
    Router::new()
}
