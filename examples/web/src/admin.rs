//! The admin dashboard.

use axum::Router;

use crate::App;

/// The admin dashboard's templates.
pub const TEMPLATES: &[(&str, &str)] = &[];

/// The admin dashboard's pages.
pub fn routes() -> Router<App> {
    Router::new()
}
