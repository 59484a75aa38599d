//! The buyer's cart (grouped by seller, priced live) and wishlist.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::{Product, ProductView};
use crate::error::{Error, Result, ShortItem};
use crate::ids::{ProductId, UserId};
use crate::marketplace::Marketplace;
use crate::money::{Money, effective_price};
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role, User};

/// One product in a cart, as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// Units wanted.
    pub quantity: u32,
    /// When the product was first added.
    pub added_at: DateTime<Utc>,
}

/// A buyer's cart as stored: the lines and a version for compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cart {
    /// Whose cart.
    pub buyer_id: UserId,
    /// Incremented by every change (0: never saved).
    pub version: u64,
    /// Lines in the order products were added.
    pub lines: Vec<CartLine>,
}

/// Why a cart line cannot be checked out as it stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineProblem {
    /// The product was archived, hidden, blocked, or its seller stopped selling.
    Unavailable,
    /// Fewer units are in stock than the line asks for.
    InsufficientStock,
}

/// A cart line priced now.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CartLineView {
    /// The product.
    pub product_id: ProductId,
    /// Its current title.
    pub title: String,
    /// Units wanted.
    pub quantity: u32,
    /// Listed unit price.
    pub unit_price: Money,
    /// Unit price with offers applied.
    pub effective_price: Money,
    /// `effective_price x quantity` for a line that can be checked out; zero for a
    /// flagged line (`available: false`), which the subtotal and total leave out
    /// and a checkout would refuse.
    pub line_total: Money,
    /// Units in stock now.
    pub stock: u32,
    /// Whether the line can be checked out as it stands.
    pub available: bool,
    /// What is wrong with it, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<LineProblem>,
}

/// The lines of one seller.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SellerGroup {
    /// The seller.
    pub seller_id: UserId,
    /// The seller's store name.
    pub store_name: String,
    /// The lines.
    pub items: Vec<CartLineView>,
    /// Sum of the available lines.
    pub subtotal: Money,
}

/// A cart as the buyer sees it: grouped per seller with subtotals and total.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CartView {
    /// One group per seller, ordered by seller id.
    pub sellers: Vec<SellerGroup>,
    /// Units across available lines.
    pub item_count: u64,
    /// Sum of the subtotals.
    pub total: Money,
    /// Whether any line is flagged.
    pub has_problems: bool,
}

/// A product in a wishlist, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WishlistEntry {
    /// The product.
    pub product_id: ProductId,
    /// When it was added.
    pub added_at: DateTime<Utc>,
}

/// A wishlist entry with the product as it is now (absent when no longer listed).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WishlistItem {
    /// The product.
    pub product_id: ProductId,
    /// When it was added.
    pub added_at: DateTime<Utc>,
    /// The product, when it is still listed.
    pub product: Option<ProductView>,
}

/// The products of `lines` and their sellers, loaded in two queries.
pub(crate) struct Listing {
    pub(crate) products: HashMap<ProductId, Product>,
    pub(crate) sellers: HashMap<UserId, User>,
}

impl Listing {
    /// Whether a product exists, is sellable, and its seller sells.
    pub(crate) fn sellable(&self, id: ProductId) -> Option<&Product> {
        self.products.get(&id).filter(|p| {
            p.is_sellable() && self.sellers.get(&p.seller_id).is_some_and(User::is_selling)
        })
    }
}

/// The error for a request body naming a product that is not listed.
fn unlisted_product() -> Error {
    Error::invalid("product_id", "unknown", "no such product is listed")
}

impl<S: Storage> Marketplace<S> {
    /// The products with these ids and their sellers, in (at most) two reads.
    pub(crate) async fn listing(&self, ids: &[ProductId]) -> Result<Listing> {
        if ids.is_empty() {
            return Ok(Listing {
                products: HashMap::new(),
                sellers: HashMap::new(),
            });
        }
        let products: HashMap<_, _> = self
            .storage()
            .products(ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut seller_ids: Vec<_> = products.values().map(|p| p.seller_id).collect();
        seller_ids.sort_unstable();
        seller_ids.dedup();
        let sellers = self
            .storage()
            .users(&seller_ids)
            .await?
            .into_iter()
            .map(|u| (u.id, u))
            .collect();
        Ok(Listing { products, sellers })
    }

    /// A product named in a request body: it must be listed, else the body's
    /// `product_id` field is invalid.
    async fn listed_product(&self, product_id: ProductId) -> Result<ProductView> {
        self.product(product_id).await.map_err(|e| match e {
            Error::NotFound(_) => unlisted_product(),
            e => e,
        })
    }

    async fn shopping_account(&self, who: &Principal) -> Result<User> {
        self.require(who, Role::Buyer)?;
        let user = self.account(who).await?;
        if self.inner.config.auth.require_verified_email && !user.email_verified {
            return Err(Error::Forbidden("verify your email address first"));
        }
        Ok(user)
    }

    /// The buyer's cart priced now, grouped by seller.
    pub async fn cart(&self, who: &Principal) -> Result<CartView> {
        self.require(who, Role::Buyer)?;
        let cart = self.storage().cart(who.user_id).await?;
        self.cart_view(&cart).await
    }

    pub(crate) async fn cart_view(&self, cart: &Cart) -> Result<CartView> {
        let ids: Vec<_> = cart.lines.iter().map(|l| l.product_id).collect();
        let listing = self.listing(&ids).await?;
        self.priced(cart, &listing)
    }

    /// Prices `cart` against products (and sellers) already read.
    fn priced(&self, cart: &Cart, listing: &Listing) -> Result<CartView> {
        let now = self.now();
        let currency = self.inner.config.currency;
        let mut groups: BTreeMap<UserId, SellerGroup> = BTreeMap::new();
        let (mut total, mut item_count, mut has_problems) = (Money::zero(currency), 0u64, false);
        for line in &cart.lines {
            // A product that no longer exists at all cannot be shown; it is dropped
            // from the view (and from the cart at checkout).
            let Some(p) = listing.products.get(&line.product_id) else {
                has_problems = true;
                continue;
            };
            let problem = if listing.sellable(p.id).is_none() {
                Some(LineProblem::Unavailable)
            } else if p.stock < line.quantity {
                Some(LineProblem::InsufficientStock)
            } else {
                None
            };
            let eff = effective_price(p.price, p.discount.as_ref(), now);
            let line_total = eff
                .checked_mul(line.quantity)
                .ok_or_else(|| Error::internal("line total overflow"))?;
            let group = groups.entry(p.seller_id).or_insert_with(|| SellerGroup {
                seller_id: p.seller_id,
                store_name: listing
                    .sellers
                    .get(&p.seller_id)
                    .and_then(|s| s.store_name.clone())
                    .unwrap_or_default(),
                items: Vec::new(),
                subtotal: Money::zero(currency),
            });
            // A flagged line is not charged: it shows zero, as its subtotal counts it.
            let line_total = if problem.is_none() {
                line_total
            } else {
                Money::zero(currency)
            };
            if problem.is_none() {
                group.subtotal = group
                    .subtotal
                    .checked_add(line_total)
                    .ok_or_else(|| Error::internal("subtotal overflow"))?;
                total = total
                    .checked_add(line_total)
                    .ok_or_else(|| Error::internal("total overflow"))?;
                item_count += u64::from(line.quantity);
            } else {
                has_problems = true;
            }
            group.items.push(CartLineView {
                product_id: p.id,
                title: p.title.clone(),
                quantity: line.quantity,
                unit_price: p.price,
                effective_price: eff,
                line_total,
                stock: p.stock,
                available: problem.is_none(),
                problem,
            });
        }
        Ok(CartView {
            sellers: groups.into_values().collect(),
            item_count,
            total,
            has_problems,
        })
    }

    /// Applies `change` to the buyer's cart with compare-and-swap, retrying when a
    /// concurrent change came first. `change` sees the cart's products (and
    /// `adding`, a product about to join it) as read with the cart; the cart
    /// returned is priced from that same read.
    async fn change_cart(
        &self,
        who: &Principal,
        adding: Option<ProductId>,
        mut change: impl FnMut(&mut Cart, &Listing) -> Result<()>,
    ) -> Result<CartView> {
        loop {
            let mut cart = self.storage().cart(who.user_id).await?;
            let mut ids: Vec<_> = cart.lines.iter().map(|l| l.product_id).collect();
            ids.extend(adding.filter(|id| !ids.contains(id)));
            let listing = self.listing(&ids).await?;
            let expected = cart.version;
            change(&mut cart, &listing)?;
            cart.version = expected + 1;
            match self.storage().save_cart(&cart, expected).await {
                Ok(()) => return self.priced(&cart, &listing),
                Err(StorageError::Precondition(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn check_quantity(&self, quantity: u32) -> Result<()> {
        let max = self.inner.config.limits.max_quantity;
        if quantity == 0 || quantity > max {
            return Err(Error::invalid(
                "quantity",
                "out_of_range",
                format!("must be between 1 and {max}"),
            ));
        }
        Ok(())
    }

    /// Adds units of a listed product; adding a product already in the cart adds
    /// to its line. Refuses more units than are in stock.
    pub async fn add_to_cart(
        &self,
        who: &Principal,
        product_id: ProductId,
        quantity: u32,
    ) -> Result<CartView> {
        self.shopping_account(who).await?;
        self.check_quantity(quantity)?;
        let limits = self.inner.config.limits.clone();
        let now = self.now();
        self.change_cart(who, Some(product_id), |cart, listing| {
            let product = listing.sellable(product_id).ok_or_else(unlisted_product)?;
            let existing = cart.lines.iter().position(|l| l.product_id == product_id);
            let new_quantity = existing
                .map_or(0, |i| cart.lines[i].quantity)
                .saturating_add(quantity);
            if new_quantity > limits.max_quantity {
                return Err(Error::invalid(
                    "quantity",
                    "out_of_range",
                    format!("a line holds at most {} units", limits.max_quantity),
                ));
            }
            if new_quantity > product.stock {
                return Err(Error::InsufficientStock(vec![ShortItem {
                    product_id,
                    requested: new_quantity,
                    available: product.stock,
                }]));
            }
            match existing {
                Some(i) => cart.lines[i].quantity = new_quantity,
                None if cart.lines.len() >= limits.max_cart_lines => {
                    return Err(Error::conflict(
                        "cart_full",
                        format!("a cart holds at most {} products", limits.max_cart_lines),
                    ));
                }
                None => cart.lines.push(CartLine {
                    product_id,
                    quantity,
                    added_at: now,
                }),
            }
            Ok(())
        })
        .await
    }

    /// Sets the quantity of a product already in the cart.
    pub async fn set_cart_quantity(
        &self,
        who: &Principal,
        product_id: ProductId,
        quantity: u32,
    ) -> Result<CartView> {
        self.shopping_account(who).await?;
        self.check_quantity(quantity)?;
        self.change_cart(who, None, |cart, _| {
            let line = cart
                .lines
                .iter_mut()
                .find(|l| l.product_id == product_id)
                .ok_or(Error::NotFound("cart item"))?;
            line.quantity = quantity;
            Ok(())
        })
        .await
    }

    /// Removes a product from the cart.
    pub async fn remove_from_cart(
        &self,
        who: &Principal,
        product_id: ProductId,
    ) -> Result<CartView> {
        self.require(who, Role::Buyer)?;
        self.change_cart(who, None, |cart, _| {
            let before = cart.lines.len();
            cart.lines.retain(|l| l.product_id != product_id);
            if cart.lines.len() == before {
                return Err(Error::NotFound("cart item"));
            }
            Ok(())
        })
        .await
    }

    /// Empties the cart.
    pub async fn clear_cart(&self, who: &Principal) -> Result<CartView> {
        self.require(who, Role::Buyer)?;
        self.change_cart(who, None, |cart, _| {
            cart.lines.clear();
            Ok(())
        })
        .await
    }

    /// Adds a listed product to the wishlist (once).
    pub async fn add_to_wishlist(
        &self,
        who: &Principal,
        product_id: ProductId,
    ) -> Result<Vec<WishlistItem>> {
        self.require(who, Role::Buyer)?;
        self.listed_product(product_id).await?;
        self.storage()
            .add_to_wishlist(who.user_id, product_id, self.now())
            .await?;
        self.wishlist(who).await
    }

    /// Removes a product from the wishlist.
    pub async fn remove_from_wishlist(&self, who: &Principal, product_id: ProductId) -> Result<()> {
        self.require(who, Role::Buyer)?;
        if self
            .storage()
            .remove_from_wishlist(who.user_id, product_id)
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("wishlist item"))
        }
    }

    /// The wishlist, newest first, with each product as it is now.
    pub async fn wishlist(&self, who: &Principal) -> Result<Vec<WishlistItem>> {
        self.require(who, Role::Buyer)?;
        let entries = self.storage().wishlist(who.user_id).await?;
        let ids: Vec<_> = entries.iter().map(|e| e.product_id).collect();
        let listing = self.listing(&ids).await?;
        let now = self.now();
        Ok(entries
            .into_iter()
            .map(|e| WishlistItem {
                product_id: e.product_id,
                added_at: e.added_at,
                product: listing
                    .sellable(e.product_id)
                    .map(|p| self.product_view(p, now)),
            })
            .collect())
    }
}
