//! The checkout's idempotency records, once for both dialects.

use marketplace_core::StorageResult;
use marketplace_core::checkout::{CheckoutPlan, CheckoutRecord};
use sqlx::QueryBuilder;

use super::{Binds, Columns};
use crate::dialect::Dialect;

/// Records the plan's idempotency key (and the checkout it produces).
pub(crate) fn insert_checkout<D: Dialect>(plan: &CheckoutPlan) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) ",
    );
    qb.push_values([plan], |mut b, plan| {
        (&mut b)
            .uuid(plan.checkout_id.0)
            .uuid(plan.buyer_id.0)
            .text(plan.idempotency_key.as_str())
            .text(&plan.request_hash)
            .time(plan.created_at);
    });
    qb
}

/// A stored record from its row (`id`, `request_hash`).
pub(crate) fn record<R: Columns>(r: &R) -> StorageResult<CheckoutRecord> {
    Ok(CheckoutRecord {
        checkout_id: r.uuid("id")?.into(),
        request_hash: r.text("request_hash")?,
    })
}
