//! The seller dashboard.

use axum::Router;

use crate::App;

/// The seller dashboard's templates.
pub const TEMPLATES: &[(&str, &str)] = &[];

/// The seller dashboard's pages.
pub fn routes() -> Router<App> {
    Router::new()
}
