//! What the ledger reports: a seller's statement for a period (with its CSV),
//! and the operator's commission per period and seller.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Balance, EntryKind, LedgerEntry, LedgerQuery};
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::marketplace::Marketplace;
use crate::money::{Currency, Money};
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// A span of time for a statement or a report: `[from, to)`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct Period {
    /// The first day (`2026-11-01`) or instant (RFC 3339) included; the
    /// beginning of the ledger when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    pub from: Option<DateTime<Utc>>,
    /// The first day or instant no longer included; now when absent.
    #[serde(default, deserialize_with = "instant::deserialize")]
    pub to: Option<DateTime<Utc>>,
}

/// Reads a period bound as a date (midnight UTC) or an RFC 3339 instant.
pub mod instant {
    use chrono::{DateTime, NaiveDate, Utc};
    use serde::{Deserialize, Deserializer};

    /// Parses `2026-11-01` or `2026-11-01T12:00:00Z`.
    pub fn parse(s: &str) -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    }

    /// Deserializes an optional bound; an empty string is no bound.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a date (2026-11-01) or an RFC 3339 time"
                ))
            }),
        }
    }
}

/// A seller's statement: the entries of a period with the balance before and
/// after each.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The seller.
    pub seller_id: UserId,
    /// The store name.
    pub store_name: String,
    /// The currency.
    pub currency: Currency,
    /// The period's start (the ledger's first entry when open).
    pub from: Option<DateTime<Utc>>,
    /// The period's end.
    pub to: DateTime<Utc>,
    /// The balance before the first entry of the period.
    pub opening: Balance,
    /// The entries of the period, oldest first.
    pub entries: Vec<LedgerEntry>,
    /// The balance after the last entry of the period.
    pub closing: Balance,
}

impl Statement {
    /// The statement as CSV: a header row, then one row per entry with the
    /// balance after it. Amounts are decimals in the currency's units.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "date",
            "entry",
            "kind",
            "order_id",
            "payout_id",
            "commission",
            "pending_change",
            "available_change",
            "pending_after",
            "available_after",
            "currency",
        ];
        let mut rows: Vec<Vec<String>> = Vec::with_capacity(self.entries.len() + 1);
        let (mut pending, mut available) =
            (self.opening.pending.amount, self.opening.available.amount);
        let dec = |a: i64| Money::new(a, self.currency).decimal();
        for e in &self.entries {
            pending += e.pending.amount;
            available += e.available.amount;
            rows.push(vec![
                e.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.id.to_string(),
                e.kind.as_str().to_owned(),
                e.order_id.map(|o| o.to_string()).unwrap_or_default(),
                e.payout_id.map(|p| p.to_string()).unwrap_or_default(),
                dec(e.commission.amount),
                dec(e.pending.amount),
                dec(e.available.amount),
                dec(pending),
                dec(available),
                self.currency.to_string(),
            ]);
        }
        // Writing to a Vec cannot fail, and every field is valid UTF-8.
        let _ = w.write_record(header);
        for r in rows {
            let _ = w.write_record(r);
        }
        w.into_inner()
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// How a commission report buckets time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Calendar days (UTC).
    Day,
    /// Calendar months (UTC).
    #[default]
    Month,
}

/// A commission report request.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct ReportQuery {
    /// The span reported on.
    #[serde(flatten)]
    pub period: Period,
    /// Day or month buckets (default month).
    #[serde(default)]
    pub by: Granularity,
}

/// One bucket of the commission report: one seller, one period, one currency.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommissionRow {
    /// The first day of the bucket.
    pub period: NaiveDate,
    /// The seller.
    pub seller_id: UserId,
    /// The store name.
    pub store_name: String,
    /// Orders delivered in the bucket.
    pub delivered: u32,
    /// Returns completed in the bucket.
    pub returned: u32,
    /// Delivered order totals minus returned ones.
    pub gross: Money,
    /// Commission on deliveries minus commission given back on returns.
    pub commission: Money,
    /// What the seller earned: `gross - commission`.
    pub seller_net: Money,
}

/// The commission earned per period and per seller.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommissionReport {
    /// The buckets, oldest period first, then by store name.
    pub rows: Vec<CommissionRow>,
    /// The sums over every row, one per currency.
    pub totals: Vec<CommissionRow>,
}

/// The first day of the bucket `t` falls in.
fn bucket(t: DateTime<Utc>, by: Granularity) -> NaiveDate {
    let d = t.date_naive();
    match by {
        Granularity::Day => d,
        Granularity::Month => d.with_day(1).unwrap_or(d),
    }
}

impl<S: Storage> Marketplace<S> {
    /// The seller's statement for `period`: its entries oldest first with the
    /// balance before and after. Download it with [`Statement::to_csv`].
    pub async fn seller_statement(&self, who: &Principal, period: Period) -> Result<Statement> {
        self.require(who, Role::Seller)?;
        let seller = self.account(who).await?;
        // Open-ended: everything written so far, this millisecond included.
        let to = period
            .to
            .unwrap_or_else(|| self.now() + Duration::milliseconds(1));
        if period.from.is_some_and(|f| f > to) {
            return Err(Error::invalid("from", "after_to", "must not be after `to`"));
        }
        let currency = self.inner.config.currency;
        let mut all = self
            .walk_ledger(LedgerQuery {
                seller_id: Some(seller.id),
                to: Some(to),
                ..LedgerQuery::default()
            })
            .await?;
        all.retain(|e| e.currency() == currency);
        all.reverse();
        let (before, entries): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|e| period.from.is_some_and(|f| e.created_at < f));
        let sum = |es: &[LedgerEntry], p: (i64, i64)| {
            es.iter().fold(p, |(p, a), e| {
                (p + e.pending.amount, a + e.available.amount)
            })
        };
        let opening = sum(&before, (0, 0));
        let closing = sum(&entries, opening);
        let balance = |(p, a): (i64, i64)| {
            Balance::new(seller.id, Money::new(p, currency), Money::new(a, currency))
        };
        Ok(Statement {
            seller_id: seller.id,
            store_name: seller.store_name.clone().unwrap_or_default(),
            currency,
            from: period.from,
            to,
            opening: balance(opening),
            entries,
            closing: balance(closing),
        })
    }

    /// The commission earned per period and per seller, from the ledger:
    /// commission on deliveries minus commission given back on returns.
    pub async fn commission_report(
        &self,
        who: &Principal,
        query: ReportQuery,
    ) -> Result<CommissionReport> {
        self.require(who, Role::Admin)?;
        if let (Some(f), Some(t)) = (query.period.from, query.period.to)
            && f > t
        {
            return Err(Error::invalid("from", "after_to", "must not be after `to`"));
        }
        let entries = self
            .walk_ledger(LedgerQuery {
                kinds: vec![EntryKind::Earning, EntryKind::Reversal],
                from: query.period.from,
                to: query.period.to,
                ..LedgerQuery::default()
            })
            .await?;
        let mut sellers: Vec<UserId> = entries.iter().map(|e| e.seller_id).collect();
        sellers.sort();
        sellers.dedup();
        let names: BTreeMap<UserId, String> = self
            .storage()
            .users(&sellers)
            .await?
            .into_iter()
            .map(|u| (u.id, u.store_name.unwrap_or_default()))
            .collect();
        let row = |period, seller_id: UserId, currency| CommissionRow {
            period,
            seller_id,
            store_name: names.get(&seller_id).cloned().unwrap_or_default(),
            delivered: 0,
            returned: 0,
            gross: Money::zero(currency),
            commission: Money::zero(currency),
            seller_net: Money::zero(currency),
        };
        let mut rows: BTreeMap<(NaiveDate, Currency, UserId), CommissionRow> = BTreeMap::new();
        let mut totals: BTreeMap<Currency, CommissionRow> = BTreeMap::new();
        let first = entries.iter().map(|e| bucket(e.created_at, query.by)).min();
        for e in &entries {
            let currency = e.currency();
            let period = bucket(e.created_at, query.by);
            let r = rows
                .entry((period, currency, e.seller_id))
                .or_insert_with(|| row(period, e.seller_id, currency));
            let t = totals.entry(currency).or_insert_with(|| {
                let mut t = row(first.unwrap_or(period), UserId(uuid::Uuid::nil()), currency);
                t.store_name = "all sellers".to_owned();
                t
            });
            for r in [r, t] {
                match e.kind {
                    EntryKind::Earning => r.delivered += 1,
                    EntryKind::Reversal => r.returned += 1,
                    _ => {}
                }
                r.commission.amount += e.commission.amount;
                r.seller_net.amount += e.pending.amount;
                r.gross.amount += e.pending.amount + e.commission.amount;
            }
        }
        let mut rows: Vec<CommissionRow> = rows.into_values().collect();
        rows.sort_by(|a, b| {
            (a.period, &a.store_name, a.seller_id).cmp(&(b.period, &b.store_name, b.seller_id))
        });
        Ok(CommissionReport {
            rows,
            totals: totals.into_values().collect(),
        })
    }
}
