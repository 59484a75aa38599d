//! Public browsing: filters, sort orders, keyset cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Violations};
use crate::fields::optional_text;
use crate::ids::{CategoryId, ProductId, UserId};
use crate::marketplace::Marketplace;
use crate::money::MAX_AMOUNT;
use crate::page::Page;
use crate::storage::Storage;

use super::{Product, ProductView};

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

impl<S: Storage> Marketplace<S> {
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
        Ok(self.product_view(&p, self.now()))
    }

    pub(crate) async fn seller_is_selling(&self, seller: UserId) -> Result<bool> {
        Ok(self
            .storage()
            .user(seller)
            .await?
            .is_some_and(|u| u.is_selling()))
    }

    pub(super) fn product_query(
        &self,
        query: CatalogQuery,
        public_only: bool,
    ) -> Result<ProductQuery> {
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

    pub(super) async fn run_product_query(&self, mut q: ProductQuery) -> Result<Page<ProductView>> {
        let limit = q.limit;
        q.limit = limit + 1;
        let rows = self.storage().list_products(&q).await?;
        let now = self.now();
        let sort = q.sort;
        Ok(Page::from_overfetch(rows, limit, |_| String::new())
            .map(|p| self.product_view(&p, now))
            .with_cursor(|last| encode_cursor(sort, last)))
    }
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
