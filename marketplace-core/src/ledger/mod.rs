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
//!
//! The entries, balances and the release live here; what the ledger reports
//! (a seller's [`Statement`], the operator's [`CommissionReport`]) in `report`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::commission::Commission;
use crate::error::Result;
use crate::ids::{LedgerEntryId, OrderId, PayoutId, UserId};
use crate::marketplace::Marketplace;
use crate::money::{Currency, Money};
use crate::order::{Order, OrderStatus};
use crate::page::{Page, newest_cursor, parse_newest_cursor};
use crate::storage::Storage;
use crate::user::{Principal, Role};

mod report;

pub use report::{
    CommissionReport, CommissionRow, Granularity, Period, ReportQuery, Statement, instant,
};

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

fn encode_cursor(e: &LedgerEntry) -> String {
    newest_cursor(e.created_at, e.id)
}

fn decode_cursor(c: &str) -> Result<EntryKey> {
    let (created_at, id) = parse_newest_cursor(c)?;
    Ok(EntryKey { created_at, id })
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

    /// Every seller's balance, for an admin: largest available first.
    pub async fn seller_balances(&self, who: &Principal) -> Result<Vec<Balance>> {
        self.require(who, Role::Admin)?;
        let mut all = self.storage().balances(None).await?;
        all.sort_by_key(|b| (std::cmp::Reverse(b.available.amount), b.seller_id));
        Ok(all)
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
