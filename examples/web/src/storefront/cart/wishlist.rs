//! The wishlist: products a buyer keeps for later, listed, removed, or moved to
//! the cart.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::ProductId;
use minijinja::{Value, context};
use serde::Deserialize;

use super::super::catalog::show_product;
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Problem, SeeOther, form_problem, local_path, path_id, render_with,
};
use crate::session::{SignedIn, Viewer};

/// The wishlist pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/wishlist", get(wishlist).post(add))
        .route("/wishlist/{id}/remove", post(remove))
        .route("/wishlist/{id}/move", post(move_to_cart))
}

/// `/wishlist`.
async fn wishlist(State(app): State<App>, viewer: Viewer, who: SignedIn) -> PageResult {
    show_wishlist(&app, &viewer, &who, StatusCode::OK, None).await
}

async fn show_wishlist(
    app: &App,
    viewer: &Viewer,
    who: &SignedIn,
    status: StatusCode,
    problem: Option<Problem>,
) -> PageResult {
    let items = app.market.wishlist(&who.principal).await?;
    Ok(render_with(
        app,
        viewer,
        status,
        "storefront/wishlist.html",
        context! {
            items => Value::from_serialize(&items),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    product_id: String,
    next: Option<String>,
}

/// `POST /wishlist`: from the product page.
async fn add(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Form(f): Form<AddForm>,
) -> PageResult {
    let id: ProductId = path_id(f.product_id.trim(), "product")?;
    match app.market.add_to_wishlist(&who.principal, id).await {
        Ok(_) => Ok(SeeOther::to(local_path(f.next.as_deref(), "/wishlist"))
            .flash("Saved to your wishlist.")
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            show_product(&app, &viewer, id, problem.status, Some(problem), "1").await
        }
    }
}

/// `POST /wishlist/{id}/remove`.
async fn remove(State(app): State<App>, who: SignedIn, Path(id): Path<String>) -> PageResult {
    let id: ProductId = path_id(&id, "wishlist item")?;
    app.market.remove_from_wishlist(&who.principal, id).await?;
    Ok(SeeOther::to("/wishlist")
        .flash("Removed from your wishlist.")
        .into_response())
}

/// `POST /wishlist/{id}/move`: one unit into the cart, then out of the
/// wishlist; when the cart refuses it, it stays in the wishlist.
async fn move_to_cart(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id: ProductId = path_id(&id, "wishlist item")?;
    let cart = match app.market.add_to_cart(&who.principal, id, 1).await {
        Ok(cart) => cart,
        Err(e) => {
            let problem = form_problem(&e, Fixable::OnTheForm)?;
            return show_wishlist(&app, &viewer, &who, problem.status, Some(problem)).await;
        }
    };
    app.market.remove_from_wishlist(&who.principal, id).await?;
    let title = super::title_in(&cart, id);
    Ok(SeeOther::to("/cart")
        .flash(format!("Moved “{title}” to your cart."))
        .into_response())
}
