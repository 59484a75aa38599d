//! The seller ledger: append-only entries per seller and currency, and the
//! balances they add up to.
//!
//! A seller's money sits in two buckets. **Pending** holds what delivered orders
//! earned while their return window is open; **available** holds what may be paid
//! out. Every change is an entry that moves one or both buckets:
//!
//! | entry | when | pending | available |
//! | --- | --- | --- | --- |
//! | `earning` | an order is delivered | + net | |
//! | `release` | its return window closed without a return | − net | + net |
//! | `reversal` | its return completed | − net | |
//! | `payout` | a payout took the available balance | | − amount |
//! | `payout_failed` | that payout failed; its funds come back | | + amount |
//!
//! Entries are never edited. A balance is the sum of its entries; storage keeps it
//! beside them, updated in the same atomic step, and never lets a bucket go below
//! zero. A return can only be requested while the earning is still pending, so a
//! reversal always finds its money there, at the order's own commission.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::commission::Commission;
use crate::error::{Error, Result};
use crate::ids::{LedgerEntryId, OrderId, PayoutId, UserId};
use crate::marketplace::Marketplace;
use crate::money::{Currency, Money};
use crate::order::{Order, OrderStatus};
use crate::page::{Page, newest_cursor, parse_newest_cursor};
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// What a ledger entry records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A delivered order's net, held while its return window is open.
    Earning,
    /// The return window closed: the net moves from pending to available.
    Release,
    /// A return completed: the net leaves pending.
    Reversal,
    /// A payout took the available balance.
    Payout,
    /// A payout failed: its funds are available again.
    PayoutFailed,
}

impl EntryKind {
    /// Every kind.
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Earning,
        EntryKind::Release,
        EntryKind::Reversal,
        EntryKind::Payout,
        EntryKind::PayoutFailed,
    ];

    /// The name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryKind::Earning => "earning",
            EntryKind::Release => "release",
            EntryKind::Reversal => "reversal",
            EntryKind::Payout => "payout",
            EntryKind::PayoutFailed => "payout_failed",
        }
    }

    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<EntryKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of a seller's ledger.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Identifier.
    pub id: LedgerEntryId,
    /// Whose ledger.
    pub seller_id: UserId,
    /// What happened.
    pub kind: EntryKind,
    /// The change to the pending bucket (signed).
    pub pending: Money,
    /// The change to the available bucket (signed).
    pub available: Money,
    /// The operator's commission the entry accounts for: the order's commission on
    /// an earning, its negation on a reversal, zero otherwise.
    pub commission: Money,
    /// The order, for earnings, releases and reversals.
    pub order_id: Option<OrderId>,
    /// The payout, for payouts and failed payouts.
    pub payout_id: Option<PayoutId>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// The currency of the entry.
    pub fn currency(&self) -> Currency {
        self.pending.currency
    }

    /// The change to the seller's whole balance.
    pub fn net(&self) -> i64 {
        self.pending.amount + self.available.amount
    }
}

/// A seller's balance in one currency, as the entries add it up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// The seller.
    pub seller_id: UserId,
    /// Earnings still inside their return window.
    pub pending: Money,
    /// What a payout may take.
    pub available: Money,
    /// `pending + available`.
    pub total: Money,
}

impl Balance {
    /// A balance of the two buckets.
    pub fn new(seller_id: UserId, pending: Money, available: Money) -> Balance {
        Balance {
            seller_id,
            pending,
            available,
            total: Money::new(pending.amount + available.amount, pending.currency),
        }
    }

    /// An empty balance in `currency`.
    pub fn empty(seller_id: UserId, currency: Currency) -> Balance {
        Balance::new(seller_id, Money::zero(currency), Money::zero(currency))
    }
}

/// The sort key of a ledger entry: newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryKey {
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Tie-breaker.
    pub id: LedgerEntryId,
}

/// A ledger listing as storage executes it: newest first (`created_at`, then id,
/// both descending).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Only this seller's entries.
    pub seller_id: Option<UserId>,
    /// Only entries of these kinds (all when empty).
    pub kinds: Vec<EntryKind>,
    /// Only entries written at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only entries written before this time.
    pub to: Option<DateTime<Utc>>,
    /// Start after this key.
    pub after: Option<EntryKey>,
    /// Maximum number of results.
    pub limit: u32,
}

impl LedgerQuery {
    /// Whether `e` matches the filters and comes after the cursor.
    pub fn matches(&self, e: &LedgerEntry) -> bool {
        self.seller_id.is_none_or(|s| e.seller_id == s)
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && self.from.is_none_or(|f| e.created_at >= f)
            && self.to.is_none_or(|t| e.created_at < t)
            && self
                .after
                .is_none_or(|k| (e.created_at, e.id) < (k.created_at, k.id))
    }
}

/// The end of a delivered order's return window: what storage applies with
/// [`LedgerStore::release_earning`](crate::storage::LedgerStore::release_earning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarningRelease {
    /// The order; it must still be `delivered` and unreleased.
    pub order_id: OrderId,
    /// The `release` entry to append.
    pub entry: LedgerEntry,
}

/// A page request for ledger entries.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LedgerListQuery {
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
}

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

fn encode_cursor(e: &LedgerEntry) -> String {
    newest_cursor(e.created_at, e.id)
}

fn decode_cursor(c: &str) -> Result<EntryKey> {
    let (created_at, id) = parse_newest_cursor(c)?;
    Ok(EntryKey { created_at, id })
}

/// The first day of the bucket `t` falls in.
fn bucket(t: DateTime<Utc>, by: Granularity) -> NaiveDate {
    let d = t.date_naive();
    match by {
        Granularity::Day => d,
        Granularity::Month => d.with_day(1).unwrap_or(d),
    }
}

/// Entries fetched per storage call when a report or statement walks the ledger.
const WALK: u32 = 500;

impl<S: Storage> Marketplace<S> {
    /// Every entry `q` selects, newest first, fetched a page at a time.
    pub(crate) async fn walk_ledger(&self, mut q: LedgerQuery) -> Result<Vec<LedgerEntry>> {
        q.limit = WALK;
        let mut all = Vec::new();
        loop {
            let page = self.storage().ledger_entries(&q).await?;
            let full = page.len() == WALK as usize;
            if let Some(last) = page.last() {
                q.after = Some(EntryKey {
                    created_at: last.created_at,
                    id: last.id,
                });
            }
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// The seller's balance in the marketplace's currency (zero before the first
    /// sale).
    pub async fn seller_balance(&self, who: &Principal) -> Result<Balance> {
        self.require(who, Role::Seller)?;
        self.balance_of(who.user_id).await
    }

    pub(crate) async fn balance_of(&self, seller: UserId) -> Result<Balance> {
        let currency = self.inner.config.currency;
        Ok(self
            .storage()
            .balances(Some(seller))
            .await?
            .into_iter()
            .find(|b| b.total.currency == currency)
            .unwrap_or_else(|| Balance::empty(seller, currency)))
    }

    /// The seller's ledger, newest first.
    pub async fn seller_ledger(
        &self,
        who: &Principal,
        page: LedgerListQuery,
    ) -> Result<Page<LedgerEntry>> {
        self.require(who, Role::Seller)?;
        let limit = self.page_size(page.limit);
        let q = LedgerQuery {
            seller_id: Some(who.user_id),
            after: page
                .cursor
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: limit + 1,
            ..LedgerQuery::default()
        };
        let rows = self.storage().ledger_entries(&q).await?;
        Ok(Page::from_overfetch(rows, limit, encode_cursor))
    }

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

    /// Every seller's balance, for an admin: largest available first.
    pub async fn seller_balances(&self, who: &Principal) -> Result<Vec<Balance>> {
        self.require(who, Role::Admin)?;
        let mut all = self.storage().balances(None).await?;
        all.sort_by_key(|b| (std::cmp::Reverse(b.available.amount), b.seller_id));
        Ok(all)
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

    /// Moves the earnings of delivered orders whose return window has closed
    /// from pending to available, up to `limit` orders; returns how many moved.
    /// The worker runs this on every round; running it twice, or on several
    /// instances at once, moves each earning once.
    pub async fn release_earnings(&self, limit: u32) -> Result<usize> {
        let now = self.now();
        let due = self.storage().orders_to_release(now, limit).await?;
        let mut moved = 0;
        for order in due {
            let net = order_commission(&order).seller_net;
            let release = EarningRelease {
                order_id: order.id,
                entry: LedgerEntry {
                    id: LedgerEntryId(self.new_id()),
                    seller_id: order.seller_id,
                    kind: EntryKind::Release,
                    pending: Money::new(-net.amount, net.currency),
                    available: net,
                    commission: Money::zero(net.currency),
                    order_id: Some(order.id),
                    payout_id: None,
                    created_at: now,
                },
            };
            if self
                .retry(|| self.storage().release_earning(&release))
                .await?
            {
                moved += 1;
            }
        }
        Ok(moved)
    }

    /// The ledger entry a status change writes, if any: the earning when an order
    /// is delivered, the reversal when its return completes.
    pub(crate) fn ledger_entry_for(
        &self,
        order: &Order,
        to: OrderStatus,
        at: DateTime<Utc>,
    ) -> Option<LedgerEntry> {
        let c = order_commission(order);
        let (kind, sign) = match to {
            OrderStatus::Delivered => (EntryKind::Earning, 1),
            // Only orders that earned when delivered (every order delivered since
            // the ledger exists) give their earning back.
            OrderStatus::Returned if order.return_until.is_some() => (EntryKind::Reversal, -1),
            _ => return None,
        };
        let currency = c.seller_net.currency;
        Some(LedgerEntry {
            id: LedgerEntryId(self.new_id()),
            seller_id: order.seller_id,
            kind,
            pending: Money::new(sign * c.seller_net.amount, currency),
            available: Money::zero(currency),
            commission: Money::new(sign * c.amount.amount, currency),
            order_id: Some(order.id),
            payout_id: None,
            created_at: at,
        })
    }

    /// When a return window that opens at `delivered` closes.
    pub(crate) fn return_deadline(&self, delivered: DateTime<Utc>) -> DateTime<Utc> {
        delivered + self.inner.config.money.return_window
    }
}

/// The commission an order was placed with (none for orders placed before
/// commissions existed).
pub fn order_commission(order: &Order) -> Commission {
    order
        .commission
        .clone()
        .unwrap_or_else(|| Commission::none(order.total))
}
