//! Payouts: listing them, paying out the sellers due one, and settling a
//! payout the provider left open (the manual provider leaves every one open
//! until the operator says how the transfer went).

use std::collections::HashMap;

use anyhow::{Context, Result};
use marketplace_core::payout::PayoutListQuery;
use marketplace_core::{Money, Payout, Principal, UserId};
use marketplace_host::Market;
use serde::Serialize;

use crate::accounts::{all_sellers, seller_account};
use crate::cli::PayoutsCommand;
use crate::output::{Output, count, rendered, table, time};

/// A payout with its seller named.
#[derive(Serialize)]
struct Entry {
    #[serde(flatten)]
    payout: Payout,
    email: String,
    store_name: String,
}

/// The sellers' emails and store names, by id.
struct Sellers(HashMap<UserId, (String, String)>);

impl Sellers {
    async fn of(market: &Market) -> Result<Sellers> {
        Ok(Sellers(
            all_sellers(market, None)
                .await?
                .into_iter()
                .map(|s| (s.id, (s.email.to_string(), s.store_name)))
                .collect(),
        ))
    }

    fn entry(&self, payout: Payout) -> Entry {
        let (email, store_name) = self.0.get(&payout.seller_id).cloned().unwrap_or_default();
        Entry {
            payout,
            email,
            store_name,
        }
    }
}

/// What `payouts run` did.
#[derive(Serialize)]
struct Run {
    /// Earnings that became available first (their return window had closed).
    released: usize,
    /// The least available balance paid out.
    minimum: Money,
    /// The payouts made.
    payouts: Vec<Entry>,
    /// The seller's available balance, when one seller was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    available: Option<Money>,
}

/// Earnings released per call of the library.
const RELEASE_BATCH: u32 = 200;

/// `payouts ...`
pub async fn payouts(market: &Market, out: Output, command: PayoutsCommand) -> Result<()> {
    let operator = Principal::operator();
    match command {
        PayoutsCommand::List {
            status,
            seller,
            limit,
        } => {
            let seller_id = match seller {
                Some(email) => Some(
                    seller_account(market, &email)
                        .await
                        .context("cannot list the payouts")?
                        .id,
                ),
                None => None,
            };
            let mut list = Vec::new();
            let mut cursor = None;
            while list.len() < limit as usize {
                let want = (limit as usize - list.len()).min(100);
                let query = PayoutListQuery {
                    limit: Some(u32::try_from(want).unwrap_or(100)),
                    cursor,
                    status: status.map(Into::into),
                    seller_id,
                };
                let page = market
                    .payouts(&operator, query)
                    .await
                    .context("cannot list the payouts")?;
                list.extend(page.items);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let sellers = Sellers::of(market).await?;
            let list: Vec<Entry> = list.into_iter().map(|p| sellers.entry(p)).collect();
            out.show(&list, |list| rendered(&payout_table(list), "no payouts"))
        }
        PayoutsCommand::Run { seller } => {
            let seller = match seller {
                Some(email) => Some(
                    seller_account(market, &email)
                        .await
                        .with_context(|| format!("cannot pay out {email}"))?,
                ),
                None => None,
            };
            let released = release(market).await?;
            let made = match &seller {
                Some(s) => market
                    .pay_out_seller(&operator, s.id)
                    .await
                    .with_context(|| format!("cannot pay out {}", s.email))?
                    .into_iter()
                    .collect(),
                None => market
                    .run_payouts(&operator)
                    .await
                    .context("cannot run the payouts")?,
            };
            let available = match &seller {
                Some(s) if made.is_empty() => Some(available(market, s.id).await?),
                _ => None,
            };
            let config = market.config();
            let sellers = Sellers::of(market).await?;
            let run = Run {
                released,
                minimum: Money::new(config.money.minimum_payout.max(1), config.currency),
                payouts: made.into_iter().map(|p| sellers.entry(p)).collect(),
                available,
            };
            let who = seller.map(|s| s.email.to_string());
            out.show(&run, |r| {
                let mut lines = Vec::new();
                if r.released > 0 {
                    lines.push(format!(
                        "{} available (the return window closed)",
                        count(r.released, "earning", "earnings")
                    ));
                }
                lines.push(match (&who, r.available) {
                    _ if !r.payouts.is_empty() => format!(
                        "{} made\n{}",
                        count(r.payouts.len(), "payout", "payouts"),
                        payout_table(&r.payouts)
                    ),
                    (Some(email), Some(available)) => format!(
                        "no payout for {email}: its available balance, {available}, is below the minimum payout of {}",
                        r.minimum
                    ),
                    _ => format!(
                        "no seller is due a payout (the minimum payout is {})",
                        r.minimum
                    ),
                });
                lines.join("\n")
            })
        }
        PayoutsCommand::MarkPaid { id, reference } => {
            let paid = market
                .mark_payout_paid(&operator, id, &reference)
                .await
                .with_context(|| format!("cannot mark the payout {id} paid"))?;
            settled(market, out, paid).await
        }
        PayoutsCommand::MarkFailed { id, reason } => {
            let failed = market
                .mark_payout_failed(&operator, id, &reason)
                .await
                .with_context(|| format!("cannot mark the payout {id} failed"))?;
            settled(market, out, failed).await
        }
    }
}

/// Makes available every earning whose return window has closed, as the
/// server's worker does on each round; returns how many.
async fn release(market: &Market) -> Result<usize> {
    let mut released = 0;
    loop {
        let n = market
            .release_earnings(RELEASE_BATCH)
            .await
            .context("cannot release the earnings whose return window closed")?;
        released += n;
        if n < RELEASE_BATCH as usize {
            return Ok(released);
        }
    }
}

/// The seller's available balance in the marketplace's currency.
async fn available(market: &Market, seller: UserId) -> Result<Money> {
    let currency = market.config().currency;
    let balances = market
        .seller_balances(&Principal::operator())
        .await
        .context("cannot read the balances")?;
    Ok(balances
        .into_iter()
        .find(|b| b.seller_id == seller && b.available.currency == currency)
        .map_or(Money::zero(currency), |b| b.available))
}

/// The answer to `mark-paid` and `mark-failed`.
async fn settled(market: &Market, out: Output, payout: Payout) -> Result<()> {
    let entry = Sellers::of(market).await?.entry(payout);
    out.show(&entry, |e| {
        let p = &e.payout;
        let note = match (&p.reference, &p.failure) {
            (Some(r), _) => format!(" (reference {r})"),
            (None, Some(f)) => format!(" ({f}; the funds are available again)"),
            (None, None) => String::new(),
        };
        format!(
            "payout {} of {} to {} ({}) is {}{note}",
            p.id, p.amount, e.store_name, e.email, p.status
        )
    })
}

/// Payouts as a table.
fn payout_table(list: &[Entry]) -> comfy_table::Table {
    let mut t = table([
        "id",
        "store",
        "email",
        "amount",
        "status",
        "reference or reason",
        "requested",
    ]);
    for e in list {
        let p = &e.payout;
        t.add_row([
            p.id.to_string(),
            e.store_name.clone(),
            e.email.clone(),
            p.amount.to_string(),
            p.status.to_string(),
            p.reference
                .clone()
                .or_else(|| p.failure.clone())
                .unwrap_or_default(),
            time(p.created_at),
        ]);
    }
    t
}
