//! The checkout commit and its idempotency records.
//!
//! `checkouts` (idempotency records): `{_id: checkout_id, buyer_id, key,
//! request_hash, created_at}`, unique per (buyer, key).
//!
//! The commit is one transaction: it takes the stock of every reservation
//! (each a conditional `$inc` on a sellable product with enough units), then
//! judges the idempotency key, the cart version and the short items in the
//! contract's order, and only when all pass writes the orders (documents of
//! [`orders`](crate::orders)), the payment (a document of
//! [`payments`](crate::payments)) when the plan has one, the idempotency
//! record and the outbox messages.

use async_trait::async_trait;
use futures::FutureExt;
use marketplace_core::catalog::Product;
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use marketplace_core::{
    CheckoutId, CheckoutStore, IdempotencyKey, ShortItem, StorageResult, UserId,
};
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};

use crate::MongoStorage;
use crate::catalog;
use crate::error::{duplicate_key, storage_error};
use crate::orders::order_doc;
use crate::payments::payment_doc;
use crate::schema::CHECKOUTS;
use crate::transaction::{Body, Fail, Step};
use crate::values::{Reader, count, date, uuid};

pub(crate) fn checkout_doc(plan: &CheckoutPlan) -> Document {
    doc! {
        "_id": uuid(plan.checkout_id.0),
        "buyer_id": uuid(plan.buyer_id.0),
        "key": plan.idempotency_key.as_str(),
        "request_hash": &plan.request_hash,
        "created_at": date(plan.created_at),
    }
}

pub(crate) fn checkout_from(d: &Document) -> StorageResult<CheckoutRecord> {
    let r = Reader::new(CHECKOUTS, d);
    Ok(CheckoutRecord {
        checkout_id: CheckoutId(r.uuid("_id")?),
        request_hash: r.str("request_hash")?,
    })
}

/// The transaction body of the checkout commit (see [`crate::transaction`]).
impl MongoStorage {
    /// Decrements the stock of every reservation, each only if enough remains
    /// and the product is still sellable; returns every item that fell short,
    /// with the units available (0 for an unsellable or missing product).
    pub(crate) async fn take_stock(
        &self,
        s: &mut ClientSession,
        plan: &CheckoutPlan,
    ) -> Result<Vec<ShortItem>, Fail> {
        let mut short = Vec::new();
        for r in &plan.reservations {
            let id = uuid(r.product_id.0);
            let mut filter = catalog::sellable();
            filter.insert("_id", id.clone());
            filter.insert("stock", doc! { "$gte": i64::from(r.quantity) });
            let taken = self
                .products
                .update_one(
                    filter,
                    doc! { "$inc": { "stock": -i64::from(r.quantity), "version": 1_i64 } },
                )
                .session(&mut *s)
                .await?;
            if taken.matched_count == 0 {
                let available = match self
                    .products
                    .find_one(doc! { "_id": id })
                    .session(&mut *s)
                    .await?
                {
                    Some(d) => Some(catalog::product_from(&d)?)
                        .filter(Product::is_sellable)
                        .map_or(0, |p| p.stock),
                    None => 0,
                };
                short.push(ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available,
                });
            }
        }
        Ok(short)
    }

    pub(crate) async fn commit_checkout_tx(
        &self,
        s: &mut ClientSession,
        plan: &CheckoutPlan,
    ) -> Body<CheckoutOutcome> {
        // The hot documents (popular products) come first: the transaction's
        // snapshot starts at its first operation, so beginning with the stock
        // decrements keeps the window in which concurrent checkouts of the same
        // products conflict with this one as short as it can be. The outcomes are
        // still reported in the contract's order (replay, cart, stock): all of them
        // are judged in the same snapshot, and nothing commits unless all pass.
        let short = self.take_stock(s, plan).await?;
        let buyer = uuid(plan.buyer_id.0);
        // 1. The idempotency key.
        if let Some(d) = self
            .checkouts
            .find_one(doc! { "buyer_id": buyer.clone(), "key": plan.idempotency_key.as_str() })
            .session(&mut *s)
            .await?
        {
            return Ok(Step::Abort(CheckoutOutcome::Replayed(checkout_from(&d)?)));
        }
        // 2. The cart: compare-and-swap on its version, emptying it.
        if plan.cart_version == 0 {
            // Never saved: it must still not exist.
            let exists = self
                .carts
                .find_one(doc! { "_id": buyer.clone() })
                .session(&mut *s)
                .await?
                .is_some();
            if exists {
                return Ok(Step::Abort(CheckoutOutcome::CartChanged));
            }
            self.carts
                .insert_one(doc! { "_id": buyer.clone(), "version": 1_i64, "lines": [] })
                .session(&mut *s)
                .await
                .map_err(|e| match duplicate_key(&e) {
                    Some(_) => Fail::Retry("cart created concurrently"),
                    None => Fail::Db(e),
                })?;
        } else {
            let r = self
                .carts
                .update_one(
                    doc! { "_id": buyer.clone(), "version": count(plan.cart_version) },
                    doc! { "$set": { "lines": [] }, "$inc": { "version": 1_i64 } },
                )
                .session(&mut *s)
                .await?;
            if r.matched_count == 0 {
                return Ok(Step::Abort(CheckoutOutcome::CartChanged));
            }
        }
        // 3. Every short item, or nothing.
        if !short.is_empty() {
            return Ok(Step::Abort(CheckoutOutcome::Short(short)));
        }
        // 4. Orders, payment, idempotency record, mails; the cart is already
        // empty.
        if !plan.orders.is_empty() {
            self.orders
                .insert_many(plan.orders.iter().map(order_doc))
                .session(&mut *s)
                .await?;
        }
        if let Some(payment) = &plan.payment {
            self.payments
                .insert_one(payment_doc(payment))
                .session(&mut *s)
                .await?;
        }
        self.checkouts
            .insert_one(checkout_doc(plan))
            .session(&mut *s)
            .await
            .map_err(|e| match duplicate_key(&e) {
                // A concurrent checkout with the same key won; the retry replays it.
                Some(_) => Fail::Retry("idempotency key used concurrently"),
                None => Fail::Db(e),
            })?;
        self.push_outbox(s, &plan.outbox).await?;
        Ok(Step::Commit(CheckoutOutcome::Committed))
    }
}

#[async_trait]
impl CheckoutStore for MongoStorage {
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>> {
        self.checkouts
            .find_one(doc! { "buyer_id": uuid(buyer.0), "key": key.as_str() })
            .await
            .map_err(storage_error)?
            .map(|d| checkout_from(&d))
            .transpose()
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        self.transaction(&(self, plan), |s, (store, plan)| {
            store.commit_checkout_tx(s, plan).boxed()
        })
        .await
    }
}
