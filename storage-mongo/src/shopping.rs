//! The buyer's cart and wishlist as documents.
//!
//! - `carts`: one document per buyer, `{_id: buyer_id, version, lines: [{product_id,
//!   quantity, added_at}]}`; the version is the compare-and-swap token. Each
//!   step writes one document, so none needs a transaction.
//! - `wishlist`: `{_id: ObjectId, buyer_id, product_id, added_at}`, unique per
//!   (buyer, product).

use std::future::IntoFuture;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::cart::{Cart, CartLine, WishlistEntry};
use marketplace_core::{ProductId, ShoppingStore, StorageError, StorageResult, UserId};
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStorage;
use crate::error::{duplicate_key, storage_error};
use crate::schema::{self, CARTS};
use crate::values::{Reader, count, date, uuid};

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

#[async_trait]
impl ShoppingStore for MongoStorage {
    // ----- cart -----------------------------------------------------------------

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        match self
            .carts
            .find_one(doc! { "_id": uuid(buyer.0) })
            .await
            .map_err(storage_error)?
        {
            Some(d) => cart_from(&d),
            None => Ok(Cart {
                buyer_id: buyer,
                version: 0,
                lines: Vec::new(),
            }),
        }
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let changed = || StorageError::Precondition("cart version changed".into());
        let buyer = uuid(cart.buyer_id.0);
        let lines = cart_lines(cart);
        if expected_version == 0 {
            // Never saved: the first save creates the document; a concurrent
            // first save makes this one hit the unique _id.
            let first = doc! { "_id": buyer, "version": count(cart.version), "lines": lines };
            return match self
                .single(|| self.carts.insert_one(first.clone()).into_future())
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if duplicate_key(&e).is_some() => Err(changed()),
                Err(e) => Err(storage_error(e)),
            };
        }
        let filter = doc! { "_id": buyer, "version": count(expected_version) };
        let update = doc! { "$set": { "version": count(cart.version), "lines": lines } };
        let r = self
            .single(|| {
                self.carts
                    .update_one(filter.clone(), update.clone())
                    .into_future()
            })
            .await
            .map_err(storage_error)?;
        if r.matched_count == 0 {
            return Err(changed());
        }
        Ok(())
    }

    // ----- wishlist -------------------------------------------------------------

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let entry = doc! {
            "buyer_id": uuid(buyer.0),
            "product_id": uuid(product.0),
            "added_at": date(at),
        };
        match self.wishlist.insert_one(entry).await {
            Ok(_) => Ok(true),
            Err(e) if duplicate_key(&e).is_some() => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        self.wishlist
            .delete_one(doc! { "buyer_id": uuid(buyer.0), "product_id": uuid(product.0) })
            .await
            .map(|r| r.deleted_count > 0)
            .map_err(storage_error)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        Self::find_all(
            &self.wishlist,
            doc! { "buyer_id": uuid(buyer.0) },
            Some(doc! { "added_at": -1, "_id": -1 }),
            None,
        )
        .await?
        .iter()
        .map(|d| {
            let r = Reader::new(schema::WISHLIST, d);
            Ok(WishlistEntry {
                product_id: ProductId(r.uuid("product_id")?),
                added_at: r.date("added_at")?,
            })
        })
        .collect()
    }
}
