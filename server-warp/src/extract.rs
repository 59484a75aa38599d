//! Request filters shared by every route: the application handle, the caller,
//! JSON bodies, query strings, the client address.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use marketplace_core::Principal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::problem::{ApiError, reject};

pub use marketplace_host::Market;

/// What handlers share: the marketplace and the HTTP settings.
#[derive(Clone)]
pub struct App {
    /// The marketplace.
    pub market: Market,
    /// Largest JSON body accepted, in bytes.
    pub max_body: u64,
    /// How long one request may take before it is answered 503
    /// `deadline_exceeded` (`MARKETPLACE_REQUEST_TIMEOUT`); `None`: no limit.
    pub request_timeout: Option<std::time::Duration>,
}

/// The client's address, as the connection saw it.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// Hands the application to a handler.
pub fn app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The address of the calling client, when known.
pub fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<ClientAddr>().map(|a: Option<ClientAddr>| a.map(|a| a.0.ip()))
}

/// The authenticated caller, from `Authorization: Bearer <access token>`; 401
/// otherwise.
pub fn caller(app: App) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let market = app.market.clone();
        async move {
            let header = header.ok_or_else(|| reject(marketplace_core::Error::Unauthenticated))?;
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or_else(|| reject(marketplace_core::Error::Unauthenticated))?;
            market.authenticate(token.trim()).await.map_err(reject)
        }
    })
}

/// A JSON body of type `T`, at most `limit` bytes (counted as it arrives, so a
/// chunked body is bounded too). Syntax errors, wrong types, missing and unknown
/// fields answer 400 with the offending path.
pub fn json<T: DeserializeOwned + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body(limit, None)
}

/// Like [`json`], for an optional body: no body at all (no content type,
/// nothing sent) reads as `T::default()` (`None` for an `Option`).
pub fn optional_json<T: DeserializeOwned + Default + Send>(
    limit: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    body(limit, Some(T::default))
}

/// A JSON body; `absent` gives the value of a request without one, when it may
/// have none.
fn body<T: DeserializeOwned + Send>(
    limit: u64,
    absent: Option<fn() -> T>,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(
            move |content_type: Option<String>, length: Option<u64>, body| async move {
                // A body is JSON only when it says so: a missing type is refused like
                // any other, so every client gets the same answer for the same body
                // (an optional body may be left out altogether instead).
                let essence = content_type
                    .as_deref()
                    .and_then(|ct| ct.split(';').next())
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                let is_json = essence == "application/json" || essence.ends_with("+json");
                let may_be_absent = absent.is_some() && content_type.is_none();
                let not_json = || {
                    warp::reject::custom(ApiError::new(
                        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "unsupported_media_type",
                        "send the body as application/json (Content-Type: application/json)",
                    ))
                };
                if !is_json && !may_be_absent {
                    return Err(not_json());
                }
                let too_large = || {
                    warp::reject::custom(ApiError::new(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("the body may have at most {limit} bytes"),
                    ))
                };
                if length.is_some_and(|n| n > limit) {
                    return Err(too_large());
                }
                let bytes = read_limited(body, limit).await.map_err(|e| match e {
                    BodyError::TooLarge => too_large(),
                    BodyError::Read(e) => {
                        warp::reject::custom(ApiError::bad_request("unreadable_body", e))
                    }
                })?;
                if !is_json {
                    return match absent {
                        Some(default) if bytes.is_empty() => Ok(default()),
                        _ => Err(not_json()),
                    };
                }
                parse_json(&bytes).map_err(warp::reject::custom)
            },
        )
}

enum BodyError {
    TooLarge,
    Read(String),
}

async fn read_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, BodyError>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures::StreamExt;
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Parses one JSON document, naming the field at fault. Anything after the
/// document but white space (a second document, stray brackets) is malformed.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut *de) {
        Ok(v) => match de.end() {
            Ok(()) => Ok(v),
            Err(e) => Err(ApiError::bad_request(
                "malformed_json",
                format!("the body is not one JSON document: {e}"),
            )),
        },
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {inner}"),
                ))
            } else {
                let field = if path == "." { "body".to_owned() } else { path };
                Err(ApiError::bad_field(
                    "invalid_body",
                    &field,
                    inner.to_string(),
                ))
            }
        }
    }
}

/// The query string parsed as `T`; 400 naming the parameter at fault.
pub fn query<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move { parse_query::<T>(&raw).map_err(warp::reject::custom) })
}

/// Parses a query string (without its `?`) as `T`. A value that does not parse
/// answers 400 `invalid_query` with the parameter named in `errors`, as a body
/// field is.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." || field.is_empty() {
            ApiError::bad_request("invalid_query", format!("bad query string: {inner}"))
        } else {
            ApiError::bad_field(
                "invalid_query",
                &field,
                format!("bad query string: `{field}`: {inner}"),
            )
        }
    })
}

/// A JSON response with a status.
pub fn json_reply<T: Serialize>(status: http::StatusCode, body: &T) -> Response {
    let mut res = Response::new(serde_json::to_vec(body).unwrap_or_default().into());
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// `200 OK` with a JSON body.
pub fn ok<T: Serialize>(body: &T) -> Response {
    json_reply(http::StatusCode::OK, body)
}

/// `201 Created` with a JSON body.
pub fn created<T: Serialize>(body: &T) -> Response {
    json_reply(http::StatusCode::CREATED, body)
}

/// `204 No Content`.
pub fn no_content() -> Response {
    let mut res = Response::new(Default::default());
    *res.status_mut() = http::StatusCode::NO_CONTENT;
    res
}

#[cfg(test)]
mod tests {
    use marketplace_core::PayoutStatus;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Params {
        limit: Option<u32>,
        status: Option<PayoutStatus>,
        #[serde(
            default,
            deserialize_with = "marketplace_core::ledger::instant::deserialize"
        )]
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    fn field_of(raw: &str) -> String {
        let e = parse_query::<Params>(raw).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(e.problem().code, "invalid_query");
        e.problem().errors[0].field.clone()
    }

    #[test]
    fn a_bad_query_parameter_is_named() {
        assert_eq!(field_of("status=bogus"), "status");
        assert_eq!(field_of("limit=ten&status=paid"), "limit");
        assert_eq!(field_of("limit=-1"), "limit");
        assert_eq!(field_of("from=yesterday"), "from");
        let p = parse_query::<Params>("limit=5&status=paid&from=2026-11-01&other=1")
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.limit, Some(5));
        assert_eq!(p.status, Some(PayoutStatus::Paid));
        assert!(p.from.is_some());
        let empty = parse_query::<Params>("").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(empty.limit.is_none() && empty.status.is_none() && empty.from.is_none());
    }
}
