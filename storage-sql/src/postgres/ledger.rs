//! The seller ledger on PostgreSQL: entries, balances, and the release of
//! earnings whose return window closed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::ledger::{Balance, EarningRelease, LedgerEntry, LedgerQuery};
use marketplace_core::order::Order;
use marketplace_core::storage::LedgerStore;
use marketplace_core::{StorageError, StorageResult, UserId};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::orders::order_exists;
use super::{PostgresStorage, e};
use crate::codec::ledger::{self, ENTRY_COLUMNS};
use crate::codec::{self, orders};

/// Appends `entry` and moves its balance, in one statement of the caller's
/// transaction: the balance write runs first (the entry is inserted from its
/// `RETURNING` row), so a bucket that would go below zero is refused by the
/// balance's check before the entry's unique index is consulted, as the memory
/// store orders the two. No balance to take from is `Precondition` too; the
/// caller's transaction then rolls back whatever the step wrote.
///
/// The balance row is locked by the write until the transaction ends: a
/// concurrent entry of the same seller and currency waits, then adds to the
/// committed amounts (READ COMMITTED re-reads the row it waited for).
pub(super) async fn append_entry(
    conn: &mut PgConnection,
    entry: &LedgerEntry,
) -> StorageResult<()> {
    let mut qb = QueryBuilder::<Postgres>::new("WITH balance AS (");
    ledger::push_balance_write(&mut qb, entry)?;
    qb.push(format!(
        ") INSERT INTO ledger_entries ({ENTRY_COLUMNS}) SELECT "
    ));
    let mut values = qb.separated(", ");
    ledger::bind_entry(&mut values, entry);
    qb.push(" FROM balance RETURNING id");
    let appended = qb
        .build()
        .fetch_optional(conn)
        .await
        .map_err(|err| ledger::entry_error::<Postgres>(err, entry))?;
    match appended {
        Some(_) => Ok(()),
        None => Err(ledger::below_zero(entry)),
    }
}

#[async_trait]
impl LedgerStore for PostgresStorage {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> {
        let mut list = ledger::list_balances::<Postgres>(seller);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, ledger::balance)
    }

    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> {
        let mut list = ledger::list_entries::<Postgres>(q);
        let rows = list.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, ledger::entry)
    }

    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> {
        let mut due = orders::orders_to_release::<Postgres>(now, limit);
        let rows = due.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> {
        let mut tx = self.begin().await?;
        // The conditional write: a return request of the same order
        // (`transition_order` with `require_unreleased`) updates the same row, so
        // one waits for the other and then finds its condition gone.
        let released = sqlx::query(
            "UPDATE orders SET earning_released_at = $2 \
             WHERE id = $1 AND status = 'delivered' AND earning_released_at IS NULL \
             RETURNING id",
        )
        .bind(r.order_id.0)
        .bind(r.entry.created_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        if released.is_none() {
            return if order_exists(&mut tx, r.order_id).await? {
                Ok(false)
            } else {
                Err(StorageError::NotFound)
            };
        }
        append_entry(&mut tx, &r.entry).await?;
        tx.commit().await.map_err(e)?;
        Ok(true)
    }
}
