//! # marketplace-stripe
//!
//! Takes the marketplace's payments with [Stripe]: [`StripePayments`]
//! implements [`marketplace_core::payment::PaymentProvider`] on Stripe's
//! PaymentIntents, so a checkout's grand total is authorized (or charged at
//! once), captured, cancelled and refunded at Stripe, and Stripe's signed
//! webhooks tell the marketplace what the buyer did.
//!
//! [Stripe]: https://docs.stripe.com/api
//!
//! ## The calls
//!
//! | Trait method | Stripe request |
//! |---|---|
//! | [`create`](PaymentProvider::create) | `POST /v1/payment_intents` with `amount`, `currency` (lower case), `capture_method=manual` ([`CaptureMode::Manual`]) or `automatic` ([`CaptureMode::Immediate`]), `receipt_email`, `metadata[checkout_id]`, `metadata[payment_id]` |
//! | [`state`](PaymentProvider::state) | `GET /v1/payment_intents/{id}` |
//! | [`capture`](PaymentProvider::capture) | `POST /v1/payment_intents/{id}/capture` with `amount_to_capture` |
//! | [`void`](PaymentProvider::void) | `POST /v1/payment_intents/{id}/cancel` |
//! | [`refund`](PaymentProvider::refund) | `GET /v1/refunds?payment_intent={id}`, then `POST /v1/refunds` with `payment_intent`, `amount`, `metadata[idempotency_key]` |
//! | [`verify_webhook`](PaymentProvider::verify_webhook) | none: `Stripe-Signature` is checked locally |
//!
//! Every `POST` carries the caller's idempotency key as Stripe's
//! `Idempotency-Key` header, so a repeat after a timeout answers the first
//! outcome instead of acting twice. On top of that:
//!
//! - **capture** is once-only at Stripe anyway: when a capture is refused and
//!   the intent turns out to be `succeeded` already (captured by an earlier
//!   call, whatever its key), the answer is what it received
//!   (`amount_received`).
//! - **void** of an intent already `canceled` answers
//!   [`ProviderState::Voided`]; of one already `succeeded`,
//!   [`ProviderState::Captured`] (the intent is read back to learn which), so the
//!   caller knows it must refund instead.
//! - **refund** records the key in the refund's metadata and looks for it
//!   among the intent's refunds before creating one. Stripe forgets
//!   idempotency keys after 24 hours; the metadata does not, so a refund
//!   retried days later is still not paid twice.
//! - **create** relies on `Idempotency-Key` alone (within Stripe's 24 hours).
//!
//! Intent statuses map to [`ProviderState`]: `requires_payment_method`,
//! `requires_confirmation`, `requires_action` (3-D Secure) and `processing` are
//! [`AwaitingPayment`](ProviderState::AwaitingPayment); `requires_capture` is
//! [`Authorized`](ProviderState::Authorized)(`amount_capturable`); `succeeded`
//! is [`Captured`](ProviderState::Captured)(`amount_received`); `canceled` is
//! [`Voided`](ProviderState::Voided). Amounts are the ISO 4217 minor units of
//! [`Money`], which is what Stripe expects for
//! all but its few special-cased currencies (see Stripe's "zero-decimal" and
//! "special cases" lists; they are not translated here).
//!
//! ## Errors
//!
//! A definite refusal (HTTP 400/402/404: a card declined, an invalid request,
//! no such intent) is [`PaymentError::Declined`] with Stripe's message.
//! Anything that leaves the outcome open or may heal by itself is
//! [`PaymentError::Unknown`], to be repeated with the same key: timeouts
//! ([`StripeConfig::timeout`], 20 s by default), connection failures, 5xx,
//! 409 and every `idempotency_error`, 429 rate limits, 401/403 (a revoked or
//! mistyped key is an operator's fix, not a reason to fail the buyer's
//! payment), and a success whose body cannot be read.
//!
//! ## Webhooks
//!
//! [`verify_webhook`](PaymentProvider::verify_webhook) implements Stripe's
//! scheme: `Stripe-Signature: t={unix seconds},v1={hex}` where the signature is
//! HMAC-SHA256 of `"{t}.{raw body}"` keyed with the endpoint's signing secret
//! (`STRIPE_WEBHOOK_SECRET`, `whsec_...`). Any of several `v1` values may
//! match (secret rotation); the comparison is constant-time (`hmac`'s
//! `verify_slice`). A `t` more than [`StripeConfig::webhook_tolerance`] (300 s)
//! before *or after* `now` is refused as [`WebhookError::Signature`]: that is
//! the replay protection. The event's `id`, `type` and `data.object` are read:
//!
//! | Event type | [`PaymentEventKind`](marketplace_core::payment::PaymentEventKind) |
//! |---|---|
//! | `payment_intent.amount_capturable_updated` | `Authorized(amount_capturable)` |
//! | `payment_intent.succeeded` | `Captured(amount_received)` |
//! | `payment_intent.payment_failed` | `Failed(last_payment_error.message)`, or `"payment failed"` |
//! | `payment_intent.canceled` | `Voided` |
//! | anything else | `Other` |
//!
//! The event's `reference` is `data.object.id` when the object is a
//! PaymentIntent, `None` otherwise. Subscribe the endpoint to (at least) the
//! four `payment_intent.*` types above. [`signature_header`] signs a body the
//! way Stripe does, for tests.
//!
//! ## Why plain reqwest rather than async-stripe
//!
//! The provider needs six endpoints and a handful of fields. `async-stripe`
//! generates the whole API (hundreds of resources): minutes of compile time
//! and a large dependency tree for what is here a few form-encoded requests,
//! and its types pin an API version's every field. Plain `reqwest` (form
//! bodies, JSON answers read as [`serde_json::Value`]) keeps the build small
//! and reads only fields that have been stable across Stripe API versions, so
//! the account's default API version is used (no `Stripe-Version` header).
//! TLS is reqwest's `rustls` feature (rustls with its default aws-lc-rs
//! provider and the platform's verifier, so the host's CA store must hold the
//! usual public roots: install `ca-certificates` in slim images); no
//! native-tls, no HTTP/2. Not `rustls-no-provider` with ring: Cargo unifies
//! reqwest's features across the workspace, and every other crate's
//! `reqwest::Client::new()` would then panic for want of a crypto provider.
//!
//! ## Configuration
//!
//! [`StripeConfig::from_env`] reads `STRIPE_SECRET_KEY` (required, else Stripe
//! is not configured), `STRIPE_WEBHOOK_SECRET` and `STRIPE_API_BASE` (default
//! `https://api.stripe.com`; `http://127.0.0.1:8420` for localstripe).
//!
//! ## Testing against localstripe, and what it does not cover
//!
//! `tests/localstripe.rs` runs the provider against [localstripe] 1.15.10 (a
//! stateful fake Stripe in Python) when `TEST_STRIPE_URL` is set:
//!
//! ```text
//! pip install localstripe==1.15.10
//! localstripe --port 8420 --from-scratch &
//! TEST_STRIPE_URL=http://127.0.0.1:8420 cargo test -p marketplace-stripe
//! ```
//!
//! localstripe differs from Stripe in ways these tests cannot see past (each
//! read from its source, `localstripe/resources.py`, `server.py`,
//! `webhooks.py`, and checked against the running server):
//!
//! - **No idempotency.** `Idempotency-Key` is never read: two creates with
//!   one key make two intents, two refunds with one key refund twice. The
//!   tests therefore exercise this crate's own guards (capture read-back,
//!   refund metadata), not Stripe's key replay; create's reliance on the key
//!   is untested there. Conflicts (409, `idempotency_error`) never occur.
//! - **Parameters.** `PaymentIntent` takes only `amount`, `currency`,
//!   `customer`, `payment_method`, `metadata`, `payment_method_types`,
//!   `capture_method`, `payment_method_options` (and `confirm`,
//!   `off_session`); anything else is `400 Unexpected ...`. So
//!   `receipt_email` is refused (the tests turn
//!   [`StripeConfig::send_receipt_email`] off), and so are Connect's
//!   `application_fee_amount`, `transfer_data`, `on_behalf_of`.
//!   `POST /v1/payment_intents/{id}/confirm` with a `payment_method` answers
//!   `500 Not implemented`: the tests attach the method with
//!   `POST /v1/payment_intents/{id}` first, then confirm.
//! - **Missing fields.** Intents have no `amount_capturable` and no
//!   `amount_received` (this crate then falls back to `amount`, or to the
//!   amount it asked to capture), so after a *partial* capture `state` and a
//!   repeated capture report the full amount, where Stripe reports the captured
//!   one. A partial capture is recorded as a refund of the remainder, which
//!   shows in the charge's `amount_refunded`. `latest_charge` is an embedded
//!   object, where Stripe sends an id unless expanded.
//! - **Webhooks.** Only `payment_intent.succeeded` (on an automatic charge or a
//!   capture) and `payment_intent.payment_failed` are emitted for intents: no
//!   `payment_intent.amount_capturable_updated` (an authorization sends
//!   nothing, so `Authorized` events are untested end to end), no
//!   `payment_intent.canceled`, `created`, `processing`, `requires_action`, no
//!   `charge.*` or refund events. Each event is posted once, one second after
//!   it happens, to every webhook registered with
//!   `POST /_config/webhooks/{name}` (`url`, `secret`, optional `events[]`),
//!   with no retries; the header has one `v1` and no `v0`. Registrations live
//!   in memory and are not cleared by `DELETE /_config/data`. Events carry
//!   `api_version: 2017-08-15`.
//! - **Test cards.** Declines follow a short list: on confirming an intent only
//!   `4000000000000341` (`pm_card_chargeCustomerFail`), `4000008260003178` and
//!   `4000008400001629` are declined (402 `card_declined`).
//!   `4000000000000002` and `pm_card_visa_chargeDeclined` are declined only
//!   when attached to a customer; an intent confirmed with them *succeeds*.
//!   No `insufficient_funds`, `expired_card`, `incorrect_cvc`, fraud or
//!   `processing_error` cards; card numbers are not Luhn-checked.
//! - **3-D Secure** is a flag: the cards `4000002500003155`,
//!   `4000002760003184`, `4000008260003178`, `4000000000003220`,
//!   `4000000000003063`, `4000008400001629` put the intent in
//!   `requires_action`, left by the fake `POST
//!   /v1/payment_intents/{id}/_authenticate` (`client_secret`, `success`).
//!   No redirects; `off_session=true` is accepted and changes nothing (Stripe
//!   fails such a payment with `authentication_required`).
//! - **No second attempt.** After a declined charge the intent stays
//!   `requires_payment_method` even once a new payment method is attached
//!   (its status keeps reading the failed charge), and a new confirm answers
//!   `400 Bad request`; at Stripe the buyer simply tries another card.
//! - **Errors.** Every error has `type: invalid_request_error` (Stripe says
//!   `card_error` for declines, `api_error`, `idempotency_error`...), most
//!   have no `code` and the message `Bad request`: capturing twice, capturing
//!   more than authorized and cancelling a `succeeded` or `canceled` intent
//!   all look alike (this crate reads the intent back rather than trusting
//!   codes). Capturing an intent that has no charge yet, or listing the
//!   refunds of one, fails with a `500` (a Python `AttributeError`), which
//!   this crate reports as `Unknown` where Stripe would give a 400 (or an
//!   empty list) and this crate `Declined`.
//! - **Missing checks.** Capturing a *cancelled* intent that had been
//!   authorized answers `200` with the intent still `canceled` but captures
//!   its charge (this crate answers `Unknown`). Refunds are not checked
//!   against what is left to refund (5000 of a 700 charge is accepted). There
//!   is no rate limiting, and any key starting with `sk_` is accepted.
//! - **Not there at all:** Connect (accounts, transfers, application fees,
//!   the `Stripe-Account` header), disputes, refund cancellation and failure,
//!   PaymentIntent search, `automatic_payment_methods`, live mode, API
//!   versions (`Stripe-Version` is ignored). `processing` shows only for the
//!   half second before a SEPA debit fails.
//! - **Running it.** It binds `[::]` (an IPv6 socket, dual-stack) with no
//!   option for the address, so it may not start where IPv6 is disabled.
//!   The whole store is pickled to `/tmp/localstripe.pickle` after every
//!   write and reloaded at start unless `--from-scratch` is given (two
//!   instances on one machine share that file).
//!
//! [localstripe]: https://github.com/adrienverge/localstripe
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod intent;
mod webhook;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::money::Money;
use marketplace_core::payment::{
    CaptureMode, PaymentError, PaymentEvent, PaymentIntent, PaymentProvider, ProviderPayment,
    ProviderState, WebhookError, WebhookRequest,
};
use serde_json::Value;

use client::{Api, ApiError};
use intent::Intent;

pub use config::{
    ConfigError, DEFAULT_API_BASE, DEFAULT_TIMEOUT, DEFAULT_WEBHOOK_TOLERANCE, StripeConfig,
};
pub use webhook::{SIGNATURE_HEADER, signature_header};

/// The most pages of refunds read when looking for an earlier refund.
const MAX_REFUND_PAGES: usize = 10;

/// The metadata key under which a refund records its idempotency key.
const REFUND_KEY_METADATA: &str = "idempotency_key";

/// Payments through Stripe's PaymentIntents. Cheap to clone (the HTTP client's
/// connection pool is shared); safe to share between tasks.
#[derive(Clone)]
pub struct StripePayments {
    api: Api,
    api_base: String,
    webhook_secret: Option<String>,
    webhook_tolerance: Duration,
    send_receipt_email: bool,
}

impl fmt::Debug for StripePayments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripePayments")
            .field("api_base", &self.api_base)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .field("webhook_tolerance", &self.webhook_tolerance)
            .field("send_receipt_email", &self.send_receipt_email)
            .finish_non_exhaustive()
    }
}

impl StripePayments {
    /// A provider for `config`. Checks the settings and builds the HTTP client;
    /// does not call Stripe.
    pub fn new(config: StripeConfig) -> Result<StripePayments, ConfigError> {
        let api = Api::new(&config)?;
        Ok(StripePayments {
            api,
            api_base: config.checked_base()?,
            webhook_secret: config.webhook_secret.filter(|s| !s.is_empty()),
            webhook_tolerance: config.webhook_tolerance,
            send_receipt_email: config.send_receipt_email,
        })
    }

    async fn retrieve(&self, reference: &str) -> Result<Intent, PaymentError> {
        let v = self.api.get(&intent_path(reference, "")?, &[]).await?;
        read_intent(&v)
    }

    /// The id of the refund of `reference` made with `key`, if there is one.
    async fn find_refund(
        &self,
        reference: &str,
        key: &str,
    ) -> Result<Option<String>, PaymentError> {
        let mut after: Option<String> = None;
        for _ in 0..MAX_REFUND_PAGES {
            let mut query = vec![
                ("payment_intent", reference.to_owned()),
                ("limit", "100".to_owned()),
            ];
            if let Some(after) = &after {
                query.push(("starting_after", after.clone()));
            }
            let page = self.api.get("/v1/refunds", &query).await?;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| PaymentError::Unknown("the refund list has no data".into()))?;
            let found = data.iter().find(|r| {
                r.get("metadata")
                    .and_then(|m| m.get(REFUND_KEY_METADATA))
                    .and_then(Value::as_str)
                    == Some(key)
            });
            if let Some(refund) = found {
                return refund_outcome(refund).map(Some);
            }
            let more = page.get("has_more").and_then(Value::as_bool) == Some(true);
            match data.last() {
                Some(last) if more => after = Some(object_id(last)?),
                _ => return Ok(None),
            }
        }
        tracing::warn!(
            reference,
            "more than {MAX_REFUND_PAGES} pages of refunds; relying on the Idempotency-Key"
        );
        Ok(None)
    }
}

/// `/v1/payment_intents/{reference}{suffix}`, for a reference that looks like a
/// PaymentIntent id (so that it cannot change the path).
fn intent_path(reference: &str, suffix: &str) -> Result<String, PaymentError> {
    let valid = reference.len() > 3
        && reference.starts_with("pi_")
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(PaymentError::Declined(format!(
            "`{reference}` is not a Stripe PaymentIntent id"
        )));
    }
    Ok(format!("/v1/payment_intents/{reference}{suffix}"))
}

fn read_intent(v: &Value) -> Result<Intent, PaymentError> {
    Intent::parse(v).map_err(|why| PaymentError::Unknown(format!("unreadable answer: {why}")))
}

fn state_of(intent: &Intent) -> Result<ProviderState, PaymentError> {
    intent.state().ok_or_else(|| {
        PaymentError::Unknown(format!(
            "the payment intent has the unknown status `{}`",
            intent.status
        ))
    })
}

fn object_id(v: &Value) -> Result<String, PaymentError> {
    v.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| PaymentError::Unknown("an object without id".into()))
}

#[async_trait]
impl PaymentProvider for StripePayments {
    fn name(&self) -> &str {
        "stripe"
    }

    async fn create(&self, intent: &PaymentIntent) -> Result<ProviderPayment, PaymentError> {
        let capture_method = match intent.capture {
            CaptureMode::Manual => "manual",
            CaptureMode::Immediate => "automatic",
        };
        let mut form = vec![
            ("amount", intent.amount.amount.to_string()),
            (
                "currency",
                intent.amount.currency.as_str().to_ascii_lowercase(),
            ),
            ("capture_method", capture_method.to_owned()),
            ("metadata[checkout_id]", intent.checkout_id.to_string()),
            ("metadata[payment_id]", intent.payment_id.to_string()),
        ];
        if self.send_receipt_email && !intent.buyer_email.trim().is_empty() {
            form.push(("receipt_email", intent.buyer_email.trim().to_owned()));
        }
        let v = self
            .api
            .post("/v1/payment_intents", &form, &intent.idempotency_key)
            .await?;
        let created = read_intent(&v)?;
        Ok(ProviderPayment {
            state: state_of(&created)?,
            reference: created.id,
            client_secret: created.client_secret,
            instructions: None,
        })
    }

    async fn state(&self, reference: &str) -> Result<ProviderState, PaymentError> {
        state_of(&self.retrieve(reference).await?)
    }

    async fn capture(
        &self,
        reference: &str,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<Money, PaymentError> {
        let path = intent_path(reference, "/capture")?;
        let form = [("amount_to_capture", amount.amount.to_string())];
        match self.api.post(&path, &form, idempotency_key).await {
            Ok(v) => {
                let captured = read_intent(&v)?;
                match captured.status.as_str() {
                    "succeeded" => Ok(captured.received_or(amount.amount)),
                    other => Err(PaymentError::Unknown(format!(
                        "after the capture the payment intent is `{other}`"
                    ))),
                }
            }
            Err(refused @ ApiError::Refused { .. }) => {
                // Captured before (by an earlier call, whatever its key)?
                let now = self.retrieve(reference).await?;
                if now.status == "succeeded" {
                    Ok(now.received_or(now.amount))
                } else {
                    Err(refused.into())
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn void(
        &self,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ProviderState, PaymentError> {
        let path = intent_path(reference, "/cancel")?;
        match self.api.post(&path, &[], idempotency_key).await {
            Ok(v) => state_of(&read_intent(&v)?),
            Err(refused @ ApiError::Refused { .. }) => {
                // Cancelled or captured before?
                let now = self.retrieve(reference).await?;
                match now.status.as_str() {
                    "canceled" => Ok(ProviderState::Voided),
                    "succeeded" => Ok(ProviderState::Captured(now.received_or(now.amount))),
                    "processing" => Err(PaymentError::Unknown(
                        "the payment is processing: it can be cancelled once it settles".into(),
                    )),
                    _ => Err(refused.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<String, PaymentError> {
        intent_path(reference, "")?;
        if let Some(id) = self.find_refund(reference, idempotency_key).await? {
            return Ok(id);
        }
        let metadata_key = format!("metadata[{REFUND_KEY_METADATA}]");
        let form = [
            ("payment_intent", reference.to_owned()),
            ("amount", amount.amount.to_string()),
            (metadata_key.as_str(), idempotency_key.to_owned()),
        ];
        let v = self.api.post("/v1/refunds", &form, idempotency_key).await?;
        refund_outcome(&v)
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        now: DateTime<Utc>,
    ) -> Result<PaymentEvent, WebhookError> {
        let secret = self
            .webhook_secret
            .as_deref()
            .ok_or_else(|| WebhookError::Signature("no webhook secret is configured".into()))?;
        webhook::verify_signature(
            secret,
            request.header(SIGNATURE_HEADER),
            &request.body,
            now,
            self.webhook_tolerance,
        )?;
        webhook::parse_event(&request.body)
    }
}

/// A refund's id, or why it did not go through: Stripe answers `failed` or
/// `canceled` refunds with a 2xx too. `pending` and `requires_action` refunds
/// are under way at Stripe and count as made.
fn refund_outcome(refund: &Value) -> Result<String, PaymentError> {
    match refund.get("status").and_then(Value::as_str) {
        Some(status @ ("failed" | "canceled")) => Err(PaymentError::Declined(format!(
            "the refund is {status} at Stripe{}",
            refund
                .get("failure_reason")
                .and_then(Value::as_str)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ))),
        _ => object_id(refund),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_must_be_intent_ids() {
        assert_eq!(
            intent_path("pi_3Abc_9", "/capture").expect("valid"),
            "/v1/payment_intents/pi_3Abc_9/capture"
        );
        for bad in [
            "",
            "pi_",
            "ch_123",
            "pi_../../v1/refunds",
            "pi_1?x=1",
            "pi_1/cancel",
        ] {
            assert!(
                matches!(intent_path(bad, ""), Err(PaymentError::Declined(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_checks_the_config() {
        assert!(matches!(
            StripePayments::new(StripeConfig::new("")),
            Err(ConfigError::NoSecretKey)
        ));
        assert!(matches!(
            StripePayments::new(StripeConfig::new("sk_test_x").with_api_base("localhost:8420")),
            Err(ConfigError::ApiBase(_))
        ));
        let p =
            StripePayments::new(StripeConfig::new("sk_test_secret").with_webhook_secret("whsec_s"))
                .expect("valid");
        assert_eq!(p.name(), "stripe");
        assert!(p.collects_upfront());
        assert!(!format!("{p:?}").contains("secret\""), "{p:?}");
    }

    #[test]
    fn webhooks_need_a_secret() {
        let p = StripePayments::new(StripeConfig::new("sk_test_x")).expect("valid");
        let body = br#"{"id":"evt_1","type":"x","data":{"object":{}}}"#.to_vec();
        let request = WebhookRequest {
            headers: vec![(
                "stripe-signature".into(),
                signature_header("", Utc::now().timestamp(), &body),
            )],
            body,
        };
        assert!(matches!(
            p.verify_webhook(&request, Utc::now()),
            Err(WebhookError::Signature(_))
        ));
    }

    #[test]
    fn verify_webhook_reads_the_header_without_case() {
        let p = StripePayments::new(StripeConfig::new("sk_test_x").with_webhook_secret("whsec_s"))
            .expect("valid");
        let body = br#"{"id":"evt_9","type":"payment_intent.canceled","data":{"object":{"id":"pi_9","object":"payment_intent","status":"canceled","amount":5,"currency":"usd"}}}"#.to_vec();
        let now = Utc::now();
        let request = WebhookRequest {
            headers: vec![(
                "stripe-signature".into(),
                signature_header("whsec_s", now.timestamp(), &body),
            )],
            body,
        };
        let event = p.verify_webhook(&request, now).expect("verified");
        assert_eq!(event.id, "evt_9");
        assert_eq!(event.reference.as_deref(), Some("pi_9"));
        assert_eq!(
            event.kind,
            marketplace_core::payment::PaymentEventKind::Voided
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unknown() {
        // Port 9 (discard) on loopback: nothing listens there.
        let p = StripePayments::new(
            StripeConfig::new("sk_test_x")
                .with_api_base("http://127.0.0.1:9")
                .with_timeout(Duration::from_secs(2)),
        )
        .expect("valid");
        assert!(matches!(
            p.state("pi_123").await,
            Err(PaymentError::Unknown(_))
        ));
    }

    #[test]
    fn failed_and_cancelled_refunds_are_declined() {
        let ok = serde_json::json!({"id": "re_1", "status": "pending"});
        assert_eq!(refund_outcome(&ok), Ok("re_1".to_owned()));
        for status in ["failed", "canceled"] {
            let v = serde_json::json!({"id": "re_2", "status": status, "failure_reason": "expired_or_canceled_card"});
            match refund_outcome(&v) {
                Err(PaymentError::Declined(why)) => assert!(why.contains(status), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
