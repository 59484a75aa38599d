//! What pages load beside them: product images from the marketplace's image
//! store, and the stylesheet. Neither needs a session.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::App;

const STYLESHEET: &str = include_str!("../static/style.css");

/// `/media/{key}` and `/static/style.css`.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/media/{*key}", get(image))
        .route("/static/style.css", get(stylesheet))
}

async fn image(State(app): State<App>, Path(key): Path<String>) -> Response {
    match app.market.image(&key).await {
        Ok(img) => {
            let mut r = img.bytes.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(img.content_type),
            );
            // A key names one upload forever.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(e) => crate::page::status_of(e.kind()).into_response(),
    }
}

async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}
