//! The errors the marketplace API returns: every refusal is one typed variant with a
//! stable machine-readable code, which hosts map to their own status codes.

use std::time::Duration;

use serde::Serialize;

use crate::ids::ProductId;
use crate::order::OrderStatus;
use crate::storage::StorageError;

/// A problem with one field of an input.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as clients send it (`email`, `items[2].quantity`).
    pub field: String,
    /// A stable code (`required`, `too_long`, `invalid`, `out_of_range`...).
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A cart line that checkout could not reserve.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShortItem {
    /// The product.
    pub product_id: ProductId,
    /// Units the cart asked for.
    pub requested: u32,
    /// Units that were available (0 when the product is no longer sellable).
    pub available: u32,
}

/// The code of the conflict a checkout answers when its idempotency key was
/// used for a different request (classified [`ErrorKind::Invalid`]).
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";

/// What kind of refusal an [`Error`] is, without naming any protocol: a host
/// turns each kind into its own answer (an HTTP status, an exit code, a page) in
/// one match. New kinds may come; a host maps an unknown one like `Internal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request cannot succeed as sent: its input breaks a rule (the fields
    /// are listed), or its idempotency key names a different request. Fix the
    /// request; repeating it will not help.
    Invalid,
    /// A parameter is not in a form this marketplace reads (a cursor of another
    /// list).
    Malformed,
    /// A single-use token (email verification, password reset) is unknown, spent
    /// or expired.
    InvalidToken,
    /// No valid credentials: a missing, expired or forged access token, or a
    /// login that did not match.
    Unauthenticated,
    /// The caller is known but may not do this (wrong role, unverified seller).
    Forbidden,
    /// The resource does not exist, or is not the caller's to see.
    NotFound,
    /// The request conflicts with the current state (an email taken, a cart that
    /// changed, an order past the status that allows it, stock that ran out).
    Conflict,
    /// Too many attempts; the error says how long to wait.
    RateLimited,
    /// An upload is larger than allowed.
    PayloadTooLarge,
    /// An upload is not of an accepted type.
    UnsupportedMediaType,
    /// Storage is temporarily unavailable, the server is at capacity, or the
    /// request ran out of time (its deadline); the same request may be repeated.
    Unavailable,
    /// A failure of ours; its details are for the log, never for the caller.
    Internal,
}

/// Why a marketplace operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input broke one or more rules; every offending field is listed.
    #[error("invalid input: {}", summarize(.0))]
    Validation(Vec<FieldError>),
    /// No valid credentials were presented (missing, expired or forged token).
    #[error("authentication required")]
    Unauthenticated,
    /// Email or password did not match. Never says which.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The caller is known but may not do this (wrong role, unverified seller...).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The resource does not exist, or is not the caller's to see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable code: `email_taken`, `cart_changed`, `category_in_use`...
        code: &'static str,
        /// Explanation.
        message: String,
    },
    /// An order cannot move from its current status to the requested one.
    #[error("an order cannot go from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: OrderStatus,
        /// Requested status.
        to: OrderStatus,
    },
    /// Checkout could not reserve every item; nothing was changed.
    #[error("insufficient stock for {} item(s)", .0.len())]
    InsufficientStock(Vec<ShortItem>),
    /// A single-use token was unknown, already used or expired.
    #[error("the token is invalid or has expired")]
    InvalidToken,
    /// A parameter is not in a form this marketplace issues or reads (a list
    /// cursor that is not one of that list's); the field error names it and
    /// carries the stable code (`invalid_cursor`).
    #[error("{}", .0.message)]
    Malformed(FieldError),
    /// Too many failed attempts; try again after the given delay.
    #[error("too many attempts, retry in {} s", .retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// An upload is larger than allowed.
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// An upload is not of an accepted type.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Storage stayed unavailable through every retry; the request may be repeated.
    #[error("storage temporarily unavailable")]
    Unavailable(#[source] StorageError),
    /// The request did not finish before its [deadline](crate::deadline): a
    /// retry loop stopped there, or the host cut the request off. Each store
    /// step is atomic, so no step is half applied; steps already done stay done
    /// (a checkout repeated with its idempotency key finds its orders). The
    /// request may be repeated; the source, when there is one, is the last
    /// failure, for the log.
    #[error("the request did not finish in time")]
    DeadlineExceeded(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server is at capacity for this kind of work (password hashing);
    /// the request may be repeated after the given delay.
    #[error("too busy, retry in {} s", .retry_after.as_secs())]
    Busy {
        /// How long to wait.
        retry_after: Duration,
    },
    /// An unexpected failure; details are logged, never shown to clients.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn summarize(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A stable machine-readable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation_failed",
            Error::Unauthenticated => "unauthenticated",
            Error::InvalidCredentials => "invalid_credentials",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict { code, .. } => code,
            Error::InvalidTransition { .. } => "invalid_transition",
            Error::InsufficientStock(_) => "insufficient_stock",
            Error::InvalidToken => "invalid_token",
            Error::Malformed(field) => field.code,
            Error::RateLimited { .. } => "rate_limited",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::Unavailable(_) => "unavailable",
            Error::Busy { .. } => "busy",
            Error::DeadlineExceeded(_) => "deadline_exceeded",
            Error::Internal(_) => "internal",
        }
    }

    /// What kind of refusal this is, for a host to answer with: every host's
    /// status mapping is one match on the kind, and no host reads codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Validation(_) => ErrorKind::Invalid,
            // The key is well formed but names another request: repeating the
            // request as sent can never succeed, unlike a conflict with state.
            Error::Conflict {
                code: IDEMPOTENCY_KEY_REUSED,
                ..
            } => ErrorKind::Invalid,
            Error::Unauthenticated | Error::InvalidCredentials => ErrorKind::Unauthenticated,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict { .. }
            | Error::InvalidTransition { .. }
            | Error::InsufficientStock(_) => ErrorKind::Conflict,
            Error::InvalidToken => ErrorKind::InvalidToken,
            Error::Malformed(_) => ErrorKind::Malformed,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => ErrorKind::UnsupportedMediaType,
            Error::Unavailable(_) | Error::Busy { .. } | Error::DeadlineExceeded(_) => {
                ErrorKind::Unavailable
            }
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The fields at fault: every one of a validation failure, the one of a
    /// malformed parameter, none otherwise.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::Malformed(field) => std::slice::from_ref(field),
            _ => &[],
        }
    }

    /// A malformed parameter: `field` is not in a form this marketplace reads.
    pub fn malformed(field: &str, code: &'static str, message: impl Into<String>) -> Error {
        Error::Malformed(FieldError::new(field, code, message))
    }

    /// A validation error on one field.
    pub fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Error {
        Error::Validation(vec![FieldError::new(field, code, message)])
    }

    /// A conflict with a code and message.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Internal(e.into())
    }
}

/// One invalid field is a validation error naming it.
impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Validation(vec![e])
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Error::NotFound("resource"),
            StorageError::AlreadyExists(what) => {
                Error::conflict("already_exists", format!("{what} already exists"))
            }
            StorageError::Precondition(msg) => Error::conflict("conflict", msg),
            e @ StorageError::Transient(_) => Error::Unavailable(e),
            e @ StorageError::DeadlineExceeded(_) => Error::DeadlineExceeded(Box::new(e)),
            e => Error::Internal(Box::new(e)),
        }
    }
}

/// A request cut off at its deadline.
impl From<crate::deadline::Exceeded> for Error {
    fn from(e: crate::deadline::Exceeded) -> Self {
        Error::DeadlineExceeded(Box::new(e))
    }
}

/// The result type of the marketplace API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while validating a whole input, so the client hears of
/// every problem at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// Records a problem.
    pub fn add(&mut self, field: &str, code: &'static str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, code, message));
    }

    /// Records the error of a field check, if any, and returns its value.
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_kind() {
        let cases = [
            (Error::invalid("email", "invalid", "x"), ErrorKind::Invalid),
            (
                Error::conflict(IDEMPOTENCY_KEY_REUSED, "another request"),
                ErrorKind::Invalid,
            ),
            (
                Error::malformed("cursor", "invalid_cursor", "x"),
                ErrorKind::Malformed,
            ),
            (Error::InvalidToken, ErrorKind::InvalidToken),
            (Error::Unauthenticated, ErrorKind::Unauthenticated),
            (Error::InvalidCredentials, ErrorKind::Unauthenticated),
            (Error::Forbidden("no"), ErrorKind::Forbidden),
            (Error::NotFound("order"), ErrorKind::NotFound),
            (Error::conflict("email_taken", "x"), ErrorKind::Conflict),
            (
                Error::InvalidTransition {
                    from: OrderStatus::Delivered,
                    to: OrderStatus::Pending,
                },
                ErrorKind::Conflict,
            ),
            (Error::InsufficientStock(Vec::new()), ErrorKind::Conflict),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(1),
                },
                ErrorKind::RateLimited,
            ),
            (
                Error::PayloadTooLarge { limit: 1 },
                ErrorKind::PayloadTooLarge,
            ),
            (
                Error::UnsupportedMediaType("text/plain".into()),
                ErrorKind::UnsupportedMediaType,
            ),
            (
                Error::from(StorageError::Transient("busy".into())),
                ErrorKind::Unavailable,
            ),
            (
                Error::from(StorageError::deadline_exceeded(StorageError::transient(
                    "busy",
                ))),
                ErrorKind::Unavailable,
            ),
            (
                Error::from(crate::deadline::Exceeded),
                ErrorKind::Unavailable,
            ),
            (Error::internal("boom"), ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e:?}");
        }
    }

    #[test]
    fn a_malformed_parameter_names_its_field_and_code() {
        let e = Error::malformed("cursor", "invalid_cursor", "is not a cursor of this list");
        assert_eq!(e.code(), "invalid_cursor");
        assert_eq!(e.to_string(), "is not a cursor of this list");
        assert_eq!(e.field_errors().len(), 1);
        assert_eq!(e.field_errors()[0].field, "cursor");
        assert!(Error::Unauthenticated.field_errors().is_empty());
    }
}
