//! The seller dashboard: where the store stands with the marketplace, its
//! products, and its orders.
//!
//! - [`products`]: the store's products (archived ones too), the product form
//!   (price, stock, category, offer, listed switch), image uploads, archiving;
//! - [`orders`]: the store's orders by status, one order with its buyer's
//!   address and history, and the button for its next step;
//! - [`money`]: the balance (held and available), the ledger, the payouts and
//!   the statement as CSV.
//!
//! Every page is for sellers only; what a seller may do beyond that (list
//! products once verified, move an order one step) is the library's to say,
//! and its refusals are shown as they come.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use marketplace_core::{CatalogQuery, OrderListQuery, OrderStatus, Role};
use minijinja::context;

use crate::App;
use crate::page::{self, PageResult, render};
use crate::session::{SignedIn, Viewer};

pub mod money;
pub mod orders;
pub mod products;

/// The seller dashboard's templates.
pub const TEMPLATES: &[(&str, &str)] = templates![
    "seller": "layout", "home", "products", "product", "archive", "orders", "order", "money", "payouts",
];

/// Counts on the overview stop here ("1000+").
const TALLY_CAP: usize = 1000;

/// The seller dashboard's pages, for sellers only.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/seller", get(home))
        .merge(products::routes())
        .merge(orders::routes())
        .merge(money::routes())
        .route_layer(axum::middleware::from_fn(sellers_only))
}

/// Sends anyone who is not signed in as a seller away (to sign in, or with a
/// 403 page) before a seller page runs.
async fn sellers_only(viewer: Viewer, req: Request, next: Next) -> Response {
    match page::require_role(&viewer, Role::Seller) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// `/seller`: the store's standing and a summary of its products, orders and
/// money.
async fn home(State(app): State<App>, viewer: Viewer, s: SignedIn) -> PageResult {
    let who = &s.principal;
    let market = &app.market;
    let products = page::tally(TALLY_CAP, |cursor, limit| {
        let query = CatalogQuery {
            cursor,
            limit: Some(limit),
            ..CatalogQuery::default()
        };
        market.my_products(who, query, true)
    })
    .await?;
    let mut orders = Vec::new();
    for status in OrderStatus::ALL {
        let count = page::tally(TALLY_CAP, |cursor, limit| {
            let query = OrderListQuery {
                cursor,
                limit: Some(limit),
                status: Some(status),
            };
            market.seller_orders(who, query)
        })
        .await?;
        orders.push(context! { status => status.as_str(), count });
    }
    let balance = market.seller_balance(who).await?;
    Ok(render(
        &app,
        &viewer,
        "seller/home.html",
        context! {
            section => "home",
            store_name => s.user.store_name,
            status => s.user.seller_status.map(|st| st.as_str()),
            products,
            orders,
            balance => minijinja::Value::from_serialize(&balance),
        },
    ))
}
