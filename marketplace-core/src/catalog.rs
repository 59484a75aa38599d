//! The catalog: categories, products, offers, and public browsing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Violations};
use crate::fields::{optional_text, sku, text};
use crate::ids::{CategoryId, ProductId, UserId};
use crate::images::thumbnail_url;
use crate::marketplace::Marketplace;
use crate::money::{Discount, DiscountKind, MAX_AMOUNT, Money, effective_price};
use crate::page::Page;
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role, User};

/// A product category.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Identifier.
    pub id: CategoryId,
    /// Unique (case-insensitively) display name.
    pub name: String,
}

/// A product as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Identifier.
    pub id: ProductId,
    /// The seller who lists it.
    pub seller_id: UserId,
    /// The seller's own stock-keeping unit: unique among the seller's products
    /// that are not archived (another seller may use the same one), so imports
    /// keyed on it find the product again.
    pub sku: Option<String>,
    /// Title (1..=200 characters).
    pub title: String,
    /// Description (up to 5000 characters).
    pub description: String,
    /// Listed unit price.
    pub price: Money,
    /// Current offer, if any.
    pub discount: Option<Discount>,
    /// Units available.
    pub stock: u32,
    /// Image URLs.
    pub images: Vec<String>,
    /// Category, if any.
    pub category_id: Option<CategoryId>,
    /// The seller's switch: an inactive product is hidden and cannot be bought.
    pub active: bool,
    /// Withdrawn for good by its seller; past orders keep their snapshots.
    pub archived: bool,
    /// Deactivated by an admin.
    pub blocked: bool,
    /// Incremented by every write, for compare-and-swap updates.
    pub version: u64,
    /// When it was listed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// Whether the product itself may be sold (its seller is checked separately).
    pub fn is_sellable(&self) -> bool {
        self.active && !self.archived && !self.blocked
    }
}

/// A product as clients see it, priced at the moment it was read.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProductView {
    /// Identifier.
    pub id: ProductId,
    /// The seller.
    pub seller_id: UserId,
    /// The seller's own stock-keeping unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Listed unit price.
    pub price: Money,
    /// What one unit costs now, offers applied.
    pub effective_price: Money,
    /// The offer, if any (shown even outside its window, with the window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<Discount>,
    /// Units available.
    pub stock: u32,
    /// Image URLs (uploads at their large size, at most 1600 pixels a side).
    pub images: Vec<String>,
    /// One thumbnail URL per image, in the same order (at most 320 pixels a side;
    /// an image given as an outside URL is its own thumbnail).
    pub thumbnails: Vec<String>,
    /// Category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<CategoryId>,
    /// The seller's switch.
    pub active: bool,
    /// Withdrawn by the seller.
    pub archived: bool,
    /// When it was listed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl ProductView {
    /// Prices `p` at `now`.
    pub fn of(p: &Product, now: DateTime<Utc>) -> ProductView {
        ProductView {
            id: p.id,
            seller_id: p.seller_id,
            sku: p.sku.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            price: p.price,
            effective_price: effective_price(p.price, p.discount.as_ref(), now),
            discount: p.discount.clone(),
            stock: p.stock,
            images: p.images.clone(),
            thumbnails: p.images.iter().map(|u| thumbnail_url(u)).collect(),
            category_id: p.category_id,
            active: p.active,
            archived: p.archived,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Orders a product list can be sorted in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Most recently listed first.
    #[default]
    Newest,
    /// Cheapest listed price first.
    PriceAsc,
    /// Dearest listed price first.
    PriceDesc,
}

/// The sort key of the last product of a page; the next page starts after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductKey {
    /// Listing time (used by `Newest`).
    pub created_at: DateTime<Utc>,
    /// Listed price amount (used by the price sorts).
    pub price: i64,
    /// Tie-breaker in every sort (descending for `Newest` and `PriceDesc`).
    pub id: ProductId,
}

/// A product query as storage executes it.
///
/// Filters combine with AND. Price filters and price sorts use the listed price
/// (`price.amount`), which storage can index; offers are applied when the page is
/// shown. Text matches case-insensitively as a substring of title or description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductQuery {
    /// Only products the public may see: sellable, of an active verified seller.
    pub public_only: bool,
    /// Include archived products (never with `public_only`).
    pub include_archived: bool,
    /// Only this seller's products.
    pub seller_id: Option<UserId>,
    /// Only this category.
    pub category_id: Option<CategoryId>,
    /// Listed price at least this (minor units).
    pub min_price: Option<i64>,
    /// Listed price at most this (minor units).
    pub max_price: Option<i64>,
    /// Only products with stock above zero.
    pub in_stock: bool,
    /// Substring of title or description, already trimmed and non-empty.
    pub text: Option<String>,
    /// Order of the results.
    pub sort: ProductSort,
    /// Start after this key.
    pub after: Option<ProductKey>,
    /// Maximum number of results.
    pub limit: u32,
}

impl ProductQuery {
    /// Whether `p` (listed by `seller`) matches every filter except `public_only`
    /// and the cursor: the reference semantics storage implements.
    pub fn matches(&self, p: &Product) -> bool {
        (self.include_archived || !p.archived)
            && self.seller_id.is_none_or(|s| p.seller_id == s)
            && self.category_id.is_none_or(|c| p.category_id == Some(c))
            && self.min_price.is_none_or(|m| p.price.amount >= m)
            && self.max_price.is_none_or(|m| p.price.amount <= m)
            && (!self.in_stock || p.stock > 0)
            && self.text.as_deref().is_none_or(|t| {
                let t = t.to_lowercase();
                p.title.to_lowercase().contains(&t) || p.description.to_lowercase().contains(&t)
            })
    }

    /// Whether `p` comes strictly after `key` in this query's order.
    pub fn is_after(&self, p: &Product, key: &ProductKey) -> bool {
        match self.sort {
            ProductSort::Newest => (p.created_at, p.id) < (key.created_at, key.id),
            ProductSort::PriceAsc => (p.price.amount, p.id) > (key.price, key.id),
            ProductSort::PriceDesc => (p.price.amount, p.id) < (key.price, key.id),
        }
    }

    /// Sorts products in this query's order.
    pub fn sort_products(&self, products: &mut [Product]) {
        match self.sort {
            ProductSort::Newest => {
                products.sort_by_key(|p| std::cmp::Reverse((p.created_at, p.id)))
            }
            ProductSort::PriceAsc => products.sort_by_key(|a| (a.price.amount, a.id)),
            ProductSort::PriceDesc => {
                products.sort_by_key(|p| std::cmp::Reverse((p.price.amount, p.id)))
            }
        }
    }
}

/// A catalog search as a client sends it (`GET /products?...`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CatalogQuery {
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Text to find in title or description.
    pub q: Option<String>,
    /// Only this seller.
    pub seller_id: Option<UserId>,
    /// Only this category.
    pub category: Option<CategoryId>,
    /// Listed price at least (minor units).
    pub min_price: Option<i64>,
    /// Listed price at most (minor units).
    pub max_price: Option<i64>,
    /// Only products in stock.
    pub in_stock: Option<bool>,
    /// `newest` (default), `price_asc` or `price_desc`.
    pub sort: Option<ProductSort>,
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    s: ProductSort,
    t: i64,
    p: i64,
    i: ProductId,
}

fn encode_cursor(sort: ProductSort, p: &ProductView) -> String {
    let data = CursorData {
        s: sort,
        t: p.created_at.timestamp_millis(),
        p: p.price.amount,
        i: p.id,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&data).unwrap_or_default())
}

fn decode_cursor(sort: ProductSort, cursor: &str) -> Result<ProductKey> {
    let bad = || Error::invalid("cursor", "invalid", "is not a cursor of this list");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if data.s != sort {
        return Err(bad());
    }
    Ok(ProductKey {
        created_at: DateTime::from_timestamp_millis(data.t).ok_or_else(bad)?,
        price: data.p,
        id: data.i,
    })
}

/// A new product as a seller sends it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// The seller's own stock-keeping unit (1..=64 printable characters),
    /// unique among the seller's products that are not archived.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub sku: Option<String>,
    /// Title (1..=200).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub title: String,
    /// Description (..=5000).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 5000))]
    pub description: String,
    /// Unit price, in the marketplace currency.
    pub price: Money,
    /// Units available.
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000_000))]
    pub stock: u32,
    /// Category.
    #[serde(default)]
    pub category_id: Option<CategoryId>,
    /// Image URLs (http or https).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub images: Vec<String>,
    /// Offer.
    #[serde(default)]
    pub discount: Option<Discount>,
    /// Listed right away (default true).
    #[serde(default)]
    pub active: Option<bool>,
}

/// Changes to a product: absent fields stay, `null` clears an optional one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdate {
    /// New SKU; `null` removes it.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub sku: Option<Option<String>>,
    /// New title.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub title: Option<String>,
    /// New description.
    #[cfg_attr(feature = "openapi", schema(max_length = 5000))]
    pub description: Option<String>,
    /// New price.
    pub price: Option<Money>,
    /// New stock level.
    #[cfg_attr(feature = "openapi", schema(maximum = 1_000_000_000))]
    pub stock: Option<u32>,
    /// New category; `null` removes it.
    #[serde(default, deserialize_with = "crate::patch::some")]
    pub category_id: Option<Option<CategoryId>>,
    /// New image URLs (replaces the list).
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub images: Option<Vec<String>>,
    /// New offer; `null` removes it.
    #[serde(default, deserialize_with = "crate::patch::some")]
    pub discount: Option<Option<Discount>>,
    /// Listed or hidden.
    pub active: Option<bool>,
}

impl<S: Storage> Marketplace<S> {
    // ----- categories ---------------------------------------------------------------

    /// Every category, by name.
    pub async fn categories(&self) -> Result<Vec<Category>> {
        Ok(self.storage().categories().await?)
    }

    /// An admin creates a category.
    pub async fn create_category(&self, who: &Principal, name: &str) -> Result<Category> {
        self.require(who, Role::Admin)?;
        let name = text("name", name, 1, 80, false).map_err(|e| Error::Validation(vec![e]))?;
        let category = Category {
            id: CategoryId(self.new_id()),
            name,
        };
        match self.storage().insert_category(&category).await {
            Err(StorageError::AlreadyExists(_)) => Err(category_taken()),
            other => other.map(|()| category).map_err(Error::from),
        }
    }

    /// An admin renames a category.
    pub async fn rename_category(
        &self,
        who: &Principal,
        id: CategoryId,
        name: &str,
    ) -> Result<Category> {
        self.require(who, Role::Admin)?;
        let name = text("name", name, 1, 80, false).map_err(|e| Error::Validation(vec![e]))?;
        match self.storage().rename_category(id, &name).await {
            Ok(true) => Ok(Category { id, name }),
            Ok(false) => Err(Error::NotFound("category")),
            Err(StorageError::AlreadyExists(_)) => Err(category_taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// An admin deletes a category no product uses.
    pub async fn delete_category(&self, who: &Principal, id: CategoryId) -> Result<()> {
        self.require(who, Role::Admin)?;
        match self.storage().delete_category(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound("category")),
            Err(StorageError::Precondition(_)) => Err(Error::conflict(
                "category_in_use",
                "products still use this category",
            )),
            Err(e) => Err(e.into()),
        }
    }

    // ----- public browsing ----------------------------------------------------------

    /// Public catalog: sellable products of verified sellers, filtered, sorted and
    /// paged by cursor.
    pub async fn browse(&self, query: CatalogQuery) -> Result<Page<ProductView>> {
        let q = self.product_query(query, true)?;
        self.run_product_query(q).await
    }

    /// One product as the public sees it; `NotFound` unless it is listed.
    pub async fn product(&self, id: ProductId) -> Result<ProductView> {
        let p = self
            .storage()
            .product(id)
            .await?
            .ok_or(Error::NotFound("product"))?;
        if !p.is_sellable() || !self.seller_is_selling(p.seller_id).await? {
            return Err(Error::NotFound("product"));
        }
        Ok(ProductView::of(&p, self.now()))
    }

    pub(crate) async fn seller_is_selling(&self, seller: UserId) -> Result<bool> {
        Ok(self
            .storage()
            .user(seller)
            .await?
            .is_some_and(|u| u.is_selling()))
    }

    fn product_query(&self, query: CatalogQuery, public_only: bool) -> Result<ProductQuery> {
        let mut v = Violations::default();
        let sort = query.sort.unwrap_or_default();
        let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => match decode_cursor(sort, c) {
                Ok(k) => Some(k),
                Err(_) => {
                    v.add("cursor", "invalid", "is not a cursor of this list");
                    None
                }
            },
            None => None,
        };
        for (field, value) in [
            ("min_price", query.min_price),
            ("max_price", query.max_price),
        ] {
            if value.is_some_and(|p| !(0..=MAX_AMOUNT).contains(&p)) {
                v.add(
                    field,
                    "out_of_range",
                    format!("must be between 0 and {MAX_AMOUNT}"),
                );
            }
        }
        // The same rule as every stored text: no control characters (a NUL, which
        // PostgreSQL refuses in text, among them), at most 200 characters.
        let text = query
            .q
            .as_deref()
            .and_then(|q| v.check(optional_text("q", Some(q), 200)))
            .flatten();
        v.finish()?;
        Ok(ProductQuery {
            public_only,
            include_archived: false,
            seller_id: query.seller_id,
            category_id: query.category,
            min_price: query.min_price,
            max_price: query.max_price,
            in_stock: query.in_stock.unwrap_or(false),
            text,
            sort,
            after,
            limit: self.page_size(query.limit),
        })
    }

    async fn run_product_query(&self, mut q: ProductQuery) -> Result<Page<ProductView>> {
        let limit = q.limit;
        q.limit = limit + 1;
        let rows = self.storage().list_products(&q).await?;
        let now = self.now();
        let sort = q.sort;
        Ok(Page::from_overfetch(rows, limit, |_| String::new())
            .map(|p| ProductView::of(&p, now))
            .with_cursor(|last| encode_cursor(sort, last)))
    }

    // ----- seller's own products ------------------------------------------------------

    /// Refuses callers that are not verified, active sellers.
    async fn selling_account(&self, who: &Principal) -> Result<User> {
        self.require(who, Role::Seller)?;
        let user = self.account(who).await?;
        if !user.is_selling() {
            return Err(Error::Forbidden("the seller account is not verified yet"));
        }
        Ok(user)
    }

    /// The seller's own products (listed, hidden and, when asked, archived).
    pub async fn my_products(
        &self,
        who: &Principal,
        query: CatalogQuery,
        include_archived: bool,
    ) -> Result<Page<ProductView>> {
        self.require(who, Role::Seller)?;
        let mut q = self.product_query(query, false)?;
        q.seller_id = Some(who.user_id);
        q.include_archived = include_archived;
        self.run_product_query(q).await
    }

    /// One of the seller's own products, whatever its state.
    pub async fn my_product(&self, who: &Principal, id: ProductId) -> Result<ProductView> {
        let p = self.editable_product(who, id).await?;
        Ok(ProductView::of(&p, self.now()))
    }

    /// The seller's own product with this SKU, whatever its state but archived
    /// (an archived product gives its SKU up); `None` when the seller has none.
    /// Like [`my_product`](Self::my_product), only a seller may ask, and only
    /// of its own products: another seller's SKU is simply not found.
    pub async fn product_by_sku(&self, who: &Principal, sku: &str) -> Result<Option<ProductView>> {
        self.require(who, Role::Seller)?;
        let sku = crate::fields::sku("sku", sku)?;
        let p = self.storage().product_by_sku(who.user_id, &sku).await?;
        Ok(p.map(|p| ProductView::of(&p, self.now())))
    }

    /// A verified seller lists a new product.
    pub async fn create_product(&self, who: &Principal, input: NewProduct) -> Result<ProductView> {
        self.selling_account(who).await?;
        let now = self.now();
        let mut p = Product {
            id: ProductId(self.new_id()),
            seller_id: who.user_id,
            sku: input.sku,
            title: input.title,
            description: input.description,
            price: input.price,
            discount: input.discount,
            stock: input.stock,
            images: input.images,
            category_id: input.category_id,
            active: input.active.unwrap_or(true),
            archived: false,
            blocked: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.validate_product(&mut p).await?;
        match self.storage().insert_product(&p).await {
            Err(StorageError::AlreadyExists("sku")) => Err(sku_taken()),
            other => other.map_err(Error::from),
        }?;
        Ok(ProductView::of(&p, now))
    }

    /// The product's owner (or an admin) changes it. Concurrent changes and
    /// checkouts are never overwritten: the edit is re-applied to the latest
    /// version.
    pub async fn update_product(
        &self,
        who: &Principal,
        id: ProductId,
        update: ProductUpdate,
    ) -> Result<ProductView> {
        if who.role != Role::Admin {
            self.selling_account(who).await?;
        }
        loop {
            let current = self.editable_product(who, id).await?;
            if current.archived {
                return Err(Error::conflict(
                    "product_archived",
                    "an archived product cannot be changed",
                ));
            }
            let mut p = current.clone();
            if let Some(v) = &update.sku {
                p.sku.clone_from(v);
            }
            if let Some(v) = &update.title {
                p.title.clone_from(v);
            }
            if let Some(v) = &update.description {
                p.description.clone_from(v);
            }
            if let Some(v) = update.price {
                p.price = v;
            }
            if let Some(v) = update.stock {
                p.stock = v;
            }
            if let Some(v) = update.category_id {
                p.category_id = v;
            }
            if let Some(v) = &update.images {
                p.images.clone_from(v);
            }
            if let Some(v) = &update.discount {
                p.discount.clone_from(v);
            }
            if let Some(v) = update.active {
                p.active = v;
            }
            // Only a changed category needs to be looked up again.
            let category_changed = p.category_id != current.category_id;
            self.validate_fields(&mut p, category_changed).await?;
            if let Some(p) = self.save_product(p, current.version).await? {
                return Ok(ProductView::of(&p, self.now()));
            }
        }
    }

    /// The seller archives a product: it leaves the catalog and carts flag it, while
    /// past orders keep their snapshots.
    pub async fn archive_product(&self, who: &Principal, id: ProductId) -> Result<()> {
        loop {
            let current = self.editable_product(who, id).await?;
            if current.archived {
                return Ok(());
            }
            let mut p = current.clone();
            p.archived = true;
            if self.save_product(p, current.version).await?.is_some() {
                return Ok(());
            }
        }
    }

    /// An admin deactivates (or reactivates) any product.
    pub async fn set_product_blocked(
        &self,
        who: &Principal,
        id: ProductId,
        blocked: bool,
    ) -> Result<()> {
        self.require(who, Role::Admin)?;
        loop {
            let current = self
                .storage()
                .product(id)
                .await?
                .ok_or(Error::NotFound("product"))?;
            let mut p = current.clone();
            p.blocked = blocked;
            if self.save_product(p, current.version).await?.is_some() {
                return Ok(());
            }
        }
    }

    /// Writes `p` over `expected_version`; `None` when another write came first
    /// (the caller re-reads and re-applies).
    pub(crate) async fn save_product(
        &self,
        mut p: Product,
        expected_version: u64,
    ) -> Result<Option<Product>> {
        p.version = expected_version + 1;
        p.updated_at = self.now();
        match self.storage().update_product(&p, expected_version).await {
            Ok(()) => Ok(Some(p)),
            Err(StorageError::Precondition(_)) => Ok(None),
            Err(StorageError::NotFound) => Err(Error::NotFound("product")),
            Err(StorageError::AlreadyExists("sku")) => Err(sku_taken()),
            Err(e) => Err(e.into()),
        }
    }

    /// A product the caller may change: its seller's, or any for an admin.
    pub(crate) async fn editable_product(&self, who: &Principal, id: ProductId) -> Result<Product> {
        let p = self
            .storage()
            .product(id)
            .await?
            .ok_or(Error::NotFound("product"))?;
        match who.role {
            Role::Admin => Ok(p),
            Role::Seller if p.seller_id == who.user_id => Ok(p),
            Role::Seller => Err(Error::NotFound("product")),
            Role::Buyer => Err(Error::Forbidden("only sellers may do this")),
        }
    }

    async fn validate_product(&self, p: &mut Product) -> Result<()> {
        self.validate_fields(p, p.category_id.is_some()).await
    }

    async fn validate_fields(&self, p: &mut Product, check_category: bool) -> Result<()> {
        let limits = &self.inner.config.limits;
        let currency = self.inner.config.currency;
        let mut v = Violations::default();
        if let Some(raw) = &p.sku {
            p.sku = v.check(sku("sku", raw));
        }
        if let Some(t) = v.check(text("title", &p.title, 1, 200, false)) {
            p.title = t;
        }
        if let Some(d) = v.check(text("description", &p.description, 0, 5000, true)) {
            p.description = d;
        }
        if p.price.currency != currency {
            v.add(
                "price.currency",
                "invalid",
                format!("prices are in {currency}"),
            );
        }
        if !(0..=MAX_AMOUNT).contains(&p.price.amount) {
            v.add(
                "price.amount",
                "out_of_range",
                format!("must be between 0 and {MAX_AMOUNT}"),
            );
        }
        if p.stock > limits.max_stock {
            v.add(
                "stock",
                "out_of_range",
                format!("must be at most {}", limits.max_stock),
            );
        }
        if p.images.len() > limits.max_images {
            v.add(
                "images",
                "too_many",
                format!("at most {} images", limits.max_images),
            );
        }
        for (i, url) in p.images.iter().enumerate() {
            let ok = url.len() <= 2048
                && (url.starts_with("https://") || url.starts_with("http://"))
                && !url.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                v.add(&format!("images[{i}]"), "invalid", "must be an http(s) URL");
            }
        }
        if let Some(d) = &p.discount {
            match &d.kind {
                DiscountKind::Percentage { value } if !(1..=100).contains(value) => {
                    v.add(
                        "discount.value",
                        "out_of_range",
                        "must be between 1 and 100",
                    );
                }
                DiscountKind::Fixed { amount } if amount.currency != currency => {
                    v.add(
                        "discount.amount.currency",
                        "invalid",
                        format!("discounts are in {currency}"),
                    );
                }
                DiscountKind::Fixed { amount } if !(1..=MAX_AMOUNT).contains(&amount.amount) => {
                    v.add(
                        "discount.amount.amount",
                        "out_of_range",
                        format!("must be between 1 and {MAX_AMOUNT}"),
                    );
                }
                _ => {}
            }
            if let (Some(s), Some(e)) = (d.starts_at, d.ends_at)
                && s >= e
            {
                v.add("discount.ends_at", "invalid", "must be after starts_at");
            }
        }
        if check_category
            && let Some(c) = p.category_id
            && self.storage().category(c).await?.is_none()
        {
            v.add("category_id", "unknown", "no such category");
        }
        v.finish()
    }
}

fn sku_taken() -> Error {
    Error::conflict(
        "sku_taken",
        "another of the seller's products already has this SKU",
    )
}

fn category_taken() -> Error {
    Error::conflict(
        "category_exists",
        "a category with this name already exists",
    )
}

impl<T> Page<T> {
    /// Recomputes the cursor from the last item, when there is a next page.
    pub(crate) fn with_cursor(mut self, cursor: impl Fn(&T) -> String) -> Page<T> {
        if self.next_cursor.is_some() {
            self.next_cursor = self.items.last().map(cursor);
        }
        self
    }
}
