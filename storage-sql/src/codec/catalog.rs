//! The catalog, once for both dialects: categories and products, and the filters
//! and keyset pages of the product listing.

use std::sync::LazyLock;

use marketplace_core::catalog::{Category, Product, ProductQuery, ProductSort};
use marketplace_core::{Discount, StorageResult};
use sqlx::QueryBuilder;

use super::{Binds, Columns, qualified, to_i64};
use crate::dialect::Dialect;

/// The columns of `products` but its id, in the order [`push_product_fields`]
/// binds them.
const PRODUCT_FIELDS: &str = "seller_id, sku, title, description, price_amount, currency, \
     discount, stock, images, category_id, active, archived, blocked, version, \
     created_at, updated_at";

/// The columns [`product`] decodes, qualified by the alias `p`:
/// `SELECT {PRODUCT_SELECT} FROM products p ...`.
pub(crate) static PRODUCT_SELECT: LazyLock<String> =
    LazyLock::new(|| qualified("p", &format!("id, {PRODUCT_FIELDS}")));

/// Text columns a dialect stores beside a product's own (SQLite: Unicode-folded
/// copies of the searchable text), as `(column, value)`.
pub(crate) type ExtraColumns<'a> = &'a [(&'a str, String)];

fn push_product_fields<D: Dialect>(
    qb: &mut QueryBuilder<D>,
    p: &Product,
    extra: ExtraColumns<'_>,
) -> StorageResult<()> {
    let mut values = qb.separated(", ");
    (&mut values)
        .uuid(p.seller_id.0)
        .opt_text(p.sku.as_deref())
        .text(&p.title)
        .text(&p.description)
        .int(p.price.amount)
        .text(p.price.currency.as_str())
        .opt_json(p.discount.as_ref())
        .int(i64::from(p.stock))
        .json(&p.images)
        .opt_uuid(p.category_id.map(|c| c.0))
        .flag(p.active)
        .flag(p.archived)
        .flag(p.blocked)
        .int(to_i64(p.version)?)
        .time(p.created_at)
        .time(p.updated_at);
    for (_, value) in extra {
        (&mut values).text(value);
    }
    Ok(())
}

fn extra_names(extra: ExtraColumns<'_>) -> String {
    extra.iter().map(|(name, _)| format!(", {name}")).collect()
}

/// Stores a new product.
pub(crate) fn insert_product<D: Dialect>(
    p: &Product,
    extra: ExtraColumns<'_>,
) -> StorageResult<QueryBuilder<D>> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO products (id, {PRODUCT_FIELDS}{}) VALUES (",
        extra_names(extra)
    ));
    qb.uuid(p.id.0).push(", ");
    push_product_fields(&mut qb, p, extra)?;
    qb.push(")");
    Ok(qb)
}

/// Replaces every column of the product whose stored version is
/// `expected_version` (one row-value assignment: `SET (a, b) = (x, y)`).
pub(crate) fn update_product<D: Dialect>(
    p: &Product,
    expected_version: u64,
    extra: ExtraColumns<'_>,
) -> StorageResult<QueryBuilder<D>> {
    let mut qb = QueryBuilder::new(format!(
        "UPDATE products SET ({PRODUCT_FIELDS}{}) = (",
        extra_names(extra)
    ));
    push_product_fields(&mut qb, p, extra)?;
    qb.push(") WHERE id = ").uuid(p.id.0);
    qb.push(" AND version = ").int(to_i64(expected_version)?);
    Ok(qb)
}

pub(crate) fn product<R: Columns>(r: &R) -> StorageResult<Product> {
    Ok(Product {
        id: r.uuid("id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        sku: r.opt_text("sku")?,
        title: r.text("title")?,
        description: r.text("description")?,
        price: r.money("price_amount", "currency")?,
        discount: r.opt_json::<Discount>("discount")?,
        stock: r.count("stock")?,
        images: r.json("images")?,
        category_id: r.opt_uuid("category_id")?.map(Into::into),
        active: r.flag("active")?,
        archived: r.flag("archived")?,
        blocked: r.flag("blocked")?,
        version: r.version("version")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn category<R: Columns>(r: &R) -> StorageResult<Category> {
    Ok(Category {
        id: r.uuid("id")?.into(),
        name: r.text("name")?,
    })
}

/// The listing's filters both dialects apply alike, after a `WHERE` clause.
pub(crate) fn push_product_filters<D: Dialect>(qb: &mut QueryBuilder<D>, q: &ProductQuery) {
    if let Some(s) = q.seller_id {
        qb.push(" AND p.seller_id = ").uuid(s.0);
    }
    if let Some(c) = q.category_id {
        qb.push(" AND p.category_id = ").uuid(c.0);
    }
    if let Some(m) = q.min_price {
        qb.push(" AND p.price_amount >= ").int(m);
    }
    if let Some(m) = q.max_price {
        qb.push(" AND p.price_amount <= ").int(m);
    }
    if q.in_stock {
        qb.push(" AND p.stock > 0");
    }
}

/// The listing's keyset condition, sort order and limit.
pub(crate) fn push_product_page<D: Dialect>(qb: &mut QueryBuilder<D>, q: &ProductQuery) {
    if let Some(k) = &q.after {
        match q.sort {
            ProductSort::Newest => qb.push(" AND (p.created_at, p.id) < (").time(k.created_at),
            ProductSort::PriceAsc => qb.push(" AND (p.price_amount, p.id) > (").int(k.price),
            ProductSort::PriceDesc => qb.push(" AND (p.price_amount, p.id) < (").int(k.price),
        };
        qb.push(", ").uuid(k.id.0);
        qb.push(")");
    }
    qb.push(match q.sort {
        ProductSort::Newest => " ORDER BY p.created_at DESC, p.id DESC",
        ProductSort::PriceAsc => " ORDER BY p.price_amount, p.id",
        ProductSort::PriceDesc => " ORDER BY p.price_amount DESC, p.id DESC",
    });
    // The limit is written into the statement, not bound: PostgreSQL builds a
    // custom plan for every call of a statement with `LIMIT $n` (planning cost
    // more than running the first page), while a literal gives each of the few
    // page sizes one cached generic plan. It is a clamped integer, never text.
    qb.push(format_args!(" LIMIT {}", q.limit));
}

/// The pattern for a case-insensitive substring search: `%`, `_` and `\` in the
/// text match literally (`ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(contains_pattern("100%_"), "%100\\%\\_%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
        assert_eq!(contains_pattern("steel"), "%steel%");
    }
}
