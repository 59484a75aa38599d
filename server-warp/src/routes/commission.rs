//! Commission rules (admins): the marketplace default, one per category, one per
//! seller. The most specific applies to an order line; each order keeps the
//! commission it was placed with.

use marketplace_core::{
    CategoryId, CommissionRule, CommissionTerms, Page, Principal, RuleScope, UserId,
};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, json, no_content, ok};
use crate::problem::reject;

/// Every commission rule: the default first, then categories, then sellers.
#[utoipa::path(get, path = "/api/v1/admin/commission-rules", tag = "money", security(("bearer" = [])),
    responses((status = 200, description = "every rule (one page: `next_cursor` is null)", body = Page<CommissionRule>)))]
pub async fn rules(app: App, who: Principal) -> Result<Response, Rejection> {
    let items = app.market.commission_rules(&who).await.map_err(reject)?;
    Ok(ok(&Page {
        items,
        next_cursor: None,
    }))
}

async fn put(
    app: App,
    who: Principal,
    scope: RuleScope,
    terms: CommissionTerms,
) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .set_commission_rule(&who, scope, terms)
        .await
        .map_err(reject)?))
}

async fn remove(app: App, who: Principal, scope: RuleScope) -> Result<Response, Rejection> {
    app.market
        .remove_commission_rule(&who, scope)
        .await
        .map_err(reject)?;
    Ok(no_content())
}

/// Sets the marketplace default: it covers every order line no category or
/// seller rule covers.
#[utoipa::path(put, path = "/api/v1/admin/commission-rules/default", tag = "money", security(("bearer" = [])), request_body = CommissionTerms,
    responses((status = 200, description = "the rule", body = CommissionRule)))]
pub async fn set_default(
    app: App,
    who: Principal,
    terms: CommissionTerms,
) -> Result<Response, Rejection> {
    put(app, who, RuleScope::Default, terms).await
}

/// Removes the marketplace default; lines no other rule covers pay no commission.
#[utoipa::path(delete, path = "/api/v1/admin/commission-rules/default", tag = "money", security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = 404, description = "there is no default rule", body = crate::problem::Problem)))]
pub async fn remove_default(app: App, who: Principal) -> Result<Response, Rejection> {
    remove(app, who, RuleScope::Default).await
}

/// Sets the rule of a category: it covers the lines of its products, unless
/// their seller has a rule.
#[utoipa::path(put, path = "/api/v1/admin/commission-rules/categories/{id}", tag = "money", security(("bearer" = [])), request_body = CommissionTerms,
    params(("id" = String, Path, description = "category id")),
    responses((status = 200, description = "the rule", body = CommissionRule)))]
pub async fn set_category(
    id: CategoryId,
    app: App,
    who: Principal,
    terms: CommissionTerms,
) -> Result<Response, Rejection> {
    put(app, who, RuleScope::Category { category_id: id }, terms).await
}

/// Removes the rule of a category; its lines fall back to the default.
#[utoipa::path(delete, path = "/api/v1/admin/commission-rules/categories/{id}", tag = "money", security(("bearer" = [])),
    params(("id" = String, Path, description = "category id")),
    responses((status = 204, description = "removed")))]
pub async fn remove_category(
    id: CategoryId,
    app: App,
    who: Principal,
) -> Result<Response, Rejection> {
    remove(app, who, RuleScope::Category { category_id: id }).await
}

/// Sets the rule of a seller: it covers every line of the seller's orders.
#[utoipa::path(put, path = "/api/v1/admin/commission-rules/sellers/{id}", tag = "money", security(("bearer" = [])), request_body = CommissionTerms,
    params(("id" = String, Path, description = "seller's user id")),
    responses((status = 200, description = "the rule", body = CommissionRule)))]
pub async fn set_seller(
    id: UserId,
    app: App,
    who: Principal,
    terms: CommissionTerms,
) -> Result<Response, Rejection> {
    put(app, who, RuleScope::Seller { seller_id: id }, terms).await
}

/// Removes the rule of a seller; its lines fall back to their category's rule
/// or the default.
#[utoipa::path(delete, path = "/api/v1/admin/commission-rules/sellers/{id}", tag = "money", security(("bearer" = [])),
    params(("id" = String, Path, description = "seller's user id")),
    responses((status = 204, description = "removed")))]
pub async fn remove_seller(id: UserId, app: App, who: Principal) -> Result<Response, Rejection> {
    remove(app, who, RuleScope::Seller { seller_id: id }).await
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let limit = a.max_body;
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("admin" / "commission-rules")
        .and(warp::get())
        .and(authed())
        .and_then(rules);
    let r2 = warp::path!("admin" / "commission-rules" / "default")
        .and(warp::put())
        .and(authed())
        .and(json(limit))
        .and_then(set_default);
    let r3 = warp::path!("admin" / "commission-rules" / "default")
        .and(warp::delete())
        .and(authed())
        .and_then(remove_default);
    let r4 = warp::path!("admin" / "commission-rules" / "categories" / CategoryId)
        .and(warp::put())
        .and(authed())
        .and(json(limit))
        .and_then(set_category);
    let r5 = warp::path!("admin" / "commission-rules" / "categories" / CategoryId)
        .and(warp::delete())
        .and(authed())
        .and_then(remove_category);
    let r6 = warp::path!("admin" / "commission-rules" / "sellers" / UserId)
        .and(warp::put())
        .and(authed())
        .and(json(limit))
        .and_then(set_seller);
    let r7 = warp::path!("admin" / "commission-rules" / "sellers" / UserId)
        .and(warp::delete())
        .and(authed())
        .and_then(remove_seller);
    crate::any_of!(r1, r2, r3, r4, r5, r6, r7)
}
