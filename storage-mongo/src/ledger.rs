//! The seller ledger as documents.
//!
//! `ledger_entries`: `{_id, seller_id, kind, currency, pending, available,
//! commission, order_id, payout_id, created_at, once}`, amounts in minor units
//! of `currency`; `once` (`<order>:<kind>`) is set on earnings, releases and
//! reversals only, and a unique index on it keeps one of each per order.
//! `seller_balances`: `{_id: "<seller>:<currency>", seller_id, currency,
//! pending, available}`, moved by every entry in the same transaction, with the
//! filter of each decrement keeping both buckets at zero or above.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use marketplace_core::ledger::{Balance, EarningRelease, EntryKind, LedgerEntry, LedgerQuery};
use marketplace_core::order::Order;
use marketplace_core::{
    Currency, LedgerEntryId, LedgerStore, Money, OrderId, OrderStatus, PayoutId, StorageError,
    StorageResult, UserId,
};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStorage;
use crate::error::duplicate_key;
use crate::orders::order_from;
use crate::schema::{BALANCES, LEDGER};
use crate::transaction::{Body, Fail, Step, unmatched};
use crate::values::{Reader, before, date, opt, uuid};

/// The `_id` of a seller's balance in `currency`.
pub(crate) fn balance_key(seller: UserId, currency: Currency) -> String {
    format!("{}:{}", seller.0, currency.as_str())
}

fn entry_doc(e: &LedgerEntry) -> Document {
    let once = e
        .order_id
        .filter(|_| {
            matches!(
                e.kind,
                EntryKind::Earning | EntryKind::Release | EntryKind::Reversal
            )
        })
        .map(|o| format!("{o}:{}", e.kind.as_str()));
    doc! {
        "_id": uuid(e.id.0),
        "seller_id": uuid(e.seller_id.0),
        "kind": e.kind.as_str(),
        "currency": e.currency().as_str(),
        "pending": e.pending.amount,
        "available": e.available.amount,
        "commission": e.commission.amount,
        "order_id": opt(e.order_id, |o| uuid(o.0)),
        "payout_id": opt(e.payout_id, |p| uuid(p.0)),
        "created_at": date(e.created_at),
        "once": opt(once, Bson::String),
    }
}

fn entry_from(d: &Document) -> StorageResult<LedgerEntry> {
    let r = Reader::new(LEDGER, d);
    let currency = r.parsed("currency", Currency::parse)?;
    let m = |k: &str| Ok::<_, StorageError>(Money::new(r.i64(k)?, currency));
    Ok(LedgerEntry {
        id: LedgerEntryId(r.uuid("_id")?),
        seller_id: UserId(r.uuid("seller_id")?),
        kind: r.parsed("kind", EntryKind::parse)?,
        pending: m("pending")?,
        available: m("available")?,
        commission: m("commission")?,
        order_id: r.opt_uuid("order_id")?.map(OrderId),
        payout_id: r.opt_uuid("payout_id")?.map(PayoutId),
        created_at: r.date("created_at")?,
    })
}

fn balance_from(d: &Document) -> StorageResult<Balance> {
    let r = Reader::new(BALANCES, d);
    let currency = r.parsed("currency", Currency::parse)?;
    Ok(Balance::new(
        UserId(r.uuid("seller_id")?),
        Money::new(r.i64("pending")?, currency),
        Money::new(r.i64("available")?, currency),
    ))
}

fn ledger_filter(q: &LedgerQuery) -> Document {
    let mut f = Document::new();
    if let Some(s) = q.seller_id {
        f.insert("seller_id", uuid(s.0));
    }
    if !q.kinds.is_empty() {
        let kinds: Vec<_> = q.kinds.iter().map(|k| k.as_str()).collect();
        f.insert("kind", doc! { "$in": kinds });
    }
    let mut range = Document::new();
    if let Some(from) = q.from {
        range.insert("$gte", date(from));
    }
    if let Some(to) = q.to {
        range.insert("$lt", date(to));
    }
    if !range.is_empty() {
        f.insert("created_at", range);
    }
    if let Some(k) = q.after {
        f.insert("$or", before(k.created_at, k.id.0));
    }
    f
}

impl MongoStorage {
    /// Appends `e` inside the caller's transaction: moves the balance first
    /// (refusing, with `Precondition`, a bucket that would go below zero), then
    /// inserts the entry (a second earning, release or reversal of an order is
    /// `AlreadyExists`). Either refusal aborts the whole step.
    pub(crate) async fn append_entry(
        &self,
        s: &mut ClientSession,
        e: &LedgerEntry,
    ) -> Result<(), Fail> {
        let key = balance_key(e.seller_id, e.currency());
        let (p, a) = (e.pending.amount, e.available.amount);
        let inc = doc! { "$inc": { "pending": p, "available": a } };
        if p >= 0 && a >= 0 {
            let mut up = inc;
            up.insert(
                "$setOnInsert",
                doc! { "seller_id": uuid(e.seller_id.0), "currency": e.currency().as_str() },
            );
            self.balances
                .update_one(doc! { "_id": &key }, up)
                .upsert(true)
                .session(&mut *s)
                .await
                .map_err(|err| match duplicate_key(&err) {
                    // Two first entries of one balance at once.
                    Some(_) => Fail::Retry("balance created concurrently"),
                    None => Fail::Db(err),
                })?;
        } else {
            let moved = self
                .balances
                .update_one(
                    doc! {
                        "_id": &key,
                        "pending": { "$gte": -p.min(0) },
                        "available": { "$gte": -a.min(0) },
                    },
                    inc,
                )
                .session(&mut *s)
                .await?;
            if moved.matched_count == 0 {
                return Err(Fail::Refuse(StorageError::Precondition(format!(
                    "a {} entry would take the balance below zero",
                    e.kind.as_str()
                ))));
            }
        }
        self.ledger
            .insert_one(entry_doc(e))
            .session(&mut *s)
            .await
            .map_err(|err| match duplicate_key(&err) {
                Some(what @ "ledger entry") => Fail::Refuse(StorageError::AlreadyExists(what)),
                _ => Fail::Db(err),
            })?;
        Ok(())
    }

    async fn release_earning_tx(
        &self,
        s: &mut ClientSession,
        r: &EarningRelease,
    ) -> Body<StorageResult<bool>> {
        let id = uuid(r.order_id.0);
        let set = self
            .orders
            .update_one(
                doc! {
                    "_id": id.clone(),
                    "status": OrderStatus::Delivered.as_str(),
                    "earning_released_at": Bson::Null,
                },
                doc! { "$set": { "earning_released_at": date(r.entry.created_at) } },
            )
            .session(&mut *s)
            .await?;
        if set.matched_count == 0 {
            return unmatched(&self.orders, s, id, false).await;
        }
        self.append_entry(s, &r.entry).await?;
        Ok(Step::Commit(Ok(true)))
    }
}

#[async_trait]
impl LedgerStore for MongoStorage {
    async fn balances(&self, seller: Option<UserId>) -> StorageResult<Vec<Balance>> {
        let filter = seller.map_or_else(Document::new, |s| doc! { "seller_id": uuid(s.0) });
        Self::find_all(&self.balances, filter, Some(doc! { "_id": 1 }), None)
            .await?
            .iter()
            .map(balance_from)
            .collect()
    }

    async fn ledger_entries(&self, q: &LedgerQuery) -> StorageResult<Vec<LedgerEntry>> {
        Self::find_all(
            &self.ledger,
            ledger_filter(q),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(q.limit),
        )
        .await?
        .iter()
        .map(entry_from)
        .collect()
    }

    async fn orders_to_release(&self, now: DateTime<Utc>, limit: u32) -> StorageResult<Vec<Order>> {
        Self::find_all(
            &self.orders,
            doc! {
                "status": OrderStatus::Delivered.as_str(),
                "return_until": { "$lte": date(now) },
                "earning_released_at": Bson::Null,
            },
            Some(doc! { "return_until": 1, "_id": 1 }),
            Some(limit),
        )
        .await?
        .iter()
        .map(order_from)
        .collect()
    }

    async fn release_earning(&self, r: &EarningRelease) -> StorageResult<bool> {
        self.transaction(&(self, r), |s, (store, r)| {
            store.release_earning_tx(s, r).boxed()
        })
        .await?
    }
}
