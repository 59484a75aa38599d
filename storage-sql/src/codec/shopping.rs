//! The buyer's cart and wishlist, once for both dialects.

use marketplace_core::cart::{Cart, CartLine, WishlistEntry};
use marketplace_core::{StorageError, StorageResult, UserId};
use sqlx::QueryBuilder;

use super::{Binds, Columns, to_i64};
use crate::dialect::Dialect;

/// The cart from its row (`version`, `lines`); an empty cart of version 0 when
/// none was saved.
pub(crate) fn cart<R: Columns>(buyer: UserId, row: Option<R>) -> StorageResult<Cart> {
    Ok(match row {
        Some(r) => Cart {
            buyer_id: buyer,
            version: r.version("version")?,
            lines: r.json::<Vec<CartLine>>("lines")?,
        },
        None => Cart {
            buyer_id: buyer,
            version: 0,
            lines: Vec::new(),
        },
    })
}

/// The compare-and-swap that saves a cart whose stored version is
/// `expected_version`; it changes no row when the version moved.
pub(crate) fn save_cart<D: Dialect>(
    cart: &Cart,
    expected_version: u64,
) -> StorageResult<QueryBuilder<D>> {
    let mut qb = QueryBuilder::new("");
    if expected_version == 0 {
        // "Never saved": insert, or take over a row still at version 0.
        qb.push("INSERT INTO carts AS c (buyer_id, version, lines) VALUES (")
            .uuid(cart.buyer_id.0)
            .push(", ")
            .int(to_i64(cart.version)?)
            .push(", ")
            .json(&cart.lines)
            .push(
                ") ON CONFLICT (buyer_id) DO UPDATE SET version = excluded.version, \
                 lines = excluded.lines WHERE c.version = 0",
            );
    } else {
        qb.push("UPDATE carts SET version = ")
            .int(to_i64(cart.version)?)
            .push(", lines = ")
            .json(&cart.lines)
            .push(" WHERE buyer_id = ")
            .uuid(cart.buyer_id.0)
            .push(" AND version = ")
            .int(to_i64(expected_version)?);
    }
    Ok(qb)
}

/// The outcome of [`save_cart`] from the rows it changed.
pub(crate) fn cart_saved(rows_affected: u64) -> StorageResult<()> {
    if rows_affected == 0 {
        return Err(StorageError::Precondition("cart version changed".into()));
    }
    Ok(())
}

pub(crate) fn wishlist_entry<R: Columns>(r: &R) -> StorageResult<WishlistEntry> {
    Ok(WishlistEntry {
        product_id: r.uuid("product_id")?.into(),
        added_at: r.time("added_at")?,
    })
}
