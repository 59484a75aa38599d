//! The seller ledger on SQLite: entries, balances, and the release of earnings
//! whose return window closed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::ledger::{Balance, EarningRelease, LedgerEntry, LedgerQuery};
use marketplace_core::order::Order;
use marketplace_core::storage::LedgerStore;
use marketplace_core::{StorageError, StorageResult, UserId};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::orders::order_exists;
use super::{SqliteStorage, e};
use crate::codec::{self, Binds, ledger, orders};

/// Appends `entry` and moves its balance, in the caller's write transaction:
/// the balance first, so a bucket that would go below zero is refused by the
/// balance's check before the entry's unique index is consulted, as the memory
/// store orders the two. No balance to take from is `Precondition` too; the
/// caller's transaction then rolls back whatever the step wrote. The write lock
/// the transaction holds (`BEGIN IMMEDIATE`) keeps every other writer out.
pub(super) async fn append_entry(
    conn: &mut SqliteConnection,
    entry: &LedgerEntry,
) -> StorageResult<()> {
    let mut balance = QueryBuilder::<Sqlite>::new("");
    ledger::push_balance_write(&mut balance, entry)?;
    let moved = balance
        .build()
        .fetch_optional(&mut *conn)
        .await
        .map_err(|err| ledger::entry_error::<Sqlite>(err, entry))?;
    if moved.is_none() {
        return Err(ledger::below_zero(entry));
    }
    let mut insert = QueryBuilder::<Sqlite>::new("");
    ledger::push_insert_entry(&mut insert, entry);
    insert
        .build()
        .execute(&mut *conn)
        .await
        .map_err(|err| ledger::entry_error::<Sqlite>(err, entry))?;
    Ok(())
}

#[async_trait]
impl LedgerStore for SqliteStorage {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> {
        let mut list = ledger::list_balances::<Sqlite>(seller);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, ledger::balance)
    }

    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> {
        let mut list = ledger::list_entries::<Sqlite>(q);
        let rows = list.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, ledger::entry)
    }

    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> {
        let mut due = orders::orders_to_release::<Sqlite>(now, limit);
        let rows = due.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, orders::order)
    }

    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> {
        // Under the write lock: a return request of the same order cannot run
        // between the condition and the entry.
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE orders SET earning_released_at = ?2 \
             WHERE id = ?1 AND status = 'delivered' AND earning_released_at IS NULL \
             RETURNING id",
        )
        .bind(r.order_id.0)
        .time(r.entry.created_at)
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
