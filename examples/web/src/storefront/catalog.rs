//! Storefront pages: the catalog, browsed with search, filters, sort and keyset
//! paging, and the product page.
//!
//! Filters arrive as the text a person typed (`12.50`, a category id from the
//! select); each is read here into the library's [`CatalogQuery`], and one that
//! cannot be read is shown as a message beside its field, never a failure.
//! What the query means (which products the public may see, the price range,
//! the cursor) is the library's.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use marketplace_core::{
    CatalogQuery, Error, FieldError, Money, ProductId, ProductSort, Role, WishlistItem,
};
use minijinja::{Value, context};
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};

use super::{blank, with_query};
use crate::App;
use crate::page::{Fixable, PageResult, Problem, Query, form_problem, path_id, render_with};
use crate::session::Viewer;

/// Products on one page of the catalog.
const PAGE_SIZE: u32 = 24;

/// The catalog pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(browse))
        .route("/products/{id}", get(product))
}

/// The catalog's query string, as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
struct Filters {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    min_price: String,
    #[serde(default)]
    max_price: String,
    /// A checkbox: any value when ticked.
    #[serde(default)]
    in_stock: String,
    #[serde(default)]
    seller: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

impl Filters {
    /// The library's query, or the fields that cannot be read.
    fn query(&self, app: &App) -> Result<CatalogQuery, Error> {
        let currency = app.market.config().currency;
        let mut problems = Vec::new();
        let category = read_id(
            &mut problems,
            "category",
            &self.category,
            "one of the categories",
        );
        let seller_id = read_id(
            &mut problems,
            "seller",
            &self.seller,
            "a seller of this shop",
        );
        let mut price = |field: &str, text: &str| match text.trim() {
            "" => None,
            t => match Money::from_decimal(t, currency) {
                Some(m) => Some(m.amount),
                None => {
                    problems.push(FieldError::new(
                        field,
                        "invalid",
                        format!("must be an amount in {currency}, like 12.50"),
                    ));
                    None
                }
            },
        };
        let min_price = price("min_price", &self.min_price);
        let max_price = price("max_price", &self.max_price);
        let sort = match self.sort.trim() {
            "" => None,
            s => {
                let read: Result<ProductSort, serde::de::value::Error> =
                    ProductSort::deserialize(s.into_deserializer());
                match read {
                    Ok(sort) => Some(sort),
                    Err(_) => {
                        problems.push(FieldError::new("sort", "invalid", "is not a sort order"));
                        None
                    }
                }
            }
        };
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        Ok(CatalogQuery {
            limit: Some(PAGE_SIZE),
            cursor: blank(&self.cursor),
            q: blank(&self.q),
            seller_id,
            category,
            min_price,
            max_price,
            in_stock: (!self.in_stock.is_empty()).then_some(true),
            sort,
        })
    }

    /// These filters at another cursor (none: the first page).
    fn url(&self, cursor: &str) -> String {
        with_query(
            "/",
            &[
                ("q", self.q.trim()),
                ("category", self.category.trim()),
                ("min_price", self.min_price.trim()),
                ("max_price", self.max_price.trim()),
                ("in_stock", if self.in_stock.is_empty() { "" } else { "1" }),
                ("seller", self.seller.trim()),
                ("sort", self.sort.trim()),
                ("cursor", cursor),
            ],
        )
    }

    fn any(&self) -> bool {
        [
            &self.q,
            &self.category,
            &self.min_price,
            &self.max_price,
            &self.in_stock,
            &self.seller,
        ]
        .iter()
        .any(|f| !f.trim().is_empty())
    }
}

/// The id typed in `field`, if any; one that cannot be an id is a problem.
fn read_id<T: std::str::FromStr>(
    problems: &mut Vec<FieldError>,
    field: &str,
    text: &str,
    what: &str,
) -> Option<T> {
    match text.trim() {
        "" => None,
        t => {
            let id = t.parse().ok();
            if id.is_none() {
                problems.push(FieldError::new(field, "invalid", format!("is not {what}")));
            }
            id
        }
    }
}

/// `/`: the catalog, filtered, sorted and paged.
async fn browse(State(app): State<App>, viewer: Viewer, Query(f): Query<Filters>) -> PageResult {
    let categories = app.market.categories().await?;
    let found = match f.query(&app) {
        Ok(q) => app
            .market
            .browse(q)
            .await
            .map_err(|e| form_problem(&e, Fixable::OnTheForm)),
        Err(e) => Err(form_problem(&e, Fixable::OnTheForm)),
    };
    let (status, products, next_url, problem) = match found {
        Ok(page) => {
            let next = page.next_cursor.as_deref().map(|c| f.url(c));
            (StatusCode::OK, page.items, next, None)
        }
        Err(problem) => {
            let problem = problem?;
            (problem.status, Vec::new(), None, Some(problem))
        }
    };
    Ok(render_with(
        &app,
        &viewer,
        status,
        "storefront/browse.html",
        context! {
            q => f.q.trim(),
            form => Value::from_serialize(&f),
            filtered => f.any(),
            categories => Value::from_serialize(&categories),
            products => Value::from_serialize(&products),
            next_url,
            first_url => (!f.cursor.is_empty()).then(|| f.url("")),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `/products/{id}`.
async fn product(State(app): State<App>, viewer: Viewer, Path(id): Path<String>) -> PageResult {
    let id = path_id(&id, "product")?;
    show_product(&app, &viewer, id, StatusCode::OK, None, "1").await
}

/// The product page, with the problem of a form on it (adding to the cart or
/// the wishlist) when it comes back with one, and the quantity typed.
pub(crate) async fn show_product(
    app: &App,
    viewer: &Viewer,
    id: ProductId,
    status: StatusCode,
    problem: Option<Problem>,
    quantity: &str,
) -> PageResult {
    let product = app.market.product(id).await?;
    let category = match product.category_id {
        Some(c) => app
            .market
            .categories()
            .await?
            .into_iter()
            .find(|x| x.id == c),
        None => None,
    };
    // Only a buyer keeps a wishlist; the layout already shows pages by role.
    let wished = match viewer.principal().filter(|p| p.role == Role::Buyer) {
        Some(who) => app
            .market
            .wishlist(who)
            .await?
            .iter()
            .any(|w: &WishlistItem| w.product_id == id),
        None => false,
    };
    let path = format!("/products/{id}");
    Ok(render_with(
        app,
        viewer,
        status,
        "storefront/product.html",
        context! {
            p => Value::from_serialize(&product),
            category => category.map(|c| c.name),
            wished,
            quantity,
            more_url => with_query("/", &[("seller", &product.seller_id.to_string())]),
            sign_in_url => with_query("/sign-in", &[("next", &path)]),
            path,
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(f: impl FnOnce(&mut Filters)) -> Filters {
        let mut x = Filters::default();
        f(&mut x);
        x
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        let f = filters(|f| {
            f.q = " mug ".into();
            f.in_stock = "on".into();
            f.sort = "price_asc".into();
            f.cursor = "old".into();
        });
        assert_eq!(f.url("abc"), "/?q=mug&in_stock=1&sort=price_asc&cursor=abc");
        assert_eq!(f.url(""), "/?q=mug&in_stock=1&sort=price_asc");
        assert!(f.any());
        assert!(!filters(|f| f.sort = "newest".into()).any());
    }
}
