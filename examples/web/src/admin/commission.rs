//! Commission rules: the marketplace default, one per category, one per
//! seller (the most specific wins for each order line), with the form that
//! sets one and the buttons that remove them.
//!
//! The form reads the rate as a percentage with up to two decimals (`12.5` is
//! 1 250 basis points) and the fixed fee, minimum and maximum as amounts in
//! the marketplace's currency; whether the terms hold together (a minimum
//! above the maximum, a category that is gone) is the library's to say.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use marketplace_core::{
    CategoryId, CommissionRule, CommissionTerms, Currency, Error, FieldError, Money, RuleScope,
    UserId,
};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::{names, stores};
use crate::App;
use crate::money::{optional_amount, percent, percent_bps};
use crate::page::{
    Fixable, Form, PageError, PageResult, Problem, Query, SeeOther, form_problem, render_with,
};
use crate::session::{SignedIn, Viewer};

/// The commission pages.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/admin/commission", get(rules).post(set))
        .route("/admin/commission/remove", post(remove))
}

/// A scope as the form names it: `default`, `category:{id}` or `seller:{id}`.
fn scope_key(scope: &RuleScope) -> String {
    match scope.target() {
        None => scope.level().to_owned(),
        Some(id) => format!("{}:{id}", scope.level()),
    }
}

/// Reads a scope the form names ([`scope_key`]).
fn read_scope(raw: &str) -> Result<RuleScope, Error> {
    let bad = || Error::invalid("scope", "invalid", "choose where the rule applies");
    match raw.trim().split_once(':') {
        None if raw.trim() == "default" => Ok(RuleScope::Default),
        Some(("category", id)) => Ok(RuleScope::Category {
            category_id: id.parse::<CategoryId>().map_err(|_| bad())?,
        }),
        Some(("seller", id)) => Ok(RuleScope::Seller {
            seller_id: id.parse::<UserId>().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// The rule form as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
struct RuleForm {
    /// Where it applies ([`scope_key`]).
    scope: String,
    /// Percent of the lines' total, up to two decimals.
    rate: String,
    /// Amounts in the marketplace's currency; blank is none.
    fixed_fee: String,
    minimum: String,
    maximum: String,
}

impl RuleForm {
    /// The form showing `rule` as it stands, to change it.
    fn of(rule: &CommissionRule) -> RuleForm {
        let amount = |m: Option<Money>| m.map(|m| m.decimal()).unwrap_or_default();
        RuleForm {
            scope: scope_key(&rule.scope),
            rate: percent(rule.terms.rate_bps),
            fixed_fee: amount(rule.terms.fixed_fee),
            minimum: amount(rule.terms.minimum),
            maximum: amount(rule.terms.maximum),
        }
    }

    /// The library's scope and terms, or a problem on every field that cannot
    /// be read.
    fn read(&self, currency: Currency) -> Result<(RuleScope, CommissionTerms), Error> {
        let mut problems = Vec::new();
        let scope = read_scope(&self.scope)
            .map_err(|e| problems.extend(e.field_errors().iter().cloned()))
            .ok();
        let rate_bps = percent_bps(&self.rate);
        if rate_bps.is_none() {
            problems.push(FieldError::new(
                "rate",
                "invalid",
                "write the rate as a percentage from 0 to 100 with at most two decimals, like 12.5",
            ));
        }
        let mut amount = |field: &'static str, text: &str| {
            optional_amount(field, text, currency)
                .map_err(|problem| problems.push(problem))
                .unwrap_or(None)
        };
        let fixed_fee = amount("fixed_fee", &self.fixed_fee);
        let minimum = amount("minimum", &self.minimum);
        let maximum = amount("maximum", &self.maximum);
        match (scope, rate_bps) {
            (Some(scope), Some(rate_bps)) if problems.is_empty() => Ok((
                scope,
                CommissionTerms {
                    rate_bps,
                    fixed_fee,
                    minimum,
                    maximum,
                },
            )),
            _ => Err(Error::Validation(problems)),
        }
    }
}

/// The problem a refused rule form is shown again with, its fields named as
/// the form names them (the library's `rate_bps` is the `rate` input).
fn rule_problem(e: &Error) -> Result<Problem, PageError> {
    let mut problem = form_problem(e, Fixable::AllButOurs)?;
    for f in &mut problem.fields {
        if f.field == "rate_bps" {
            "rate".clone_into(&mut f.field);
            "must be a percentage from 0 to 100".clone_into(&mut f.message);
        }
    }
    Ok(problem)
}

/// A rule as its row shows it.
#[derive(Serialize)]
struct RuleRow<'a> {
    /// The scope as the forms name it.
    key: String,
    /// What it applies to, in words.
    applies_to: String,
    rule: &'a CommissionRule,
}

/// The rules page, with the form showing `form`; `problem` is the form's,
/// `removal` that of a row's remove button.
async fn rules_page(
    app: &App,
    viewer: &Viewer,
    s: &SignedIn,
    form: &RuleForm,
    problem: Option<Problem>,
    removal: Option<Problem>,
) -> PageResult {
    let who = &s.principal;
    let rules = app.market.commission_rules(who).await?;
    let categories = app.market.categories().await?;
    let stores = stores(app, who).await?;
    let store_names = names(&stores);
    let applies_to = |scope: &RuleScope| match scope {
        RuleScope::Default => "Every sale (the default)".to_owned(),
        RuleScope::Category { category_id } => categories
            .iter()
            .find(|c| c.id == *category_id)
            .map_or_else(
                || format!("Category {category_id}"),
                |c| format!("Category “{}”", c.name),
            ),
        RuleScope::Seller { seller_id } => {
            store_names.get(seller_id.to_string().as_str()).map_or_else(
                || format!("Seller {seller_id}"),
                |name| format!("Seller “{name}”"),
            )
        }
    };
    let rows: Vec<RuleRow<'_>> = rules
        .iter()
        .map(|rule| RuleRow {
            key: scope_key(&rule.scope),
            applies_to: applies_to(&rule.scope),
            rule,
        })
        .collect();
    let status = problem
        .as_ref()
        .or(removal.as_ref())
        .map_or(StatusCode::OK, |p| p.status);
    Ok(render_with(
        app,
        viewer,
        status,
        "admin/commission.html",
        context! {
            section => "commission",
            rules => Value::from_serialize(&rows),
            categories => Value::from_serialize(&categories),
            stores => Value::from_serialize(&stores),
            currency => app.market.config().currency.as_str(),
            form => Value::from_serialize(form),
            problem => problem.as_ref().map(Value::from_serialize),
            removal => removal.as_ref().map(Value::from_serialize),
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
struct EditQuery {
    /// The rule to show in the form ([`scope_key`]); blank is a new default.
    #[serde(default)]
    scope: String,
}

/// `/admin/commission?scope=…`: the rules, and the form showing the rule
/// picked to change (or a blank one).
async fn rules(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Query(q): Query<EditQuery>,
) -> PageResult {
    let current = app.market.commission_rules(&s.principal).await?;
    let form = current
        .iter()
        .find(|r| scope_key(&r.scope) == q.scope.trim())
        .map_or_else(
            || RuleForm {
                scope: if q.scope.trim().is_empty() {
                    "default".to_owned()
                } else {
                    q.scope.trim().to_owned()
                },
                ..RuleForm::default()
            },
            RuleForm::of,
        );
    rules_page(&app, &viewer, &s, &form, None, None).await
}

async fn set(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(f): Form<RuleForm>,
) -> PageResult {
    let set = match f.read(app.market.config().currency) {
        Ok((scope, terms)) => {
            app.market
                .set_commission_rule(&s.principal, scope, terms)
                .await
        }
        Err(e) => Err(e),
    };
    match set {
        Ok(rule) => Ok(SeeOther::to("/admin/commission")
            .flash(format!(
                "The {} rule is set to {}%: orders placed from now on pay it; orders already placed keep their commission.",
                rule.scope.level(),
                percent(rule.terms.rate_bps)
            ))
            .into_response()),
        Err(e) => {
            let problem = rule_problem(&e)?;
            rules_page(&app, &viewer, &s, &f, Some(problem), None).await
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RemoveForm {
    #[serde(default)]
    scope: String,
}

async fn remove(
    State(app): State<App>,
    viewer: Viewer,
    s: SignedIn,
    Form(f): Form<RemoveForm>,
) -> PageResult {
    let removed = match read_scope(&f.scope) {
        Ok(scope) => app
            .market
            .remove_commission_rule(&s.principal, scope)
            .await
            .map(|()| scope),
        Err(e) => Err(e),
    };
    match removed {
        Ok(scope) => Ok(SeeOther::to("/admin/commission")
            .flash(format!(
                "The {} rule is removed: new orders it covered pay the next rule that applies.",
                scope.level()
            ))
            .into_response()),
        Err(e) => {
            let problem = form_problem(&e, Fixable::AllButOurs)?;
            let form = RuleForm {
                scope: "default".to_owned(),
                ..RuleForm::default()
            };
            rules_page(&app, &viewer, &s, &form, None, Some(problem)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reads_back_as_written() {
        let id = uuid::Uuid::from_u128(7);
        for scope in [
            RuleScope::Default,
            RuleScope::Category {
                category_id: CategoryId(id),
            },
            RuleScope::Seller {
                seller_id: UserId(id),
            },
        ] {
            assert_eq!(read_scope(&scope_key(&scope)).ok(), Some(scope));
        }
        for bad in [
            "",
            "category",
            "category:x",
            "seller:",
            "everyone",
            "default:1",
        ] {
            assert!(read_scope(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_form_reads_a_percentage_and_amounts() {
        let f = RuleForm {
            scope: "default".into(),
            rate: "12.5".into(),
            fixed_fee: "0.30".into(),
            minimum: String::new(),
            maximum: "50".into(),
        };
        let usd = Currency::USD;
        let (scope, terms) = f.read(usd).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scope, RuleScope::Default);
        assert_eq!(terms.rate_bps, 1250);
        assert_eq!(terms.fixed_fee, Some(Money::new(30, usd)));
        assert_eq!(terms.minimum, None);
        assert_eq!(terms.maximum, Some(Money::new(5000, usd)));

        let bad = RuleForm {
            scope: "nowhere".into(),
            rate: "12,5".into(),
            fixed_fee: "a lot".into(),
            ..RuleForm::default()
        };
        let Err(e) = bad.read(usd) else {
            panic!("an unreadable form was read")
        };
        let fields: Vec<&str> = e.field_errors().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["scope", "rate", "fixed_fee"]);
    }
}
