//! The notification outbox as documents.
//!
//! `outbox`: `{_id, kind, recipient, subject, text_body, html_body, status,
//! attempts, next_attempt_at, last_error, created_at, delivered_at, claimed_by,
//! claimed_until}`. A claim is the pair (`claimed_by`, `claimed_until`): a
//! message is free when it has none or its lease ended.

use std::future::IntoFuture;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::{FutureExt, TryStreamExt};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery, OutboxStatus};
use marketplace_core::{MessageId, OutboxStore, StorageResult};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as DriverError;
use uuid::Uuid;

use crate::MongoStorage;
use crate::error::storage_error;
use crate::schema::OUTBOX;
use crate::transaction::{Body, Fail, Step};
use crate::values::{Reader, count, date, opt, opt_str, uuid};

pub(crate) fn message_doc(m: &OutboxMessage) -> Document {
    doc! {
        "_id": uuid(m.id.0),
        "kind": &m.kind,
        "recipient": &m.recipient,
        "subject": &m.subject,
        "text_body": &m.text_body,
        "html_body": &m.html_body,
        "status": m.status.as_str(),
        "attempts": count(m.attempts),
        "next_attempt_at": date(m.next_attempt_at),
        "last_error": opt_str(m.last_error.as_deref()),
        "created_at": date(m.created_at),
        "delivered_at": opt(m.delivered_at, date),
        "claimed_by": opt(m.claimed_by, uuid),
        "claimed_until": opt(m.claimed_until, date),
    }
}

pub(crate) fn message_from(d: &Document) -> StorageResult<OutboxMessage> {
    let r = Reader::new(OUTBOX, d);
    Ok(OutboxMessage {
        id: MessageId(r.uuid("_id")?),
        kind: r.str("kind")?,
        recipient: r.str("recipient")?,
        subject: r.str("subject")?,
        text_body: r.str("text_body")?,
        html_body: r.str("html_body")?,
        status: r.parsed("status", OutboxStatus::parse)?,
        attempts: r.u32("attempts")?,
        next_attempt_at: r.date("next_attempt_at")?,
        last_error: r.opt_str("last_error")?,
        created_at: r.date("created_at")?,
        delivered_at: r.opt_date("delivered_at")?,
        claimed_by: r.opt_uuid("claimed_by")?,
        claimed_until: r.opt_date("claimed_until")?,
    })
}

/// Pending messages due at `now` that no live claim holds.
pub(crate) fn claimable(now: DateTime<Utc>) -> Document {
    doc! {
        "status": OutboxStatus::Pending.as_str(),
        "next_attempt_at": { "$lte": date(now) },
        "$or": [
            { "claimed_until": Bson::Null },
            { "claimed_until": { "$lte": date(now) } },
        ],
    }
}

/// The filter of an outbox listing (newest first, after the cursor).
pub(crate) fn outbox_filter(q: &OutboxQuery) -> Document {
    let mut f = Document::new();
    if let Some(s) = q.status {
        f.insert("status", s.as_str());
    }
    if let Some((at, id)) = q.after {
        f.insert(
            "$or",
            vec![
                Bson::Document(doc! { "created_at": { "$lt": date(at) } }),
                Bson::Document(doc! { "created_at": date(at), "_id": { "$lt": uuid(id.0) } }),
            ],
        );
    }
    f
}

/// The transaction bodies of this concept's atomic steps (see [`crate::transaction`]).
impl MongoStorage {
    /// Stores `messages` in the session's transaction: every atomic step that
    /// sends mail records it in the same transaction as its change.
    pub(crate) async fn push_outbox(
        &self,
        s: &mut ClientSession,
        messages: &[OutboxMessage],
    ) -> Result<(), DriverError> {
        if !messages.is_empty() {
            self.outbox
                .insert_many(messages.iter().map(message_doc))
                .session(s)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn claim_outbox_tx(
        &self,
        s: &mut ClientSession,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Body<Vec<OutboxMessage>> {
        let mut cursor = self
            .outbox
            .find(claimable(now))
            .sort(doc! { "next_attempt_at": 1, "_id": 1 })
            .limit(i64::from(limit))
            .session(&mut *s)
            .await?;
        let due: Vec<Document> = cursor.stream(&mut *s).try_collect().await?;
        if due.is_empty() {
            return Ok(Step::Abort(Vec::new()));
        }
        let ids: Vec<Bson> = due.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let mut filter = claimable(now);
        filter.insert("_id", doc! { "$in": ids });
        let r = self
            .outbox
            .update_many(
                filter,
                doc! { "$set": { "claimed_by": uuid(worker), "claimed_until": date(lease_until) } },
            )
            .session(&mut *s)
            .await?;
        if r.modified_count != due.len() as u64 {
            return Err(Fail::Retry("outbox messages claimed concurrently"));
        }
        let mut claimed = Vec::with_capacity(due.len());
        for d in &due {
            let mut m = message_from(d)?;
            m.claimed_by = Some(worker);
            m.claimed_until = Some(lease_until);
            claimed.push(m);
        }
        Ok(Step::Commit(claimed))
    }
}

#[async_trait]
impl OutboxStore for MongoStorage {
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.transaction(
            &(self, worker, now, lease_until, limit),
            |s, (store, worker, now, lease_until, limit)| {
                store
                    .claim_outbox_tx(s, *worker, *now, *lease_until, *limit)
                    .boxed()
            },
        )
        .await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let mut set = match update {
            DeliveryUpdate::Delivered { at } => doc! {
                "status": OutboxStatus::Delivered.as_str(),
                "delivered_at": date(*at),
            },
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => doc! { "next_attempt_at": date(*next_attempt_at), "last_error": error },
            DeliveryUpdate::Dead { error } => doc! {
                "status": OutboxStatus::Dead.as_str(),
                "last_error": error,
            },
        };
        set.insert("claimed_by", Bson::Null);
        set.insert("claimed_until", Bson::Null);
        let filter = doc! {
            "_id": uuid(id.0),
            "status": OutboxStatus::Pending.as_str(),
            "claimed_by": uuid(worker),
        };
        let update = doc! { "$set": set, "$inc": { "attempts": 1_i64 } };
        self.single(|| {
            self.outbox
                .update_one(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count > 0)
        .map_err(storage_error)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let filter = doc! { "claimed_by": uuid(worker) };
        let update = doc! { "$set": { "claimed_by": Bson::Null, "claimed_until": Bson::Null } };
        self.single(|| {
            self.outbox
                .update_many(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count)
        .map_err(storage_error)
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        self.outbox
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| message_from(&d))
            .transpose()
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        Self::find_all(
            &self.outbox,
            outbox_filter(query),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(query.limit),
        )
        .await?
        .iter()
        .map(message_from)
        .collect()
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let filter = doc! { "_id": uuid(id.0), "status": OutboxStatus::Dead.as_str() };
        let update = doc! { "$set": {
            "status": OutboxStatus::Pending.as_str(),
            "attempts": 0_i64,
            "next_attempt_at": date(now),
            "claimed_by": Bson::Null,
            "claimed_until": Bson::Null,
        } };
        self.single(|| {
            self.outbox
                .update_one(filter.clone(), update.clone())
                .into_future()
        })
        .await
        .map(|r| r.matched_count > 0)
        .map_err(storage_error)
    }
}
