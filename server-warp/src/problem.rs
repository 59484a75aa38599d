//! Every refusal as `application/problem+json` (RFC 9457): the one place where
//! core errors and warp rejections become HTTP statuses.

use std::convert::Infallible;

use http::StatusCode;
use marketplace_core::{Error, FieldError, ShortItem};
use serde::Serialize;
use utoipa::ToSchema;
use warp::Rejection;
use warp::reply::Response;

/// A problem document (RFC 9457) with a stable machine-readable `code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (`/problems/{code}`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable code clients can switch on (`validation_failed`, `insufficient_stock`...).
    pub code: String,
    /// Field-level details of a validation failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The items checkout could not reserve, with what is available.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ShortItem>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// An HTTP-level refusal; carried through warp as a custom rejection.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    problem: Box<Problem>,
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// A problem with a status, code and detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            problem: Box::new(Problem {
                kind: format!("/problems/{code}"),
                title: status.canonical_reason().unwrap_or("Error").to_owned(),
                status: status.as_u16(),
                detail: Some(detail.into()),
                code: code.to_owned(),
                errors: Vec::new(),
                items: Vec::new(),
                retry_after: None,
            }),
        }
    }

    /// A malformed request (400).
    pub fn bad_request(code: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A malformed request about one field (400 with the field named).
    pub fn bad_field(code: &'static str, field: &str, detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        let mut e = ApiError::bad_request(code, detail.clone());
        e.problem.errors.push(FieldError::new(field, code, detail));
        e
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem document it answers with.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The response.
    pub fn into_response(self) -> Response {
        let retry_after = self.problem.retry_after;
        let mut res = warp::reply::Response::new(
            serde_json::to_vec(&self.problem).unwrap_or_default().into(),
        );
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// The status a core error answers with: its kind's, as every HTTP host maps it
/// ([`marketplace_host::status_of`]).
pub fn status_of(e: &Error) -> StatusCode {
    marketplace_host::status_of(e.kind())
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = status_of(&e);
        // Internal details are logged, never echoed.
        let detail = if status.is_server_error() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "request failed");
            "the server could not complete the request; it has been logged".to_owned()
        } else {
            e.to_string()
        };
        let mut api = ApiError::new(status, e.code(), detail);
        api.problem.errors = e.field_errors().to_vec();
        match e {
            Error::InsufficientStock(items) => api.problem.items = items,
            Error::RateLimited { retry_after } => {
                api.problem.retry_after = Some(retry_after.as_secs().max(1))
            }
            Error::Unavailable(_) | Error::DeadlineExceeded(_) => api.problem.retry_after = Some(1),
            Error::Busy { retry_after } => {
                api.problem.retry_after = Some(retry_after.as_secs().max(1))
            }
            _ => {}
        }
        api
    }
}

/// Turns a core error into a warp rejection.
pub fn reject(e: Error) -> Rejection {
    warp::reject::custom(ApiError::from(e))
}

/// Turns every rejection into a problem response; nothing reaches clients as a
/// bare warp error.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    use warp::reject as w;
    let e = if let Some(e) = r.find::<ApiError>() {
        ApiError {
            status: e.status,
            problem: e.problem.clone(),
        }
    } else if r.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    } else if r.find::<w::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed here",
        )
    } else if r.find::<w::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else if r.find::<w::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        )
    } else if r.find::<w::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported content type",
        )
    } else if let Some(e) = r.find::<w::InvalidHeader>() {
        ApiError::bad_request("invalid_header", e.to_string())
    } else if let Some(e) = r.find::<w::MissingHeader>() {
        ApiError::bad_request("missing_header", e.to_string())
    } else if let Some(e) = r.find::<w::InvalidQuery>() {
        ApiError::bad_request("invalid_query", e.to_string())
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        ApiError::bad_request("bad_request", "the request could not be understood")
    };
    Ok(e.into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use marketplace_core::error::IDEMPOTENCY_KEY_REUSED;

    use super::*;

    #[test]
    fn every_refusal_answers_with_its_documented_status() {
        let cases = [
            (Error::invalid("email", "invalid", "x"), 422),
            (
                Error::conflict(IDEMPOTENCY_KEY_REUSED, "another request"),
                422,
            ),
            (Error::malformed("cursor", "invalid_cursor", "x"), 400),
            (Error::InvalidToken, 400),
            (Error::Unauthenticated, 401),
            (Error::InvalidCredentials, 401),
            (Error::Forbidden("no"), 403),
            (Error::NotFound("order"), 404),
            (Error::conflict("email_taken", "x"), 409),
            (Error::InsufficientStock(Vec::new()), 409),
            (Error::PayloadTooLarge { limit: 1 }, 413),
            (Error::UnsupportedMediaType("text/plain".into()), 415),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(3),
                },
                429,
            ),
            (
                Error::Unavailable(marketplace_core::StorageError::transient("busy")),
                503,
            ),
            (
                Error::Busy {
                    retry_after: Duration::from_secs(1),
                },
                503,
            ),
            (Error::from(marketplace_core::deadline::Exceeded), 503),
            (
                Error::from(marketplace_core::StorageError::backend("boom")),
                500,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(status_of(&e).as_u16(), status, "{e:?}");
        }
    }

    #[test]
    fn a_request_past_its_deadline_says_when_to_retry() {
        let res = ApiError::from(Error::from(marketplace_core::deadline::Exceeded)).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers().get(http::header::RETRY_AFTER),
            Some(&http::HeaderValue::from_static("1"))
        );
        assert_eq!(
            res.headers().get(http::header::CONTENT_TYPE),
            Some(&http::HeaderValue::from_static("application/problem+json"))
        );
    }

    #[test]
    fn a_malformed_cursor_names_its_field() {
        let e = ApiError::from(Error::malformed(
            "cursor",
            "invalid_cursor",
            "is not a cursor of this list",
        ));
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(e.problem.code, "invalid_cursor");
        assert_eq!(
            e.problem.detail.as_deref(),
            Some("is not a cursor of this list")
        );
        assert_eq!(e.problem.errors.len(), 1);
        assert_eq!(e.problem.errors[0].field, "cursor");
        assert_eq!(e.problem.errors[0].code, "invalid_cursor");
    }
}
