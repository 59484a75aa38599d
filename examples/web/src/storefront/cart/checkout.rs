//! Checkout: the cart's summary, a delivery address (one of the buyer's, or a
//! new one typed in the same form), and one button that places one order per
//! seller.
//!
//! The page carries an idempotency key made when it is shown, in a hidden
//! field: sending the same form twice (a double click, a reload after a lost
//! answer) asks the library for the same checkout, which places the orders
//! once and answers the second time with the first result. A new address typed
//! in the form is stored once too: the second sending finds the address the
//! first one added and checks out with it, so both are the same request.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use marketplace_core::error::IDEMPOTENCY_KEY_REUSED;
use marketplace_core::{
    Address, AddressId, CartView, CheckoutRequest, Error, FieldError, IdempotencyKey, ShortItem,
};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::super::{AddressFields, with_query};
use crate::App;
use crate::page::{Fixable, Form, PageResult, Problem, SeeOther, form_problem, render_with};
use crate::session::{SignedIn, Viewer};

/// The checkout page.
pub fn routes() -> Router<App> {
    Router::new().route("/checkout", get(page).post(place))
}

/// The radio button of a new address.
const NEW: &str = "new";

/// A short item as the page names it.
#[derive(Serialize)]
struct Short {
    title: String,
    requested: u32,
    available: u32,
}

/// What the page shows beside the cart: the address chosen, the new address
/// as typed, and why the last sending was refused.
#[derive(Default)]
struct Shown {
    selected: String,
    typed: AddressFields,
    problem: Option<Problem>,
    short: Vec<Short>,
}

/// `GET /checkout`.
async fn page(State(app): State<App>, viewer: Viewer, who: SignedIn) -> PageResult {
    let cart = app.market.cart(&who.principal).await?;
    if cart.sellers.is_empty() {
        return Ok(SeeOther::to("/cart")
            .flash("Your cart is empty: add a product first.")
            .into_response());
    }
    let addresses = app.market.addresses(&who.principal).await?;
    let selected = addresses
        .iter()
        .find(|a| a.is_default)
        .or(addresses.first())
        .map_or_else(|| NEW.to_owned(), |a| a.id.to_string());
    Ok(show(
        &app,
        &viewer,
        StatusCode::OK,
        &cart,
        &addresses,
        Shown {
            selected,
            ..Shown::default()
        },
    ))
}

fn show(
    app: &App,
    viewer: &Viewer,
    status: StatusCode,
    cart: &CartView,
    addresses: &[Address],
    shown: Shown,
) -> axum::response::Response {
    // A new key for every page shown: what was refused placed nothing, and the
    // form sent again after a change is a new attempt.
    let key = uuid::Uuid::new_v4().to_string();
    render_with(
        app,
        viewer,
        status,
        "storefront/checkout.html",
        context! {
            cart => Value::from_serialize(cart),
            addresses => Value::from_serialize(addresses),
            selected => shown.selected,
            form => Value::from_serialize(&shown.typed),
            key,
            problem => shown.problem.as_ref().map(Value::from_serialize),
            short => Value::from_serialize(&shown.short),
        },
    )
}

#[derive(Deserialize)]
struct CheckoutForm {
    #[serde(default)]
    idempotency_key: String,
    /// An address id, or `new`.
    #[serde(default)]
    address_id: String,
    #[serde(flatten)]
    address: AddressFields,
}

/// Why the form comes back, before or after the library was asked.
enum Refusal {
    /// Shown again with this problem (and these short items).
    Again(Problem, Vec<ShortItem>),
    /// The key already placed a checkout, for another address: this form was
    /// sent before, and what it placed is in the orders.
    AlreadySent,
    /// The page's own answer.
    Page(crate::page::PageError),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        match e {
            e if e.code() == IDEMPOTENCY_KEY_REUSED => Refusal::AlreadySent,
            Error::InsufficientStock(items) => {
                let problem = Problem::new(
                    StatusCode::CONFLICT,
                    "Some products are no longer in stock",
                    "Nothing was ordered and your cart is unchanged. Lower the quantities in your cart, or remove these products, then place the order again.",
                );
                Refusal::Again(problem, items)
            }
            e => match form_problem(&e, Fixable::OnTheForm) {
                Ok(problem) => Refusal::Again(problem, Vec::new()),
                Err(page) => Refusal::Page(page),
            },
        }
    }
}

/// `POST /checkout`.
async fn place(
    State(app): State<App>,
    viewer: Viewer,
    who: SignedIn,
    Form(f): Form<CheckoutForm>,
) -> PageResult {
    let mut selected = f.address_id.trim().to_owned();
    let outcome = checkout(&app, &who, &f, &mut selected).await;
    let (problem, items) = match outcome {
        Ok(done) => {
            let n = done.orders.len();
            let message = if done.replayed {
                "This order was already placed; here it is.".to_owned()
            } else if n == 1 {
                "Thank you! Your order is placed.".to_owned()
            } else {
                format!("Thank you! Your order is placed: {n} orders, one per seller.")
            };
            let to = with_query("/orders", &[("placed", &done.checkout_id.to_string())]);
            return Ok(SeeOther::to(to).flash(message).into_response());
        }
        Err(Refusal::Page(page)) => return Err(page),
        Err(Refusal::AlreadySent) => {
            return Ok(SeeOther::to("/orders")
                .flash("This checkout form was already sent; your orders are below.")
                .into_response());
        }
        Err(Refusal::Again(p, items)) => (p, items),
    };
    // Shown again, with the cart and addresses as they are now.
    let cart = app.market.cart(&who.principal).await?;
    let addresses = app.market.addresses(&who.principal).await?;
    let title = |id| {
        cart.sellers
            .iter()
            .flat_map(|g| &g.items)
            .find(|l| l.product_id == id)
            .map_or_else(
                || "a product that is no longer listed".to_owned(),
                |l| l.title.clone(),
            )
    };
    let short = items
        .iter()
        .map(|i| Short {
            title: title(i.product_id),
            requested: i.requested,
            available: i.available,
        })
        .collect();
    let status = problem.status;
    Ok(show(
        &app,
        &viewer,
        status,
        &cart,
        &addresses,
        Shown {
            selected,
            typed: f.address,
            problem: Some(problem),
            short,
        },
    ))
}

/// Adds the new address if one is typed, then checks out; `selected` becomes
/// the address the checkout used.
async fn checkout(
    app: &App,
    who: &SignedIn,
    f: &CheckoutForm,
    selected: &mut String,
) -> Result<marketplace_core::Checkout, Refusal> {
    let market = &app.market;
    let key = IdempotencyKey::parse(f.idempotency_key.trim())
        .map_err(|e| Refusal::from(Error::Validation(vec![e])))?;
    let address_id = if selected.is_empty() || selected == NEW {
        let existing = market
            .addresses(&who.principal)
            .await?
            .into_iter()
            .find(|a| f.address.matches(a));
        let address = match existing {
            Some(a) => a,
            None => {
                market
                    .add_address(&who.principal, f.address.input())
                    .await?
            }
        };
        *selected = address.id.to_string();
        address.id
    } else {
        selected.parse::<AddressId>().map_err(|_| {
            Refusal::from(Error::Validation(vec![FieldError::new(
                "address_id",
                "unknown",
                "choose one of your delivery addresses",
            )]))
        })?
    };
    let request = CheckoutRequest {
        address_id: Some(address_id),
    };
    Ok(market.checkout(&who.principal, &key, request).await?)
}
