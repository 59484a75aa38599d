//! A seller's own products: listing them, creating, changing and archiving
//! them, and finding one by its SKU.

use crate::error::{Error, Result, Violations};
use crate::fields::{sku, text};
use crate::ids::ProductId;
use crate::images::{image_key, valid_image};
use crate::marketplace::Marketplace;
use crate::money::{DiscountKind, MAX_AMOUNT};
use crate::page::Page;
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role, User};

use super::{CatalogQuery, NewProduct, Product, ProductUpdate, ProductView};

impl<S: Storage> Marketplace<S> {
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
        Ok(self.product_view(&p, self.now()))
    }

    /// The seller's own product with this SKU, whatever its state but archived
    /// (an archived product gives its SKU up); `None` when the seller has none.
    /// Like [`my_product`](Self::my_product), only a seller may ask, and only
    /// of its own products: another seller's SKU is simply not found.
    pub async fn product_by_sku(&self, who: &Principal, sku: &str) -> Result<Option<ProductView>> {
        self.require(who, Role::Seller)?;
        let sku = crate::fields::sku("sku", sku)?;
        let p = self.storage().product_by_sku(who.user_id, &sku).await?;
        Ok(p.map(|p| self.product_view(&p, self.now())))
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
        Ok(self.product_view(&p, now))
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
                return Ok(self.product_view(&p, self.now()));
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
        let media = &self.inner.config.media_url;
        for image in &mut p.images {
            *image = image_key(media, image);
        }
        for (i, image) in p.images.iter().enumerate() {
            if !valid_image(image) {
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
