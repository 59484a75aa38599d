//! The notification outbox on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery};
use marketplace_core::storage::OutboxStore;
use marketplace_core::{MessageId, StorageResult};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::{SqliteStorage, e};
use crate::codec::outbox::{self, OUTBOX_COLUMNS};
use crate::codec::{self, Binds};

/// Stores messages in the transaction of the change that caused them, one
/// statement each: few rows each time, and SQLite statements cost no round trip.
pub(super) async fn insert_outbox(
    conn: &mut SqliteConnection,
    messages: &[OutboxMessage],
) -> StorageResult<()> {
    for m in messages {
        let mut insert = QueryBuilder::<Sqlite>::new("");
        outbox::push_insert_outbox(&mut insert, [m]);
        insert.build().execute(&mut *conn).await.map_err(e)?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for SqliteStorage {
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        // One statement is one write transaction: two claims are serialised by the
        // write lock, and the second no longer finds the first one's messages.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_by = ?3, claimed_until = ?4 WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= ?1 \
                   AND (claimed_until IS NULL OR claimed_until <= ?1) \
                 ORDER BY next_attempt_at, id LIMIT ?2 \
             ) RETURNING {OUTBOX_COLUMNS}"
        )))
        .time(now)
        .bind(i64::from(limit))
        .bind(worker)
        .time(lease_until)
        .fetch_all(&self.writer)
        .await
        .map_err(e)?;
        outbox::claimed(&rows)
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let finish = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL, \
             status = ?3, delivered_at = COALESCE(?4, delivered_at), \
             next_attempt_at = COALESCE(?5, next_attempt_at), \
             last_error = COALESCE(?6, last_error) \
             WHERE id = ?1 AND status = 'pending' AND claimed_by = ?2",
        )
        .bind(id.0)
        .bind(worker);
        let done = outbox::bind_delivery(finish, update)
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?1",
        )
        .bind(worker)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected())
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, outbox::message)
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let mut list = outbox::list_outbox::<Sqlite>(q);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, outbox::message)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2, \
             claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND status = 'dead'",
        )
        .bind(id.0)
        .time(now)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
