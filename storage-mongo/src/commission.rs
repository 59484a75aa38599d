//! Commission rules as documents.
//!
//! `commission_rules`: `{_id: "<level>:<target>", level, target, rate_bps,
//! fixed_fee, minimum, maximum, updated_at, updated_by}`, one per scope (the
//! default's `_id` is `default:`), amounts as money or `null`.

use async_trait::async_trait;
use marketplace_core::commission::{CommissionRule, CommissionTerms, RuleScope};
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

fn rule_doc(r: &CommissionRule) -> Document {
    doc! {
        "_id": rule_key(&r.scope),
        "level": r.scope.level(),
        "target": opt(r.scope.target(), uuid),
        "rate_bps": i64::from(r.terms.rate_bps),
        "fixed_fee": opt(r.terms.fixed_fee, money),
        "minimum": opt(r.terms.minimum, money),
        "maximum": opt(r.terms.maximum, money),
        "updated_at": date(r.updated_at),
        "updated_by": uuid(r.updated_by.0),
    }
}

fn rule_from(d: &Document) -> StorageResult<CommissionRule> {
    let r = Reader::new(COMMISSION_RULES, d);
    let level = r.str("level")?;
    let scope = RuleScope::from_parts(&level, r.opt_uuid("target")?)
        .ok_or_else(|| malformed(COMMISSION_RULES, format!("unknown scope `{level}`")))?;
    let amount = |k: &str| match r.opt_doc(k)? {
        Some(_) => r.money(k).map(Some),
        None => Ok(None),
    };
    Ok(CommissionRule {
        scope,
        terms: CommissionTerms {
            rate_bps: r.u32("rate_bps")?,
            fixed_fee: amount("fixed_fee")?,
            minimum: amount("minimum")?,
            maximum: amount("maximum")?,
        },
        updated_at: r.date("updated_at")?,
        updated_by: UserId(r.uuid("updated_by")?),
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
