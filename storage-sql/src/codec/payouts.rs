//! Payouts, once for both dialects: their columns, decoder, insert, listing and
//! the conditional settlement.

use marketplace_core::StorageResult;
use marketplace_core::payout::{Payout, PayoutQuery, PayoutSettlement, PayoutStatus};
use sqlx::QueryBuilder;

use super::{Binds, Columns, corrupt};
use crate::dialect::Dialect;

/// The columns of `payouts`, in the order [`push_insert_payout`] binds them.
pub(crate) const PAYOUT_COLUMNS: &str = "id, seller_id, amount, currency, status, provider, \
     idempotency_key, reference, failure, requested_by, created_at, updated_at";

/// Pushes `INSERT INTO payouts ... VALUES ...` for `payout`.
pub(crate) fn push_insert_payout<D: Dialect>(qb: &mut QueryBuilder<D>, payout: &Payout) {
    qb.push(format!("INSERT INTO payouts ({PAYOUT_COLUMNS}) "));
    qb.push_values([payout], |mut b, p| {
        (&mut b)
            .uuid(p.id.0)
            .uuid(p.seller_id.0)
            .int(p.amount.amount)
            .text(p.amount.currency.as_str())
            .text(p.status.as_str())
            .text(&p.provider)
            .text(&p.idempotency_key)
            .opt_text(p.reference.as_deref())
            .opt_text(p.failure.as_deref())
            .uuid(p.requested_by.0)
            .time(p.created_at)
            .time(p.updated_at);
    });
}

pub(crate) fn payout<R: Columns>(r: &R) -> StorageResult<Payout> {
    let status = r.text("status")?;
    Ok(Payout {
        id: r.uuid("id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        amount: r.money("amount", "currency")?,
        status: PayoutStatus::parse(&status).ok_or_else(|| corrupt("payout status", &status))?,
        provider: r.text("provider")?,
        idempotency_key: r.text("idempotency_key")?,
        reference: r.opt_text("reference")?,
        failure: r.opt_text("failure")?,
        requested_by: r.uuid("requested_by")?.into(),
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A page of payouts matching `q`, newest first.
pub(crate) fn list_payouts<D: Dialect>(q: &PayoutQuery) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("SELECT {PAYOUT_COLUMNS} FROM payouts WHERE TRUE"));
    if let Some(s) = q.seller_id {
        qb.push(" AND seller_id = ").uuid(s.0);
    }
    if let Some(s) = q.status {
        qb.push(" AND status = ").text(s.as_str());
    }
    if let Some(k) = q.after {
        qb.push(" AND (created_at, id) < (").time(k.created_at);
        qb.push(", ").uuid(k.id.0).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(i64::from(q.limit));
    qb
}

/// The conditional write of a settlement: the new status, the reference and
/// failure where given (the stored ones kept otherwise) and `updated_at`, only
/// while the status is one of `s.from`; `RETURNING` the updated payout.
pub(crate) fn settle_payout<D: Dialect>(s: &PayoutSettlement) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new("UPDATE payouts SET status = ");
    qb.text(s.to.as_str())
        .push(", reference = COALESCE(")
        .opt_text(s.reference.as_deref())
        .push(", reference), failure = COALESCE(")
        .opt_text(s.failure.as_deref())
        .push(", failure), updated_at = ")
        .time(s.at)
        .push(" WHERE id = ")
        .uuid(s.payout_id.0);
    if s.from.is_empty() {
        qb.push(" AND FALSE");
    } else {
        qb.push(" AND status IN (");
        let mut from = qb.separated(", ");
        for status in &s.from {
            from.text(status.as_str());
        }
        qb.push(")");
    }
    qb.push(format!(" RETURNING {PAYOUT_COLUMNS}"));
    qb
}
