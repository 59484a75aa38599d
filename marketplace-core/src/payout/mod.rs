//! Payouts: the seller's available balance, taken in one atomic step and sent
//! through a [`PayoutProvider`].
//!
//! A payout is `requested` when it takes the balance; the provider then says it
//! was `paid`, that it `failed` (its funds come back to the balance), or nothing
//! certain (a timeout): the payout is `unresolved`, never sent again on its own,
//! until an admin, who can check with the provider, marks it paid or failed.
//! Every call to the provider carries the payout's idempotency key, derived from
//! its id, so a provider that sees the same key twice pays once.
//!
//! The payout records and their steps live here; the providers
//! ([`ManualPayouts`], [`SimulatedPayouts`]) in `provider`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{LedgerEntryId, PayoutId, UserId};
use crate::ledger::{EntryKind, LedgerEntry};
use crate::marketplace::Marketplace;
use crate::money::{Currency, Money};
use crate::notify::Notification;
use crate::outbox::OutboxMessage;
use crate::page::{Page, newest_cursor, parse_newest_cursor};
use crate::storage::Storage;
use crate::user::{Principal, Role, User};

mod provider;

pub use provider::{
    ManualPayouts, PayoutError, PayoutInstruction, PayoutProvider, PayoutSent, SimulatedOutcome,
    SimulatedPayouts,
};

/// Where a payout stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// The balance was taken; the provider has it or will.
    Requested,
    /// The money reached the seller.
    Paid,
    /// It did not; the funds are back in the balance.
    Failed,
    /// The provider's answer is unknown; an admin resolves it.
    Unresolved,
}

impl PayoutStatus {
    /// Every status.
    pub const ALL: [PayoutStatus; 4] = [
        PayoutStatus::Requested,
        PayoutStatus::Paid,
        PayoutStatus::Failed,
        PayoutStatus::Unresolved,
    ];

    /// The name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            PayoutStatus::Requested => "requested",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
            PayoutStatus::Unresolved => "unresolved",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<PayoutStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the payout's outcome is still open (an admin may settle it).
    pub fn is_open(&self) -> bool {
        matches!(self, PayoutStatus::Requested | PayoutStatus::Unresolved)
    }
}

impl std::fmt::Display for PayoutStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payout of a seller's available balance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// Identifier.
    pub id: PayoutId,
    /// The seller paid.
    pub seller_id: UserId,
    /// The whole available balance at the moment it was taken.
    pub amount: Money,
    /// Where it stands.
    pub status: PayoutStatus,
    /// The provider it went through (`manual`, `simulated`...).
    pub provider: String,
    /// The key every provider call carries: `payout-{id}`.
    pub idempotency_key: String,
    /// The provider's or the admin's reference for the transfer, once paid.
    pub reference: Option<String>,
    /// Why it failed or is unresolved.
    pub failure: Option<String>,
    /// Who asked for it (the operator for a scheduled run).
    pub requested_by: UserId,
    /// When the balance was taken.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// What [`PayoutStore::request_payout`](crate::storage::PayoutStore::request_payout) applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutRequest {
    /// The new payout's id.
    pub payout_id: PayoutId,
    /// The ledger entry's id.
    pub entry_id: LedgerEntryId,
    /// The seller.
    pub seller_id: UserId,
    /// The balance's currency.
    pub currency: Currency,
    /// The least available balance worth paying out (at least 1).
    pub minimum: i64,
    /// The provider's name, recorded on the payout.
    pub provider: String,
    /// Who asks.
    pub requested_by: UserId,
    /// When.
    pub at: DateTime<Utc>,
}

impl PayoutRequest {
    /// The payout and its ledger entry for an available balance of `amount`, as
    /// storage writes them.
    pub fn payout(&self, amount: i64) -> (Payout, LedgerEntry) {
        let money = Money::new(amount, self.currency);
        let payout = Payout {
            id: self.payout_id,
            seller_id: self.seller_id,
            amount: money,
            status: PayoutStatus::Requested,
            provider: self.provider.clone(),
            idempotency_key: idempotency_key(self.payout_id),
            reference: None,
            failure: None,
            requested_by: self.requested_by,
            created_at: self.at,
            updated_at: self.at,
        };
        let entry = LedgerEntry {
            id: self.entry_id,
            seller_id: self.seller_id,
            kind: EntryKind::Payout,
            pending: Money::zero(self.currency),
            available: Money::new(-amount, self.currency),
            commission: Money::zero(self.currency),
            order_id: None,
            payout_id: Some(self.payout_id),
            created_at: self.at,
        };
        (payout, entry)
    }
}

/// A payout's outcome as [`PayoutStore::settle_payout`](crate::storage::PayoutStore::settle_payout) applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutSettlement {
    /// The payout.
    pub payout_id: PayoutId,
    /// The statuses it may still have; anything else changes nothing.
    pub from: Vec<PayoutStatus>,
    /// The new status.
    pub to: PayoutStatus,
    /// The transfer's reference (when paid).
    pub reference: Option<String>,
    /// Why it failed or is unresolved.
    pub failure: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The `payout_failed` entry giving the funds back (when failed).
    pub entry: Option<LedgerEntry>,
    /// The mail telling the seller (when paid).
    pub outbox: Vec<OutboxMessage>,
}

/// The idempotency key of a payout's provider calls.
pub fn idempotency_key(id: PayoutId) -> String {
    format!("payout-{id}")
}

/// A page request for payouts.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PayoutListQuery {
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Only payouts in this status.
    pub status: Option<PayoutStatus>,
    /// Only this seller's payouts (admins only).
    pub seller_id: Option<UserId>,
}

/// The sort key of a payout: newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayoutKey {
    /// When it was requested.
    pub created_at: DateTime<Utc>,
    /// Tie-breaker.
    pub id: PayoutId,
}

/// A payout listing as storage executes it: newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutQuery {
    /// Only this seller's.
    pub seller_id: Option<UserId>,
    /// Only in this status.
    pub status: Option<PayoutStatus>,
    /// Start after this key.
    pub after: Option<PayoutKey>,
    /// Maximum number of results.
    pub limit: u32,
}

impl PayoutQuery {
    /// Whether `p` matches the filters and comes after the cursor.
    pub fn matches(&self, p: &Payout) -> bool {
        self.seller_id.is_none_or(|s| p.seller_id == s)
            && self.status.is_none_or(|s| p.status == s)
            && self
                .after
                .is_none_or(|k| (p.created_at, p.id) < (k.created_at, k.id))
    }
}

fn encode_cursor(p: &Payout) -> String {
    newest_cursor(p.created_at, p.id)
}

fn decode_cursor(c: &str) -> Result<PayoutKey> {
    let (created_at, id) = parse_newest_cursor(c)?;
    Ok(PayoutKey { created_at, id })
}

/// A settlement that lost the race to another.
fn settled_meanwhile() -> Error {
    Error::conflict("payout_settled", "the payout was settled meanwhile")
}

/// The longest reference or reason kept on a payout, in characters.
pub const MAX_NOTE: usize = 200;

fn note(field: &'static str, text: &str, required: bool) -> Result<Option<String>> {
    let text = text.trim();
    if text.is_empty() && required {
        return Err(Error::invalid(field, "required", "must not be empty"));
    }
    if text.chars().count() > MAX_NOTE || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "invalid",
            "must be at most 200 characters, without control characters",
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

impl<S: Storage> Marketplace<S> {
    async fn payout_page(&self, q: PayoutQuery, page: &PayoutListQuery) -> Result<Page<Payout>> {
        let limit = self.page_size(page.limit);
        let q = PayoutQuery {
            status: page.status,
            after: page
                .cursor
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(decode_cursor)
                .transpose()?,
            limit: limit + 1,
            ..q
        };
        let rows = self.storage().list_payouts(&q).await?;
        Ok(Page::from_overfetch(rows, limit, encode_cursor))
    }

    /// The seller's payouts, newest first.
    pub async fn seller_payouts(
        &self,
        who: &Principal,
        page: PayoutListQuery,
    ) -> Result<Page<Payout>> {
        self.require(who, Role::Seller)?;
        let q = PayoutQuery {
            seller_id: Some(who.user_id),
            ..PayoutQuery::default()
        };
        self.payout_page(q, &page).await
    }

    /// Every payout, for an admin, optionally of one seller or status.
    pub async fn payouts(&self, who: &Principal, page: PayoutListQuery) -> Result<Page<Payout>> {
        self.require(who, Role::Admin)?;
        let q = PayoutQuery {
            seller_id: page.seller_id,
            ..PayoutQuery::default()
        };
        self.payout_page(q, &page).await
    }

    /// One payout: the seller's own, or any for an admin.
    pub async fn payout(&self, who: &Principal, id: PayoutId) -> Result<Payout> {
        let p = self
            .storage()
            .payout(id)
            .await?
            .ok_or(Error::NotFound("payout"))?;
        match who.role {
            Role::Admin => Ok(p),
            Role::Seller if p.seller_id == who.user_id => Ok(p),
            _ => Err(Error::NotFound("payout")),
        }
    }

    /// Pays out every seller whose available balance is at least the minimum
    /// payout; returns the payouts made. Two runs at once, on one instance or
    /// several, never pay a balance twice: the second finds it taken.
    pub async fn run_payouts(&self, who: &Principal) -> Result<Vec<Payout>> {
        self.require(who, Role::Admin)?;
        let minimum = self.minimum_payout();
        let currency = self.inner.config.currency;
        let due: Vec<UserId> = self
            .storage()
            .balances(None)
            .await?
            .into_iter()
            .filter(|b| b.available.currency == currency && b.available.amount >= minimum)
            .map(|b| b.seller_id)
            .collect();
        let mut made = Vec::new();
        for seller in due {
            if let Some(p) = self.take_and_send(who, seller).await? {
                made.push(p);
            }
        }
        Ok(made)
    }

    /// Pays out one seller's available balance when it is at least the minimum
    /// payout; `None` when it is not (or a concurrent payout just took it).
    pub async fn pay_out_seller(&self, who: &Principal, seller: UserId) -> Result<Option<Payout>> {
        self.require(who, Role::Admin)?;
        match self.storage().user(seller).await? {
            Some(u) if u.role == Role::Seller => {}
            _ => return Err(Error::NotFound("seller")),
        }
        self.take_and_send(who, seller).await
    }

    fn minimum_payout(&self) -> i64 {
        self.inner.config.money.minimum_payout.max(1)
    }

    /// Takes the seller's available balance (one atomic step), then sends it.
    async fn take_and_send(&self, who: &Principal, seller: UserId) -> Result<Option<Payout>> {
        let request = PayoutRequest {
            payout_id: PayoutId(self.new_id()),
            entry_id: LedgerEntryId(self.new_id()),
            seller_id: seller,
            currency: self.inner.config.currency,
            minimum: self.minimum_payout(),
            provider: self.inner.payouts.name().to_owned(),
            requested_by: who.user_id,
            at: self.now(),
        };
        let Some(payout) = self
            .retry(|| self.storage().request_payout(&request))
            .await?
        else {
            return Ok(None);
        };
        self.send_payout(payout).await.map(Some)
    }

    /// Hands a requested payout to the provider and records its answer.
    async fn send_payout(&self, payout: Payout) -> Result<Payout> {
        let seller = self.storage().user(payout.seller_id).await?;
        let instruction = PayoutInstruction {
            payout_id: payout.id,
            seller_id: payout.seller_id,
            seller_email: seller
                .as_ref()
                .map(|u| u.email.as_str().to_owned())
                .unwrap_or_default(),
            amount: payout.amount,
            idempotency_key: payout.idempotency_key.clone(),
        };
        let answer = self.inner.payouts.send(&instruction).await;
        let (to, reference, failure) = match answer {
            Ok(PayoutSent::Submitted) => return Ok(payout),
            Ok(PayoutSent::Paid { reference }) => (PayoutStatus::Paid, Some(reference), None),
            Err(PayoutError::Declined(why)) => (PayoutStatus::Failed, None, Some(why)),
            Err(PayoutError::Unknown(why)) => {
                tracing::warn!(payout = %payout.id, error = %why, "payout outcome unknown; an admin must resolve it");
                (PayoutStatus::Unresolved, None, Some(why))
            }
        };
        let seller = seller.as_ref();
        self.settle(
            &payout,
            seller,
            &[PayoutStatus::Requested],
            to,
            reference,
            failure,
        )
        .await?
        .ok_or_else(settled_meanwhile)
    }

    /// Records that an open payout reached the seller, with the transfer's
    /// reference. The seller gets a mail.
    pub async fn mark_payout_paid(
        &self,
        who: &Principal,
        id: PayoutId,
        reference: &str,
    ) -> Result<Payout> {
        self.require(who, Role::Admin)?;
        let reference = note("reference", reference, true)?;
        self.resolve(who, id, PayoutStatus::Paid, reference, None)
            .await
    }

    /// Records that an open payout did not reach the seller; its funds return to
    /// the available balance.
    pub async fn mark_payout_failed(
        &self,
        who: &Principal,
        id: PayoutId,
        reason: &str,
    ) -> Result<Payout> {
        self.require(who, Role::Admin)?;
        let reason = note("reason", reason, true)?;
        self.resolve(who, id, PayoutStatus::Failed, None, reason)
            .await
    }

    async fn resolve(
        &self,
        who: &Principal,
        id: PayoutId,
        to: PayoutStatus,
        reference: Option<String>,
        failure: Option<String>,
    ) -> Result<Payout> {
        let payout = self.payout(who, id).await?;
        if !payout.status.is_open() {
            return Err(Error::conflict(
                "payout_settled",
                format!("the payout is already {}", payout.status),
            ));
        }
        // Only a paid payout mails its seller.
        let seller = match to {
            PayoutStatus::Paid => self.storage().user(payout.seller_id).await?,
            _ => None,
        };
        let open = [PayoutStatus::Requested, PayoutStatus::Unresolved];
        self.settle(&payout, seller.as_ref(), &open, to, reference, failure)
            .await?
            .ok_or_else(settled_meanwhile)
    }

    /// Records a payout's outcome when its status is still one of `from`; the
    /// `seller` is mailed when it is paid.
    async fn settle(
        &self,
        payout: &Payout,
        seller: Option<&User>,
        from: &[PayoutStatus],
        to: PayoutStatus,
        reference: Option<String>,
        failure: Option<String>,
    ) -> Result<Option<Payout>> {
        let at = self.now();
        let currency = payout.amount.currency;
        let entry = (to == PayoutStatus::Failed).then(|| LedgerEntry {
            id: LedgerEntryId(self.new_id()),
            seller_id: payout.seller_id,
            kind: EntryKind::PayoutFailed,
            pending: Money::zero(currency),
            available: payout.amount,
            commission: Money::zero(currency),
            order_id: None,
            payout_id: Some(payout.id),
            created_at: at,
        });
        let mut outbox = Vec::new();
        if to == PayoutStatus::Paid
            && let Some(seller) = seller
        {
            let mut paid = payout.clone();
            paid.status = to;
            paid.reference.clone_from(&reference);
            outbox.push(self.render(&Notification::PayoutPaid {
                seller,
                payout: &paid,
            })?);
        }
        let s = PayoutSettlement {
            payout_id: payout.id,
            from: from.to_vec(),
            to,
            reference,
            failure,
            at,
            entry,
            outbox,
        };
        Ok(self.retry(|| self.storage().settle_payout(&s)).await?)
    }
}
