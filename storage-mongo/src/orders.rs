//! Orders and their status changes as documents.
//!
//! `orders`: `{_id, checkout_id, buyer_id, seller_id, store_name, status,
//! items: [{product_id, title, unit_price, effective_price, quantity,
//! line_total}], address: {...}, total, history: [{from, to, at, by}],
//! commission: {...} | null (see [`crate::commission`]), return_until,
//! earning_released_at, created_at, updated_at}`; an order's `payment_status`
//! is not stored (core derives it from the checkout's
//! [payment](crate::payments) when it reads the order). The item and address
//! snapshots live inside the order, so later edits of products and addresses
//! never reach it, and an order is read in one document. The
//! [checkout](crate::checkout) inserts them.

use async_trait::async_trait;
use futures::FutureExt;
use marketplace_core::order::{OrderItem, OrderQuery, OrderTransition, StatusChange};
use marketplace_core::{
    CheckoutId, Order, OrderId, OrderStatus, OrderStore, ProductId, StorageResult, UserId,
};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

use crate::MongoStorage;
use crate::accounts::{address_fields, address_from_reader};
use crate::commission::{commission_doc, commission_from};
use crate::error::storage_error;
use crate::schema::ORDERS;
use crate::transaction::{Body, Step, unmatched};
use crate::values::{Reader, before, count, date, money, opt, uuid};

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
        "commission": o.commission.as_ref().map_or(Bson::Null, commission_doc),
        "return_until": opt(o.return_until, date),
        "earning_released_at": opt(o.earning_released_at, date),
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
        commission: r
            .opt_doc("commission")?
            .map(|c| commission_from(&c))
            .transpose()?,
        return_until: r.opt_date("return_until")?,
        earning_released_at: r.opt_date("earning_released_at")?,
        // Not stored: core fills it in from the checkout's payment on read.
        payment_status: None,
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
        f.insert("$or", before(k.created_at, k.id.0));
    }
    f
}

/// The order a transition applies to: still in `t.from`, and unreleased when
/// it must be.
fn transition_filter(id: &Bson, t: &OrderTransition) -> Document {
    let mut f = doc! { "_id": id.clone(), "status": t.from.as_str() };
    if t.require_unreleased {
        f.insert("earning_released_at", Bson::Null);
    }
    f
}

/// What a transition writes on the order.
fn transition_update(t: &OrderTransition) -> Document {
    let mut set = doc! { "status": t.to.as_str(), "updated_at": date(t.change.at) };
    if let Some(until) = t.return_until {
        set.insert("return_until", date(until));
    }
    doc! { "$set": set, "$push": { "history": change_doc(&t.change) } }
}

/// The transaction body of a status change (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn transition_order_tx(
        &self,
        s: &mut ClientSession,
        t: &OrderTransition,
    ) -> Body<StorageResult<Option<Order>>> {
        let id = uuid(t.order_id.0);
        let Some(d) = self
            .orders
            .find_one_and_update(transition_filter(&id, t), transition_update(t))
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
        else {
            return unmatched(&self.orders, s, id, None).await;
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
        if let Some(entry) = &t.ledger {
            self.append_entry(s, entry).await?;
        }
        self.push_outbox(s, &t.outbox).await?;
        Ok(Step::Commit(Ok(Some(order))))
    }
}

#[async_trait]
impl OrderStore for MongoStorage {
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        self.orders
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| order_from(&d))
            .transpose()
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        Self::find_all(
            &self.orders,
            doc! { "checkout_id": uuid(id.0) },
            Some(doc! { "seller_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(order_from)
        .collect()
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        Self::find_all(
            &self.orders,
            order_filter(query),
            Some(doc! { "created_at": -1, "_id": -1 }),
            Some(query.limit),
        )
        .await?
        .iter()
        .map(order_from)
        .collect()
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        self.transaction(&(self, t), |s, (store, t)| {
            store.transition_order_tx(s, t).boxed()
        })
        .await?
    }
}
