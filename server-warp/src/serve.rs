//! The HTTP listener: request ids, access logs, CORS, the request deadline and
//! graceful shutdown around the warp routes.
//!
//! Every request runs under its deadline (`MARKETPLACE_REQUEST_TIMEOUT` after
//! its head arrived, see [`marketplace_core::deadline`]): the storage retry
//! loops underneath stop there, and the handler is cut off at that same
//! instant, answered 503 `deadline_exceeded` with `Retry-After`. Cutting a
//! handler off drops its future at an `.await`, which to the work it was doing
//! is the process dying there: every store write is one atomic step, so none is
//! half applied, and the flows of several steps survive a crash between them.
//! An image upload stores the blobs, then lists them on the product (cut in
//! between: blobs nobody lists, as after a crash); a checkout commits, then
//! opens its payment at the provider (cut in between: the payment stays due,
//! and the money worker or the request repeated with its idempotency key opens
//! it).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::reply::Response;

use crate::extract::{App, ClientAddr};
use crate::problem::ApiError;

pub use marketplace_host::Cors;

/// The `Access-Control-Allow-Origin` answer to a request from `origin`, when
/// the settings allow it.
fn allow(cors: &Cors, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    if *cors == Cors::Any {
        return Some(HeaderValue::from_static("*"));
    }
    let o = origin.to_str().ok()?;
    cors.allows(o).then(|| origin.clone())
}

/// A request body that records whether it was read to its end. A route may answer
/// without reading the body (a 413 on its declared length, a 401 before the
/// upload); the connection then holds unread bytes and cannot carry another
/// request, so the answer says `Connection: close` and the client opens a new one.
struct TrackedBody<B> {
    inner: B,
    ended: Arc<AtomicBool>,
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(30);

/// The name of the access line, the one `info` event per answered request
/// (`request status=200 ms=0.42`, inside the `request{id method path}` span).
/// Not printed; it lets a log writer tell the access line from the rest: the
/// binary may drop access lines when stdout cannot keep up, never a warning.
/// A failed request (5xx) is logged as an error instead, not under this name.
pub const ACCESS_LINE: &str = "access";

/// Whether `meta` is the access line's (see [`ACCESS_LINE`]).
pub fn is_access_line(meta: &tracing::Metadata<'_>) -> bool {
    meta.name() == ACCESS_LINE && meta.target() == module_path!()
}

fn request_id(req: &Request<Incoming>) -> String {
    // A caller's id is kept when it is short and printable; otherwise a new one.
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting,
/// lets requests in flight finish (up to 30 s) and returns.
pub async fn serve(
    listener: TcpListener,
    app: App,
    cors: Cors,
    proxies: marketplace_host::proxy::TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    let timeout = app.request_timeout;
    let routes = warp::service(crate::routes::all(app));
    let cors = Arc::new(cors);
    let proxies = Arc::new(proxies);
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let routes = routes.clone();
        let cors = Arc::clone(&cors);
        let proxies = Arc::clone(&proxies);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // The request's head is here: its time starts now.
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let id = request_id(&req);
            let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
            // Behind a trusted load balancer, the client it names.
            let client = proxies.client(peer.ip(), req.headers());
            req.extensions_mut()
                .insert(ClientAddr(std::net::SocketAddr::new(client, peer.port())));
            let origin = req.headers().get(http::header::ORIGIN).cloned();
            let preflight = req.method() == Method::OPTIONS
                && req.headers().contains_key("access-control-request-method");
            let mut routes = routes.clone();
            let cors = Arc::clone(&cors);
            async move {
                let started = Instant::now();
                let allowed = allow(&cors, origin.as_ref());
                let mut res: Response = if preflight {
                    let mut res = Response::new(Default::default());
                    *res.status_mut() = if allowed.is_some() {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::FORBIDDEN
                    };
                    if allowed.is_some() {
                        let h = res.headers_mut();
                        h.insert(
                            "access-control-allow-methods",
                            HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
                        );
                        h.insert(
                            "access-control-allow-headers",
                            HeaderValue::from_static(
                                "authorization, content-type, idempotency-key, x-request-id",
                            ),
                        );
                        h.insert("access-control-max-age", HeaderValue::from_static("600"));
                    }
                    res
                } else {
                    // HEAD answers like GET; the connection sends the headers only.
                    if req.method() == Method::HEAD {
                        *req.method_mut() = Method::GET;
                    }
                    let ended =
                        Arc::new(AtomicBool::new(http_body::Body::is_end_stream(req.body())));
                    let req = req.map(|inner| TrackedBody {
                        inner,
                        ended: Arc::clone(&ended),
                    });
                    let answered = match deadline {
                        Some(at) => marketplace_core::deadline::until(at, routes.call(req)).await,
                        None => Ok(routes.call(req).await),
                    };
                    let mut res = match answered {
                        Ok(Ok(res)) => res,
                        Ok(Err(never)) => match never {},
                        Err(exceeded) => {
                            tracing::warn!(timeout = ?timeout, "request cut off at its deadline");
                            ApiError::from(marketplace_core::Error::from(exceeded)).into_response()
                        }
                    };
                    if !ended.load(Ordering::Relaxed) {
                        res.headers_mut()
                            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    res
                };
                let h = res.headers_mut();
                if let Some(origin) = allowed {
                    h.insert("access-control-allow-origin", origin);
                    h.insert("vary", HeaderValue::from_static("origin"));
                    h.insert(
                        "access-control-expose-headers",
                        HeaderValue::from_static("x-request-id, retry-after, idempotent-replayed"),
                    );
                }
                if let Ok(v) = HeaderValue::from_str(&id) {
                    h.insert("x-request-id", v);
                }
                let status = res.status().as_u16();
                // Milliseconds to the microsecond: `ms=0.412`, not `ms=0.41201699999999997`.
                let ms = started.elapsed().as_micros() as f64 / 1000.0;
                if status >= 500 {
                    tracing::error!(status, ms, "request failed");
                } else {
                    tracing::info!(name: ACCESS_LINE, status, ms, "request");
                }
                Ok::<_, Infallible>(res)
            }
            .instrument(span)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN) => tracing::warn!("requests still in flight after {DRAIN:?}; closing"),
    }
}
