//! Commissions: the operator's fee on each order, set by rules at three levels and
//! snapshotted on every order at checkout.
//!
//! # How an order's commission is computed
//! 1. Each line of the order finds its rule: the seller's rule if there is one,
//!    else the rule of the line's product category, else the marketplace default.
//!    A line with no rule at all pays no commission.
//! 2. Lines sharing a rule form a group; its base is the sum of their line totals.
//! 3. A group's commission is `base x rate_bps / 10 000`, rounded **half up** to the
//!    minor unit ([`rate_part`], the one rounding in the money code), plus the
//!    rule's fixed fee, then raised to its minimum and lowered to its maximum, and
//!    never more than the group's base.
//! 4. The order's commission is the sum over its groups; the seller's net is the
//!    order total minus it. Both, with every rule that applied, are kept on the
//!    order ([`Commission`]); a later rule change never touches them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError, Result};
use crate::ids::{CategoryId, UserId};
use crate::marketplace::Marketplace;
use crate::money::{MAX_AMOUNT, Money};
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// Basis points in a whole: 10 000 bps is 100 %.
pub const BPS_WHOLE: u32 = 10_000;

/// Where a commission rule applies. The most specific wins: a seller's rule over a
/// category's over the marketplace default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "level", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleScope {
    /// Every order line no other rule covers.
    Default,
    /// Lines of products in this category.
    Category {
        /// The category.
        category_id: CategoryId,
    },
    /// Every line of this seller's orders.
    Seller {
        /// The seller.
        seller_id: UserId,
    },
}

impl RuleScope {
    /// The level's name: `default`, `category` or `seller`.
    pub fn level(&self) -> &'static str {
        match self {
            RuleScope::Default => "default",
            RuleScope::Category { .. } => "category",
            RuleScope::Seller { .. } => "seller",
        }
    }

    /// The category or seller the rule is for, if any.
    pub fn target(&self) -> Option<uuid::Uuid> {
        match self {
            RuleScope::Default => None,
            RuleScope::Category { category_id } => Some(category_id.0),
            RuleScope::Seller { seller_id } => Some(seller_id.0),
        }
    }

    /// Rebuilds a scope from its level name and target, as stored.
    pub fn from_parts(level: &str, target: Option<uuid::Uuid>) -> Option<RuleScope> {
        match (level, target) {
            ("default", None) => Some(RuleScope::Default),
            ("category", Some(id)) => Some(RuleScope::Category {
                category_id: CategoryId(id),
            }),
            ("seller", Some(id)) => Some(RuleScope::Seller {
                seller_id: UserId(id),
            }),
            _ => None,
        }
    }
}

/// How a rule charges, as an admin sets it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommissionTerms {
    /// The rate in basis points of the lines' total (0..=10 000; 1 250 is 12.5 %).
    #[cfg_attr(feature = "openapi", schema(maximum = 10_000))]
    pub rate_bps: u32,
    /// Added once per order the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_fee: Option<Money>,
    /// The least the rule takes from one order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<Money>,
    /// The most the rule takes from one order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<Money>,
}

impl CommissionTerms {
    /// Checks the terms against the marketplace's currency; every problem is listed.
    pub fn validate(&self, currency: crate::money::Currency) -> Result<()> {
        let mut problems = Vec::new();
        if self.rate_bps > BPS_WHOLE {
            problems.push(FieldError::new(
                "rate_bps",
                "out_of_range",
                "must be between 0 and 10000 basis points",
            ));
        }
        for (field, m) in [
            ("fixed_fee", self.fixed_fee),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
        ] {
            let Some(m) = m else { continue };
            if m.currency != currency {
                problems.push(FieldError::new(
                    field,
                    "currency",
                    format!("must be in {currency}, the marketplace's currency"),
                ));
            } else if !(0..=MAX_AMOUNT).contains(&m.amount) {
                problems.push(FieldError::new(
                    field,
                    "out_of_range",
                    "must be between 0 and the largest price",
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.minimum, self.maximum)
            && min.amount > max.amount
        {
            problems.push(FieldError::new(
                "minimum",
                "above_maximum",
                "must not be above the maximum",
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(problems))
        }
    }
}

/// A commission rule as stored: where it applies, what it charges, who set it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionRule {
    /// Where it applies (one rule per scope).
    pub scope: RuleScope,
    /// What it charges.
    #[serde(flatten)]
    pub terms: CommissionTerms,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
    /// The admin who set it.
    pub updated_by: UserId,
}

/// One rule as it applied to an order: its terms, the lines' total it applied to,
/// and what it took.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    /// The rule's scope.
    pub scope: RuleScope,
    /// Its terms at checkout.
    #[serde(flatten)]
    pub terms: CommissionTerms,
    /// The total of the order lines it covered.
    pub base: Money,
    /// What it took from them.
    pub amount: Money,
}

/// An order's commission, fixed at checkout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commission {
    /// The operator's fee.
    pub amount: Money,
    /// What the seller earns: the order total minus the fee.
    pub seller_net: Money,
    /// Every rule that applied (none when no rule covered the order).
    pub rules: Vec<AppliedRule>,
}

impl Commission {
    /// No fee: the seller earns the whole `total` (orders placed before any rule
    /// existed read this way).
    pub fn none(total: Money) -> Commission {
        Commission {
            amount: Money::zero(total.currency),
            seller_net: total,
            rules: Vec::new(),
        }
    }
}

/// `base x rate_bps / 10 000` in minor units, rounded half up: the one place a
/// commission rounds. `base` is never negative, so "half up" is also "half away
/// from zero": 1 234 at 250 bps is 30.85, which takes 31.
pub fn rate_part(base: i64, rate_bps: u32) -> i64 {
    let exact = i128::from(base) * i128::from(rate_bps);
    let whole = i128::from(BPS_WHOLE);
    let rounded = (exact + whole / 2).div_euclid(whole);
    // base <= the largest order total and rate <= 100 %, so it fits.
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// What one rule takes from lines totalling `base`: the rate part plus the fixed
/// fee, raised to the minimum, lowered to the maximum, at most `base`.
pub fn rule_amount(terms: &CommissionTerms, base: i64) -> i64 {
    let mut amount =
        rate_part(base, terms.rate_bps).saturating_add(terms.fixed_fee.map_or(0, |f| f.amount));
    if let Some(min) = terms.minimum {
        amount = amount.max(min.amount);
    }
    if let Some(max) = terms.maximum {
        amount = amount.min(max.amount);
    }
    amount.clamp(0, base.max(0))
}

/// The rules in force, indexed for the lookup a checkout makes per line.
#[derive(Clone, Debug, Default)]
pub struct RuleBook {
    rules: BTreeMap<RuleScope, CommissionTerms>,
}

impl RuleBook {
    /// Indexes `rules` by scope.
    pub fn new(rules: impl IntoIterator<Item = CommissionRule>) -> RuleBook {
        RuleBook {
            rules: rules.into_iter().map(|r| (r.scope, r.terms)).collect(),
        }
    }

    /// The rule that covers a line of `seller`'s product in `category`: the
    /// seller's, else the category's, else the default.
    pub fn resolve(
        &self,
        seller: UserId,
        category: Option<CategoryId>,
    ) -> Option<(RuleScope, &CommissionTerms)> {
        let seller = RuleScope::Seller { seller_id: seller };
        let category = category.map(|category_id| RuleScope::Category { category_id });
        [Some(seller), category, Some(RuleScope::Default)]
            .into_iter()
            .flatten()
            .find_map(|scope| self.rules.get(&scope).map(|t| (scope, t)))
    }

    /// The commission of one seller's order whose lines are `(category, line
    /// total)`, totalling `total`. See the [module documentation](self).
    pub fn commission(
        &self,
        seller: UserId,
        lines: &[(Option<CategoryId>, Money)],
        total: Money,
    ) -> Commission {
        let currency = total.currency;
        let mut groups: BTreeMap<RuleScope, (&CommissionTerms, i64)> = BTreeMap::new();
        for (category, line_total) in lines {
            if let Some((scope, terms)) = self.resolve(seller, *category) {
                groups.entry(scope).or_insert((terms, 0)).1 += line_total.amount;
            }
        }
        let rules: Vec<AppliedRule> = groups
            .into_iter()
            .map(|(scope, (terms, base))| AppliedRule {
                scope,
                terms: terms.clone(),
                base: Money::new(base, currency),
                amount: Money::new(rule_amount(terms, base), currency),
            })
            .collect();
        let amount: i64 = rules.iter().map(|r| r.amount.amount).sum();
        Commission {
            amount: Money::new(amount, currency),
            seller_net: Money::new(total.amount - amount, currency),
            rules,
        }
    }
}

impl<S: Storage> Marketplace<S> {
    /// Every commission rule, the default first, then categories, then sellers.
    pub async fn commission_rules(&self, who: &Principal) -> Result<Vec<CommissionRule>> {
        self.require(who, Role::Admin)?;
        let mut rules = self.storage().commission_rules().await?;
        rules.sort_by_key(|r| r.scope);
        Ok(rules)
    }

    /// Sets the rule for `scope`, replacing the one there. Orders already placed
    /// keep the commission they were placed with.
    pub async fn set_commission_rule(
        &self,
        who: &Principal,
        scope: RuleScope,
        terms: CommissionTerms,
    ) -> Result<CommissionRule> {
        self.require(who, Role::Admin)?;
        terms.validate(self.inner.config.currency)?;
        match scope {
            RuleScope::Default => {}
            RuleScope::Category { category_id } => {
                if self.storage().category(category_id).await?.is_none() {
                    return Err(Error::NotFound("category"));
                }
            }
            RuleScope::Seller { seller_id } => {
                let seller = self.storage().user(seller_id).await?;
                if seller.is_none_or(|u| u.role != Role::Seller) {
                    return Err(Error::NotFound("seller"));
                }
            }
        }
        let rule = CommissionRule {
            scope,
            terms,
            updated_at: self.now(),
            updated_by: who.user_id,
        };
        self.retry(|| self.storage().put_commission_rule(&rule))
            .await?;
        Ok(rule)
    }

    /// Removes the rule for `scope`; its lines fall back to the next level.
    /// `NotFound` when there is none.
    pub async fn remove_commission_rule(&self, who: &Principal, scope: RuleScope) -> Result<()> {
        self.require(who, Role::Admin)?;
        if self
            .retry(|| self.storage().delete_commission_rule(&scope))
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound("commission rule"))
        }
    }

    /// The rules a checkout prices with.
    pub(crate) async fn rule_book(&self) -> Result<RuleBook> {
        Ok(RuleBook::new(self.storage().commission_rules().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn usd(a: i64) -> Money {
        Money::new(a, Currency::USD)
    }

    fn terms(rate_bps: u32) -> CommissionTerms {
        CommissionTerms {
            rate_bps,
            ..Default::default()
        }
    }

    #[test]
    fn rounds_half_up_in_one_place() {
        assert_eq!(rate_part(1234, 250), 31, "30.85 rounds up");
        assert_eq!(rate_part(1000, 250), 25);
        assert_eq!(rate_part(20, 2500), 5);
        assert_eq!(rate_part(2, 2500), 1, "0.5 rounds up");
        assert_eq!(rate_part(1, 2500), 0, "0.25 rounds down");
        assert_eq!(rate_part(MAX_AMOUNT * 1000, BPS_WHOLE), MAX_AMOUNT * 1000);
        assert_eq!(rate_part(0, 1234), 0);
    }

    #[test]
    fn fixed_fee_minimum_and_maximum() {
        let t = CommissionTerms {
            rate_bps: 1000,
            fixed_fee: Some(usd(30)),
            minimum: Some(usd(100)),
            maximum: Some(usd(500)),
        };
        assert_eq!(rule_amount(&t, 500), 100, "50 + 30 raised to the minimum");
        assert_eq!(rule_amount(&t, 2000), 230);
        assert_eq!(rule_amount(&t, 10_000), 500, "1030 lowered to the maximum");
        assert_eq!(rule_amount(&t, 60), 60, "never more than the lines");
    }

    #[test]
    fn the_most_specific_rule_wins_per_line() {
        let seller = UserId(uuid::Uuid::from_u128(1));
        let other = UserId(uuid::Uuid::from_u128(2));
        let books = CategoryId(uuid::Uuid::from_u128(3));
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let rule = |scope, t| CommissionRule {
            scope,
            terms: t,
            updated_at: at,
            updated_by: seller,
        };
        let book = RuleBook::new([
            rule(RuleScope::Default, terms(1000)),
            rule(RuleScope::Category { category_id: books }, terms(500)),
            rule(RuleScope::Seller { seller_id: other }, terms(200)),
        ]);
        let lines = [(Some(books), usd(1000)), (None, usd(3000))];
        let c = book.commission(seller, &lines, usd(4000));
        assert_eq!(c.amount, usd(50 + 300));
        assert_eq!(c.seller_net, usd(4000 - 350));
        assert_eq!(c.rules.len(), 2);
        let c = book.commission(other, &lines, usd(4000));
        assert_eq!(c.amount, usd(80), "the seller's rule covers every line");
        assert_eq!(c.rules.len(), 1);
        let none = RuleBook::default().commission(seller, &lines, usd(4000));
        assert_eq!(none, Commission::none(usd(4000)));
    }

    #[test]
    fn terms_are_validated() {
        let bad = CommissionTerms {
            rate_bps: 10_001,
            fixed_fee: Some(Money::new(5, Currency::parse("EUR").unwrap())),
            minimum: Some(usd(10)),
            maximum: Some(usd(5)),
        };
        match bad.validate(Currency::USD) {
            Err(Error::Validation(f)) => assert_eq!(f.len(), 3, "{f:?}"),
            other => panic!("{other:?}"),
        }
        assert!(terms(BPS_WHOLE).validate(Currency::USD).is_ok());
    }
}
