//! Checkouts' payments and the provider events already handled, as documents.
//!
//! `payments`: `{_id, checkout_id, buyer_id, provider, status, amount,
//! authorized, captured, refunded (each {amount, currency}), captured_orders:
//! [order_id], refunds: [{id, order_id, amount, status, reason,
//! idempotency_key, reference, failure, created_at, updated_at}],
//! idempotency_key, reference, client_secret, instructions, failure,
//! expires_at, capture_by, due_at, version, created_at, updated_at}`, one per
//! checkout (unique `checkout_id`), inserted by the [checkout
//! commit](crate::checkout). A provider's `reference` is unique per provider
//! among the payments that have one.
//!
//! `payment_events`: `{_id: "<provider>:<event_id>", provider, event_id, at}`;
//! recording an event is one insert, and a duplicate `_id` means it was
//! already recorded.
//!
//! Every change of a payment is one transaction: a replacement conditional on
//! the stored `version` being one less than the new one, then the order
//! status changes of the same step, applied exactly as
//! [`transition_order`](marketplace_core::OrderStore::transition_order) applies
//! them (see [`crate::orders`]), then its mails. Any condition that no longer
//! holds aborts the whole transaction.

use std::future::IntoFuture;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use marketplace_core::order::Order;
use marketplace_core::payment::{
    Payment, PaymentQuery, PaymentStatus, PaymentUpdate, Refund, RefundStatus,
};
use marketplace_core::{
    CheckoutId, OrderId, PaymentId, PaymentStore, RefundId, StorageResult, UserId,
};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStorage;
use crate::error::{duplicate_key, storage_error};
use crate::schema::PAYMENTS;
use crate::transaction::{Body, Step, unmatched};
use crate::values::{Reader, before, count, date, money, opt, opt_str, uuid};

/// The stored name of a refund's status.
fn refund_status_str(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Requested => "requested",
        RefundStatus::Succeeded => "succeeded",
        RefundStatus::Failed => "failed",
    }
}

/// Parses a stored refund status.
fn refund_status_parse(s: &str) -> Option<RefundStatus> {
    [
        RefundStatus::Requested,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ]
    .into_iter()
    .find(|r| refund_status_str(*r) == s)
}

fn refund_doc(r: &Refund) -> Bson {
    Bson::Document(doc! {
        "id": uuid(r.id.0),
        "order_id": opt(r.order_id, |o| uuid(o.0)),
        "amount": money(r.amount),
        "status": refund_status_str(r.status),
        "reason": &r.reason,
        "idempotency_key": &r.idempotency_key,
        "reference": opt_str(r.reference.as_deref()),
        "failure": opt_str(r.failure.as_deref()),
        "created_at": date(r.created_at),
        "updated_at": date(r.updated_at),
    })
}

fn refund_from(r: &Reader<'_>) -> StorageResult<Refund> {
    Ok(Refund {
        id: RefundId(r.uuid("id")?),
        order_id: r.opt_uuid("order_id")?.map(OrderId),
        amount: r.money("amount")?,
        status: r.parsed("status", refund_status_parse)?,
        reason: r.str("reason")?,
        idempotency_key: r.str("idempotency_key")?,
        reference: r.opt_str("reference")?,
        failure: r.opt_str("failure")?,
        created_at: r.date("created_at")?,
        updated_at: r.date("updated_at")?,
    })
}

pub(crate) fn payment_doc(p: &Payment) -> Document {
    doc! {
        "_id": uuid(p.id.0),
        "checkout_id": uuid(p.checkout_id.0),
        "buyer_id": uuid(p.buyer_id.0),
        "provider": &p.provider,
        "status": p.status.as_str(),
        "amount": money(p.amount),
        "authorized": money(p.authorized),
        "captured": money(p.captured),
        "refunded": money(p.refunded),
        "captured_orders": p.captured_orders.iter().map(|o| uuid(o.0)).collect::<Vec<_>>(),
        "refunds": p.refunds.iter().map(refund_doc).collect::<Vec<_>>(),
        "idempotency_key": &p.idempotency_key,
        "reference": opt_str(p.reference.as_deref()),
        "client_secret": opt_str(p.client_secret.as_deref()),
        "instructions": opt_str(p.instructions.as_deref()),
        "failure": opt_str(p.failure.as_deref()),
        "expires_at": opt(p.expires_at, date),
        "capture_by": opt(p.capture_by, date),
        "due_at": opt(p.due_at, date),
        "version": count(p.version),
        "created_at": date(p.created_at),
        "updated_at": date(p.updated_at),
    }
}

pub(crate) fn payment_from(d: &Document) -> StorageResult<Payment> {
    let r = Reader::new(PAYMENTS, d);
    Ok(Payment {
        id: PaymentId(r.uuid("_id")?),
        checkout_id: CheckoutId(r.uuid("checkout_id")?),
        buyer_id: UserId(r.uuid("buyer_id")?),
        provider: r.str("provider")?,
        status: r.parsed("status", PaymentStatus::parse)?,
        amount: r.money("amount")?,
        authorized: r.money("authorized")?,
        captured: r.money("captured")?,
        refunded: r.money("refunded")?,
        captured_orders: r
            .uuids("captured_orders")?
            .into_iter()
            .map(OrderId)
            .collect(),
        refunds: r
            .docs("refunds")?
            .iter()
            .map(refund_from)
            .collect::<StorageResult<_>>()?,
        idempotency_key: r.str("idempotency_key")?,
        reference: r.opt_str("reference")?,
        client_secret: r.opt_str("client_secret")?,
        instructions: r.opt_str("instructions")?,
        failure: r.opt_str("failure")?,
        expires_at: r.opt_date("expires_at")?,
        capture_by: r.opt_date("capture_by")?,
        due_at: r.opt_date("due_at")?,
        version: r.u64("version")?,
        created_at: r.date("created_at")?,
        updated_at: r.date("updated_at")?,
    })
}

/// The filter of a payment listing (newest first, after the cursor).
fn payment_filter(q: &PaymentQuery) -> Document {
    let mut f = Document::new();
    if let Some(s) = q.status {
        f.insert("status", s.as_str());
    }
    if let Some(b) = q.buyer_id {
        f.insert("buyer_id", uuid(b.0));
    }
    if let Some(k) = q.after {
        f.insert("$or", before(k.created_at, k.id.0));
    }
    f
}

/// The `_id` of a provider's event in `payment_events`.
fn event_key(provider: &str, event_id: &str) -> String {
    format!("{provider}:{event_id}")
}

/// The transaction body of a payment change (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn update_payment_tx(
        &self,
        s: &mut ClientSession,
        u: &PaymentUpdate,
    ) -> Body<StorageResult<Option<Vec<Order>>>> {
        let id = uuid(u.payment.id.0);
        // A new version of 0 follows no stored one: nothing can match.
        let replaced = match u.payment.version.checked_sub(1) {
            Some(expected) => {
                self.payments
                    .replace_one(
                        doc! { "_id": id.clone(), "version": count(expected) },
                        payment_doc(&u.payment),
                    )
                    .session(&mut *s)
                    .await?
                    .matched_count
            }
            None => 0,
        };
        if replaced == 0 {
            return unmatched(&self.payments, s, id, None).await;
        }
        let mut orders = Vec::with_capacity(u.transitions.len());
        for t in &u.transitions {
            match self.transition_order_tx(s, t).await? {
                Step::Commit(Ok(Some(order))) => orders.push(order),
                // The order moved (or is gone): the whole step, the payment's
                // replacement included, is rolled back.
                Step::Commit(Ok(None)) | Step::Abort(Ok(_)) => return Ok(Step::Abort(Ok(None))),
                Step::Commit(Err(e)) | Step::Abort(Err(e)) => return Ok(Step::Abort(Err(e))),
            }
        }
        self.push_outbox(s, &u.outbox).await?;
        Ok(Step::Commit(Ok(Some(orders))))
    }
}

#[async_trait]
impl PaymentStore for MongoStorage {
    async fn payment(&self, id: PaymentId) -> StorageResult<Option<Payment>> {
        self.payments
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| payment_from(&d))
            .transpose()
    }

    async fn checkout_payments(&self, checkouts: &[CheckoutId]) -> StorageResult<Vec<Payment>> {
        if checkouts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = checkouts.iter().map(|c| uuid(c.0)).collect();
        Self::find_all(
            &self.payments,
            doc! { "checkout_id": { "$in": ids } },
            None,
            None,
        )
        .await?
        .iter()
        .map(payment_from)
        .collect()
    }

    async fn payment_by_reference(
        &self,
        provider: &str,
        reference: &str,
    ) -> StorageResult<Option<Payment>> {
        // `$type` restates the unique index's partial filter, so the server can
        // answer from that index.
        self.payments
            .find_one(doc! {
                "provider": provider,
                "reference": { "$eq": reference, "$type": "string" },
            })
            .await
            .map_err(storage_error)?
            .map(|d| payment_from(&d))
            .transpose()
    }

    async fn list_payments(&self, q: &PaymentQuery) -> StorageResult<Vec<Payment>> {
        Self::find_all(
            &self.payments,
            payment_filter(q),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(q.limit),
        )
        .await?
        .iter()
        .map(payment_from)
        .collect()
    }

    async fn payments_due(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Payment>> {
        // `null` (nothing left to do) never compares with a date.
        Self::find_all(
            &self.payments,
            doc! { "due_at": { "$lte": date(now) } },
            Some(doc! { "due_at": 1, "_id": 1 }),
            Some(limit),
        )
        .await?
        .iter()
        .map(payment_from)
        .collect()
    }

    async fn update_payment(&self, u: &PaymentUpdate) -> StorageResult<Option<Vec<Order>>> {
        self.transaction(&(self, u), |s, (store, u)| {
            store.update_payment_tx(s, u).boxed()
        })
        .await?
    }

    async fn payment_event_seen(&self, provider: &str, event_id: &str) -> StorageResult<bool> {
        Ok(self
            .payment_events
            .find_one(doc! { "_id": event_key(provider, event_id) })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(storage_error)?
            .is_some())
    }

    async fn record_payment_event(
        &self,
        provider: &str,
        event_id: &str,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let event = doc! {
            "_id": event_key(provider, event_id),
            "provider": provider,
            "event_id": event_id,
            "at": date(at),
        };
        match self
            .single(|| self.payment_events.insert_one(event.clone()).into_future())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if duplicate_key(&e).is_some() => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use marketplace_core::{Currency, Money};
    use uuid::Uuid;

    use super::*;

    fn usd(a: i64) -> Money {
        Money::new(a, Currency::USD)
    }

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_payment_round_trips_with_its_refunds() {
        let order = OrderId(Uuid::from_u128(3));
        let p = Payment {
            id: PaymentId(Uuid::from_u128(1)),
            checkout_id: CheckoutId(Uuid::from_u128(2)),
            buyer_id: UserId(Uuid::from_u128(4)),
            provider: "simulated".to_owned(),
            status: PaymentStatus::PartiallyRefunded,
            amount: usd(5000),
            authorized: usd(5000),
            captured: usd(4000),
            refunded: usd(1500),
            captured_orders: vec![order, OrderId(Uuid::from_u128(5))],
            refunds: vec![
                Refund {
                    id: RefundId(Uuid::from_u128(6)),
                    order_id: Some(order),
                    amount: usd(1500),
                    status: RefundStatus::Succeeded,
                    reason: "returned".to_owned(),
                    idempotency_key: "checkout-2-refund-3".to_owned(),
                    reference: Some("re_1".to_owned()),
                    failure: None,
                    created_at: at(10),
                    updated_at: at(20),
                },
                Refund {
                    id: RefundId(Uuid::from_u128(7)),
                    order_id: None,
                    amount: usd(100),
                    status: RefundStatus::Failed,
                    reason: "expired".to_owned(),
                    idempotency_key: "checkout-2-refund-all".to_owned(),
                    reference: None,
                    failure: Some("declined".to_owned()),
                    created_at: at(30),
                    updated_at: at(40),
                },
            ],
            idempotency_key: "checkout-2".to_owned(),
            reference: Some("pi_1".to_owned()),
            client_secret: Some("pi_1_secret".to_owned()),
            instructions: None,
            failure: None,
            expires_at: None,
            capture_by: Some(at(50)),
            due_at: Some(at(60)),
            version: 7,
            created_at: at(0),
            updated_at: at(40),
        };
        let d = payment_doc(&p);
        assert_eq!(d.get("_id"), Some(&uuid(p.id.0)));
        assert_eq!(d.get("expires_at"), Some(&Bson::Null));
        assert_eq!(d.get("version"), Some(&Bson::Int64(7)));
        assert_eq!(payment_from(&d).expect("decodes"), p);
        for s in [
            RefundStatus::Requested,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ] {
            assert_eq!(refund_status_parse(refund_status_str(s)), Some(s));
        }
    }
}
