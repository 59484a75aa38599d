//! The steps of a payment: opening it at the provider after checkout, the
//! worker that expires, captures, voids and refunds, webhooks, and what buyers
//! and admins read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::provider::{
    CaptureMode, PaymentError, PaymentEventKind, PaymentIntent, ProviderState, WebhookError,
    WebhookRequest,
};
use super::{
    CapturePolicy, MARKETPLACE, Payment, PaymentKey, PaymentQuery, PaymentStatus, PaymentUpdate,
    Refund, RefundStatus,
};
use crate::error::{Error, Result};
use crate::ids::{CheckoutId, OrderId, PaymentId, RefundId, UserId};
use crate::marketplace::Marketplace;
use crate::money::Money;
use crate::order::{Order, OrderStatus, OrderTransition};
use crate::outbox::OutboxMessage;
use crate::page::{Page, newest_cursor, parse_newest_cursor};
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// A page request for payments.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PaymentListQuery {
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Only payments in this status.
    pub status: Option<PaymentStatus>,
}

/// What a webhook did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    /// The event was applied (or found already true).
    Applied,
    /// The same event was handled before; nothing was done.
    Duplicate,
    /// The event is about nothing this marketplace tracks.
    Ignored,
}

/// What a run of the payment worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PaymentRun {
    /// Payments looked at.
    pub looked_at: usize,
    /// Of those, payments that changed.
    pub changed: usize,
}

/// What one step of the settlement did.
enum Step {
    /// Something changed (or another step won a race): look again.
    Again,
    /// Nothing more can be done now.
    Done,
}

/// The most steps one settlement takes before leaving the rest to the worker.
const MAX_STEPS: usize = 12;

fn encode_cursor(p: &Payment) -> String {
    newest_cursor(p.created_at, p.id)
}

fn decode_cursor(c: &str) -> Result<PaymentKey> {
    let (created_at, id) = parse_newest_cursor(c)?;
    Ok(PaymentKey { created_at, id })
}

impl<S: Storage> Marketplace<S> {
    /// A new checkout's payment, as the checkout commit stores it.
    pub(crate) fn new_payment(
        &self,
        checkout_id: CheckoutId,
        buyer_id: UserId,
        amount: Money,
        now: DateTime<Utc>,
    ) -> Payment {
        let policy = &self.inner.config.payments;
        let zero = Money::zero(amount.currency);
        Payment {
            id: PaymentId(self.new_id()),
            checkout_id,
            buyer_id,
            provider: self.inner.payments.name().to_owned(),
            status: PaymentStatus::AwaitingPayment,
            amount,
            authorized: zero,
            captured: zero,
            refunded: zero,
            captured_orders: Vec::new(),
            refunds: Vec::new(),
            idempotency_key: format!("checkout-{checkout_id}"),
            reference: None,
            client_secret: None,
            instructions: None,
            failure: None,
            expires_at: self
                .inner
                .payments
                .collects_upfront()
                .then(|| now + policy.hold),
            capture_by: None,
            // The request that made it opens it at the provider; the worker
            // does when that request could not.
            due_at: Some(now + policy.retry_after),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Creates a new checkout's payment at the provider (again, with the same
    /// key, when an earlier attempt had no answer), settles what that made
    /// due, and returns it as stored.
    pub(crate) async fn open_payment(&self, p: Payment, buyer_email: &str) -> Result<Payment> {
        if p.reference.is_some() || p.status != PaymentStatus::AwaitingPayment {
            return Ok(p);
        }
        match self.create_at_provider(&p, buyer_email).await? {
            Opened::Paid => self.settle_payment(p.id).await,
            Opened::Stored(stored) => Ok(*stored),
            Opened::Raced => self.stored_payment(p.id).await,
        }
    }

    /// Creates the payment at the provider and records the answer.
    async fn create_at_provider(&self, p: &Payment, buyer_email: &str) -> Result<Opened> {
        let intent = PaymentIntent {
            payment_id: p.id,
            checkout_id: p.checkout_id,
            amount: p.amount,
            buyer_email: buyer_email.to_owned(),
            capture: match self.inner.config.payments.capture {
                CapturePolicy::AtCheckout => CaptureMode::Immediate,
                CapturePolicy::WhenAccepted => CaptureMode::Manual,
            },
            idempotency_key: p.idempotency_key.clone(),
        };
        let now = self.now();
        let mut new = p.clone();
        let mut paid = None;
        let mut transitions = Vec::new();
        match self.inner.payments.create(&intent).await {
            Ok(created) => {
                new.reference = Some(created.reference);
                new.client_secret = created.client_secret;
                new.instructions = created.instructions;
                new.due_at = p
                    .expires_at
                    .map(|e| (now + self.inner.config.payments.reconcile_every).min(e));
                paid = Some(created.state);
            }
            Err(PaymentError::Declined(why)) => {
                let orders = self.storage().checkout_orders(p.checkout_id).await?;
                transitions = self.cancellations(&orders, now).await?;
                new.status = PaymentStatus::Failed;
                new.failure = Some(why);
                new.due_at = None;
            }
            Err(PaymentError::Unknown(why)) => {
                tracing::warn!(payment = %p.id, error = %why, "creating a payment had no answer; it will be repeated");
                new.failure = Some(why);
                new.due_at = Some(now + self.inner.config.payments.retry_after);
            }
        }
        let Some((stored, _)) = self.commit_payment(p, new, transitions).await? else {
            // Another request opened it meanwhile.
            return Ok(Opened::Raced);
        };
        match paid {
            Some(state @ (ProviderState::Authorized(_) | ProviderState::Captured(_))) => {
                self.on_paid(&stored, state).await?;
                Ok(Opened::Paid)
            }
            _ => Ok(Opened::Stored(Box::new(stored))),
        }
    }

    /// The payment of one of the buyer's checkouts (any, for an admin).
    pub async fn checkout_payment(&self, who: &Principal, checkout: CheckoutId) -> Result<Payment> {
        if who.role == Role::Seller {
            return Err(Error::Forbidden("only the buyer and admins see a payment"));
        }
        let p = self
            .storage()
            .checkout_payments(&[checkout])
            .await?
            .pop()
            .ok_or(Error::NotFound("payment"))?;
        if who.role == Role::Buyer && p.buyer_id != who.user_id {
            return Err(Error::NotFound("payment"));
        }
        // A client that just paid asks again: check with the provider rather
        // than wait for its webhook.
        // At most one check every few seconds, however often the client asks.
        let recheck =
            self.now() + self.inner.config.payments.reconcile_every - chrono::Duration::seconds(5);
        if p.status == PaymentStatus::AwaitingPayment
            && p.reference.is_some()
            && p.expires_at.is_some()
            && p.due_at.is_none_or(|d| d <= recheck)
        {
            return self.settle_payment(p.id).await;
        }
        Ok(p)
    }

    /// Every payment, newest first, optionally of one status; for an admin.
    pub async fn payments(&self, who: &Principal, page: PaymentListQuery) -> Result<Page<Payment>> {
        self.require(who, Role::Admin)?;
        let limit = self.page_size(page.limit);
        let q = PaymentQuery {
            status: page.status,
            buyer_id: None,
            after: page
                .cursor
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: limit + 1,
        };
        let rows = self.storage().list_payments(&q).await?;
        Ok(Page::from_overfetch(rows, limit, encode_cursor))
    }

    /// One payment, with its refunds; for an admin.
    pub async fn payment(&self, who: &Principal, id: PaymentId) -> Result<Payment> {
        self.require(who, Role::Admin)?;
        self.stored_payment(id).await
    }

    /// An admin records that the buyer paid a manual payment (on delivery, by
    /// bank transfer): it is captured for the orders still live.
    pub async fn mark_payment_paid(&self, who: &Principal, id: PaymentId) -> Result<Payment> {
        self.require(who, Role::Admin)?;
        loop {
            let p = self.stored_payment(id).await?;
            if p.provider != "manual" {
                return Err(Error::conflict(
                    "payment_not_manual",
                    format!(
                        "this payment goes through {}; its provider reports it paid",
                        p.provider
                    ),
                ));
            }
            if !matches!(
                p.status,
                PaymentStatus::AwaitingPayment | PaymentStatus::Authorized
            ) {
                return Err(Error::conflict(
                    "payment_settled",
                    format!("the payment is already {}", p.status),
                ));
            }
            let orders = self.storage().checkout_orders(p.checkout_id).await?;
            let live: Vec<&Order> = orders.iter().filter(|o| o.status.holds_stock()).collect();
            if live.is_empty() {
                return Err(Error::conflict(
                    "payment_settled",
                    "every order of this checkout was cancelled; nothing is owed",
                ));
            }
            let mut new = p.clone();
            let amount = sum(&live, p.amount);
            new.status = PaymentStatus::Captured;
            new.authorized = amount;
            new.captured = amount;
            new.captured_orders = live.iter().map(|o| o.id).collect();
            new.due_at = None;
            if self.commit(&p, new, Vec::new()).await?.is_some() {
                return self.stored_payment(id).await;
            }
        }
    }

    /// Handles a provider's webhook: checks its signature, skips an event
    /// already handled, and applies it. Events are facts to reconcile with,
    /// not commands: a late or repeated one never moves a payment backwards.
    pub async fn payment_webhook(
        &self,
        provider: &str,
        request: &WebhookRequest,
    ) -> Result<WebhookOutcome> {
        let ours = self.inner.payments.name();
        if provider != ours {
            return Err(Error::NotFound("payment provider"));
        }
        let now = self.now();
        let event = self
            .inner
            .payments
            .verify_webhook(request, now)
            .map_err(|e| match e {
                WebhookError::Signature(m) => Error::invalid("signature", "invalid", m),
                WebhookError::Malformed(m) => Error::invalid("event", "malformed", m),
            })?;
        if self.storage().payment_event_seen(ours, &event.id).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        let found = match &event.reference {
            Some(r) => self.storage().payment_by_reference(ours, r).await?,
            None => None,
        };
        let outcome = match found {
            None => WebhookOutcome::Ignored,
            Some(p) => {
                match event.kind {
                    PaymentEventKind::Authorized(m) => {
                        self.on_paid(&p, ProviderState::Authorized(m)).await?
                    }
                    PaymentEventKind::Captured(m) => {
                        self.on_paid(&p, ProviderState::Captured(m)).await?
                    }
                    PaymentEventKind::Failed(why) if p.status == PaymentStatus::AwaitingPayment => {
                        let mut new = p.clone();
                        new.failure = Some(why);
                        self.commit(&p, new, Vec::new()).await?;
                    }
                    PaymentEventKind::Voided if p.status == PaymentStatus::AwaitingPayment => {
                        let orders = self.storage().checkout_orders(p.checkout_id).await?;
                        self.expire(&p, &orders, now, "cancelled at the provider")
                            .await?;
                    }
                    _ => {}
                }
                self.settle_payment(p.id).await?;
                WebhookOutcome::Applied
            }
        };
        self.storage()
            .record_payment_event(ours, &event.id, now)
            .await?;
        Ok(outcome)
    }

    /// Settles every payment that is due: expires unpaid checkouts, captures,
    /// voids, refunds, and repeats provider calls that had no answer. Several
    /// workers may run at once: each step is conditional, and provider calls
    /// carry idempotency keys.
    pub async fn run_payments(&self, limit: u32) -> Result<PaymentRun> {
        let due = self.storage().payments_due(self.now(), limit).await?;
        let mut run = PaymentRun::default();
        for p in due {
            run.looked_at += 1;
            match self.settle_payment(p.id).await {
                Ok(after) if after.version != p.version => run.changed += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(payment = %p.id, error = %e, "settling a payment failed"),
            }
        }
        Ok(run)
    }

    /// Takes a payment as far as it can go now, and returns it as stored.
    pub async fn settle_payment(&self, id: PaymentId) -> Result<Payment> {
        for _ in 0..MAX_STEPS {
            let p = self.stored_payment(id).await?;
            if let Step::Done = self.settle_step(&p).await? {
                return Ok(p);
            }
        }
        self.stored_payment(id).await
    }

    /// Adds each order's payment status, as its buyer would see it.
    pub(crate) async fn with_payment_status(&self, orders: Vec<Order>) -> Result<Vec<Order>> {
        let mut checkouts: Vec<CheckoutId> = orders.iter().map(|o| o.checkout_id).collect();
        checkouts.sort();
        checkouts.dedup();
        if checkouts.is_empty() {
            return Ok(orders);
        }
        let payments = self.storage().checkout_payments(&checkouts).await?;
        Ok(with_status_of(orders, payments))
    }

    /// The payment to record with an order's status change (bumping its
    /// version, so captures and order changes serialize), or `None` for an
    /// order without one. Refuses to accept an order not paid yet.
    pub(crate) async fn payment_for_move(
        &self,
        order: &Order,
        to: OrderStatus,
        now: DateTime<Utc>,
    ) -> Result<Option<(Payment, Payment)>> {
        let Some(p) = self
            .storage()
            .checkout_payments(&[order.checkout_id])
            .await?
            .pop()
        else {
            return Ok(None);
        };
        if to == OrderStatus::Accepted
            && p.status == PaymentStatus::AwaitingPayment
            && p.expires_at.is_some()
        {
            return Err(Error::conflict(
                "payment_pending",
                "the buyer has not paid for this order yet",
            ));
        }
        let ships = !matches!(
            to,
            OrderStatus::Pending | OrderStatus::Accepted | OrderStatus::Cancelled
        );
        if ships && p.expires_at.is_some() && !p.status.is_captured() {
            return Err(Error::conflict(
                "payment_not_captured",
                "the payment is taken once every seller of the checkout has accepted or cancelled; pack it then",
            ));
        }
        let mut new = p.clone();
        let refunded_already = p.refunds.iter().any(|r| r.order_id == Some(order.id));
        if !to.holds_stock()
            && p.status.is_captured()
            && p.captured_orders.contains(&order.id)
            && !refunded_already
        {
            let reason = if to == OrderStatus::Returned {
                "returned"
            } else {
                "cancelled"
            };
            new.refunds
                .push(self.refund(&p, Some(order.id), order.total, reason, now));
        }
        new.due_at = Some(now);
        Ok(Some((p, new)))
    }

    /// Stores a payment change made with an order's status change, and settles
    /// what it made due; `None` when either changed meanwhile.
    pub(crate) async fn move_with_payment(
        &self,
        old: &Payment,
        new: Payment,
        t: OrderTransition,
    ) -> Result<Option<Order>> {
        let Some(mut orders) = self.commit(old, new, vec![t]).await? else {
            return Ok(None);
        };
        if let Err(e) = self.settle_payment(old.id).await {
            tracing::warn!(payment = %old.id, error = %e, "settling a payment after an order change failed; the worker will");
        }
        Ok(orders.pop())
    }

    async fn stored_payment(&self, id: PaymentId) -> Result<Payment> {
        self.storage()
            .payment(id)
            .await?
            .ok_or(Error::NotFound("payment"))
    }

    /// One step towards where the payment should be.
    async fn settle_step(&self, p: &Payment) -> Result<Step> {
        let now = self.now();
        let orders = self.storage().checkout_orders(p.checkout_id).await?;
        let live: Vec<&Order> = orders.iter().filter(|o| o.status.holds_stock()).collect();
        let provider = &self.inner.payments;
        if p.provider != provider.name() {
            // Only the provider that took it may settle it: another one would
            // record money as moved that never did. It waits for a process
            // configured with its provider.
            tracing::warn!(payment = %p.id, provider = %p.provider, configured = %provider.name(), "a payment of another provider is left as it is");
            return Ok(Step::Done);
        }
        match p.status {
            PaymentStatus::AwaitingPayment => {
                let expired = p.expires_at.is_some_and(|t| now >= t);
                if expired || live.is_empty() {
                    // Cancel at the provider first, so nothing can be paid after.
                    let state = match &p.reference {
                        None => ProviderState::Voided,
                        Some(r) => match provider.void(r, &p.void_key()).await {
                            Ok(s) => s,
                            // No answer, or a refusal: where does it stand?
                            Err(e) => match provider.state(r).await {
                                Ok(s @ (ProviderState::Voided | ProviderState::Captured(_))) => s,
                                _ => return self.wait(p, e).await,
                            },
                        },
                    };
                    return match state {
                        ProviderState::Captured(m) => self.paid_too_late(p, &orders, m, now).await,
                        ProviderState::Authorized(_) => {
                            self.wait(p, PaymentError::Unknown("not voided yet".into()))
                                .await
                        }
                        _ => {
                            let why = if expired {
                                "expired: not paid in time"
                            } else {
                                "every order was cancelled"
                            };
                            self.expire(p, &orders, now, why).await
                        }
                    };
                }
                if p.reference.is_none() {
                    let email = match self.storage().user(p.buyer_id).await? {
                        Some(u) => u.email.as_str().to_owned(),
                        None => String::new(),
                    };
                    self.create_at_provider(p, &email).await?;
                    let after = self.stored_payment(p.id).await?;
                    return Ok(if after.reference.is_some() || after.status != p.status {
                        Step::Again
                    } else {
                        Step::Done
                    });
                }
                let Some(expires) = p.expires_at else {
                    // Paid on delivery: nothing is held, and only an admin says
                    // it was paid.
                    return self.set_due(p, None).await;
                };
                // Webhooks can be lost or late: ask the provider, then again
                // every `reconcile_every` until the checkout expires.
                let reference = p.reference.clone().unwrap_or_default();
                match provider.state(&reference).await {
                    Ok(state @ (ProviderState::Authorized(_) | ProviderState::Captured(_))) => {
                        self.on_paid(p, state).await?;
                        Ok(Step::Again)
                    }
                    Ok(ProviderState::Voided) => {
                        self.expire(p, &orders, now, "cancelled at the provider")
                            .await
                    }
                    Ok(ProviderState::AwaitingPayment) | Err(_) => {
                        let next = (now + self.inner.config.payments.reconcile_every).min(expires);
                        self.set_due(p, Some(next)).await
                    }
                }
            }
            PaymentStatus::Authorized => {
                if live.is_empty() {
                    let reference = p.reference.clone().unwrap_or_default();
                    return match provider.void(&reference, &p.void_key()).await {
                        Ok(ProviderState::Captured(m)) => {
                            self.paid_too_late(p, &orders, m, now).await
                        }
                        Ok(ProviderState::Authorized(_)) => {
                            self.wait(p, PaymentError::Unknown("not voided yet".into()))
                                .await
                        }
                        Ok(_) => {
                            self.expire(p, &orders, now, "every order was cancelled")
                                .await
                        }
                        Err(e) => self.wait(p, e).await,
                    };
                }
                let ready = self.inner.config.payments.capture == CapturePolicy::AtCheckout
                    || live.iter().all(|o| o.status != OrderStatus::Pending)
                    || p.capture_by.is_some_and(|t| now >= t);
                if !ready {
                    return self.set_due(p, p.capture_by).await;
                }
                let mut new = p.clone();
                new.status = PaymentStatus::Capturing;
                new.captured = sum(&live, p.amount);
                new.captured_orders = live.iter().map(|o| o.id).collect();
                new.due_at = Some(now);
                self.changed(self.commit(p, new, Vec::new()).await?)
            }
            PaymentStatus::Capturing => {
                let reference = p.reference.clone().unwrap_or_default();
                match provider
                    .capture(&reference, p.captured, &p.capture_key())
                    .await
                {
                    Ok(m) => self.captured(p, m, now).await,
                    Err(PaymentError::Declined(why)) => {
                        let mut new = p.clone();
                        new.status = PaymentStatus::Failed;
                        new.failure = Some(format!("capture declined: {why}"));
                        new.captured = Money::zero(p.amount.currency);
                        new.captured_orders.clear();
                        for r in &mut new.refunds {
                            if r.status == RefundStatus::Requested {
                                r.status = RefundStatus::Failed;
                                r.failure = Some("nothing was captured".into());
                                r.updated_at = now;
                            }
                        }
                        new.due_at = None;
                        let transitions = self.cancellations(&orders, now).await?;
                        self.changed(self.commit(p, new, transitions).await?)
                    }
                    Err(e) => match provider.state(&reference).await {
                        // The capture went through; its answer was lost.
                        Ok(ProviderState::Captured(m)) => self.captured(p, m, now).await,
                        _ => self.wait(p, e).await,
                    },
                }
            }
            PaymentStatus::Captured
            | PaymentStatus::PartiallyRefunded
            | PaymentStatus::Refunded => {
                let Some(refund) = p.open_refunds().next().cloned() else {
                    return self.set_due(p, None).await;
                };
                let reference = p.reference.clone().unwrap_or_default();
                let answer = provider
                    .refund(&reference, refund.amount, &refund.idempotency_key)
                    .await;
                let mut new = p.clone();
                let Some(r) = new.refunds.iter_mut().find(|r| r.id == refund.id) else {
                    return Ok(Step::Done);
                };
                match answer {
                    Ok(done) => {
                        r.status = RefundStatus::Succeeded;
                        r.reference = Some(done);
                    }
                    Err(PaymentError::Declined(why)) => {
                        tracing::warn!(payment = %p.id, refund = %refund.id, error = %why, "a refund was declined; an admin must settle it");
                        r.status = RefundStatus::Failed;
                        r.failure = Some(why);
                    }
                    Err(e) => return self.wait(p, e).await,
                }
                r.updated_at = now;
                new.recount_refunds();
                new.due_at = new.has_open_refunds().then_some(now);
                self.changed(self.commit(p, new, Vec::new()).await?)
            }
            PaymentStatus::Failed | PaymentStatus::Voided => self.set_due(p, None).await,
        }
    }

    /// Records the provider's word that the buyer paid.
    async fn on_paid(&self, p: &Payment, state: ProviderState) -> Result<()> {
        let now = self.now();
        let (amount, captured) = match state {
            ProviderState::Authorized(m) => (m, false),
            ProviderState::Captured(m) => (m, true),
            _ => return Ok(()),
        };
        match p.status {
            PaymentStatus::AwaitingPayment => {
                let expired = p.expires_at.is_some_and(|t| now >= t);
                let orders = self.storage().checkout_orders(p.checkout_id).await?;
                if expired || !orders.iter().any(|o| o.status.holds_stock()) {
                    // Too late: settling voids it at the provider, or refunds it.
                    return Ok(());
                }
                let mut new = p.clone();
                new.authorized = amount;
                new.failure = None;
                new.capture_by = Some(now + self.inner.config.payments.capture_within);
                new.due_at = Some(now);
                if captured {
                    // Charged for the whole checkout: orders cancelled before the
                    // payment are refunded.
                    new.status = PaymentStatus::Captured;
                    new.captured = amount;
                    new.captured_orders = orders.iter().map(|o| o.id).collect();
                    for o in orders.iter().filter(|o| !o.status.holds_stock()) {
                        new.refunds
                            .push(self.refund(p, Some(o.id), o.total, "cancelled", now));
                    }
                } else {
                    new.status = PaymentStatus::Authorized;
                }
                self.commit(p, new, Vec::new()).await?;
            }
            PaymentStatus::Voided | PaymentStatus::Failed => {
                // Paid after the checkout ended: release it, or give it back.
                let reference = p.reference.clone().unwrap_or_default();
                match self.inner.payments.void(&reference, &p.void_key()).await {
                    Ok(ProviderState::Captured(m)) => {
                        let orders = self.storage().checkout_orders(p.checkout_id).await?;
                        self.paid_too_late(p, &orders, m, now).await?;
                    }
                    Ok(_) => {}
                    Err(e @ PaymentError::Unknown(_)) => {
                        // The provider will send the event again.
                        tracing::warn!(payment = %p.id, error = %e, "voiding a late payment had no answer");
                        return Err(Error::Unavailable(crate::storage::StorageError::transient(
                            e.to_string(),
                        )));
                    }
                    Err(e) => {
                        tracing::warn!(payment = %p.id, error = %e, "a late payment could not be voided; an admin must release it");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Records a finished capture of `m`; the refunds waiting for it are due.
    async fn captured(&self, p: &Payment, m: Money, now: DateTime<Utc>) -> Result<Step> {
        let mut new = p.clone();
        new.status = PaymentStatus::Captured;
        new.captured = m;
        new.recount_refunds();
        new.due_at = new.has_open_refunds().then_some(now);
        self.changed(self.commit(p, new, Vec::new()).await?)
    }

    /// A payment captured after its checkout ended (or with nothing left to
    /// pay for): every live order is cancelled and the whole amount refunded.
    async fn paid_too_late(
        &self,
        p: &Payment,
        orders: &[Order],
        captured: Money,
        now: DateTime<Utc>,
    ) -> Result<Step> {
        let mut new = p.clone();
        new.status = PaymentStatus::Captured;
        new.authorized = captured;
        new.captured = captured;
        new.captured_orders.clear();
        new.refunds
            .push(self.refund(p, None, captured, "expired", now));
        new.failure = Some("paid after the checkout ended; refunded".into());
        new.due_at = Some(now);
        let transitions = self.cancellations(orders, now).await?;
        self.changed(self.commit(p, new, transitions).await?)
    }

    /// Ends an unpaid (or wholly cancelled) checkout: the payment is voided and
    /// every live order cancelled, its stock returned.
    async fn expire(
        &self,
        p: &Payment,
        orders: &[Order],
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<Step> {
        let mut new = p.clone();
        new.status = PaymentStatus::Voided;
        new.failure = Some(why.to_owned());
        new.due_at = None;
        let transitions = self.cancellations(orders, now).await?;
        self.changed(self.commit(p, new, transitions).await?)
    }

    /// Cancels every live order of a checkout, by the marketplace itself.
    async fn cancellations(
        &self,
        orders: &[Order],
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderTransition>> {
        let mut out = Vec::new();
        for o in orders.iter().filter(|o| o.status.holds_stock()) {
            out.push(
                self.transition_for(o, OrderStatus::Cancelled, MARKETPLACE, now)
                    .await?,
            );
        }
        Ok(out)
    }

    fn refund(
        &self,
        p: &Payment,
        order: Option<OrderId>,
        amount: Money,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Refund {
        Refund {
            id: RefundId(self.new_id()),
            order_id: order,
            amount,
            status: RefundStatus::Requested,
            reason: reason.to_owned(),
            idempotency_key: p.refund_key(order),
            reference: None,
            failure: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A provider call had no answer (or refused what can be repeated): look
    /// again after the retry delay.
    async fn wait(&self, p: &Payment, e: PaymentError) -> Result<Step> {
        tracing::warn!(payment = %p.id, status = %p.status, error = %e, "a payment provider call will be repeated");
        let at = self.now() + self.inner.config.payments.retry_after;
        let mut new = p.clone();
        new.due_at = Some(at);
        self.commit(p, new, Vec::new()).await?;
        Ok(Step::Done)
    }

    /// Sets when the worker looks at the payment next.
    async fn set_due(&self, p: &Payment, at: Option<DateTime<Utc>>) -> Result<Step> {
        if p.due_at != at {
            let mut new = p.clone();
            new.due_at = at;
            self.commit(p, new, Vec::new()).await?;
        }
        Ok(Step::Done)
    }

    fn changed(&self, committed: Option<Vec<Order>>) -> Result<Step> {
        // Either way there is something new to look at: the change made, or the
        // one that won the race.
        let _ = committed;
        Ok(Step::Again)
    }

    /// Stores `new` in place of `old`, with order changes, in one conditional
    /// step; `None` when the payment or an order changed meanwhile.
    async fn commit(
        &self,
        old: &Payment,
        new: Payment,
        transitions: Vec<OrderTransition>,
    ) -> Result<Option<Vec<Order>>> {
        Ok(self
            .commit_payment(old, new, transitions)
            .await?
            .map(|(_, orders)| orders))
    }

    /// [`commit`](Self::commit), also returning the payment as now stored
    /// (times are at storage precision, so it is what a read would return).
    async fn commit_payment(
        &self,
        old: &Payment,
        mut new: Payment,
        transitions: Vec<OrderTransition>,
    ) -> Result<Option<(Payment, Vec<Order>)>> {
        new.version = old.version + 1;
        new.updated_at = self.now();
        let outbox: Vec<OutboxMessage> = Vec::new();
        let u = PaymentUpdate {
            payment: new,
            transitions,
            outbox,
        };
        let orders = self.retry(|| self.storage().update_payment(&u)).await?;
        Ok(orders.map(|o| (u.payment, o)))
    }
}

/// What creating a payment at the provider led to.
enum Opened {
    /// The buyer already paid (a provider that charges at once); settling it
    /// follows.
    Paid,
    /// The provider's answer is stored, as here.
    Stored(Box<Payment>),
    /// Another request opened it meanwhile.
    Raced,
}

/// `orders` with the payment status each has under `payments` (their
/// checkouts' payments, as already in hand).
pub(crate) fn with_status_of(mut orders: Vec<Order>, payments: Vec<Payment>) -> Vec<Order> {
    let payments: HashMap<CheckoutId, Payment> =
        payments.into_iter().map(|p| (p.checkout_id, p)).collect();
    for o in &mut orders {
        o.payment_status = payments.get(&o.checkout_id).map(|p| p.order_status(o));
    }
    orders
}

fn sum(orders: &[&Order], like: Money) -> Money {
    Money::new(orders.iter().map(|o| o.total.amount).sum(), like.currency)
}
