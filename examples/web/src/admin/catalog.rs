//! The catalog as an admin moderates it: the products the shop lists, each
//! with a button that takes it out (and a form that puts one back by its id),
//! and the categories.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{CatalogQuery, CategoryId, Error, ProductId};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::Back;
use crate::App;
use crate::page::{
    Fixable, Form, PageResult, Problem, Query, SeeOther, form_problem, path_id, render_with,
};
use crate::session::{SignedIn, Viewer};

/// The catalog pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/products", get(products))
        .route("/admin/products/reactivate", post(reactivate))
        .route("/admin/products/{id}/deactivate", post(deactivate))
        .route("/admin/categories", get(categories).post(create_category))
        .route("/admin/categories/{id}/rename", post(rename_category))
        .route("/admin/categories/{id}/delete", post(delete_category))
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct ProductsQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

/// The catalog page, with the problem a form came back with.
async fn products_page(
    app: &App,
    viewer: &Viewer,
    q: &ProductsQuery,
    product_id: &str,
    problem: Option<Problem>,
) -> PageResult {
    let cursor = q.cursor.clone().filter(|c| !c.is_empty());
    let text = q.q.trim();
    let page = app
        .market
        .browse(CatalogQuery {
            q: (!text.is_empty()).then(|| text.to_owned()),
            cursor: cursor.clone(),
            ..CatalogQuery::default()
        })
        .await?;
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "admin/products.html",
        context! {
            section => "products",
            products => Value::from_serialize(&page.items),
            text,
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
            product_id,
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `/admin/products?q=…`: the products the shop lists.
async fn products(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<ProductsQuery>,
) -> PageResult {
    products_page(&app, &viewer, &q, "", None).await
}

async fn deactivate(
    State(app): State<App>,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    let id: ProductId = path_id(&id, "product")?;
    app.market
        .set_product_blocked(&s.principal, id, true)
        .await?;
    Ok(SeeOther::to(back.to("/admin/products"))
        .flash(format!(
            "The product is deactivated: it is out of the shop and cannot be bought. To put it back, reactivate product {id}."
        ))
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
struct ReactivateForm {
    #[serde(default)]
    product_id: String,
}

/// Puts a deactivated product back, by its id (a deactivated product is not
/// in the catalog to click on).
async fn reactivate(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(f): Form<ReactivateForm>,
) -> PageResult {
    let raw = f.product_id.trim();
    let done = match raw.parse::<ProductId>() {
        Ok(id) => {
            app.market
                .set_product_blocked(&s.principal, id, false)
                .await
        }
        Err(_) => Err(Error::invalid(
            "product_id",
            "invalid",
            "write a product id, like 0190a4c2-7d1e-7c3a-9f00-2b5e8d4c1a77",
        )),
    };
    match done {
        Ok(()) => Ok(SeeOther::to("/admin/products")
            .flash(format!(
                "Product {raw} is reactivated: it is back in the shop if its seller lists it."
            ))
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            products_page(&app, &viewer, &ProductsQuery::default(), raw, Some(problem)).await
        }
    }
}

/// The categories page; `create` is the problem of the new category's form
/// (shown beside it), `problem` that of a row's action.
async fn categories_page(
    app: &App,
    viewer: &Viewer,
    name: &str,
    create: Option<Problem>,
    problem: Option<Problem>,
) -> PageResult {
    let categories = app.market.categories().await?;
    let status = create
        .as_ref()
        .or(problem.as_ref())
        .map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "admin/categories.html",
        context! {
            section => "categories",
            categories => Value::from_serialize(&categories),
            name,
            create => create.as_ref().map(Value::from_serialize),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `/admin/categories`: every category, by name.
async fn categories(State(app): State<App>, viewer: Viewer) -> PageResult {
    categories_page(&app, &viewer, "", None, None).await
}

#[derive(Debug, Default, Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
}

async fn create_category(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(f): Form<NameForm>,
) -> PageResult {
    match app.market.create_category(&s.principal, &f.name).await {
        Ok(c) => Ok(SeeOther::to("/admin/categories")
            .flash(format!("The category “{}” is created.", c.name))
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            categories_page(&app, &viewer, &f.name, Some(problem), None).await
        }
    }
}

async fn rename_category(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<NameForm>,
) -> PageResult {
    let id: CategoryId = path_id(&id, "category")?;
    match app.market.rename_category(&s.principal, id, &f.name).await {
        Ok(c) => Ok(SeeOther::to("/admin/categories")
            .flash(format!("The category is renamed “{}”.", c.name))
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            categories_page(&app, &viewer, "", None, Some(problem)).await
        }
    }
}

async fn delete_category(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
) -> PageResult {
    let id: CategoryId = path_id(&id, "category")?;
    match app.market.delete_category(&s.principal, id).await {
        Ok(()) => Ok(SeeOther::to("/admin/categories")
            .flash("The category is deleted.")
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            categories_page(&app, &viewer, "", None, Some(problem)).await
        }
    }
}
