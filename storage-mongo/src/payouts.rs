//! Payouts as documents.
//!
//! `payouts`: `{_id, seller_id, amount: {amount, currency}, status, provider,
//! idempotency_key, reference, failure, requested_by, created_at, updated_at}`.
//! Taking a balance, and settling a payout, are transactions that also write
//! the payout's ledger entries (see [`crate::ledger`]).

use async_trait::async_trait;
use futures::FutureExt;
use marketplace_core::payout::{
    Payout, PayoutQuery, PayoutRequest, PayoutSettlement, PayoutStatus,
};
use marketplace_core::{PayoutId, PayoutStore, StorageResult, UserId};
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

use crate::MongoStorage;
use crate::error::storage_error;
use crate::ledger::balance_key;
use crate::schema::PAYOUTS;
use crate::transaction::{Body, Step, unmatched};
use crate::values::{Reader, before, date, money, opt_str, uuid};

fn payout_doc(p: &Payout) -> Document {
    doc! {
        "_id": uuid(p.id.0),
        "seller_id": uuid(p.seller_id.0),
        "amount": money(p.amount),
        "status": p.status.as_str(),
        "provider": &p.provider,
        "idempotency_key": &p.idempotency_key,
        "reference": opt_str(p.reference.as_deref()),
        "failure": opt_str(p.failure.as_deref()),
        "requested_by": uuid(p.requested_by.0),
        "created_at": date(p.created_at),
        "updated_at": date(p.updated_at),
    }
}

fn payout_from(d: &Document) -> StorageResult<Payout> {
    let r = Reader::new(PAYOUTS, d);
    Ok(Payout {
        id: PayoutId(r.uuid("_id")?),
        seller_id: UserId(r.uuid("seller_id")?),
        amount: r.money("amount")?,
        status: r.parsed("status", PayoutStatus::parse)?,
        provider: r.str("provider")?,
        idempotency_key: r.str("idempotency_key")?,
        reference: r.opt_str("reference")?,
        failure: r.opt_str("failure")?,
        requested_by: UserId(r.uuid("requested_by")?),
        created_at: r.date("created_at")?,
        updated_at: r.date("updated_at")?,
    })
}

fn payout_filter(q: &PayoutQuery) -> Document {
    let mut f = Document::new();
    if let Some(s) = q.seller_id {
        f.insert("seller_id", uuid(s.0));
    }
    if let Some(s) = q.status {
        f.insert("status", s.as_str());
    }
    if let Some(k) = q.after {
        f.insert("$or", before(k.created_at, k.id.0));
    }
    f
}

impl MongoStorage {
    async fn request_payout_tx(
        &self,
        s: &mut ClientSession,
        r: &PayoutRequest,
    ) -> Body<StorageResult<Option<Payout>>> {
        let balance = self
            .balances
            .find_one(doc! { "_id": balance_key(r.seller_id, r.currency) })
            .session(&mut *s)
            .await?;
        let available = match &balance {
            Some(d) => Reader::new(crate::schema::BALANCES, d).i64("available")?,
            None => 0,
        };
        if available < r.minimum.max(1) {
            return Ok(Step::Abort(Ok(None)));
        }
        let (payout, entry) = r.payout(available);
        // The entry's decrement is conditional on the balance read here: a
        // concurrent taker makes one of the two transactions conflict and retry.
        self.append_entry(s, &entry).await?;
        self.payouts
            .insert_one(payout_doc(&payout))
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(Ok(Some(payout))))
    }

    async fn settle_payout_tx(
        &self,
        s: &mut ClientSession,
        t: &PayoutSettlement,
    ) -> Body<StorageResult<Option<Payout>>> {
        let id = uuid(t.payout_id.0);
        let from: Vec<_> = t.from.iter().map(|st| st.as_str()).collect();
        let mut set = doc! { "status": t.to.as_str(), "updated_at": date(t.at) };
        if let Some(reference) = &t.reference {
            set.insert("reference", reference);
        }
        if let Some(failure) = &t.failure {
            set.insert("failure", failure);
        }
        let Some(d) = self
            .payouts
            .find_one_and_update(
                doc! { "_id": id.clone(), "status": { "$in": from } },
                doc! { "$set": set },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
        else {
            return unmatched(&self.payouts, s, id, None).await;
        };
        let payout = payout_from(&d)?;
        if let Some(entry) = &t.entry {
            self.append_entry(s, entry).await?;
        }
        self.push_outbox(s, &t.outbox).await?;
        Ok(Step::Commit(Ok(Some(payout))))
    }
}

#[async_trait]
impl PayoutStore for MongoStorage {
    async fn payout(&self, id: PayoutId) -> StorageResult<Option<Payout>> {
        self.payouts
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| payout_from(&d))
            .transpose()
    }

    async fn list_payouts(&self, q: &PayoutQuery) -> StorageResult<Vec<Payout>> {
        Self::find_all(
            &self.payouts,
            payout_filter(q),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(q.limit),
        )
        .await?
        .iter()
        .map(payout_from)
        .collect()
    }

    async fn request_payout(&self, r: &PayoutRequest) -> StorageResult<Option<Payout>> {
        self.transaction(&(self, r), |s, (store, r)| {
            store.request_payout_tx(s, r).boxed()
        })
        .await?
    }

    async fn settle_payout(&self, t: &PayoutSettlement) -> StorageResult<Option<Payout>> {
        self.transaction(&(self, t), |s, (store, t)| {
            store.settle_payout_tx(s, t).boxed()
        })
        .await?
    }
}
