//! Operations: health, readiness, the OpenAPI document, and stored media.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, json_reply, ok};
use crate::problem::{ApiError, reject};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive")))]
pub async fn healthz() -> Result<Response, Rejection> {
    Ok(ok(&serde_json::json!({ "status": "ok" })))
}

/// Readiness: storage answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "storage unavailable", body = crate::problem::Problem)))]
pub async fn readyz(app: App) -> Result<Response, Rejection> {
    match app.market.ready().await {
        Ok(()) => Ok(ok(&serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(warp::reject::custom(ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "storage is not answering",
            )))
        }
    }
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI document")))]
pub async fn openapi() -> Result<Response, Rejection> {
    Ok(json_reply(
        http::StatusCode::OK,
        &crate::openapi::document(),
    ))
}

/// The bytes of an image file.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageBytes(pub Vec<u8>);

/// A stored product image.
#[utoipa::path(get, path = "/media/{key}", tag = "operations",
    params(("key" = String, Path, description = "the image key, as in the product's image URL")),
    responses((status = 200, description = "the image (its type is the one its bytes show)",
        content((ImageBytes = "image/jpeg"), (ImageBytes = "image/png"), (ImageBytes = "image/webp"))),
        (status = 404, description = "no such image", body = crate::problem::Problem)))]
pub async fn media(tail: warp::path::Tail, app: App) -> Result<Response, Rejection> {
    // Clients that treat the key as one path parameter send its slashes encoded.
    let key = percent_encoding::percent_decode_str(tail.as_str())
        .decode_utf8()
        .map_err(|_| reject(marketplace_core::Error::NotFound("image")))?;
    let image = app.market.image(&key).await.map_err(reject)?;
    let mut res = Response::new(image.bytes.into());
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(image.content_type),
    );
    // Keys are never reused, so an image never changes.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let with = || crate::extract::app(a.clone());
    let r1 = warp::path!("healthz").and(warp::get()).and_then(healthz);
    let r2 = warp::path!("readyz")
        .and(warp::get())
        .and(with())
        .and_then(readyz);
    let r3 = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .and_then(openapi);
    let r4 = warp::path("media")
        .and(warp::path::tail())
        .and(warp::get())
        .and(with())
        .and_then(media);
    crate::any_of!(r1, r2, r3, r4)
}
