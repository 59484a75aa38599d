//! The seller ledger: a seller's balance, entries and statements (JSON and CSV),
//! and for admins every balance and the commission report.

use chrono::{DateTime, Utc};
use marketplace_core::ledger::{Granularity, LedgerListQuery, ReportQuery, instant};
use marketplace_core::{
    Balance, CommissionReport, LedgerEntry, Page, Period, Principal, Statement,
};
use serde::Deserialize;
use utoipa::IntoParams;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::extract::{App, caller, ok, query};
use crate::problem::reject;

/// Ledger page parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Page size, 1..=100 (default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// A span of time, `[from, to)`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeriodParams {
    /// The first instant (RFC 3339) included, or a day (`2026-11-01`, from
    /// midnight UTC); the ledger's beginning when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-01T00:00:00Z")]
    pub from: Option<DateTime<Utc>>,
    /// The first instant or day no longer included; now when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub to: Option<DateTime<Utc>>,
}

impl From<PeriodParams> for Period {
    fn from(p: PeriodParams) -> Period {
        Period {
            from: p.from,
            to: p.to,
        }
    }
}

/// Commission report parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// The first instant (RFC 3339) included, or a day (`2026-11-01`, from
    /// midnight UTC); the ledger's beginning when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-01T00:00:00Z")]
    pub from: Option<DateTime<Utc>>,
    /// The first instant or day no longer included; now when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    #[param(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    pub to: Option<DateTime<Utc>>,
    /// Buckets of calendar days or months, UTC (default `month`).
    #[param(inline)]
    pub by: Option<Granularity>,
}

/// The seller's balance: what is held in return windows and what a payout may
/// take.
#[utoipa::path(get, path = "/api/v1/seller/balance", tag = "money", security(("bearer" = [])),
    responses((status = 200, description = "the balance (zero before the first sale)", body = Balance)))]
pub async fn balance(app: App, who: Principal) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .seller_balance(&who)
        .await
        .map_err(reject)?))
}

/// The seller's ledger entries, newest first.
#[utoipa::path(get, path = "/api/v1/seller/ledger", tag = "money", security(("bearer" = [])), params(LedgerParams),
    responses((status = 200, description = "a page of entries", body = Page<LedgerEntry>)))]
pub async fn ledger(app: App, who: Principal, p: LedgerParams) -> Result<Response, Rejection> {
    let page = LedgerListQuery {
        limit: p.limit,
        cursor: p.cursor,
    };
    Ok(ok(&app
        .market
        .seller_ledger(&who, page)
        .await
        .map_err(reject)?))
}

/// The seller's statement for a period: the entries oldest first, with the
/// balance before and after.
#[utoipa::path(get, path = "/api/v1/seller/statement", tag = "money", security(("bearer" = [])), params(PeriodParams),
    responses((status = 200, description = "the statement", body = Statement),
              (status = 422, description = "`from` is after `to`", body = crate::problem::Problem)))]
pub async fn statement(app: App, who: Principal, p: PeriodParams) -> Result<Response, Rejection> {
    Ok(ok(&app
        .market
        .seller_statement(&who, p.into())
        .await
        .map_err(reject)?))
}

/// The same statement as a CSV download: a header row, then one row per entry
/// with the balance after it, amounts as decimals of the currency.
#[utoipa::path(get, path = "/api/v1/seller/statement.csv", tag = "money", security(("bearer" = [])), params(PeriodParams),
    responses((status = 200, description = "the statement as CSV", content_type = "text/csv", body = String,
                headers(("content-disposition" = String, description = "`attachment; filename=\"statement-<from>-<to>.csv\"`, with the period's days (`start` for an open beginning)"))),
              (status = 422, description = "`from` is after `to`", body = crate::problem::Problem)))]
pub async fn statement_csv(
    app: App,
    who: Principal,
    p: PeriodParams,
) -> Result<Response, Rejection> {
    let s = app
        .market
        .seller_statement(&who, p.into())
        .await
        .map_err(reject)?;
    let from = s
        .from
        .map_or_else(|| "start".to_owned(), |f| f.format("%Y-%m-%d").to_string());
    let to = s.to.format("%Y-%m-%d");
    let mut res = Response::new(s.to_csv().into());
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    // Dates only: the value is plain ASCII.
    if let Ok(v) = http::HeaderValue::from_str(&format!(
        "attachment; filename=\"statement-{from}-{to}.csv\""
    )) {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Every seller's balance, largest available first.
#[utoipa::path(get, path = "/api/v1/admin/balances", tag = "money", security(("bearer" = [])),
    responses((status = 200, description = "every balance (one page: `next_cursor` is null)", body = Page<Balance>)))]
pub async fn balances(app: App, who: Principal) -> Result<Response, Rejection> {
    let items = app.market.seller_balances(&who).await.map_err(reject)?;
    Ok(ok(&Page {
        items,
        next_cursor: None,
    }))
}

/// The commission earned per period and seller: commission on deliveries minus
/// commission given back on returns, with totals per currency.
#[utoipa::path(get, path = "/api/v1/admin/reports/commission", tag = "money", security(("bearer" = [])), params(ReportParams),
    responses((status = 200, description = "the report", body = CommissionReport),
              (status = 422, description = "`from` is after `to`", body = crate::problem::Problem)))]
pub async fn commission_report(
    app: App,
    who: Principal,
    p: ReportParams,
) -> Result<Response, Rejection> {
    let q = ReportQuery {
        period: Period {
            from: p.from,
            to: p.to,
        },
        by: p.by.unwrap_or_default(),
    };
    Ok(ok(&app
        .market
        .commission_report(&who, q)
        .await
        .map_err(reject)?))
}

/// The routes of this module.
pub fn routes(a: App) -> BoxedFilter<(Response,)> {
    let authed = || crate::extract::app(a.clone()).and(caller(a.clone()));
    let r1 = warp::path!("seller" / "balance")
        .and(warp::get())
        .and(authed())
        .and_then(balance);
    let r2 = warp::path!("seller" / "ledger")
        .and(warp::get())
        .and(authed())
        .and(query::<LedgerParams>())
        .and_then(ledger);
    let r3 = warp::path!("seller" / "statement")
        .and(warp::get())
        .and(authed())
        .and(query::<PeriodParams>())
        .and_then(statement);
    let r4 = warp::path!("seller" / "statement.csv")
        .and(warp::get())
        .and(authed())
        .and(query::<PeriodParams>())
        .and_then(statement_csv);
    let r5 = warp::path!("admin" / "balances")
        .and(warp::get())
        .and(authed())
        .and_then(balances);
    let r6 = warp::path!("admin" / "reports" / "commission")
        .and(warp::get())
        .and(authed())
        .and(query::<ReportParams>())
        .and_then(commission_report);
    crate::any_of!(r1, r2, r3, r4, r5, r6)
}
