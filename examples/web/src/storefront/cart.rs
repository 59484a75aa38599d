//! Storefront pages: the cart grouped by seller, the wishlist
//! ([`wishlist`]) and checkout ([`checkout`]).
//!
//! Every change is one library call and answers with a redirect back to the
//! cart (post/redirect/get); a change the library refuses shows the cart again
//! with the reason.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{CartView, Error, FieldError, ProductId};
use minijinja::{Value, context};
use serde::Deserialize;

use super::catalog::show_product;
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Problem, SeeOther, form_problem, path_id, render_with,
};
use crate::session::{SignedIn, Viewer};

pub mod checkout;
pub mod wishlist;

/// The cart, wishlist and checkout pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/cart", get(cart))
        .route("/cart/items", post(add).get(back_to_cart))
        .route("/cart/items/{id}/quantity", post(set_quantity))
        .route("/cart/items/{id}/remove", post(remove))
        .route("/cart/clear", post(clear))
        .merge(wishlist::routes())
        .merge(checkout::routes())
}

/// `/cart`.
async fn cart(State(app): State<App>, viewer: Viewer, who: SignedIn) -> PageResult {
    show_cart(&app, &viewer, &who, StatusCode::OK, None).await
}

/// The cart page, with the problem of a change that came back refused.
async fn show_cart(
    app: &App,
    viewer: &Viewer,
    who: &SignedIn,
    status: StatusCode,
    problem: Option<Problem>,
) -> PageResult {
    let cart = app.market.cart(&who.principal).await?;
    Ok(render_with(
        app,
        viewer,
        status,
        "storefront/cart.html",
        context! {
            cart => Value::from_serialize(&cart),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// A sign-in that came back to the address of a form goes to the cart.
async fn back_to_cart() -> SeeOther {
    SeeOther::to("/cart")
}

/// A quantity as typed: digits, however many (the library says how many a
/// line may hold).
pub(crate) fn quantity(text: &str) -> Result<u32, Problem> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(t.parse().unwrap_or(u32::MAX));
    }
    Err(Problem::from(&Error::Validation(vec![FieldError::new(
        "quantity",
        "invalid",
        "must be a whole number, like 1 or 2",
    )])))
}

/// The title of the product `id` as the cart lists it (blank when it does not).
pub(crate) fn title_in(cart: &CartView, id: ProductId) -> String {
    cart.sellers
        .iter()
        .flat_map(|g| &g.items)
        .find(|l| l.product_id == id)
        .map_or_else(String::new, |l| l.title.clone())
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    product_id: String,
    #[serde(default)]
    quantity: String,
}

/// `POST /cart/items`: from the product page.
async fn add(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Form(f): Form<AddForm>,
) -> PageResult {
    let id: ProductId = path_id(f.product_id.trim(), "product")?;
    let added = match quantity(&f.quantity) {
        Ok(n) => app
            .market
            .add_to_cart(&who.principal, id, n)
            .await
            .map(|cart| (n, cart))
            .map_err(|e| form_problem(&e, Fixable::OnTheForm)),
        Err(problem) => Err(Ok(problem)),
    };
    match added {
        Ok((n, cart)) => {
            let title = title_in(&cart, id);
            let units = if n == 1 {
                "1 ×".to_owned()
            } else {
                format!("{n} ×")
            };
            Ok(SeeOther::to("/cart")
                .flash(format!("Added {units} “{title}” to your cart."))
                .into_response())
        }
        Err(problem) => {
            let problem = problem?;
            show_product(
                &app,
                &viewer,
                id,
                problem.status,
                Some(problem),
                &f.quantity,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct QuantityForm {
    #[serde(default)]
    quantity: String,
}

/// `POST /cart/items/{id}/quantity`.
async fn set_quantity(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<QuantityForm>,
) -> PageResult {
    let id: ProductId = path_id(&id, "cart item")?;
    let changed = match quantity(&f.quantity) {
        Ok(n) => app
            .market
            .set_cart_quantity(&who.principal, id, n)
            .await
            .map_err(|e| form_problem(&e, Fixable::OnTheForm)),
        Err(problem) => Err(Ok(problem)),
    };
    match changed {
        Ok(_) => Ok(SeeOther::to("/cart")
            .flash("The quantity is updated.")
            .into_response()),
        Err(problem) => {
            let problem = problem?;
            show_cart(&app, &viewer, &who, problem.status, Some(problem)).await
        }
    }
}

/// `POST /cart/items/{id}/remove`.
async fn remove(State(app): State<App>, who: SignedIn, Path(id): Path<String>) -> PageResult {
    let id: ProductId = path_id(&id, "cart item")?;
    app.market.remove_from_cart(&who.principal, id).await?;
    Ok(SeeOther::to("/cart")
        .flash("The product is out of your cart.")
        .into_response())
}

/// `POST /cart/clear`.
async fn clear(State(app): State<App>, who: SignedIn) -> PageResult {
    app.market.clear_cart(&who.principal).await?;
    Ok(SeeOther::to("/cart")
        .flash("Your cart is empty now.")
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_digits() {
        assert_eq!(quantity(" 3 ").ok(), Some(3));
        assert_eq!(quantity("0").ok(), Some(0));
        assert_eq!(quantity("99999999999999999999").ok(), Some(u32::MAX));
        for bad in ["", "-1", "1.5", "two", "+2"] {
            let p = quantity(bad).err();
            assert_eq!(
                p.map(|p| p.status),
                Some(StatusCode::UNPROCESSABLE_ENTITY),
                "{bad}"
            );
        }
    }
}
