//! Reports: the commission the marketplace earned per period (month or day)
//! and seller over any days, with the totals, from the sellers' ledgers
//! (commission on deliveries less the commission given back on returns).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use marketplace_core::Error;
use marketplace_core::ledger::{Granularity, ReportQuery};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::App;
use crate::money::Days;
use crate::page::{Fixable, PageResult, Query, form_problem, render_with};
use crate::session::{SignedIn, Viewer};

/// The report pages.
pub fn routes() -> Router<App> {
    Router::new().route("/admin/reports", get(report))
}

/// The report's form as typed: the first and last day (both included, blank
/// for the start of the ledger or now) and `month` or `day` buckets.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct ReportForm {
    from: String,
    to: String,
    by: String,
}

impl ReportForm {
    /// The library's query, or a problem on every field that cannot be read.
    fn read(&self) -> Result<ReportQuery, Error> {
        let days = Days {
            from: self.from.clone(),
            to: self.to.clone(),
        };
        let by = match self.by.trim() {
            "" | "month" => Some(Granularity::Month),
            "day" => Some(Granularity::Day),
            _ => None,
        };
        match (days.period(), by) {
            (Ok(period), Some(by)) => Ok(ReportQuery { period, by }),
            (period, by) => {
                let mut problems = period
                    .err()
                    .map_or_else(Vec::new, |e| e.field_errors().to_vec());
                if by.is_none() {
                    problems.push(marketplace_core::FieldError::new(
                        "by",
                        "invalid",
                        "choose per month or per day",
                    ));
                }
                Err(Error::Validation(problems))
            }
        }
    }
}

/// `/admin/reports?from=…&to=…&by=month|day`: commission per period and
/// seller, the whole ledger when no days are given. Days that cannot be read
/// are shown on the form, with no report.
async fn report(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(f): Query<ReportForm>,
) -> PageResult {
    let made = match f.read() {
        Ok(query) => app.market.commission_report(&s.principal, query).await,
        Err(e) => Err(e),
    };
    let (report, problem) = match made {
        Ok(report) => (Some(report), None),
        Err(e) => (None, Some(form_problem(&e, Fixable::AllButOurs)?)),
    };
    let status = problem.as_ref().map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        &app,
        &viewer,
        status,
        "admin/reports.html",
        context! {
            section => "reports",
            form => Value::from_serialize(&f),
            by => if f.by.trim() == "day" { "day" } else { "month" },
            report => report.as_ref().map(Value::from_serialize),
            problem => problem.as_ref().map(Value::from_serialize),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_days_and_buckets() {
        let f = ReportForm {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            by: "day".into(),
        };
        let q = f.read().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.by, Granularity::Day);
        assert!(q.period.from.is_some() && q.period.to.is_some());
        assert_eq!(
            ReportForm::default().read().map(|q| q.by).ok(),
            Some(Granularity::Month)
        );
        let bad = ReportForm {
            from: "November".into(),
            to: String::new(),
            by: "year".into(),
        };
        let Err(e) = bad.read() else { panic!("read") };
        let fields: Vec<&str> = e.field_errors().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["from", "by"]);
    }
}
