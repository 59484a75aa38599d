//! The notification outbox, once for both dialects: its columns, decoder,
//! inserts, listing and the columns a delivery result sets.

use std::sync::LazyLock;

use marketplace_core::StorageResult;
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery, OutboxStatus};
use sqlx::QueryBuilder;

use super::{Binds, Columns, corrupt, qualified};
use crate::dialect::Dialect;

/// The columns of `outbox`, in the order [`push_insert_outbox`] binds them.
pub(crate) const OUTBOX_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, \
     status, attempts, next_attempt_at, last_error, created_at, delivered_at, claimed_by, \
     claimed_until";

/// [`OUTBOX_COLUMNS`] qualified by the alias `o`.
pub(crate) static OUTBOX_COLUMNS_O: LazyLock<String> =
    LazyLock::new(|| qualified("o", OUTBOX_COLUMNS));

/// Pushes `INSERT INTO outbox ... VALUES ...` for these messages (at least one).
pub(crate) fn push_insert_outbox<'m, D: Dialect>(
    qb: &mut QueryBuilder<D>,
    messages: impl IntoIterator<Item = &'m OutboxMessage>,
) {
    qb.push(format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) "));
    qb.push_values(messages, |mut b, m| {
        (&mut b)
            .uuid(m.id.0)
            .text(&m.kind)
            .text(&m.recipient)
            .text(&m.subject)
            .text(&m.text_body)
            .text(&m.html_body)
            .text(m.status.as_str())
            .int(i64::from(m.attempts))
            .time(m.next_attempt_at)
            .opt_text(m.last_error.as_deref())
            .time(m.created_at)
            .opt_time(m.delivered_at)
            .opt_uuid(m.claimed_by)
            .opt_time(m.claimed_until);
    });
}

pub(crate) fn message<R: Columns>(r: &R) -> StorageResult<OutboxMessage> {
    let status = r.text("status")?;
    Ok(OutboxMessage {
        id: r.uuid("id")?.into(),
        kind: r.text("kind")?,
        recipient: r.text("recipient")?,
        subject: r.text("subject")?,
        text_body: r.text("text_body")?,
        html_body: r.text("html_body")?,
        status: OutboxStatus::parse(&status).ok_or_else(|| corrupt("outbox status", &status))?,
        attempts: r.count("attempts")?,
        next_attempt_at: r.time("next_attempt_at")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.time("created_at")?,
        delivered_at: r.opt_time("delivered_at")?,
        claimed_by: r.opt_uuid("claimed_by")?,
        claimed_until: r.opt_time("claimed_until")?,
    })
}

/// Claimed messages, in the order they were due.
pub(crate) fn claimed<R: Columns>(rows: &[R]) -> StorageResult<Vec<OutboxMessage>> {
    let mut claimed = super::all(rows, message)?;
    claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
    Ok(claimed)
}

/// A page of messages, newest first.
pub(crate) fn list_outbox<D: Dialect>(q: &OutboxQuery) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE TRUE"));
    if let Some(s) = q.status {
        qb.push(" AND status = ").text(s.as_str());
    }
    if let Some((at, id)) = q.after {
        qb.push(" AND (created_at, id) < (").time(at);
        qb.push(", ").uuid(id.0).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(i64::from(q.limit));
    qb
}

/// Binds what a delivery result sets, in this order: the status, then
/// `delivered_at`, `next_attempt_at` and `last_error`, each NULL where the
/// result leaves the stored value as it is.
pub(crate) fn bind_delivery<B: Binds>(b: B, update: &DeliveryUpdate) -> B {
    let (status, delivered_at, next_attempt_at, error) = match update {
        DeliveryUpdate::Delivered { at } => (OutboxStatus::Delivered, Some(*at), None, None),
        DeliveryUpdate::Retry {
            next_attempt_at,
            error,
        } => (
            OutboxStatus::Pending,
            None,
            Some(*next_attempt_at),
            Some(error.as_str()),
        ),
        DeliveryUpdate::Dead { error } => (OutboxStatus::Dead, None, None, Some(error.as_str())),
    };
    b.text(status.as_str())
        .opt_time(delivered_at)
        .opt_time(next_attempt_at)
        .opt_text(error)
}
