//! Categories, products and the public catalog query as documents.
//!
//! - `categories`: `{_id, name, name_key}`; `name_key` is the name lower-cased
//!   (Unicode, as core compares), unique, so names are unique case-insensitively.
//! - `products`: `{_id, seller_id, sku, title, description, price: {amount,
//!   currency}, discount, stock, images, category_id, active, archived, blocked,
//!   version, created_at, updated_at, seller_selling}`. `sku` is a string or
//!   `null`; a partial unique index on `(seller_id, sku)` over the products whose
//!   `sku` is a string and that are not archived keeps SKUs unique per seller.
//!
//! `seller_selling` is a denormalized copy of "the seller is an active, verified
//! seller" ([`User::is_selling`](marketplace_core::User::is_selling)). It lets the
//! public catalog filter and page on one collection with its indexes, instead of
//! a `$lookup` per candidate product. It is kept exact by transactions: a
//! seller's status or activation changes the user and every product of the seller
//! in one transaction, and a new product reads its seller *and writes to it* (a
//! `$inc` of `products_rev`) in its own transaction, so a concurrent status change
//! and a product insert conflict instead of leaving a stale flag behind.

use async_trait::async_trait;
use futures::FutureExt;
use marketplace_core::catalog::{Category, Product, ProductQuery, ProductSort};
use marketplace_core::{
    CatalogStore, CategoryId, Discount, DiscountKind, ProductId, StorageError, StorageResult,
    UserId,
};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, Regex, doc};
use mongodb::error::Error as DriverError;
use mongodb::options::ReturnDocument;

use crate::MongoStorage;
use crate::accounts;
use crate::error::storage_error;
use crate::schema::{self, CATEGORIES, PRODUCTS};
use crate::transaction::{Body, Step};
use crate::values::{Reader, count, date, money, opt, opt_str, uuid};

pub(crate) fn category_doc(c: &Category) -> Document {
    doc! { "_id": uuid(c.id.0), "name": &c.name, "name_key": c.name.to_lowercase() }
}

pub(crate) fn category_from(d: &Document) -> StorageResult<Category> {
    let r = Reader::new(CATEGORIES, d);
    Ok(Category {
        id: CategoryId(r.uuid("_id")?),
        name: r.str("name")?,
    })
}

fn discount_doc(d: &Discount) -> Bson {
    let mut out = match &d.kind {
        DiscountKind::Percentage { value } => {
            doc! { "type": "percentage", "value": i32::from(*value) }
        }
        DiscountKind::Fixed { amount } => doc! { "type": "fixed", "amount": money(*amount) },
    };
    out.insert("starts_at", opt(d.starts_at, date));
    out.insert("ends_at", opt(d.ends_at, date));
    Bson::Document(out)
}

fn discount_from(r: Reader<'_>) -> StorageResult<Discount> {
    let kind = match r.str("type")?.as_str() {
        "percentage" => DiscountKind::Percentage {
            value: u8::try_from(r.i64("value")?)
                .map_err(|_| crate::error::malformed(PRODUCTS, "discount value out of range"))?,
        },
        "fixed" => DiscountKind::Fixed {
            amount: r.money("amount")?,
        },
        other => {
            return Err(crate::error::malformed(
                PRODUCTS,
                format!("unknown discount type `{other}`"),
            ));
        }
    };
    Ok(Discount {
        kind,
        starts_at: r.opt_date("starts_at")?,
        ends_at: r.opt_date("ends_at")?,
    })
}

/// The fields of a product that an update replaces (all but the identity, the
/// listing time and the denormalized seller flag).
pub(crate) fn product_fields(p: &Product) -> Document {
    doc! {
        "sku": opt_str(p.sku.as_deref()),
        "title": &p.title,
        "description": &p.description,
        "price": money(p.price),
        "discount": opt(p.discount.as_ref(), discount_doc),
        "stock": count(p.stock),
        "images": p.images.clone(),
        "category_id": opt(p.category_id, |c| uuid(c.0)),
        "active": p.active,
        "archived": p.archived,
        "blocked": p.blocked,
        "version": count(p.version),
        "updated_at": date(p.updated_at),
    }
}

pub(crate) fn product_doc(p: &Product, seller_selling: bool) -> Document {
    let mut d = doc! {
        "_id": uuid(p.id.0),
        "seller_id": uuid(p.seller_id.0),
        "created_at": date(p.created_at),
        "seller_selling": seller_selling,
    };
    d.extend(product_fields(p));
    d
}

pub(crate) fn product_from(d: &Document) -> StorageResult<Product> {
    let r = Reader::new(PRODUCTS, d);
    Ok(Product {
        id: ProductId(r.uuid("_id")?),
        seller_id: UserId(r.uuid("seller_id")?),
        sku: r.opt_str("sku")?,
        title: r.str("title")?,
        description: r.str("description")?,
        price: r.money("price")?,
        discount: r.opt_doc("discount")?.map(discount_from).transpose()?,
        stock: r.u32("stock")?,
        images: r.strings("images")?,
        category_id: r.opt_uuid("category_id")?.map(CategoryId),
        active: r.bool("active")?,
        archived: r.bool("archived")?,
        blocked: r.bool("blocked")?,
        version: r.u64("version")?,
        created_at: r.date("created_at")?,
        updated_at: r.date("updated_at")?,
    })
}

/// The filter that selects products the checkout may still sell.
pub(crate) fn sellable() -> Document {
    doc! { "active": true, "archived": false, "blocked": false }
}

/// Escapes every regular-expression metacharacter, so the text matches literally.
pub(crate) fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filter, sort and limit of a product query (see [`ProductQuery`]).
pub(crate) fn product_query(q: &ProductQuery) -> (Document, Document) {
    let mut and: Vec<Bson> = Vec::new();
    let mut f = Document::new();
    if !q.include_archived {
        f.insert("archived", false);
    }
    if q.public_only {
        f.extend(sellable());
        f.insert("seller_selling", true);
    }
    if let Some(s) = q.seller_id {
        f.insert("seller_id", uuid(s.0));
    }
    if let Some(c) = q.category_id {
        f.insert("category_id", uuid(c.0));
    }
    let mut price = Document::new();
    if let Some(m) = q.min_price {
        price.insert("$gte", m);
    }
    if let Some(m) = q.max_price {
        price.insert("$lte", m);
    }
    if !price.is_empty() {
        f.insert("price.amount", price);
    }
    if q.in_stock {
        f.insert("stock", doc! { "$gt": 0_i64 });
    }
    if let Some(t) = &q.text {
        let re = Regex {
            pattern: escape_regex(t),
            options: "i".to_owned(),
        };
        and.push(Bson::Document(doc! { "$or": [
            { "title": Bson::RegularExpression(re.clone()) },
            { "description": Bson::RegularExpression(re) },
        ] }));
    }
    if let Some(k) = &q.after {
        let id = uuid(k.id.0);
        let after = match q.sort {
            ProductSort::Newest => doc! { "$or": [
                { "created_at": { "$lt": date(k.created_at) } },
                { "created_at": date(k.created_at), "_id": { "$lt": id } },
            ] },
            ProductSort::PriceAsc => doc! { "$or": [
                { "price.amount": { "$gt": k.price } },
                { "price.amount": k.price, "_id": { "$gt": id } },
            ] },
            ProductSort::PriceDesc => doc! { "$or": [
                { "price.amount": { "$lt": k.price } },
                { "price.amount": k.price, "_id": { "$lt": id } },
            ] },
        };
        and.push(Bson::Document(after));
    }
    if !and.is_empty() {
        f.insert("$and", and);
    }
    let sort = match q.sort {
        ProductSort::Newest => doc! { "created_at": -1, "_id": -1 },
        ProductSort::PriceAsc => doc! { "price.amount": 1, "_id": 1 },
        ProductSort::PriceDesc => doc! { "price.amount": -1, "_id": -1 },
    };
    (f, sort)
}

/// The transaction bodies of this concept's atomic steps (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn delete_category_tx(
        &self,
        s: &mut ClientSession,
        id: CategoryId,
    ) -> Body<StorageResult<bool>> {
        let used = self
            .products
            .find_one(doc! { "category_id": uuid(id.0) })
            .projection(doc! { "_id": 1 })
            .session(&mut *s)
            .await?;
        if used.is_some() {
            return Ok(Step::Abort(Err(StorageError::Precondition(
                "category in use".into(),
            ))));
        }
        let r = self
            .categories
            .delete_one(doc! { "_id": uuid(id.0) })
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(Ok(r.deleted_count > 0)))
    }

    /// Writes to a category inside a transaction, so that a concurrent
    /// `delete_category` conflicts with the product that starts using it.
    /// `false` when the category does not exist.
    pub(crate) async fn hold_category(
        &self,
        s: &mut ClientSession,
        id: CategoryId,
    ) -> Result<bool, DriverError> {
        let r = self
            .categories
            .update_one(
                doc! { "_id": uuid(id.0) },
                doc! { "$inc": { "products_rev": 1_i64 } },
            )
            .session(s)
            .await?;
        Ok(r.matched_count > 0)
    }

    pub(crate) async fn insert_product_tx(
        &self,
        s: &mut ClientSession,
        p: &Product,
    ) -> Body<StorageResult<()>> {
        if let Some(c) = p.category_id
            && !self.hold_category(s, c).await?
        {
            return Ok(Step::Abort(Err(StorageError::Precondition(
                "unknown category".into(),
            ))));
        }
        // Read the seller by writing to it: a concurrent status change then
        // conflicts with this insert instead of missing the new product.
        let seller = self
            .users
            .find_one_and_update(
                doc! { "_id": uuid(p.seller_id.0) },
                doc! { "$inc": { "products_rev": 1_i64 } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?;
        let selling = match seller {
            Some(d) => accounts::user_from(&d)?.is_selling(),
            None => false,
        };
        self.products
            .insert_one(product_doc(p, selling))
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(Ok(())))
    }

    pub(crate) async fn update_product_tx(
        &self,
        s: &mut ClientSession,
        p: &Product,
        expected_version: u64,
    ) -> Body<StorageResult<()>> {
        let Some(before) = self
            .products
            .find_one_and_update(
                doc! { "_id": uuid(p.id.0), "version": count(expected_version) },
                doc! { "$set": product_fields(p) },
            )
            .return_document(ReturnDocument::Before)
            .session(&mut *s)
            .await?
        else {
            let exists = self
                .products
                .find_one(doc! { "_id": uuid(p.id.0) })
                .projection(doc! { "_id": 1 })
                .session(&mut *s)
                .await?
                .is_some();
            return Ok(Step::Abort(Err(if exists {
                StorageError::Precondition("product version changed".into())
            } else {
                StorageError::NotFound
            })));
        };
        let old = Reader::new(schema::PRODUCTS, &before).opt_uuid("category_id")?;
        if let Some(c) = p.category_id
            && old != Some(c.0)
            && !self.hold_category(s, c).await?
        {
            return Ok(Step::Abort(Err(StorageError::Precondition(
                "unknown category".into(),
            ))));
        }
        Ok(Step::Commit(Ok(())))
    }
}

#[async_trait]
impl CatalogStore for MongoStorage {
    // ----- categories -----------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        self.categories
            .insert_one(category_doc(category))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        Self::find_all(
            &self.categories,
            doc! {},
            Some(doc! { "name": 1, "_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(category_from)
        .collect()
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        self.categories
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| category_from(&d))
            .transpose()
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let key = name.to_lowercase();
        let r = self
            .categories
            .update_one(
                doc! { "_id": uuid(id.0) },
                doc! { "$set": { "name": name, "name_key": &key } },
            )
            .await
            .map_err(storage_error)?;
        if r.matched_count > 0 {
            return Ok(true);
        }
        // As the contract orders it: a taken name is reported before a missing id.
        let taken = self
            .categories
            .find_one(doc! { "name_key": key })
            .await
            .map_err(storage_error)?;
        match taken {
            Some(_) => Err(StorageError::AlreadyExists("category name")),
            None => Ok(false),
        }
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        self.transaction(&(self, id), |s, (store, id)| {
            store.delete_category_tx(s, *id).boxed()
        })
        .await?
    }

    // ----- products -------------------------------------------------------------

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        self.transaction(&(self, product), |s, (store, product)| {
            store.insert_product_tx(s, product).boxed()
        })
        .await?
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        self.products
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| product_from(&d))
            .transpose()
    }

    async fn product_by_sku(&self, seller: UserId, sku: &str) -> StorageResult<Option<Product>> {
        self.products
            .find_one(schema::live_sku(seller, sku))
            .await
            .map_err(storage_error)?
            .map(|d| product_from(&d))
            .transpose()
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = ids.iter().map(|id| uuid(id.0)).collect();
        Self::find_all(&self.products, doc! { "_id": { "$in": ids } }, None, None)
            .await?
            .iter()
            .map(product_from)
            .collect()
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        self.transaction(
            &(self, product, expected_version),
            |s, (store, product, expected_version)| {
                store
                    .update_product_tx(s, product, *expected_version)
                    .boxed()
            },
        )
        .await?
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        let (filter, sort) = product_query(query);
        Self::find_all(&self.products, filter, Some(sort), Some(query.limit))
            .await?
            .iter()
            .map(product_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_metacharacters_are_escaped() {
        assert_eq!(escape_regex("a.b*c"), "a\\.b\\*c");
        assert_eq!(escape_regex("(x)[y]{z}"), "\\(x\\)\\[y\\]\\{z\\}");
        assert_eq!(escape_regex("50% off-cut"), "50% off-cut");
        assert_eq!(escape_regex("\\d+$"), "\\\\d\\+\\$");
    }
}
