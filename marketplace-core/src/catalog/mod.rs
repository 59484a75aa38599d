//! The catalog: categories, products, offers, and public browsing.
//!
//! - this module: the catalog's types (categories, products as stored and as
//!   clients see them, the inputs that create and change them) and the
//!   admin's categories;
//! - `browse`: public browsing, its filters, sort orders and cursors;
//! - `products`: a seller's own products: listing, changing, archiving,
//!   finding one by its SKU.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fields::text;
use crate::ids::{CategoryId, ProductId, UserId};
use crate::images::{image_url, thumbnail_url};
use crate::marketplace::Marketplace;
use crate::money::{Discount, Money, effective_price};
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role};

mod browse;
mod products;

pub use browse::{CatalogQuery, ProductKey, ProductQuery, ProductSort};

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
    /// Prices `p` at `now`, its stored images served from `media_base`.
    pub fn of(p: &Product, now: DateTime<Utc>, media_base: &str) -> ProductView {
        let images: Vec<String> = p.images.iter().map(|i| image_url(media_base, i)).collect();
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
            thumbnails: images.iter().map(|u| thumbnail_url(u)).collect(),
            images,
            category_id: p.category_id,
            active: p.active,
            archived: p.archived,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
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
    /// `p` as clients see it now.
    pub(crate) fn product_view(&self, p: &Product, now: DateTime<Utc>) -> ProductView {
        ProductView::of(p, now, &self.inner.config.media_url)
    }

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
}

fn category_taken() -> Error {
    Error::conflict(
        "category_exists",
        "a category with this name already exists",
    )
}
