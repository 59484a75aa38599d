//! Commission rules, and the commission snapshotted on each order, as documents.
//!
//! `commission_rules`: `{_id: "<level>:<target>", level, target, rate_bps,
//! fixed_fee, minimum, maximum, updated_at, updated_by}`, one per scope (the
//! default's `_id` is `default:`), amounts as money or `null`.
//!
//! An order's `commission` (see [`crate::orders`]): `{amount, seller_net,
//! rules: [{level, target, rate_bps, fixed_fee, minimum, maximum, base,
//! amount}]}`, each rule with the scope and terms it had at checkout, encoded
//! like a stored rule.

use async_trait::async_trait;
use marketplace_core::commission::{
    AppliedRule, Commission, CommissionRule, CommissionTerms, RuleScope,
};
use marketplace_core::{CommissionStore, StorageResult, UserId};
use mongodb::bson::{Bson, Document, doc};

use crate::MongoStorage;
use crate::error::{malformed, storage_error};
use crate::schema::COMMISSION_RULES;
use crate::values::{Reader, date, money, opt, uuid};

fn rule_key(scope: &RuleScope) -> String {
    format!(
        "{}:{}",
        scope.level(),
        scope.target().map(|t| t.to_string()).unwrap_or_default()
    )
}

/// A scope and terms as fields: `level`, `target` (`null` for the default),
/// `rate_bps`, `fixed_fee`, `minimum`, `maximum` (money or `null`).
fn rule_fields(scope: &RuleScope, terms: &CommissionTerms) -> Document {
    doc! {
        "level": scope.level(),
        "target": opt(scope.target(), uuid),
        "rate_bps": i64::from(terms.rate_bps),
        "fixed_fee": opt(terms.fixed_fee, money),
        "minimum": opt(terms.minimum, money),
        "maximum": opt(terms.maximum, money),
    }
}

/// The scope and terms [`rule_fields`] wrote.
fn rule_from_fields(r: &Reader<'_>) -> StorageResult<(RuleScope, CommissionTerms)> {
    let level = r.str("level")?;
    let scope = RuleScope::from_parts(&level, r.opt_uuid("target")?)
        .ok_or_else(|| malformed(COMMISSION_RULES, format!("unknown scope `{level}`")))?;
    let amount = |k: &str| match r.opt_doc(k)? {
        Some(_) => r.money(k).map(Some),
        None => Ok(None),
    };
    let terms = CommissionTerms {
        rate_bps: r.u32("rate_bps")?,
        fixed_fee: amount("fixed_fee")?,
        minimum: amount("minimum")?,
        maximum: amount("maximum")?,
    };
    Ok((scope, terms))
}

fn rule_doc(r: &CommissionRule) -> Document {
    let mut d = doc! { "_id": rule_key(&r.scope) };
    d.extend(rule_fields(&r.scope, &r.terms));
    d.insert("updated_at", date(r.updated_at));
    d.insert("updated_by", uuid(r.updated_by.0));
    d
}

fn rule_from(d: &Document) -> StorageResult<CommissionRule> {
    let r = Reader::new(COMMISSION_RULES, d);
    let (scope, terms) = rule_from_fields(&r)?;
    Ok(CommissionRule {
        scope,
        terms,
        updated_at: r.date("updated_at")?,
        updated_by: UserId(r.uuid("updated_by")?),
    })
}

/// An order's commission as its sub-document.
pub(crate) fn commission_doc(c: &Commission) -> Bson {
    let rules: Vec<Bson> = c
        .rules
        .iter()
        .map(|a| {
            let mut d = rule_fields(&a.scope, &a.terms);
            d.insert("base", money(a.base));
            d.insert("amount", money(a.amount));
            Bson::Document(d)
        })
        .collect();
    Bson::Document(doc! {
        "amount": money(c.amount),
        "seller_net": money(c.seller_net),
        "rules": rules,
    })
}

/// The commission [`commission_doc`] wrote.
pub(crate) fn commission_from(r: &Reader<'_>) -> StorageResult<Commission> {
    Ok(Commission {
        amount: r.money("amount")?,
        seller_net: r.money("seller_net")?,
        rules: r
            .docs("rules")?
            .iter()
            .map(|a| {
                let (scope, terms) = rule_from_fields(a)?;
                Ok(AppliedRule {
                    scope,
                    terms,
                    base: a.money("base")?,
                    amount: a.money("amount")?,
                })
            })
            .collect::<StorageResult<_>>()?,
    })
}

#[async_trait]
impl CommissionStore for MongoStorage {
    async fn commission_rules(&self) -> StorageResult<Vec<CommissionRule>> {
        Self::find_all(&self.commission_rules, Document::new(), None, None)
            .await?
            .iter()
            .map(rule_from)
            .collect()
    }

    async fn put_commission_rule(&self, rule: &CommissionRule) -> StorageResult<()> {
        let d = rule_doc(rule);
        self.single(|| {
            self.commission_rules
                .replace_one(
                    doc! { "_id": Bson::String(rule_key(&rule.scope)) },
                    d.clone(),
                )
                .upsert(true)
                .into_future()
        })
        .await
        .map_err(storage_error)?;
        Ok(())
    }

    async fn delete_commission_rule(&self, scope: &RuleScope) -> StorageResult<bool> {
        let gone = self
            .single(|| {
                self.commission_rules
                    .delete_one(doc! { "_id": rule_key(scope) })
                    .into_future()
            })
            .await
            .map_err(storage_error)?;
        Ok(gone.deleted_count == 1)
    }
}

#[cfg(test)]
mod tests {
    use marketplace_core::{CategoryId, Currency, Money};
    use uuid::Uuid;

    use super::*;

    fn usd(a: i64) -> Money {
        Money::new(a, Currency::USD)
    }

    #[test]
    fn an_orders_commission_round_trips_with_binary_ids() {
        let category = CategoryId(Uuid::from_u128(7));
        let c = Commission {
            amount: usd(130),
            seller_net: usd(870),
            rules: vec![
                AppliedRule {
                    scope: RuleScope::Category {
                        category_id: category,
                    },
                    terms: CommissionTerms {
                        rate_bps: 1000,
                        fixed_fee: Some(usd(30)),
                        minimum: None,
                        maximum: Some(usd(500)),
                    },
                    base: usd(1000),
                    amount: usd(130),
                },
                AppliedRule {
                    scope: RuleScope::Default,
                    terms: CommissionTerms::default(),
                    base: usd(0),
                    amount: usd(0),
                },
            ],
        };
        let Bson::Document(d) = commission_doc(&c) else {
            panic!("a commission is a sub-document");
        };
        let rules = d.get_array("rules").expect("rules");
        let Some(Bson::Document(first)) = rules.first() else {
            panic!("a rule is a sub-document");
        };
        assert_eq!(first.get("target"), Some(&uuid(category.0)));
        let back = commission_from(&Reader::new("orders", &d)).expect("decodes");
        assert_eq!(back, c);
    }
}
