//! Carts, wishlists and addresses as documents.
//!
//! - `carts`: one document per buyer, `{_id: buyer_id, version, lines: [{product_id,
//!   quantity, added_at}]}`; the version is the compare-and-swap token.
//! - `wishlist`: `{_id: ObjectId, buyer_id, product_id, added_at}`, unique per
//!   (buyer, product).
//! - `addresses`: `{_id, user_id, seq, name, line1, line2, city, region,
//!   postal_code, country, phone, is_default}`; `seq` is an ObjectId set when the
//!   address is first stored, so "oldest first" survives later edits.

use marketplace_core::address::Address;
use marketplace_core::cart::{Cart, CartLine};
use marketplace_core::{AddressId, ProductId, StorageResult, UserId};
use mongodb::bson::{Bson, Document, doc};

use crate::schema::{ADDRESSES, CARTS};
use crate::values::{Reader, count, date, opt_str, uuid};
use mongodb::ClientSession;
use mongodb::bson::oid::ObjectId;

use crate::MongoStorage;
use crate::transaction::{Body, Step};

pub(crate) fn cart_lines(c: &Cart) -> Bson {
    Bson::Array(
        c.lines
            .iter()
            .map(|l| {
                Bson::Document(doc! {
                    "product_id": uuid(l.product_id.0),
                    "quantity": count(l.quantity),
                    "added_at": date(l.added_at),
                })
            })
            .collect(),
    )
}

pub(crate) fn cart_from(d: &Document) -> StorageResult<Cart> {
    let r = Reader::new(CARTS, d);
    Ok(Cart {
        buyer_id: UserId(r.uuid("_id")?),
        version: r.u64("version")?,
        lines: r
            .docs("lines")?
            .into_iter()
            .map(|l| {
                Ok(CartLine {
                    product_id: ProductId(l.uuid("product_id")?),
                    quantity: l.u32("quantity")?,
                    added_at: l.date("added_at")?,
                })
            })
            .collect::<StorageResult<_>>()?,
    })
}

/// An address as embedded anywhere (its own document, or an order's snapshot).
pub(crate) fn address_fields(a: &Address) -> Document {
    doc! {
        "_id": uuid(a.id.0),
        "user_id": uuid(a.user_id.0),
        "name": &a.name,
        "line1": &a.line1,
        "line2": opt_str(a.line2.as_deref()),
        "city": &a.city,
        "region": opt_str(a.region.as_deref()),
        "postal_code": &a.postal_code,
        "country": &a.country,
        "phone": opt_str(a.phone.as_deref()),
        "is_default": a.is_default,
    }
}

pub(crate) fn address_from_reader(r: Reader<'_>) -> StorageResult<Address> {
    Ok(Address {
        id: AddressId(r.uuid("_id")?),
        user_id: UserId(r.uuid("user_id")?),
        name: r.str("name")?,
        line1: r.str("line1")?,
        line2: r.opt_str("line2")?,
        city: r.str("city")?,
        region: r.opt_str("region")?,
        postal_code: r.str("postal_code")?,
        country: r.str("country")?,
        phone: r.opt_str("phone")?,
        is_default: r.bool("is_default")?,
    })
}

pub(crate) fn address_from(d: &Document) -> StorageResult<Address> {
    address_from_reader(Reader::new(ADDRESSES, d))
}

/// The transaction bodies of this concept's atomic steps (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn save_address_tx(&self, s: &mut ClientSession, a: &Address) -> Body<()> {
        if a.is_default {
            self.addresses
                .update_many(
                    doc! { "user_id": uuid(a.user_id.0), "_id": { "$ne": uuid(a.id.0) }, "is_default": true },
                    doc! { "$set": { "is_default": false } },
                )
                .session(&mut *s)
                .await?;
        }
        let mut fields = address_fields(a);
        fields.remove("_id");
        fields.remove("user_id");
        self.addresses
            .update_one(
                doc! { "_id": uuid(a.id.0), "user_id": uuid(a.user_id.0) },
                doc! { "$set": fields, "$setOnInsert": { "seq": ObjectId::new() } },
            )
            .upsert(true)
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(()))
    }
}
