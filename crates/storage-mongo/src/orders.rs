//! Orders and checkout records as documents.
//!
//! - `orders`: `{_id, checkout_id, buyer_id, seller_id, store_name, status,
//!   items: [{product_id, title, unit_price, effective_price, quantity,
//!   line_total}], address: {...}, total, history: [{from, to, at, by}],
//!   created_at, updated_at}`. The item and address snapshots live inside the
//!   order, so later edits of products and addresses never reach it, and an
//!   order is read in one document.
//! - `checkouts` (idempotency records): `{_id: checkout_id, buyer_id, key,
//!   request_hash, created_at}`, unique per (buyer, key).

use marketplace_core::checkout::{CheckoutPlan, CheckoutRecord};
use marketplace_core::order::{OrderItem, OrderQuery, StatusChange};
use marketplace_core::{CheckoutId, Order, OrderId, OrderStatus, ProductId, StorageResult, UserId};
use mongodb::bson::{Bson, Document, doc};

use crate::schema::{CHECKOUTS, ORDERS};
use crate::shopping::{address_fields, address_from_reader};
use crate::values::{Reader, count, date, money, opt, uuid};
use marketplace_core::catalog::Product;
use marketplace_core::checkout::CheckoutOutcome;
use marketplace_core::order::OrderTransition;
use marketplace_core::{ShortItem, StorageError};
use mongodb::ClientSession;
use mongodb::options::ReturnDocument;

use crate::error::duplicate_key;
use crate::transaction::{Body, Fail, Step};
use crate::{MongoStorage, catalog};

pub(crate) fn change_doc(c: &StatusChange) -> Bson {
    Bson::Document(doc! {
        "from": opt(c.from, |s| Bson::String(s.as_str().to_owned())),
        "to": c.to.as_str(),
        "at": date(c.at),
        "by": uuid(c.by.0),
    })
}

pub(crate) fn order_doc(o: &Order) -> Document {
    let items: Vec<Bson> = o
        .items
        .iter()
        .map(|i| {
            Bson::Document(doc! {
                "product_id": uuid(i.product_id.0),
                "title": &i.title,
                "unit_price": money(i.unit_price),
                "effective_price": money(i.effective_price),
                "quantity": count(i.quantity),
                "line_total": money(i.line_total),
            })
        })
        .collect();
    doc! {
        "_id": uuid(o.id.0),
        "checkout_id": uuid(o.checkout_id.0),
        "buyer_id": uuid(o.buyer_id.0),
        "seller_id": uuid(o.seller_id.0),
        "store_name": &o.store_name,
        "status": o.status.as_str(),
        "items": items,
        "address": address_fields(&o.address),
        "total": money(o.total),
        "history": o.history.iter().map(change_doc).collect::<Vec<_>>(),
        "created_at": date(o.created_at),
        "updated_at": date(o.updated_at),
    }
}

pub(crate) fn order_from(d: &Document) -> StorageResult<Order> {
    let r = Reader::new(ORDERS, d);
    Ok(Order {
        id: OrderId(r.uuid("_id")?),
        checkout_id: CheckoutId(r.uuid("checkout_id")?),
        buyer_id: UserId(r.uuid("buyer_id")?),
        seller_id: UserId(r.uuid("seller_id")?),
        store_name: r.str("store_name")?,
        status: r.parsed("status", OrderStatus::parse)?,
        items: r
            .docs("items")?
            .into_iter()
            .map(|i| {
                Ok(OrderItem {
                    product_id: ProductId(i.uuid("product_id")?),
                    title: i.str("title")?,
                    unit_price: i.money("unit_price")?,
                    effective_price: i.money("effective_price")?,
                    quantity: i.u32("quantity")?,
                    line_total: i.money("line_total")?,
                })
            })
            .collect::<StorageResult<_>>()?,
        address: address_from_reader(r.doc("address")?)?,
        total: r.money("total")?,
        history: r
            .docs("history")?
            .into_iter()
            .map(|h| {
                Ok(StatusChange {
                    from: h.opt_parsed("from", OrderStatus::parse)?,
                    to: h.parsed("to", OrderStatus::parse)?,
                    at: h.date("at")?,
                    by: UserId(h.uuid("by")?),
                })
            })
            .collect::<StorageResult<_>>()?,
        created_at: r.date("created_at")?,
        updated_at: r.date("updated_at")?,
    })
}

pub(crate) fn checkout_doc(plan: &CheckoutPlan) -> Document {
    doc! {
        "_id": uuid(plan.checkout_id.0),
        "buyer_id": uuid(plan.buyer_id.0),
        "key": &plan.idempotency_key,
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

/// The filter of an order listing (newest first, after the cursor).
pub(crate) fn order_filter(q: &OrderQuery) -> Document {
    let mut f = Document::new();
    if let Some(b) = q.buyer_id {
        f.insert("buyer_id", uuid(b.0));
    }
    if let Some(s) = q.seller_id {
        f.insert("seller_id", uuid(s.0));
    }
    if let Some(s) = q.status {
        f.insert("status", s.as_str());
    }
    if let Some(k) = q.after {
        f.insert(
            "$or",
            vec![
                Bson::Document(doc! { "created_at": { "$lt": date(k.created_at) } }),
                Bson::Document(
                    doc! { "created_at": date(k.created_at), "_id": { "$lt": uuid(k.id.0) } },
                ),
            ],
        );
    }
    f
}

/// The transaction bodies of this concept's atomic steps (see [`crate::transaction`]).
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
            .find_one(doc! { "buyer_id": buyer.clone(), "key": &plan.idempotency_key })
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
        // 4. Orders, idempotency record, mails; the cart is already empty.
        if !plan.orders.is_empty() {
            self.orders
                .insert_many(plan.orders.iter().map(order_doc))
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

    pub(crate) async fn transition_order_tx(
        &self,
        s: &mut ClientSession,
        t: &OrderTransition,
    ) -> Body<StorageResult<Option<Order>>> {
        let id = uuid(t.order_id.0);
        let Some(d) = self
            .orders
            .find_one_and_update(
                doc! { "_id": id.clone(), "status": t.from.as_str() },
                doc! {
                    "$set": { "status": t.to.as_str(), "updated_at": date(t.change.at) },
                    "$push": { "history": change_doc(&t.change) },
                },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
        else {
            let exists = self
                .orders
                .find_one(doc! { "_id": id })
                .projection(doc! { "_id": 1 })
                .session(&mut *s)
                .await?
                .is_some();
            return Ok(Step::Abort(if exists {
                Ok(None)
            } else {
                Err(StorageError::NotFound)
            }));
        };
        let order = order_from(&d)?;
        for (product, units) in &t.restock {
            self.products
                .update_one(
                    doc! { "_id": uuid(product.0) },
                    doc! { "$inc": { "stock": i64::from(*units), "version": 1_i64 } },
                )
                .session(&mut *s)
                .await?;
        }
        self.push_outbox(s, &t.outbox).await?;
        Ok(Step::Commit(Ok(Some(order))))
    }
}
