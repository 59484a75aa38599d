//! Cart, wishlist and checkout (buyers).

use marketplace_core::{
    CartView, Checkout, CheckoutRequest, IdempotencyKey, Principal, ProductId, WishlistItem,
};
use serde::Deserialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, created, json, json_reply, no_content, ok};
use crate::problem::{ApiError, reject};

/// A product and a quantity to add to the cart.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItemInput {
    /// The product.
    #[schema(value_type = String, format = Uuid)]
    pub product_id: ProductId,
    /// Units to add (1..=999; added to an existing line).
    #[schema(minimum = 1, maximum = 999)]
    pub quantity: u32,
}

/// A new quantity for a cart line.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantityInput {
    /// Units (1..=999).
    #[schema(minimum = 1, maximum = 999)]
    pub quantity: u32,
}

/// A product for the wishlist.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WishlistInput {
    /// The product.
    #[schema(value_type = String, format = Uuid)]
    pub product_id: ProductId,
}

/// The cart, grouped by seller, priced now.
#[utoipa::path(get, path = "/api/v1/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, description = "the cart", body = CartView)))]
pub async fn cart(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.cart(&who).await.map_err(reject)?))
}

/// Empties the cart.
#[utoipa::path(delete, path = "/api/v1/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, description = "the empty cart", body = CartView)))]
pub async fn clear_cart(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.clear_cart(&who).await.map_err(reject)?))
}

/// Adds units of a product (to its line when already in the cart).
#[utoipa::path(post, path = "/api/v1/cart/items", tag = "cart", security(("bearer" = [])), request_body = CartItemInput,
    responses((status = 200, description = "the cart", body = CartView),
              (status = 409, description = "not enough stock", body = crate::problem::Problem)))]
pub async fn add_item(
    app: App,
    who: Principal,
    body: CartItemInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .add_to_cart(&who, body.product_id, body.quantity)
        .await
        .map_err(reject)?))
}

/// Sets the quantity of a cart line.
#[utoipa::path(patch, path = "/api/v1/cart/items/{product_id}", tag = "cart", security(("bearer" = [])), request_body = QuantityInput,
    params(("product_id" = String, Path, description = "product id")),
    responses((status = 200, description = "the cart", body = CartView)))]
pub async fn set_quantity(
    id: ProductId,
    app: App,
    who: Principal,
    body: QuantityInput,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .set_cart_quantity(&who, id, body.quantity)
        .await
        .map_err(reject)?))
}

/// Removes a product from the cart.
#[utoipa::path(delete, path = "/api/v1/cart/items/{product_id}", tag = "cart", security(("bearer" = [])),
    params(("product_id" = String, Path, description = "product id")),
    responses((status = 200, description = "the cart", body = CartView)))]
pub async fn remove_item(id: ProductId, app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .remove_from_cart(&who, id)
        .await
        .map_err(reject)?))
}

/// The wishlist, newest first.
#[utoipa::path(get, path = "/api/v1/wishlist", tag = "cart", security(("bearer" = [])),
    responses((status = 200, description = "the wishlist", body = Vec<WishlistItem>)))]
pub async fn wishlist(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app.market.wishlist(&who).await.map_err(reject)?))
}

/// Adds a product to the wishlist (once).
#[utoipa::path(post, path = "/api/v1/wishlist", tag = "cart", security(("bearer" = [])), request_body = WishlistInput,
    responses((status = 201, description = "the wishlist", body = Vec<WishlistItem>)))]
pub async fn add_wish(
    app: App,
    who: Principal,
    body: WishlistInput,
) -> Result<Response, Rejection> {
    Ok(created(
        &app.market
            .add_to_wishlist(&who, body.product_id)
            .await
            .map_err(reject)?,
    ))
}

/// Removes a product from the wishlist.
#[utoipa::path(delete, path = "/api/v1/wishlist/{product_id}", tag = "cart", security(("bearer" = [])),
    params(("product_id" = String, Path, description = "product id")),
    responses((status = 204, description = "removed")))]
pub async fn remove_wish(id: ProductId, app: App, who: Principal) -> Result<Response, Rejection> {
    app.market
        .remove_from_wishlist(&who, id)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Turns the cart into one order per seller, atomically. Requires an
/// `Idempotency-Key` header: repeating a request with the same key returns the
/// first result (200, `Idempotent-Replayed: true`) and never orders twice.
#[utoipa::path(post, path = "/api/v1/checkout", tag = "checkout", security(("bearer" = [])), request_body = CheckoutRequest,
    params(("Idempotency-Key" = String, Header, description = "a unique key per checkout attempt (1..=255 visible ASCII characters)")),
    responses((status = 201, description = "the orders, one per seller", body = Checkout),
              (status = 200, description = "the stored result of an earlier request with the same key", body = Checkout),
              (status = 409, description = "an item is short (all listed in `items`), the cart is empty, or it changed", body = crate::problem::Problem)))]
pub async fn checkout(
    app: App,
    who: Principal,
    key: Option<String>,
    body: CheckoutRequest,
) -> Result<Response, Rejection> {
    let key = key.ok_or_else(|| {
        warp::reject::custom(ApiError::bad_field(
            "missing_idempotency_key",
            "Idempotency-Key",
            "send an Idempotency-Key header with a unique value per checkout",
        ))
    })?;
    let key = IdempotencyKey::parse(&key).map_err(|e| reject(e.into()))?;
    let done = app
        .market
        .checkout(&who, &key, body)
        .await
        .map_err(reject)?;
    if done.replayed {
        let mut res = json_reply(http::StatusCode::OK, &done);
        res.headers_mut().insert(
            "idempotent-replayed",
            http::HeaderValue::from_static("true"),
        );
        Ok(res)
    } else {
        Ok(created(&done))
    }
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("cart")
        .and(warp::get())
        .and(authed())
        .and_then(cart);
    let r2 = warp::path!("cart")
        .and(warp::delete())
        .and(authed())
        .and_then(clear_cart);
    let r3 = warp::path!("cart" / "items")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(add_item);
    let r4 = warp::path!("cart" / "items" / ProductId)
        .and(warp::patch())
        .and(authed())
        .and(json(limit))
        .and_then(set_quantity);
    let r5 = warp::path!("cart" / "items" / ProductId)
        .and(warp::delete())
        .and(authed())
        .and_then(remove_item);
    let r6 = warp::path!("wishlist")
        .and(warp::get())
        .and(authed())
        .and_then(wishlist);
    let r7 = warp::path!("wishlist")
        .and(warp::post())
        .and(authed())
        .and(json(limit))
        .and_then(add_wish);
    let r8 = warp::path!("wishlist" / ProductId)
        .and(warp::delete())
        .and(authed())
        .and_then(remove_wish);
    let r9 = warp::path!("checkout")
        .and(warp::post())
        .and(authed())
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(json(limit))
        .and_then(checkout);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7, r8, r9)
}
