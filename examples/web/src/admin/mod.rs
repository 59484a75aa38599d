//! The admin dashboard: moderation of sellers, accounts and products, the
//! categories, and mail delivery.
//!
//! - [`accounts`]: sellers to verify or reject, accounts found by email,
//!   deactivation and reactivation;
//! - [`catalog`]: the catalog with a deactivate button per product (and
//!   reactivation by id), and the categories;
//! - [`outbox`]: mail delivery state and the retry of dead messages;
//! - [`commission`]: the commission rules (the default, per category, per
//!   seller), set and removed;
//! - [`payments`]: buyers' payments by status, one payment with its refunds,
//!   and marking a manual payment paid;
//! - [`payouts`]: seller balances, payout runs, and marking open payouts paid
//!   or failed;
//! - [`reports`]: the commission earned per period and seller.
//!
//! Every page is for admins only, and every change is the library's call
//! that the REST API makes for the same thing.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use marketplace_core::payment::PaymentListQuery;
use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{
    Error, OutboxStatus, PaymentStatus, PayoutStatus, Principal, Role, SellerListQuery,
    SellerStatus,
};
use minijinja::context;
use serde::Serialize;

use crate::App;
use crate::page::{self, PageResult, render};
use crate::session::{SignedIn, Viewer};

pub mod accounts;
pub mod catalog;
pub mod commission;
pub mod outbox;
pub mod payments;
pub mod payouts;
pub mod reports;

/// The page an action's form came from, to go back to.
#[derive(Debug, Default, serde::Deserialize)]
struct Back {
    next: Option<String>,
}

impl Back {
    /// Where to go after the action: the page it came from, or `fallback`.
    fn to<'a>(&'a self, fallback: &'a str) -> &'a str {
        page::local_path(self.next.as_deref(), fallback)
    }
}

/// The admin dashboard's templates.
pub const TEMPLATES: &[(&str, &str)] = templates![
    "admin": "layout", "home", "sellers", "users", "products", "categories", "outbox",
    "commission", "payments", "payment", "payouts", "reports",
];

/// Counts on the overview stop here ("1000+").
const TALLY_CAP: usize = 1000;

/// The admin dashboard's pages, for admins only.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin", get(home))
        .merge(accounts::routes())
        .merge(catalog::routes())
        .merge(outbox::routes())
        .merge(commission::routes())
        .merge(payments::routes())
        .merge(payouts::routes())
        .merge(reports::routes())
        .route_layer(axum::middleware::from_fn(admins_only))
}

/// Sends anyone who is not signed in as an admin away (to sign in, or with a
/// 403 page) before an admin page runs.
async fn admins_only(viewer: Viewer, req: Request, next: Next) -> Response {
    match page::require_role(&viewer, Role::Admin) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// `/admin`: what waits for an admin.
async fn home(State(app): State<App>, viewer: Viewer, s: SignedIn) -> PageResult {
    let who = &s.principal;
    let market = &app.market;
    let pending_sellers = page::tally(TALLY_CAP, |cursor, limit| {
        let query = SellerListQuery {
            status: Some(SellerStatus::Pending),
            cursor,
            limit: Some(limit),
        };
        market.sellers(who, query)
    })
    .await?;
    let dead_messages = page::tally(TALLY_CAP, |cursor, limit| async move {
        market
            .outbox(
                who,
                Some(OutboxStatus::Dead),
                cursor.as_deref(),
                Some(limit),
            )
            .await
    })
    .await?;
    let open_payouts = |status| {
        page::tally(TALLY_CAP, move |cursor, limit| {
            let query = PayoutListQuery {
                limit: Some(limit),
                cursor,
                status: Some(status),
                seller_id: None,
            };
            market.payouts(who, query)
        })
    };
    let awaiting_payments = page::tally(TALLY_CAP, |cursor, limit| {
        let query = PaymentListQuery {
            limit: Some(limit),
            cursor,
            status: Some(PaymentStatus::AwaitingPayment),
        };
        market.payments(who, query)
    })
    .await?;
    let requested_payouts = open_payouts(PayoutStatus::Requested).await?;
    let unresolved_payouts = open_payouts(PayoutStatus::Unresolved).await?;
    Ok(render(
        &app,
        &viewer,
        "admin/home.html",
        context! {
            section => "home",
            pending_sellers,
            dead_messages,
            awaiting_payments,
            requested_payouts,
            unresolved_payouts,
        },
    ))
}

/// A store, as the money pages name a seller.
#[derive(Clone, Debug, Serialize)]
struct Store {
    /// The seller's id.
    id: String,
    /// The store's name.
    name: String,
}

/// Every store, by name, for the money pages' seller pickers and names.
/// Read a page of 100 at a time; a marketplace's sellers are a short list
/// beside its orders.
async fn stores(app: &App, who: &Principal) -> Result<Vec<Store>, Error> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = app
            .market
            .sellers(
                who,
                SellerListQuery {
                    status: None,
                    cursor: cursor.take(),
                    limit: Some(100),
                },
            )
            .await?;
        all.extend(page.items.into_iter().map(|s| Store {
            id: s.id.to_string(),
            name: s.store_name,
        }));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    all.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
    Ok(all)
}

/// Store names by seller id, for a template to look up (`names[p.seller_id]`).
fn names(stores: &[Store]) -> std::collections::BTreeMap<&str, &str> {
    stores
        .iter()
        .map(|s| (s.id.as_str(), s.name.as_str()))
        .collect()
}
