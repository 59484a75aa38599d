//! Payouts: every seller's balance with a button to pay it out, a run that
//! pays out every seller due a payout, and the payouts themselves (by status
//! and seller), where an open one is marked paid, with the transfer's
//! reference, or failed, with the reason.
//!
//! A payout takes the seller's whole available balance in one atomic step of
//! the library; pressing a button twice never pays twice (the second finds the
//! balance taken), and a payout settled meanwhile is refused, not settled
//! again.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{Error, Money, PayoutId, PayoutStatus, UserId};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::{Back, names, stores};
use crate::App;
use crate::page::{
    Fixable, Form, PageError, PageResult, Problem, Query, SeeOther, form_problem, path_id,
    render_with, status_param,
};
use crate::session::{SignedIn, Viewer};

/// The payout pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/payouts", get(list))
        .route("/admin/payouts/run", post(run))
        .route("/admin/payouts/sellers/{id}", post(pay_seller))
        .route("/admin/payouts/{id}/paid", post(paid))
        .route("/admin/payouts/{id}/failed", post(failed))
}

/// The list's filters and cursor: `?status=…&seller=…&cursor=…`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct PayoutsQuery {
    /// A payout status; blank is every status.
    status: String,
    /// A seller's id; blank is every seller.
    seller: String,
    /// Where the page starts.
    #[serde(skip_serializing)]
    cursor: Option<String>,
}

/// A refused action, shown on the page: on the row of `payout` when it is one.
struct Refusal {
    problem: Problem,
    payout: Option<PayoutId>,
}

/// The payouts page for `q`, with what an action came back with.
async fn payouts_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    q: &PayoutsQuery,
    refusal: Option<Refusal>,
) -> PageResult {
    let who = &s.principal;
    let status = status_param(&q.status, PayoutStatus::parse, "a payout status")?;
    let seller = match q.seller.trim() {
        "" => None,
        raw => Some(raw.parse::<UserId>().map_err(|_| {
            PageError::from(Error::invalid(
                "seller",
                "invalid",
                "choose a seller from the list",
            ))
        })?),
    };
    let cursor = q.cursor.clone().filter(|c| !c.is_empty());
    let page = app
        .market
        .payouts(
            who,
            PayoutListQuery {
                limit: None,
                cursor: cursor.clone(),
                status,
                seller_id: seller,
            },
        )
        .await?;
    let balances = app.market.seller_balances(who).await?;
    let stores = stores(app, who).await?;
    let config = app.market.config();
    let minimum = Money::new(config.money.minimum_payout.max(1), config.currency);
    let statuses: Vec<&str> = PayoutStatus::ALL.iter().map(|s| s.as_str()).collect();
    let code = refusal
        .as_ref()
        .map_or(StatusCode::OK, |r| r.problem.status);
    let filters = PayoutsQuery {
        status: status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        seller: seller.map(|s| s.to_string()).unwrap_or_default(),
        cursor: None,
    };
    Ok(render_with(
        app,
        viewer,
        code,
        "admin/payouts.html",
        context! {
            section => "payouts",
            balances => Value::from_serialize(&balances),
            payouts => Value::from_serialize(&page.items),
            names => Value::from_serialize(names(&stores)),
            stores => Value::from_serialize(&stores),
            minimum => Value::from_serialize(minimum),
            statuses,
            status => status.map(|s| s.as_str()),
            seller => filters.seller.clone(),
            filters => Value::from_serialize(&filters),
            next_cursor => page.next_cursor,
            paged => cursor.is_some(),
            problem => refusal.as_ref().map(|r| Value::from_serialize(&r.problem)),
            problem_payout => refusal.and_then(|r| r.payout).map(|p| p.to_string()),
        },
    ))
}

/// `/admin/payouts?status=…&seller=…`: balances, then payouts newest first.
async fn list(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<PayoutsQuery>,
) -> PageResult {
    payouts_page(&app, &viewer, &s, &q, None).await
}

/// The page a refused action shows: the whole list, the problem on top (and on
/// the payout's row, when it is one).
async fn refused(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    e: &Error,
    payout: Option<PayoutId>,
) -> PageResult {
    let problem = form_problem(e, Fixable::AllButOurs)?;
    let refusal = Refusal { problem, payout };
    payouts_page(app, viewer, s, &PayoutsQuery::default(), Some(refusal)).await
}

/// Pays out every seller due a payout.
async fn run(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(back): Form<Back>,
) -> PageResult {
    let made = match app.market.run_payouts(&s.principal).await {
        Ok(made) => made,
        Err(e) => return refused(&app, &viewer, &s, &e, None).await,
    };
    let message = match made.as_slice() {
        [] => "No seller is due a payout: none has the minimum payout available.".to_owned(),
        [p] => format!("1 payout is made, of {}.", p.amount),
        all => {
            let total: i64 = all.iter().map(|p| p.amount.amount).sum();
            let currency = app.market.config().currency;
            format!(
                "{} payouts are made, {} in all.",
                all.len(),
                Money::new(total, currency)
            )
        }
    };
    Ok(SeeOther::to(back.to("/admin/payouts"))
        .flash(message)
        .into_response())
}

/// Pays out one seller's available balance.
async fn pay_seller(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(back): Form<Back>,
) -> PageResult {
    let seller: UserId = path_id(&id, "seller")?;
    let message = match app.market.pay_out_seller(&s.principal, seller).await {
        Ok(Some(p)) => format!(
            "A payout of {} is made; it is {}.",
            p.amount,
            p.status.as_str()
        ),
        Ok(None) => {
            "Nothing is paid out: the seller's available balance is below the minimum payout."
                .to_owned()
        }
        Err(e) => return refused(&app, &viewer, &s, &e, None).await,
    };
    Ok(SeeOther::to(back.to("/admin/payouts"))
        .flash(message)
        .into_response())
}

/// The note a settling form sends: the transfer's reference, or why it failed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Note {
    reference: String,
    reason: String,
    next: Option<String>,
}

impl Note {
    fn back(&self) -> &str {
        crate::page::local_path(self.next.as_deref(), "/admin/payouts")
    }
}

async fn paid(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<Note>,
) -> PageResult {
    let id: PayoutId = path_id(&id, "payout")?;
    match app
        .market
        .mark_payout_paid(&s.principal, id, &f.reference)
        .await
    {
        Ok(p) => Ok(SeeOther::to(f.back())
            .flash(format!(
                "The payout of {} is marked paid; the seller is told by mail.",
                p.amount
            ))
            .into_response()),
        Err(e) => refused(&app, &viewer, &s, &e, Some(id)).await,
    }
}

async fn failed(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<Note>,
) -> PageResult {
    let id: PayoutId = path_id(&id, "payout")?;
    match app
        .market
        .mark_payout_failed(&s.principal, id, &f.reason)
        .await
    {
        Ok(p) => Ok(SeeOther::to(f.back())
            .flash(format!(
                "The payout of {} is marked failed; its amount is available to the seller again.",
                p.amount
            ))
            .into_response()),
        Err(e) => refused(&app, &viewer, &s, &e, Some(id)).await,
    }
}

#[cfg(test)]
mod tests {
    use minijinja::{Environment, context};

    #[test]
    fn the_pager_keeps_both_filters() {
        let mut env = Environment::new();
        for (name, source) in crate::page::TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        env.add_template(
            "t",
            r#"{% import "macros.html" as m %}{{ m.pager("/admin/payouts", true, "a/b", query=filters) }}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let html = env
            .get_template("t")
            .and_then(|t| {
                t.render(context! { filters => context! { status => "paid", seller => "s 1" } })
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("First page"), "{html}");
        assert!(
            html.contains("&#x2f;admin&#x2f;payouts?status=paid&amp;seller=s%201&amp;cursor=a/b"),
            "{html}"
        );
    }
}
