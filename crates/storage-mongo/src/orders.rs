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
