//! What a payment goes through: the [`PaymentProvider`] trait, the manual
//! default and a simulated provider with faults on demand.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::ids::{CheckoutId, PaymentId};
use crate::money::Money;

/// How a payment is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMode {
    /// Authorize now, capture later (once, for at most the authorized amount).
    Manual,
    /// Capture as soon as the buyer pays.
    Immediate,
}

/// What a provider is asked to create: a payment for a checkout's grand total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentIntent {
    /// Our payment.
    pub payment_id: PaymentId,
    /// The checkout it pays.
    pub checkout_id: CheckoutId,
    /// The grand total.
    pub amount: Money,
    /// The buyer's email, for the provider's receipt.
    pub buyer_email: String,
    /// Authorize only, or capture at once.
    pub capture: CaptureMode,
    /// The payment's key: a second create with it returns the same payment.
    pub idempotency_key: String,
}

/// Where a payment stands at the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderState {
    /// Created; the buyer has not paid (or was declined and may try again).
    AwaitingPayment,
    /// The buyer paid; this amount is held and may be captured.
    Authorized(Money),
    /// This amount was captured.
    Captured(Money),
    /// Cancelled at the provider: it can no longer be paid or captured.
    Voided,
}

/// A payment as the provider created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderPayment {
    /// The provider's identifier (a Stripe PaymentIntent id, say).
    pub reference: String,
    /// Where it stands.
    pub state: ProviderState,
    /// What a client needs to pay it in the browser (Stripe's client secret).
    pub client_secret: Option<String>,
    /// What a person needs to pay it (bank details, "pay on delivery").
    pub instructions: Option<String>,
}

/// Why a provider call did not do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The provider refused; nothing moved.
    #[error("declined: {0}")]
    Declined(String),
    /// No certain answer (a timeout, a lost connection): repeat the call with the
    /// same idempotency key to learn the outcome.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// A webhook request as a host received it: its headers and raw body.
#[derive(Clone, Debug, Default)]
pub struct WebhookRequest {
    /// Header names and values, as sent.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte (signatures cover it).
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// The first header named `name`, compared without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a verified webhook says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentEventKind {
    /// The buyer paid; the amount is authorized.
    Authorized(Money),
    /// The amount was captured.
    Captured(Money),
    /// An attempt to pay failed; the buyer may try again until the checkout
    /// expires.
    Failed(String),
    /// The payment was cancelled at the provider.
    Voided,
    /// Anything else (refund notices, other objects); acknowledged and ignored.
    Other,
}

/// A webhook whose signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The provider's event id: the same event delivered twice has the same id.
    pub id: String,
    /// The payment it is about (the provider's reference); `None` for events
    /// about nothing we track.
    pub reference: Option<String>,
    /// What happened.
    pub kind: PaymentEventKind,
}

/// Why a webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No signature, a wrong one, or one too old (a replay).
    #[error("bad signature: {0}")]
    Signature(String),
    /// Signed, but not an event this provider understands.
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// Takes buyers' payments. Implementations treat the idempotency key of each
/// call as its identity: a call repeated with the same key never charges,
/// captures or refunds twice.
#[async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// A short name recorded on each payment and used in the webhook path
    /// (`manual`, `simulated`, `stripe`).
    fn name(&self) -> &str;

    /// Whether the buyer pays before the sellers fulfil: then stock is held
    /// while the payment is awaited, an unpaid checkout expires, and sellers
    /// accept an order only once it is paid. `false` for pay-on-delivery.
    fn collects_upfront(&self) -> bool {
        true
    }

    /// Creates the payment for a checkout (authorize, or charge at once with
    /// [`CaptureMode::Immediate`]).
    async fn create(&self, intent: &PaymentIntent) -> Result<ProviderPayment, PaymentError>;

    /// Where a payment stands now.
    async fn state(&self, reference: &str) -> Result<ProviderState, PaymentError>;

    /// Captures `amount` (at most the authorized amount; the rest is released).
    /// Capturing is done once: a repeat with the same key answers the first
    /// capture.
    async fn capture(
        &self,
        reference: &str,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<Money, PaymentError>;

    /// Cancels a payment not captured yet, releasing any authorization. Answers
    /// where the payment stands afterwards: `Voided`, or `Captured` when it was
    /// captured before it could be cancelled (it must then be refunded).
    async fn void(
        &self,
        reference: &str,
        idempotency_key: &str,
    ) -> Result<ProviderState, PaymentError>;

    /// Refunds `amount` of a captured payment; answers the refund's reference.
    async fn refund(
        &self,
        reference: &str,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<String, PaymentError>;

    /// Checks a webhook's signature (and its age, against replays) at `now`,
    /// and reads the event it carries.
    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        now: DateTime<Utc>,
    ) -> Result<PaymentEvent, WebhookError>;
}

/// The default provider: the buyer pays on delivery or by bank transfer, and an
/// admin marks the checkout paid when the money arrived. Nothing is held or
/// expires; refunds are recorded for the operator to pay back by hand.
#[derive(Clone, Copy, Debug, Default)]
pub struct ManualPayments;

#[async_trait]
impl PaymentProvider for ManualPayments {
    fn name(&self) -> &str {
        "manual"
    }

    fn collects_upfront(&self) -> bool {
        false
    }

    async fn create(&self, intent: &PaymentIntent) -> Result<ProviderPayment, PaymentError> {
        Ok(ProviderPayment {
            reference: format!("manual-{}", intent.checkout_id),
            state: ProviderState::AwaitingPayment,
            client_secret: None,
            instructions: Some(format!(
                "Pay {} on delivery, or by bank transfer quoting {}.",
                intent.amount, intent.checkout_id
            )),
        })
    }

    async fn state(&self, _: &str) -> Result<ProviderState, PaymentError> {
        Ok(ProviderState::AwaitingPayment)
    }

    async fn capture(&self, _: &str, amount: Money, _: &str) -> Result<Money, PaymentError> {
        Ok(amount)
    }

    async fn void(&self, _: &str, _: &str) -> Result<ProviderState, PaymentError> {
        Ok(ProviderState::Voided)
    }

    async fn refund(&self, _: &str, _: Money, key: &str) -> Result<String, PaymentError> {
        Ok(format!("manual-{key}"))
    }

    fn verify_webhook(
        &self,
        _: &WebhookRequest,
        _: DateTime<Utc>,
    ) -> Result<PaymentEvent, WebhookError> {
        Err(WebhookError::Signature(
            "manual payments take no webhooks".into(),
        ))
    }
}

/// What the simulated provider does with the next call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimulatedFault {
    /// Refuses the call.
    Decline(String),
    /// Does what was asked, then answers as if the connection dropped.
    DoThenTimeout,
    /// Answers as if the connection dropped before anything happened.
    Timeout,
}

/// One payment in the simulated provider's book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedPayment {
    /// Its reference.
    pub reference: String,
    /// The key it was created with.
    pub idempotency_key: String,
    /// The amount asked for.
    pub amount: Money,
    /// Where it stands.
    pub state: ProviderState,
    /// Capture at once when paid.
    pub immediate: bool,
    /// Captures made, by idempotency key (at most one per payment).
    pub captures: Vec<(String, Money)>,
    /// Refunds made, by idempotency key.
    pub refunds: Vec<(String, Money)>,
}

/// A provider for embedders' tests and demonstrations: payments live in memory,
/// one per idempotency key; a test plays the buyer ([`pay`](Self::pay),
/// [`decline`](Self::decline)), collects the signed webhooks the provider would
/// send ([`take_webhooks`](Self::take_webhooks)) to deliver them (twice, out of
/// order, late), and injects faults into the next calls
/// ([`fail_next`](Self::fail_next)).
#[derive(Debug)]
pub struct SimulatedPayments {
    secret: Vec<u8>,
    authorize_on_create: bool,
    state: Mutex<Simulated>,
}

#[derive(Debug, Default)]
struct Simulated {
    faults: VecDeque<SimulatedFault>,
    payments: HashMap<String, SimulatedPayment>,
    by_key: HashMap<String, String>,
    outbox: Vec<WebhookRequest>,
    events: u64,
    calls: usize,
}

/// The header carrying a simulated webhook's signature.
pub const SIMULATED_SIGNATURE: &str = "x-simulated-signature";

impl Default for SimulatedPayments {
    fn default() -> Self {
        SimulatedPayments::new(b"simulated-webhook-secret")
    }
}

impl SimulatedPayments {
    /// A provider whose payments await the buyer; webhooks are signed with
    /// `secret`.
    pub fn new(secret: &[u8]) -> SimulatedPayments {
        SimulatedPayments {
            secret: secret.to_vec(),
            authorize_on_create: false,
            state: Mutex::new(Simulated::default()),
        }
    }

    /// A provider whose buyers pay at once: every payment is authorized (or
    /// captured) when it is created, as with a saved card.
    pub fn paying() -> SimulatedPayments {
        SimulatedPayments {
            authorize_on_create: true,
            ..SimulatedPayments::default()
        }
    }

    /// Queues faults for the next calls (after the queue runs out, calls succeed).
    pub fn fail_next(&self, faults: impl IntoIterator<Item = SimulatedFault>) {
        self.lock().faults.extend(faults);
    }

    /// The buyer pays: authorizes the payment (or captures it, when it was
    /// created for immediate capture) and queues the webhook. `false` when it
    /// cannot be paid (unknown, voided, already paid).
    pub fn pay(&self, reference: &str) -> bool {
        let mut s = self.lock();
        let Some(p) = s.payments.get_mut(reference) else {
            return false;
        };
        if p.state != ProviderState::AwaitingPayment {
            return false;
        }
        let kind = if p.immediate {
            p.state = ProviderState::Captured(p.amount);
            p.captures.push(("on-payment".into(), p.amount));
            ("captured", p.amount)
        } else {
            p.state = ProviderState::Authorized(p.amount);
            ("authorized", p.amount)
        };
        let reference = reference.to_owned();
        let event = self.event(&mut s, &reference, kind.0, kind.1);
        s.outbox.push(event);
        true
    }

    /// The buyer's card is declined: queues a `failed` webhook; the payment
    /// still awaits a payment.
    pub fn decline(&self, reference: &str) -> bool {
        let mut s = self.lock();
        let Some(amount) = s
            .payments
            .get(reference)
            .filter(|p| p.state == ProviderState::AwaitingPayment)
            .map(|p| p.amount)
        else {
            return false;
        };
        let reference = reference.to_owned();
        let event = self.event(&mut s, &reference, "failed", amount);
        s.outbox.push(event);
        true
    }

    /// Takes the webhooks sent since the last call, oldest first.
    pub fn take_webhooks(&self) -> Vec<WebhookRequest> {
        std::mem::take(&mut self.lock().outbox)
    }

    /// A signed webhook for `reference`, of kind `authorized`, `captured`,
    /// `failed` or `voided`, as the provider would send it.
    pub fn webhook(&self, reference: &str, kind: &str, amount: Money) -> WebhookRequest {
        let mut s = self.lock();
        self.event(&mut s, reference, kind, amount)
    }

    /// Every payment in the book, by reference.
    pub fn payments(&self) -> HashMap<String, SimulatedPayment> {
        self.lock().payments.clone()
    }

    /// How many calls were made (repeats included).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    fn event(
        &self,
        s: &mut Simulated,
        reference: &str,
        kind: &str,
        amount: Money,
    ) -> WebhookRequest {
        s.events += 1;
        let body = serde_json::json!({
            "id": format!("evt_{:06}", s.events),
            "type": kind,
            "reference": reference,
            "amount": amount.amount,
            "currency": amount.currency.as_str(),
        })
        .to_string()
        .into_bytes();
        WebhookRequest {
            headers: vec![(SIMULATED_SIGNATURE.into(), self.sign(&body))],
            body,
        }
    }

    fn sign(&self, body: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(body);
        hex(&h.finalize())
    }

    /// Counts the call and takes the next fault, if any.
    fn enter(&self) -> (std::sync::MutexGuard<'_, Simulated>, Option<SimulatedFault>) {
        let mut s = self.lock();
        s.calls += 1;
        let fault = s.faults.pop_front();
        (s, fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Simulated> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `op` on the book unless the fault says otherwise.
fn faulty<T>(
    fault: Option<SimulatedFault>,
    op: impl FnOnce() -> Result<T, PaymentError>,
) -> Result<T, PaymentError> {
    match fault {
        None => op(),
        Some(SimulatedFault::Decline(why)) => Err(PaymentError::Declined(why)),
        Some(SimulatedFault::Timeout) => Err(PaymentError::Unknown("timed out".into())),
        Some(SimulatedFault::DoThenTimeout) => {
            op()?;
            Err(PaymentError::Unknown("the connection dropped".into()))
        }
    }
}

#[async_trait]
impl PaymentProvider for SimulatedPayments {
    fn name(&self) -> &str {
        "simulated"
    }

    async fn create(&self, intent: &PaymentIntent) -> Result<ProviderPayment, PaymentError> {
        let (mut s, fault) = self.enter();
        let authorize = self.authorize_on_create;
        faulty(fault, || {
            let n = s.payments.len() + 1;
            let reference = s
                .by_key
                .entry(intent.idempotency_key.clone())
                .or_insert_with(|| format!("simpay_{n:06}"))
                .clone();
            let immediate = intent.capture == CaptureMode::Immediate;
            let p = s
                .payments
                .entry(reference.clone())
                .or_insert_with(|| SimulatedPayment {
                    reference: reference.clone(),
                    idempotency_key: intent.idempotency_key.clone(),
                    amount: intent.amount,
                    state: match (authorize, immediate) {
                        (false, _) => ProviderState::AwaitingPayment,
                        (true, false) => ProviderState::Authorized(intent.amount),
                        (true, true) => ProviderState::Captured(intent.amount),
                    },
                    immediate,
                    captures: if authorize && immediate {
                        vec![("on-payment".into(), intent.amount)]
                    } else {
                        Vec::new()
                    },
                    refunds: Vec::new(),
                });
            Ok(ProviderPayment {
                reference: reference.clone(),
                state: p.state.clone(),
                client_secret: Some(format!("{reference}_secret")),
                instructions: None,
            })
        })
    }

    async fn state(&self, reference: &str) -> Result<ProviderState, PaymentError> {
        let (s, fault) = self.enter();
        faulty(fault, || {
            s.payments
                .get(reference)
                .map(|p| p.state.clone())
                .ok_or_else(|| PaymentError::Declined("no such payment".into()))
        })
    }

    async fn capture(
        &self,
        reference: &str,
        amount: Money,
        key: &str,
    ) -> Result<Money, PaymentError> {
        let (mut s, fault) = self.enter();
        faulty(fault, || {
            let p = s
                .payments
                .get_mut(reference)
                .ok_or_else(|| PaymentError::Declined("no such payment".into()))?;
            if let Some((_, done)) = p.captures.iter().find(|(k, _)| k == key) {
                return Ok(*done);
            }
            match p.state {
                ProviderState::Authorized(held) if amount.amount <= held.amount => {
                    p.state = ProviderState::Captured(amount);
                    p.captures.push((key.to_owned(), amount));
                    Ok(amount)
                }
                ProviderState::Authorized(_) => {
                    Err(PaymentError::Declined("more than authorized".into()))
                }
                ref other => Err(PaymentError::Declined(format!(
                    "cannot capture a payment that is {other:?}"
                ))),
            }
        })
    }

    async fn void(&self, reference: &str, _: &str) -> Result<ProviderState, PaymentError> {
        let (mut s, fault) = self.enter();
        faulty(fault, || {
            let p = s
                .payments
                .get_mut(reference)
                .ok_or_else(|| PaymentError::Declined("no such payment".into()))?;
            if !matches!(p.state, ProviderState::Captured(_)) {
                p.state = ProviderState::Voided;
            }
            Ok(p.state.clone())
        })
    }

    async fn refund(
        &self,
        reference: &str,
        amount: Money,
        key: &str,
    ) -> Result<String, PaymentError> {
        let (mut s, fault) = self.enter();
        faulty(fault, || {
            let p = s
                .payments
                .get_mut(reference)
                .ok_or_else(|| PaymentError::Declined("no such payment".into()))?;
            let ProviderState::Captured(captured) = p.state else {
                return Err(PaymentError::Declined("not captured".into()));
            };
            if let Some(i) = p.refunds.iter().position(|(k, _)| k == key) {
                return Ok(format!("simref_{i:06}"));
            }
            let refunded: i64 = p.refunds.iter().map(|(_, m)| m.amount).sum();
            if refunded + amount.amount > captured.amount {
                return Err(PaymentError::Declined("more than captured".into()));
            }
            p.refunds.push((key.to_owned(), amount));
            Ok(format!("simref_{:06}", p.refunds.len() - 1))
        })
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        _: DateTime<Utc>,
    ) -> Result<PaymentEvent, WebhookError> {
        let signature = request
            .header(SIMULATED_SIGNATURE)
            .ok_or_else(|| WebhookError::Signature("no signature".into()))?;
        if signature != self.sign(&request.body) {
            return Err(WebhookError::Signature(
                "the signature does not match".into(),
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&request.body)
            .map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .ok_or_else(|| WebhookError::Malformed(format!("no {k}")))
        };
        let currency = crate::money::Currency::parse(field("currency")?)
            .ok_or_else(|| WebhookError::Malformed("unknown currency".into()))?;
        let amount = Money::new(
            v.get("amount").and_then(|x| x.as_i64()).unwrap_or(0),
            currency,
        );
        let kind = match field("type")? {
            "authorized" => PaymentEventKind::Authorized(amount),
            "captured" => PaymentEventKind::Captured(amount),
            "failed" => PaymentEventKind::Failed("the card was declined".into()),
            "voided" => PaymentEventKind::Voided,
            _ => PaymentEventKind::Other,
        };
        Ok(PaymentEvent {
            id: field("id")?.to_owned(),
            reference: Some(field("reference")?.to_owned()),
            kind,
        })
    }
}
