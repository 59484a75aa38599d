//! The REST surface under `/api/v1`, one module per area. Each module holds its
//! request models, its handlers (annotated for the OpenAPI document) and a
//! `routes` function with the warp filters.

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::App;

pub mod accounts;
pub mod admin;
pub mod catalog;
pub mod commission;
pub mod ledger;
pub mod ops;
pub mod orders;
pub mod pages;
pub mod payments;
pub mod payouts;
pub mod shopping;

/// Tries each route in turn; boxing each keeps the filter types small.
#[macro_export]
#[doc(hidden)]
macro_rules! any_of {
    ($first:expr $(, $rest:expr)* $(,)?) => {{
        let f = $first.boxed();
        $( let f = f.or($rest).unify().boxed(); )*
        f
    }};
}

/// Every route of the API, under `/api/v1`, without error recovery.
pub fn api(app: App) -> BoxedFilter<(Response,)> {
    let v1 = crate::any_of!(
        accounts::routes(app.clone()),
        catalog::routes(app.clone()),
        shopping::routes(app.clone()),
        orders::routes(app.clone()),
        admin::routes(app.clone()),
        commission::routes(app.clone()),
        ledger::routes(app.clone()),
        payouts::routes(app.clone()),
        payments::routes(app.clone()),
    );
    warp::path("api").and(warp::path("v1")).and(v1).boxed()
}

/// The whole server: the API, operations endpoints, media and the account pages
/// mails link to, with every
/// rejection turned into a problem document.
pub fn all(
    app: App,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let routes = crate::any_of!(
        api(app.clone()),
        ops::routes(app.clone()),
        pages::routes(app)
    );
    routes.recover(crate::problem::recover).unify()
}

/// A handler result.
pub type Reply = Result<Response, Rejection>;
