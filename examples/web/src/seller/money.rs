//! The store's money: its balance (held while return windows are open,
//! available for a payout), the ledger that adds up to it, a statement of any
//! days to download as CSV, and the payouts the marketplace made.
//!
//! Every figure is the library's: the page shows the ledger's entries as they
//! are written, and the statement file is [`Statement::to_csv`] as it comes.
//!
//! [`Statement::to_csv`]: marketplace_core::Statement::to_csv

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Duration;
use marketplace_core::ledger::LedgerListQuery;
use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{EntryKind, Money, PayoutStatus};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::App;
use crate::money::Days;
use crate::page::{
    Fixable, PageResult, Problem, Query, StatusQuery, form_problem, render, render_with,
    status_param,
};
use crate::session::{SignedIn, Viewer};

/// The money pages. `/seller/payouts` is where the payout-paid mail links.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/seller/money", get(money))
        .route("/seller/money/statement", get(statement))
        .route("/seller/payouts", get(payouts))
}

/// Ledger entries on one page of the money page.
const LEDGER_PAGE: u32 = 50;

/// What an entry records, in words.
fn kind_words(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Earning => "Sale delivered: earning held",
        EntryKind::Release => "Return window closed: earning available",
        EntryKind::Reversal => "Return completed: earning given back",
        EntryKind::Payout => "Paid out",
        EntryKind::PayoutFailed => "Payout failed: funds available again",
    }
}

/// How long a return window is, in words: `14 days`, `36 hours`, `10 seconds`.
fn window_words(d: Duration) -> String {
    let (n, unit) = if d.num_days() > 0 && d == Duration::days(d.num_days()) {
        (d.num_days(), "day")
    } else if d.num_hours() > 0 && d == Duration::hours(d.num_hours()) {
        (d.num_hours(), "hour")
    } else if d.num_minutes() > 0 && d == Duration::minutes(d.num_minutes()) {
        (d.num_minutes(), "minute")
    } else {
        (d.num_seconds(), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[derive(Debug, Default, Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

/// The money page, its statement form showing `days` and the problem it came
/// back with.
async fn money_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    cursor: Option<String>,
    days: &Days,
    problem: Option<Problem>,
) -> PageResult {
    let who = &s.principal;
    let balance = app.market.seller_balance(who).await?;
    let page = app
        .market
        .seller_ledger(
            who,
            LedgerListQuery {
                limit: Some(LEDGER_PAGE),
                cursor: cursor.clone(),
            },
        )
        .await?;
    let kinds: std::collections::BTreeMap<&str, &str> = EntryKind::ALL
        .iter()
        .map(|k| (k.as_str(), kind_words(*k)))
        .collect();
    let config = app.market.config();
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "seller/money.html",
        context! {
            section => "money",
            balance => Value::from_serialize(&balance),
            entries => Value::from_serialize(&page.items),
            kinds,
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
            window => window_words(config.money.return_window),
            minimum_payout => Value::from_serialize(Money::new(config.money.minimum_payout.max(1), config.currency)),
            days => Value::from_serialize(days),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

/// `/seller/money`: the balance and the ledger, newest entry first.
async fn money(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<CursorQuery>,
) -> PageResult {
    let cursor = q.cursor.filter(|c| !c.is_empty());
    money_page(&app, &viewer, &s, cursor, &Days::default(), None).await
}

/// `/seller/money/statement?from=…&to=…`: the statement of those days (both
/// included; blank is from the first entry, or up to now) as a CSV file. Days
/// that cannot be read send the money page back with the problem.
async fn statement(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(days): Query<Days>,
) -> PageResult {
    let made = match days.period() {
        Ok(period) => app.market.seller_statement(&s.principal, period).await,
        Err(e) => Err(e),
    };
    let statement = match made {
        Ok(statement) => statement,
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            return money_page(&app, &viewer, &s, None, &days, Some(problem)).await;
        }
    };
    // The file is named by the days it covers: the first (or `start`) and the
    // last, the end being the first instant no longer included.
    let first = statement
        .from
        .map_or_else(|| "start".to_owned(), |t| t.format("%Y-%m-%d").to_string());
    let last = statement.to - Duration::milliseconds(1);
    let name = format!("statement-{first}-to-{}.csv", last.format("%Y-%m-%d"));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        statement.to_csv(),
    )
        .into_response())
}

/// `/seller/payouts?status=…`: the store's payouts, newest first.
async fn payouts(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<StatusQuery>,
) -> PageResult {
    let status = status_param(&q.status, PayoutStatus::parse, "a payout status")?;
    let cursor = q.cursor();
    let page = app
        .market
        .seller_payouts(
            &s.principal,
            PayoutListQuery {
                limit: None,
                cursor: cursor.clone(),
                status,
                seller_id: None,
            },
        )
        .await?;
    let balance = app.market.seller_balance(&s.principal).await?;
    let statuses: Vec<&str> = PayoutStatus::ALL.iter().map(|s| s.as_str()).collect();
    Ok(render(
        &app,
        &viewer,
        "seller/payouts.html",
        context! {
            section => "payouts",
            payouts => Value::from_serialize(&page.items),
            balance => Value::from_serialize(&balance),
            statuses,
            status => status.map(|s| s.as_str()),
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_window_reads_in_its_own_unit() {
        assert_eq!(window_words(Duration::days(14)), "14 days");
        assert_eq!(window_words(Duration::hours(36)), "36 hours");
        assert_eq!(window_words(Duration::days(1)), "1 day");
        assert_eq!(window_words(Duration::seconds(90)), "90 seconds");
        assert_eq!(window_words(Duration::zero()), "0 seconds");
    }
}
