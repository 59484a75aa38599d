//! The seller ledger, once for both dialects: the entries' columns, decoder,
//! binds and listing, and the balance write that goes with every entry.
//!
//! Appending an entry is two writes in one transaction: the balance row of the
//! entry's seller and currency moves by the entry's amounts ([`push_balance_write`]),
//! then the entry is inserted. The schema's checks refuse a bucket below zero
//! (mapped to `Precondition`), its unique index a second earning, release or
//! reversal of one order (`AlreadyExists`). Each dialect's `ledger.rs` runs the
//! two (PostgreSQL in one statement).

use marketplace_core::ledger::{Balance, EntryKind, LedgerEntry, LedgerQuery};
use marketplace_core::{Currency, StorageError, StorageResult, UserId};
use sqlx::QueryBuilder;

use super::{Binds, Columns, corrupt};
use crate::dialect::Dialect;

/// The columns of `ledger_entries`, in the order [`bind_entry`] binds them.
pub(crate) const ENTRY_COLUMNS: &str = "id, seller_id, kind, currency, pending, available, commission, order_id, payout_id, created_at";

/// The columns of `seller_balances`.
const BALANCE_COLUMNS: &str = "seller_id, currency, pending, available";

/// What appending `entry` is refused with when a bucket would go below zero.
pub(crate) fn below_zero(entry: &LedgerEntry) -> StorageError {
    StorageError::Precondition(format!(
        "a {} entry would take the balance below zero",
        entry.kind.as_str()
    ))
}

/// The entry's one currency; `Precondition` when its amounts mix currencies,
/// which one balance cannot hold (core builds every entry in one currency).
fn entry_currency(entry: &LedgerEntry) -> StorageResult<Currency> {
    let currency = entry.currency();
    if entry.available.currency != currency || entry.commission.currency != currency {
        return Err(StorageError::Precondition(
            "a ledger entry's amounts must share one currency".into(),
        ));
    }
    Ok(currency)
}

/// Binds `entry` in [`ENTRY_COLUMNS`] order (its currency checked by
/// [`push_balance_write`], which runs first).
pub(crate) fn bind_entry<B: Binds>(b: B, entry: &LedgerEntry) -> B {
    b.uuid(entry.id.0)
        .uuid(entry.seller_id.0)
        .text(entry.kind.as_str())
        .text(entry.currency().as_str())
        .int(entry.pending.amount)
        .int(entry.available.amount)
        .int(entry.commission.amount)
        .opt_uuid(entry.order_id.map(|o| o.0))
        .opt_uuid(entry.payout_id.map(|p| p.0))
        .time(entry.created_at)
}

/// Pushes `INSERT INTO ledger_entries ... VALUES ...` for `entry`.
pub(crate) fn push_insert_entry<D: Dialect>(qb: &mut QueryBuilder<D>, entry: &LedgerEntry) {
    qb.push(format!("INSERT INTO ledger_entries ({ENTRY_COLUMNS}) "));
    qb.push_values([entry], |mut b, e| {
        bind_entry(&mut b, e);
    });
}

/// Pushes the balance write of `entry`, `RETURNING seller_id`: a row when the
/// balance moved, none when there was no balance to take from. `Precondition`
/// when the entry's amounts mix currencies.
///
/// An entry that only adds (an earning, a failed payout's funds coming back)
/// creates the balance row or adds to it, in one upsert. An entry that takes from
/// a bucket (a release, a reversal, a payout) updates the row: where there is
/// none, the bucket is zero and any take would go below it, so no row is the
/// caller's `Precondition`; where the take is too large, the row's check refuses
/// it. (An upsert cannot take: the database checks the row it proposes to insert,
/// negative amounts and all, before it finds the conflict.)
pub(crate) fn push_balance_write<D: Dialect>(
    qb: &mut QueryBuilder<D>,
    entry: &LedgerEntry,
) -> StorageResult<()> {
    let currency = entry_currency(entry)?;
    let (pending, available) = (entry.pending.amount, entry.available.amount);
    if pending >= 0 && available >= 0 {
        qb.push(format!(
            "INSERT INTO seller_balances AS b ({BALANCE_COLUMNS}) VALUES ("
        ));
        qb.uuid(entry.seller_id.0)
            .push(", ")
            .text(currency.as_str())
            .push(", ")
            .int(pending)
            .push(", ")
            .int(available)
            .push(
                ") ON CONFLICT (seller_id, currency) DO UPDATE SET \
                 pending = b.pending + excluded.pending, \
                 available = b.available + excluded.available",
            );
    } else {
        qb.push("UPDATE seller_balances SET pending = pending + ")
            .int(pending)
            .push(", available = available + ")
            .int(available)
            .push(" WHERE seller_id = ")
            .uuid(entry.seller_id.0)
            .push(" AND currency = ")
            .text(currency.as_str());
    }
    qb.push(" RETURNING seller_id");
    Ok(())
}

pub(crate) fn entry<R: Columns>(r: &R) -> StorageResult<LedgerEntry> {
    let kind = r.text("kind")?;
    Ok(LedgerEntry {
        id: r.uuid("id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        kind: EntryKind::parse(&kind).ok_or_else(|| corrupt("ledger entry kind", &kind))?,
        pending: r.money("pending", "currency")?,
        available: r.money("available", "currency")?,
        commission: r.money("commission", "currency")?,
        order_id: r.opt_uuid("order_id")?.map(Into::into),
        payout_id: r.opt_uuid("payout_id")?.map(Into::into),
        created_at: r.time("created_at")?,
    })
}

/// A page of entries matching `q`, newest first (by the seller's keyset index,
/// or the one over every entry).
pub(crate) fn list_entries<D: Dialect>(q: &LedgerQuery) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE TRUE"
    ));
    if let Some(s) = q.seller_id {
        qb.push(" AND seller_id = ").uuid(s.0);
    }
    if !q.kinds.is_empty() {
        qb.push(" AND kind IN (");
        let mut kinds = qb.separated(", ");
        for k in &q.kinds {
            kinds.text(k.as_str());
        }
        qb.push(")");
    }
    if let Some(from) = q.from {
        qb.push(" AND created_at >= ").time(from);
    }
    if let Some(to) = q.to {
        qb.push(" AND created_at < ").time(to);
    }
    if let Some(k) = q.after {
        qb.push(" AND (created_at, id) < (").time(k.created_at);
        qb.push(", ").uuid(k.id.0).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(i64::from(q.limit));
    qb
}

/// The balances of one seller, or of everyone, by seller and currency.
pub(crate) fn list_balances<D: Dialect>(seller: Option<UserId>) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("SELECT {BALANCE_COLUMNS} FROM seller_balances"));
    if let Some(s) = seller {
        qb.push(" WHERE seller_id = ").uuid(s.0);
    }
    qb.push(" ORDER BY seller_id, currency");
    qb
}

pub(crate) fn balance<R: Columns>(r: &R) -> StorageResult<Balance> {
    Ok(Balance::new(
        r.uuid("seller_id")?.into(),
        r.money("pending", "currency")?,
        r.money("available", "currency")?,
    ))
}

/// A balance's available bucket, as `request_payout` reads it.
pub(crate) fn available<R: Columns>(r: &R) -> StorageResult<i64> {
    r.int("available")
}

/// The error appending `entry` failed with: a bucket below zero names the entry's
/// kind, the rest maps as usual.
pub(crate) fn entry_error<D: Dialect>(err: sqlx::Error, entry: &LedgerEntry) -> StorageError {
    match crate::error::map::<D>(err) {
        StorageError::Precondition(_) => below_zero(entry),
        other => other,
    }
}
