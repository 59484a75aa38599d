//! The storefront: what buyers (and anyone browsing) see.
//!
//! - [`account`]: signing up, in and out, the account page, and the pages the
//!   account mails link to (verify an email, reset a password);
//! - [`catalog`]: browsing with search, filters, sort and keyset paging, and
//!   the product page;
//! - [`cart`]: the cart grouped by seller, the wishlist, and checkout;
//! - [`orders`]: order history and detail, cancel and return.

use axum::Router;
use marketplace_core::{Address, AddressInput};
use serde::{Deserialize, Serialize};

use crate::App;

pub mod account;
pub mod cart;
pub mod catalog;
pub mod orders;

/// The storefront's templates.
pub const TEMPLATES: &[(&str, &str)] = templates![
    "storefront":
    "parts",
    "sign_in",
    "sign_up",
    "browse",
    "product",
    "cart",
    "wishlist",
    "checkout",
    "orders",
    "order",
    "account",
    "address",
    "verify_email",
    "reset_password",
    "forgot_password",
];

/// Every storefront page.
pub fn routes() -> Router<App> {
    Router::new()
        .merge(account::routes())
        .merge(catalog::routes())
        .merge(cart::routes())
        .merge(orders::routes())
}

/// `text` trimmed, or `None` when blank.
pub(crate) fn blank(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// `path` with the non-empty `pairs` as its query string.
pub(crate) fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let kept: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    match serde_urlencoded::to_string(kept) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// The fields of a delivery address as a form sends them (the account's
/// address pages and checkout's inline new address share them).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct AddressFields {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub phone: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub is_default: Option<String>,
}

impl AddressFields {
    /// The form filled with `a`, to edit it.
    pub fn of(a: &Address) -> AddressFields {
        AddressFields {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone().unwrap_or_default(),
            city: a.city.clone(),
            region: a.region.clone().unwrap_or_default(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone().unwrap_or_default(),
            is_default: a.is_default.then(|| "1".to_owned()),
        }
    }

    /// Every field, for the library to check: a blank optional field clears
    /// it, a blank required one is refused there.
    pub fn input(&self) -> AddressInput {
        AddressInput {
            name: Some(self.name.clone()),
            line1: Some(self.line1.clone()),
            line2: Some(blank(&self.line2)),
            city: Some(self.city.clone()),
            region: Some(blank(&self.region)),
            postal_code: Some(self.postal_code.clone()),
            country: Some(self.country.clone()),
            phone: Some(blank(&self.phone)),
            // Unticking does not take the default away: it moves only when
            // another address takes it.
            is_default: self.is_default.as_ref().map(|_| true),
        }
    }

    /// Whether `a` already holds what these fields say (compared as typed,
    /// trimmed, the country in either case), so sending the same new address
    /// twice keeps one.
    pub fn matches(&self, a: &Address) -> bool {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        a.name == self.name.trim()
            && a.line1 == self.line1.trim()
            && opt(&a.line2) == self.line2.trim()
            && a.city == self.city.trim()
            && opt(&a.region) == self.region.trim()
            && a.postal_code == self.postal_code.trim()
            && a.country.eq_ignore_ascii_case(self.country.trim())
            && opt(&a.phone) == self.phone.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_leave_out_empty_values() {
        assert_eq!(with_query("/", &[("q", ""), ("sort", "")]), "/");
        assert_eq!(
            with_query(
                "/",
                &[("q", "blue mug"), ("in_stock", ""), ("cursor", "a&b")]
            ),
            "/?q=blue+mug&cursor=a%26b"
        );
    }
}
