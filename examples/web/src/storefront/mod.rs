//! The storefront: what buyers (and anyone browsing) see.
//!
//! - [`account`]: signing up, in and out, the account page, and the pages the
//!   account mails link to (verify an email, reset a password);
//! - [`catalog`]: browsing with search, filters, sort and keyset paging, and
//!   the product page;
//! - [`cart`]: the cart grouped by seller, the wishlist, and checkout;
//! - [`orders`]: order history and detail, cancel and return.

use axum::Router;

use crate::App;

pub mod account;
pub mod cart;
pub mod catalog;
pub mod orders;

/// The storefront's templates.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "storefront/sign_in.html",
        include_str!("../../templates/storefront/sign_in.html"),
    ),
    (
        "storefront/sign_up.html",
        include_str!("../../templates/storefront/sign_up.html"),
    ),
];

/// Every storefront page.
pub fn routes() -> Router<App> {
    Router::new()
        .merge(account::routes())
        .merge(catalog::routes())
        .merge(cart::routes())
        .merge(orders::routes())
}
