//! Commission rules, once for both dialects: their columns, decoder, the upsert
//! of one scope's rule and its removal. Each rule is a row whose scope is
//! `(level, target)`; its amounts are BIGINT minor units beside one currency.

use marketplace_core::commission::{CommissionRule, CommissionTerms, RuleScope};
use marketplace_core::{Currency, Money, StorageError, StorageResult};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Binds, Columns, corrupt};
use crate::dialect::Dialect;

/// The columns of `commission_rules`, in the order [`put_rule`] binds them.
pub(crate) const RULE_COLUMNS: &str =
    "level, target, rate_bps, fixed_fee, minimum, maximum, currency, updated_at, updated_by";

/// The key a scope is unique by: its target, the nil uuid for the default (the
/// schema's generated `target_key`).
fn target_key(scope: &RuleScope) -> Uuid {
    scope.target().unwrap_or(Uuid::nil())
}

/// The one currency of the terms' amounts, `None` when they have none.
/// `Precondition` when they mix currencies, which one row cannot hold (core
/// validates terms against the marketplace's currency, so this never happens).
fn terms_currency(terms: &CommissionTerms) -> StorageResult<Option<Currency>> {
    let mut currencies = [terms.fixed_fee, terms.minimum, terms.maximum]
        .into_iter()
        .flatten()
        .map(|m| m.currency);
    let first = currencies.next();
    if currencies.any(|c| Some(c) != first) {
        return Err(StorageError::Precondition(
            "a commission rule's amounts must share one currency".into(),
        ));
    }
    Ok(first)
}

/// `INSERT ... ON CONFLICT DO UPDATE`: stores `rule`, replacing its scope's rule
/// whole, in one statement.
pub(crate) fn put_rule<D: Dialect>(rule: &CommissionRule) -> StorageResult<QueryBuilder<D>> {
    let currency = terms_currency(&rule.terms)?;
    let mut qb = QueryBuilder::new(format!("INSERT INTO commission_rules ({RULE_COLUMNS}) "));
    qb.push_values([rule], |mut b, r| {
        (&mut b)
            .text(r.scope.level())
            .opt_uuid(r.scope.target())
            .int(i64::from(r.terms.rate_bps))
            .opt_int(r.terms.fixed_fee.map(|m| m.amount))
            .opt_int(r.terms.minimum.map(|m| m.amount))
            .opt_int(r.terms.maximum.map(|m| m.amount))
            .opt_text(currency.as_ref().map(Currency::as_str))
            .time(r.updated_at)
            .uuid(r.updated_by.0);
    });
    qb.push(
        " ON CONFLICT (level, target_key) DO UPDATE SET rate_bps = excluded.rate_bps, \
         fixed_fee = excluded.fixed_fee, minimum = excluded.minimum, \
         maximum = excluded.maximum, currency = excluded.currency, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    );
    Ok(qb)
}

/// Removes the rule of `scope` (by its unique key).
pub(crate) fn delete_rule<D: Dialect>(scope: &RuleScope) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new("DELETE FROM commission_rules WHERE level = ");
    qb.text(scope.level())
        .push(" AND target_key = ")
        .uuid(target_key(scope));
    qb
}

pub(crate) fn rule<R: Columns>(r: &R) -> StorageResult<CommissionRule> {
    let level = r.text("level")?;
    let target = r.opt_uuid("target")?;
    let scope = RuleScope::from_parts(&level, target)
        .ok_or_else(|| corrupt("commission rule scope", &level))?;
    let currency = r
        .opt_text("currency")?
        .map(|code| Currency::parse(&code).ok_or_else(|| corrupt("currency", &code)))
        .transpose()?;
    let money = |col: &str| -> StorageResult<Option<Money>> {
        match (r.opt_int(col)?, currency) {
            (None, _) => Ok(None),
            (Some(amount), Some(currency)) => Ok(Some(Money::new(amount, currency))),
            (Some(_), None) => Err(corrupt(col, "an amount without a currency")),
        }
    };
    Ok(CommissionRule {
        scope,
        terms: CommissionTerms {
            rate_bps: r.count("rate_bps")?,
            fixed_fee: money("fixed_fee")?,
            minimum: money("minimum")?,
            maximum: money("maximum")?,
        },
        updated_at: r.time("updated_at")?,
        updated_by: r.uuid("updated_by")?.into(),
    })
}
