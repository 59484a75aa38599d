//! Commission rules: listing them, setting and removing the rule of a level
//! (the marketplace default, a category, a seller).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use marketplace_core::{
    CategoryId, CommissionRule, CommissionTerms, Money, Principal, RuleScope, UserId,
};
use marketplace_host::Market;
use serde::Serialize;

use crate::accounts::{all_sellers, seller_account};
use crate::cli::{CommissionCommand, ScopeArgs};
use crate::output::{Output, rendered, table, time};

/// A rule as the listing shows it: the rule, and whom it applies to in words.
#[derive(Serialize)]
struct Rule {
    #[serde(flatten)]
    rule: CommissionRule,
    /// The category's name or the seller's email; none for the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    applies_to: Option<String>,
}

/// The answer to `commission remove`.
#[derive(Serialize)]
struct Removed {
    removed: RuleScope,
    #[serde(skip_serializing_if = "Option::is_none")]
    applies_to: Option<String>,
}

/// `commission ...`
pub async fn commission(market: &Market, out: Output, command: CommissionCommand) -> Result<()> {
    let operator = Principal::operator();
    match command {
        CommissionCommand::List => {
            let rules = market
                .commission_rules(&operator)
                .await
                .context("cannot list the commission rules")?;
            let names = Names::of(market).await?;
            let rules: Vec<Rule> = rules
                .into_iter()
                .map(|rule| Rule {
                    applies_to: names.of_scope(&rule.scope),
                    rule,
                })
                .collect();
            out.show(&rules, |list| {
                let mut t = table([
                    "level",
                    "applies to",
                    "rate",
                    "fixed fee",
                    "minimum",
                    "maximum",
                    "updated",
                ]);
                for r in list {
                    let terms = &r.rule.terms;
                    t.add_row([
                        r.rule.scope.level().to_owned(),
                        r.applies_to
                            .clone()
                            .unwrap_or_else(|| "every other line".to_owned()),
                        percent(terms.rate_bps),
                        shown(terms.fixed_fee),
                        shown(terms.minimum),
                        shown(terms.maximum),
                        time(r.rule.updated_at),
                    ]);
                }
                rendered(&t, "no commission rules: orders pay no commission")
            })
        }
        CommissionCommand::Set {
            scope,
            rate,
            fixed,
            min,
            max,
        } => {
            let (scope, applies_to) = resolve(market, &scope)
                .await
                .context("cannot set the commission rule")?;
            let currency = market.config().currency;
            let amount = |flag: &str, text: Option<String>| -> Result<Option<Money>> {
                text.map(|t| {
                    Money::from_decimal(t.trim(), currency).with_context(|| {
                        format!("--{flag} `{t}` is not an amount in {currency} (like 12.50)")
                    })
                })
                .transpose()
            };
            let terms = CommissionTerms {
                rate_bps: rate,
                fixed_fee: amount("fixed", fixed)?,
                minimum: amount("min", min)?,
                maximum: amount("max", max)?,
            };
            let rule = market
                .set_commission_rule(&operator, scope, terms)
                .await
                .with_context(|| {
                    format!(
                        "cannot set the commission rule for {}",
                        target(&scope, applies_to.as_deref())
                    )
                })?;
            out.show(&Rule { rule, applies_to }, |r| {
                format!(
                    "commission for {} is now {}",
                    target(&r.rule.scope, r.applies_to.as_deref()),
                    terms_text(&r.rule.terms)
                )
            })
        }
        CommissionCommand::Remove { scope } => {
            let (scope, applies_to) = resolve(market, &scope)
                .await
                .context("cannot remove the commission rule")?;
            let what = target(&scope, applies_to.as_deref());
            market
                .remove_commission_rule(&operator, scope)
                .await
                .with_context(|| format!("cannot remove the commission rule for {what}"))?;
            let removed = Removed {
                removed: scope,
                applies_to,
            };
            out.show(&removed, |_| {
                format!("the commission rule for {what} is removed")
            })
        }
    }
}

/// The scope the flags name, with its target in words: a category by name
/// (case-insensitively) or id, a seller by email.
async fn resolve(market: &Market, args: &ScopeArgs) -> Result<(RuleScope, Option<String>)> {
    if let Some(email) = &args.seller {
        let seller = seller_account(market, email).await?;
        let scope = RuleScope::Seller {
            seller_id: seller.id,
        };
        return Ok((scope, Some(seller.email.to_string())));
    }
    if let Some(key) = &args.category {
        let categories = market
            .categories()
            .await
            .context("cannot read the categories")?;
        let id = key.trim().parse::<CategoryId>().ok();
        let wanted = key.trim().to_lowercase();
        let Some(c) = categories
            .iter()
            .find(|c| Some(c.id) == id || c.name.to_lowercase() == wanted)
        else {
            bail!("no category is named `{key}` or has that id (see `categories list`)");
        };
        let scope = RuleScope::Category { category_id: c.id };
        return Ok((scope, Some(c.name.clone())));
    }
    Ok((RuleScope::Default, None))
}

/// The names rules are shown with: categories and sellers by id.
struct Names {
    categories: HashMap<CategoryId, String>,
    sellers: HashMap<UserId, String>,
}

impl Names {
    async fn of(market: &Market) -> Result<Names> {
        let categories = market
            .categories()
            .await
            .context("cannot read the categories")?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        let sellers = all_sellers(market, None)
            .await?
            .into_iter()
            .map(|s| (s.id, s.email.to_string()))
            .collect();
        Ok(Names {
            categories,
            sellers,
        })
    }

    fn of_scope(&self, scope: &RuleScope) -> Option<String> {
        match scope {
            RuleScope::Default => None,
            RuleScope::Category { category_id } => Some(
                self.categories
                    .get(category_id)
                    .cloned()
                    .unwrap_or_else(|| category_id.to_string()),
            ),
            RuleScope::Seller { seller_id } => Some(
                self.sellers
                    .get(seller_id)
                    .cloned()
                    .unwrap_or_else(|| seller_id.to_string()),
            ),
        }
    }
}

/// Whom a rule applies to, in words.
fn target(scope: &RuleScope, name: Option<&str>) -> String {
    match (scope, name) {
        (RuleScope::Default, _) => "the marketplace default".to_owned(),
        (RuleScope::Category { .. }, Some(n)) => format!("the category {n}"),
        (RuleScope::Seller { .. }, Some(n)) => format!("the seller {n}"),
        (s, None) => format!("the {} {}", s.level(), s.target().unwrap_or_default()),
    }
}

/// A rate in basis points as a percentage: `12.5 %`, `10 %`, `0.05 %`.
pub fn percent(bps: u32) -> String {
    let (whole, cents) = (bps / 100, bps % 100);
    match cents {
        0 => format!("{whole} %"),
        c if c % 10 == 0 => format!("{whole}.{} %", c / 10),
        c => format!("{whole}.{c:02} %"),
    }
}

/// An optional amount for a table cell.
fn shown(m: Option<Money>) -> String {
    m.map(|m| m.to_string()).unwrap_or_default()
}

/// A rule's terms in one phrase: `10 % + 0.30 USD (at least 1.00 USD, at most
/// 50.00 USD)`.
fn terms_text(t: &CommissionTerms) -> String {
    let mut text = percent(t.rate_bps);
    if let Some(f) = t.fixed_fee {
        text.push_str(&format!(" + {f}"));
    }
    let bounds: Vec<String> = [("at least", t.minimum), ("at most", t.maximum)]
        .into_iter()
        .filter_map(|(what, m)| m.map(|m| format!("{what} {m}")))
        .collect();
    if !bounds.is_empty() {
        text.push_str(&format!(" ({})", bounds.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use marketplace_core::Currency;

    use super::*;

    #[test]
    fn rates_read_as_percentages() {
        assert_eq!(percent(1250), "12.5 %");
        assert_eq!(percent(1000), "10 %");
        assert_eq!(percent(5), "0.05 %");
        assert_eq!(percent(1234), "12.34 %");
        assert_eq!(percent(0), "0 %");
    }

    #[test]
    fn terms_read_in_one_phrase() {
        let usd = |a| Some(Money::new(a, Currency::USD));
        let t = CommissionTerms {
            rate_bps: 1000,
            fixed_fee: usd(30),
            minimum: usd(100),
            maximum: usd(5000),
        };
        assert_eq!(
            terms_text(&t),
            "10 % + 0.30 USD (at least 1.00 USD, at most 50.00 USD)"
        );
        let plain = CommissionTerms {
            rate_bps: 500,
            ..CommissionTerms::default()
        };
        assert_eq!(terms_text(&plain), "5 %");
    }
}
