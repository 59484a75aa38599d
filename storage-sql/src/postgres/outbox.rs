//! The notification outbox on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery};
use marketplace_core::storage::OutboxStore;
use marketplace_core::{MessageId, StorageResult};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{PostgresStorage, e};
use crate::codec;
use crate::codec::outbox::{self, OUTBOX_COLUMNS, OUTBOX_COLUMNS_O};

/// Stores messages in the transaction of the change that caused them, in one
/// statement.
pub(super) async fn insert_outbox(
    conn: &mut PgConnection,
    messages: &[OutboxMessage],
) -> StorageResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut insert = QueryBuilder::<Postgres>::new("");
    outbox::push_insert_outbox(&mut insert, messages);
    insert.build().execute(conn).await.map_err(e)?;
    Ok(())
}

#[async_trait]
impl OutboxStore for PostgresStorage {
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        // One statement: rows another claimer holds locked are skipped, and a row
        // claimed and committed meanwhile fails the re-checked lease condition.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "WITH due AS ( \
                 SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (claimed_until IS NULL OR claimed_until <= $1) \
                 ORDER BY next_attempt_at, id LIMIT $2 \
                 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE outbox o SET claimed_by = $3, claimed_until = $4 FROM due \
             WHERE o.id = due.id RETURNING {}",
            *OUTBOX_COLUMNS_O
        )))
        .bind(now)
        .bind(i64::from(limit))
        .bind(worker)
        .bind(lease_until)
        .fetch_all(&self.pool)
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
             status = $3, delivered_at = COALESCE($4, delivered_at), \
             next_attempt_at = COALESCE($5, next_attempt_at), \
             last_error = COALESCE($6, last_error) \
             WHERE id = $1 AND status = 'pending' AND claimed_by = $2",
        )
        .bind(id.0)
        .bind(worker);
        let done = outbox::bind_delivery(finish, update)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        )
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected())
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, outbox::message)
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let mut list = outbox::list_outbox::<Postgres>(q);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, outbox::message)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, \
             claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND status = 'dead'",
        )
        .bind(id.0)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
