//! Payments: one per checkout, through a [`PaymentProvider`].
//!
//! A checkout's payment is created with its orders, for their grand total, and
//! moves through these states:
//!
//! | status | meaning |
//! | --- | --- |
//! | `awaiting_payment` | created; the buyer has not paid. With a provider that collects upfront, the stock stays held until [`PaymentPolicy::hold`] runs out, then the checkout expires: its orders are cancelled and their stock returned |
//! | `authorized` | the buyer paid; the money is held at the provider |
//! | `capturing` | the capture's amount is fixed and the provider asked |
//! | `captured` | the money was taken |
//! | `partially_refunded`, `refunded` | some, or all, of it went back |
//! | `failed` | the provider refused (a declined capture, say); the orders are cancelled |
//! | `voided` | nothing was taken: the checkout expired, or every order was cancelled |
//!
//! **When money moves.** By default the payment is captured once, when every
//! order of the checkout has been accepted or cancelled, for the sum of the
//! orders still live, or at [`PaymentPolicy::capture_within`] after the
//! authorization, whichever comes first. [`CapturePolicy::AtCheckout`] captures
//! as soon as the buyer pays instead. An order cancelled before the capture
//! lowers the amount captured; one cancelled or returned after it is refunded.
//!
//! **Safety.** Every record change is one conditional step on the payment's
//! `version`, and every order change of the checkout bumps it, so a capture and
//! a seller's cancellation serialize: either the capture sees the cancellation,
//! or the cancellation sees the capture and records a refund. Provider calls
//! carry keys derived from the payment's own key (`checkout-{id}`, then
//! `…-capture`, `…-void`, `…-refund-{order}`), so a repeated call after a timeout
//! or a crash never charges twice. A worker ([`Marketplace::run_payments`](crate::Marketplace::run_payments))
//! finishes what a request could not: expiries, captures, voids and refunds.
//!
//! The records live here; the provider trait and providers in `provider`; the
//! steps in `flow`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{CheckoutId, OrderId, PaymentId, RefundId, UserId};
use crate::money::Money;
use crate::order::{Order, OrderTransition};
use crate::outbox::OutboxMessage;

mod flow;
mod provider;

pub(crate) use flow::with_status_of;
pub use flow::{PaymentListQuery, PaymentRun, WebhookOutcome};
pub use provider::{
    CaptureMode, ManualPayments, PaymentError, PaymentEvent, PaymentEventKind, PaymentIntent,
    PaymentProvider, ProviderPayment, ProviderState, SIMULATED_SIGNATURE, SimulatedFault,
    SimulatedPayment, SimulatedPayments, WebhookError, WebhookRequest,
};

/// The account recorded as the author of changes the marketplace makes on its
/// own (an expired checkout's cancellations).
pub const MARKETPLACE: UserId = UserId(Uuid::nil());

/// When a payment is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapturePolicy {
    /// Once every order is accepted or cancelled (or at the capture deadline).
    WhenAccepted,
    /// As soon as the buyer pays; later cancellations are refunds.
    AtCheckout,
}

/// How buyers' payments are held and taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PaymentPolicy {
    /// How long an unpaid checkout holds its stock before it expires
    /// (default 30 minutes). Only for providers that collect upfront.
    pub hold: Duration,
    /// When to capture (default [`CapturePolicy::WhenAccepted`]).
    pub capture: CapturePolicy,
    /// The latest a payment is captured after its authorization (default 6
    /// days, safely inside the 7 days a card authorization lasts).
    pub capture_within: Duration,
    /// How long to wait before repeating a provider call whose outcome was
    /// unknown (default 30 seconds).
    pub retry_after: Duration,
    /// How often an unpaid checkout's payment is checked with the provider, in
    /// case its webhook was lost (default 1 minute).
    pub reconcile_every: Duration,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        PaymentPolicy {
            hold: Duration::minutes(30),
            capture: CapturePolicy::WhenAccepted,
            capture_within: Duration::days(6),
            retry_after: Duration::seconds(30),
            reconcile_every: Duration::minutes(1),
        }
    }
}

/// Where a payment stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The buyer has not paid yet.
    AwaitingPayment,
    /// Paid; the money is held at the provider.
    Authorized,
    /// The capture is under way.
    Capturing,
    /// The money was taken.
    Captured,
    /// Some of it went back.
    PartiallyRefunded,
    /// All of it went back.
    Refunded,
    /// The provider refused; the orders were cancelled.
    Failed,
    /// Nothing was taken: expired, or every order cancelled.
    Voided,
}

impl PaymentStatus {
    /// Every status.
    pub const ALL: [PaymentStatus; 8] = [
        PaymentStatus::AwaitingPayment,
        PaymentStatus::Authorized,
        PaymentStatus::Capturing,
        PaymentStatus::Captured,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
        PaymentStatus::Failed,
        PaymentStatus::Voided,
    ];

    /// The name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::AwaitingPayment => "awaiting_payment",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Capturing => "capturing",
            PaymentStatus::Captured => "captured",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Voided => "voided",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<PaymentStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether money was taken (the capture may still be under way).
    pub fn is_captured(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Capturing
                | PaymentStatus::Captured
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::Refunded
        )
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a refund stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Recorded; the provider is asked (again, after a timeout) until it answers.
    Requested,
    /// The money went back.
    Succeeded,
    /// The provider refused; an admin settles it with the buyer.
    Failed,
}

/// A refund of one order (or, for a payment that came after its checkout
/// expired, of the whole payment).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// Identifier.
    pub id: RefundId,
    /// The order refunded; `None` for the whole payment.
    pub order_id: Option<OrderId>,
    /// How much.
    pub amount: Money,
    /// Where it stands.
    pub status: RefundStatus,
    /// Why: `cancelled`, `returned` or `expired`.
    pub reason: String,
    /// The key its provider calls carry.
    pub idempotency_key: String,
    /// The provider's reference, once done.
    pub reference: Option<String>,
    /// Why the provider refused.
    pub failure: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A checkout's payment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Identifier.
    pub id: PaymentId,
    /// The checkout it pays.
    pub checkout_id: CheckoutId,
    /// The buyer.
    pub buyer_id: UserId,
    /// The provider (`manual`, `simulated`, `stripe`).
    pub provider: String,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The checkout's grand total.
    pub amount: Money,
    /// What the buyer's payment holds.
    pub authorized: Money,
    /// What was (or is being) captured.
    pub captured: Money,
    /// What went back (succeeded refunds).
    pub refunded: Money,
    /// The orders the capture paid for.
    pub captured_orders: Vec<OrderId>,
    /// Refunds, oldest first.
    pub refunds: Vec<Refund>,
    /// The key of the provider's create call; the others derive from it.
    pub idempotency_key: String,
    /// The provider's reference, once created there.
    pub reference: Option<String>,
    /// What a client needs to pay in the browser (Stripe's client secret).
    pub client_secret: Option<String>,
    /// What a person needs to pay (bank transfer, pay on delivery).
    pub instructions: Option<String>,
    /// The last failure the provider reported.
    pub failure: Option<String>,
    /// When an unpaid checkout expires (none when nothing is held).
    pub expires_at: Option<DateTime<Utc>>,
    /// The latest the authorization is captured.
    pub capture_by: Option<DateTime<Utc>>,
    /// When the payment worker should look at it next; `None` when nothing is
    /// left to do.
    pub due_at: Option<DateTime<Utc>>,
    /// Bumped by every change; changes are conditional on it.
    pub version: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// The key of the capture call.
    pub fn capture_key(&self) -> String {
        format!("{}-capture", self.idempotency_key)
    }

    /// The key of the void call.
    pub fn void_key(&self) -> String {
        format!("{}-void", self.idempotency_key)
    }

    /// The key of the refund of `order` (or of the whole payment).
    pub fn refund_key(&self, order: Option<OrderId>) -> String {
        match order {
            Some(id) => format!("{}-refund-{id}", self.idempotency_key),
            None => format!("{}-refund-all", self.idempotency_key),
        }
    }

    /// What the buyer sees of an order's payment.
    pub fn order_status(&self, order: &Order) -> OrderPaymentStatus {
        use PaymentStatus as P;
        if let Some(r) = self.refunds.iter().find(|r| r.order_id == Some(order.id)) {
            return match r.status {
                RefundStatus::Succeeded => OrderPaymentStatus::Refunded,
                _ => OrderPaymentStatus::Refunding,
            };
        }
        match self.status {
            P::AwaitingPayment if order.status.holds_stock() => OrderPaymentStatus::AwaitingPayment,
            P::Authorized if order.status.holds_stock() => OrderPaymentStatus::Authorized,
            s if s.is_captured() && self.captured_orders.contains(&order.id) => {
                OrderPaymentStatus::Paid
            }
            P::Failed => OrderPaymentStatus::Failed,
            _ => OrderPaymentStatus::NotCharged,
        }
    }

    /// The refunds the provider still has to make.
    pub fn open_refunds(&self) -> impl Iterator<Item = &Refund> {
        self.refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Requested)
    }

    /// Whether a refund still waits for the provider.
    pub fn has_open_refunds(&self) -> bool {
        self.open_refunds().next().is_some()
    }

    /// Sets `refunded` and the status from the succeeded refunds.
    pub(crate) fn recount_refunds(&mut self) {
        let done: i64 = self
            .refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount.amount)
            .sum();
        self.refunded = Money::new(done, self.amount.currency);
        if self.status.is_captured() && self.status != PaymentStatus::Capturing {
            self.status = if done == 0 {
                PaymentStatus::Captured
            } else if done >= self.captured.amount {
                PaymentStatus::Refunded
            } else {
                PaymentStatus::PartiallyRefunded
            };
        }
    }
}

/// An order's payment as its buyer sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPaymentStatus {
    /// Not paid yet.
    AwaitingPayment,
    /// Paid; the money is held until the sellers accept.
    Authorized,
    /// Charged.
    Paid,
    /// Charged, and its refund is under way.
    Refunding,
    /// Charged and refunded.
    Refunded,
    /// Never charged (cancelled before the capture, or the checkout expired).
    NotCharged,
    /// The payment failed.
    Failed,
}

/// A change to a payment as
/// [`PaymentStore::update_payment`](crate::storage::PaymentStore::update_payment)
/// applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentUpdate {
    /// The payment as it will be; its `version` is one more than the stored one.
    pub payment: Payment,
    /// Order status changes made in the same step, each conditional as in
    /// [`OrderStore::transition_order`](crate::storage::OrderStore::transition_order).
    pub transitions: Vec<OrderTransition>,
    /// Mails to store in the same step.
    pub outbox: Vec<OutboxMessage>,
}

/// The sort key of a payment: newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentKey {
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Tie-breaker.
    pub id: PaymentId,
}

/// A payment listing as storage executes it: newest first (`created_at`, then
/// id, both descending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentQuery {
    /// Only payments in this status.
    pub status: Option<PaymentStatus>,
    /// Only this buyer's payments.
    pub buyer_id: Option<UserId>,
    /// Start after this key.
    pub after: Option<PaymentKey>,
    /// Maximum number of results.
    pub limit: u32,
}

impl PaymentQuery {
    /// Whether `p` matches the filters and comes after the cursor.
    pub fn matches(&self, p: &Payment) -> bool {
        self.status.is_none_or(|s| p.status == s)
            && self.buyer_id.is_none_or(|b| p.buyer_id == b)
            && self
                .after
                .is_none_or(|k| (p.created_at, p.id) < (k.created_at, k.id))
    }
}
