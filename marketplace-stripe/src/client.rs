//! The few calls to Stripe's REST API: form-encoded requests, JSON answers, and
//! the classification of every failure.

use std::time::Duration;

use marketplace_core::payment::PaymentError;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::{ConfigError, StripeConfig};

/// The HTTP side of [`StripePayments`](crate::StripePayments).
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// Why a call did not answer the object asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// Stripe answered a definite refusal: nothing happened.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Stripe's error code (`card_declined`, `resource_missing`,
        /// `payment_intent_unexpected_state`...), when it gave one.
        code: Option<String>,
        /// What Stripe said.
        message: String,
    },
    /// No certain answer: the request may or may not have taken effect.
    Unknown(String),
}

impl From<ApiError> for PaymentError {
    fn from(e: ApiError) -> PaymentError {
        match e {
            ApiError::Refused { message, .. } => PaymentError::Declined(message),
            ApiError::Unknown(why) => PaymentError::Unknown(why),
        }
    }
}

impl Api {
    pub(crate) fn new(config: &StripeConfig) -> Result<Api, ConfigError> {
        if config.secret_key.trim().is_empty() {
            return Err(ConfigError::NoSecretKey);
        }
        let base = config.checked_base()?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("marketplace-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(Api {
            http,
            base,
            key: config.secret_key.trim().to_owned(),
        })
    }

    /// `GET {base}{path}?{query}`.
    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ApiError> {
        let request = self.request(Method::GET, path).query(query);
        self.send("GET", path, request).await
    }

    /// `POST {base}{path}` with a form body and an `Idempotency-Key`.
    pub(crate) async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Value, ApiError> {
        let request = self
            .request(Method::POST, path)
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        self.send("POST", path, request).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(body) => classify(status, &body),
                    Err(e) => Err(ApiError::Unknown(format!(
                        "Stripe answered {status} but the body was lost: {}",
                        transport(&e)
                    ))),
                }
            }
            Err(e) => Err(ApiError::Unknown(transport(&e))),
        };
        match &outcome {
            Ok(_) => tracing::debug!(method, path, "stripe call succeeded"),
            Err(ApiError::Refused {
                status,
                code,
                message,
            }) => tracing::info!(method, path, status, ?code, message, "stripe refused"),
            Err(ApiError::Unknown(why)) => {
                tracing::warn!(method, path, why, "stripe call without a certain outcome")
            }
        }
        outcome
    }
}

/// A transport failure, described with its causes.
fn transport(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut text = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sorts an answer: a 2xx JSON object is the result; an error is a refusal
/// only when Stripe certainly did nothing and repeating cannot help (a card
/// declined, an invalid request, a missing object); everything else (5xx,
/// 409 and other idempotency errors, 429 rate limits, 401/403 key trouble,
/// an unreadable success) is unknown and worth repeating with the same key.
pub(crate) fn classify(status: StatusCode, body: &[u8]) -> Result<Value, ApiError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status.is_success() {
        return match json {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(ApiError::Unknown(format!(
                "Stripe answered {status} with a body that is not a JSON object"
            ))),
        };
    }
    let error = json.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let kind = field("type");
    let code = field("code");
    let message = field("message")
        .or_else(|| code.clone())
        .unwrap_or_else(|| format!("Stripe answered HTTP {}", status.as_u16()));
    let retryable = status.is_server_error()
        || matches!(status.as_u16(), 401 | 403 | 409 | 429)
        || kind.as_deref() == Some("idempotency_error")
        || kind.as_deref() == Some("api_error")
        || code.as_deref() == Some("idempotency_key_in_use")
        || code.as_deref() == Some("lock_timeout");
    if retryable || !status.is_client_error() {
        Err(ApiError::Unknown(format!(
            "HTTP {}: {message}",
            status.as_u16()
        )))
    } else {
        Err(ApiError::Refused {
            status: status.as_u16(),
            code,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: &str) -> ApiError {
        classify(
            StatusCode::from_u16(status).expect("status"),
            body.as_bytes(),
        )
        .expect_err("an error")
    }

    #[test]
    fn card_and_request_errors_are_refusals() {
        let e = error(
            402,
            r#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#,
        );
        assert_eq!(
            PaymentError::from(e),
            PaymentError::Declined("Your card was declined.".into())
        );
        let e = error(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"amount_too_large","message":"Too much."}}"#,
        );
        assert!(
            matches!(e, ApiError::Refused { status: 400, code: Some(ref c), .. } if c == "amount_too_large")
        );
        let e = error(404, "<html>nope</html>");
        assert_eq!(
            PaymentError::from(e),
            PaymentError::Declined("Stripe answered HTTP 404".into())
        );
    }

    #[test]
    fn outages_conflicts_and_key_trouble_are_unknown() {
        for (status, body) in [
            (500, r#"{"error":{"type":"api_error","message":"boom"}}"#),
            (502, "bad gateway"),
            (
                409,
                r#"{"error":{"type":"idempotency_error","message":"in use"}}"#,
            ),
            (
                400,
                r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#,
            ),
            (
                429,
                r#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}"#,
            ),
            (
                401,
                r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}"#,
            ),
        ] {
            assert!(
                matches!(error(status, body), ApiError::Unknown(_)),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn a_success_must_be_an_object() {
        assert!(classify(StatusCode::OK, br#"{"id":"pi_1"}"#).is_ok());
        assert!(matches!(
            classify(StatusCode::OK, b"<html>"),
            Err(ApiError::Unknown(_))
        ));
    }
}
