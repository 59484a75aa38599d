//! Payments, once for both dialects: their columns, decoder, insert, listings
//! and the conditional write of a change.
//!
//! A payment is a row of query columns (checkout, buyer, provider and
//! reference, status, due time, version, creation time) beside `doc`, the whole
//! [`Payment`] as JSON. Every write sets both from one record; reads decode `doc`.

use chrono::{DateTime, Utc};
use marketplace_core::payment::{Payment, PaymentQuery};
use marketplace_core::{CheckoutId, StorageResult};
use sqlx::QueryBuilder;

use super::{Binds, Columns, to_i64};
use crate::dialect::Dialect;

/// The columns of `payments`, in the order [`push_insert_payment`] binds them.
const PAYMENT_COLUMNS: &str =
    "id, checkout_id, buyer_id, provider, reference, status, due_at, version, created_at, doc";

/// What the reads select: the record.
pub(crate) const PAYMENT_DOC: &str = "doc";

/// Pushes `INSERT INTO payments ... VALUES ...` for `payment`.
pub(crate) fn push_insert_payment<D: Dialect>(
    qb: &mut QueryBuilder<D>,
    payment: &Payment,
) -> StorageResult<()> {
    let version = to_i64(payment.version)?;
    qb.push(format!("INSERT INTO payments ({PAYMENT_COLUMNS}) "));
    qb.push_values([payment], |mut b, p| {
        (&mut b)
            .uuid(p.id.0)
            .uuid(p.checkout_id.0)
            .uuid(p.buyer_id.0)
            .text(&p.provider)
            .opt_text(p.reference.as_deref())
            .text(p.status.as_str())
            .opt_time(p.due_at)
            .int(version)
            .time(p.created_at)
            .json(p);
    });
    Ok(())
}

/// The conditional write of a change: every column from `payment`, only while
/// the stored version is the one before `payment.version`; `RETURNING id` (no
/// row: the payment changed meanwhile, or there is none). A version of 0 has no
/// version before it and matches nothing.
pub(crate) fn update_payment<D: Dialect>(payment: &Payment) -> StorageResult<QueryBuilder<D>> {
    let version = to_i64(payment.version)?;
    let mut qb = QueryBuilder::new("UPDATE payments SET doc = ");
    qb.json(payment)
        .push(", status = ")
        .text(payment.status.as_str())
        .push(", due_at = ")
        .opt_time(payment.due_at)
        .push(", reference = ")
        .opt_text(payment.reference.as_deref())
        .push(", version = ")
        .int(version)
        .push(" WHERE id = ")
        .uuid(payment.id.0)
        .push(" AND version = ")
        .int(version - 1)
        .push(" RETURNING id");
    Ok(qb)
}

/// A payment from its row (`doc`).
pub(crate) fn payment<R: Columns>(r: &R) -> StorageResult<Payment> {
    r.json::<Payment>(PAYMENT_DOC)
}

/// The payments of these checkouts (at least one), as one `IN` list: for the
/// dialect without arrays.
pub(crate) fn checkout_payments_in<D: Dialect>(checkouts: &[CheckoutId]) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {PAYMENT_DOC} FROM payments WHERE checkout_id IN ("
    ));
    let mut ids = qb.separated(", ");
    for c in checkouts {
        ids.uuid(c.0);
    }
    qb.push(")");
    qb
}

/// A page of payments matching `q`, newest first (by the index matching its
/// filter: all, one status's, one buyer's).
pub(crate) fn list_payments<D: Dialect>(q: &PaymentQuery) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("SELECT {PAYMENT_DOC} FROM payments WHERE TRUE"));
    if let Some(s) = q.status {
        qb.push(" AND status = ").text(s.as_str());
    }
    if let Some(b) = q.buyer_id {
        qb.push(" AND buyer_id = ").uuid(b.0);
    }
    if let Some(k) = q.after {
        qb.push(" AND (created_at, id) < (").time(k.created_at);
        qb.push(", ").uuid(k.id.0).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(i64::from(q.limit));
    qb
}

/// Up to `limit` payments due at `now`, earliest first (served by the partial
/// index `payments_due_idx`).
pub(crate) fn payments_due<D: Dialect>(now: DateTime<Utc>, limit: u32) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {PAYMENT_DOC} FROM payments WHERE due_at <= "
    ));
    qb.time(now)
        .push(" ORDER BY due_at, id LIMIT ")
        .int(i64::from(limit));
    qb
}
