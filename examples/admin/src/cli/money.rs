//! The money commands' arguments and help: buyers' payments, commission
//! rules, balances, payouts and the reports.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use marketplace_core::ledger::{Granularity, instant};
use marketplace_core::{PaymentId, PaymentStatus, PayoutId, PayoutStatus};

/// `payments ...`
#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// List payments, newest first: one per checkout.
    #[command(after_help = "\
A listing stops after --limit payments; when more follow, it ends with the
cursor to pass as --cursor for the next ones (`next_cursor` in the JSON,
null on the last page).")]
    List {
        /// Only payments in this state.
        #[arg(long, value_enum)]
        status: Option<PaymentStatusArg>,
        /// At most this many payments.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Start after the payments an earlier listing showed (the cursor it
        /// printed last).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One payment, with its refunds.
    Show {
        /// The payment's id.
        id: PaymentId,
    },
    /// Record that the buyer paid a manual payment (on delivery, by bank
    /// transfer): it is captured for the checkout's orders still live.
    #[command(after_help = "\
Only a payment of the manual provider that is still awaiting payment (or
authorized) can be marked paid; one already captured, refunded, failed or
voided is refused, as is a checkout whose every order was cancelled. Orders
cancelled or returned afterwards are refunded.")]
    MarkPaid {
        /// The payment's id.
        id: PaymentId,
    },
    /// Settle the payments that are due, as one round of the server's worker
    /// does: expiries, captures, voids and refunds.
    #[command(after_help = "\
Unpaid checkouts whose hold ran out expire (their orders are cancelled and
their stock returned), a payment is captured once every order of its
checkout is accepted or cancelled (or at its capture deadline), and the
refunds of orders cancelled or returned after the capture are made. Provider
calls that had no answer are repeated with the same idempotency keys, so
nothing is charged or refunded twice, and running it while the server's
worker runs is safe. Useful from cron when the server's worker is off
(MARKETPLACE_LEDGER_POLL_MS=0); a payment whose step fails is logged on
standard error and stays due.")]
    Settle {
        /// At most this many payments (the server's worker takes 200 a round).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
}

/// A payment state as the command line names it (as stored and sent).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PaymentStatusArg {
    /// Created; the buyer has not paid.
    #[value(name = "awaiting_payment", alias = "awaiting-payment")]
    AwaitingPayment,
    /// Paid; the money is held at the provider.
    Authorized,
    /// The capture is under way.
    Capturing,
    /// The money was taken.
    Captured,
    /// Some of it went back.
    #[value(name = "partially_refunded", alias = "partially-refunded")]
    PartiallyRefunded,
    /// All of it went back.
    Refunded,
    /// The provider refused; the orders were cancelled.
    Failed,
    /// Nothing was taken: the checkout expired, or every order was cancelled.
    Voided,
}

impl From<PaymentStatusArg> for PaymentStatus {
    fn from(s: PaymentStatusArg) -> Self {
        match s {
            PaymentStatusArg::AwaitingPayment => PaymentStatus::AwaitingPayment,
            PaymentStatusArg::Authorized => PaymentStatus::Authorized,
            PaymentStatusArg::Capturing => PaymentStatus::Capturing,
            PaymentStatusArg::Captured => PaymentStatus::Captured,
            PaymentStatusArg::PartiallyRefunded => PaymentStatus::PartiallyRefunded,
            PaymentStatusArg::Refunded => PaymentStatus::Refunded,
            PaymentStatusArg::Failed => PaymentStatus::Failed,
            PaymentStatusArg::Voided => PaymentStatus::Voided,
        }
    }
}

/// `commission ...`
#[derive(Debug, Subcommand)]
pub enum CommissionCommand {
    /// List every commission rule: the default first, then categories, then
    /// sellers.
    List,
    /// Set the rule of one level, replacing the one there. Orders already
    /// placed keep the commission they were placed with.
    #[command(after_help = "\
An order line pays the rule of its seller if there is one, else the rule of
its product's category, else the default; a line no rule covers pays nothing.
A rule takes RATE percent of the lines it covers (rounded half up to the
cent), plus the fixed fee once per order, then at least the minimum and at
most the maximum, and never more than the lines' total.

Examples:
  commission set --default --rate 10 --fixed 0.30
  commission set --category Tea --rate 7.5 --min 1.00
  commission set --seller teas@example.com --rate 5 --max 50.00")]
    Set {
        /// Where the rule applies.
        #[command(flatten)]
        scope: ScopeArgs,
        /// The rate, in percent of the lines' total: 0 to 100 with at most
        /// two decimals (`12.5` is 12.5 %, i.e. 1 250 basis points; a
        /// trailing `%` is allowed).
        #[arg(long, value_parser = parse_rate, value_name = "PERCENT")]
        rate: u32,
        /// A fixed fee added once per order, in the marketplace currency (0.30).
        #[arg(long, value_name = "AMOUNT")]
        fixed: Option<String>,
        /// The least the rule takes from one order (1.00).
        #[arg(long, value_name = "AMOUNT")]
        min: Option<String>,
        /// The most the rule takes from one order (50.00).
        #[arg(long, value_name = "AMOUNT")]
        max: Option<String>,
    },
    /// Remove the rule of one level; its lines fall back to the next level.
    Remove {
        /// Which rule.
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

/// The level a commission rule applies at: exactly one of the three.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// The marketplace default: every line no other rule covers.
    #[arg(long)]
    pub default: bool,
    /// The lines of products in this category (its name or id).
    #[arg(long, value_name = "NAME_OR_ID")]
    pub category: Option<String>,
    /// Every line of this seller's orders (the seller's email).
    #[arg(long, value_name = "EMAIL")]
    pub seller: Option<String>,
}

/// `payouts ...`
#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// List payouts, newest first.
    List {
        /// Only payouts in this state.
        #[arg(long, value_enum)]
        status: Option<PayoutStatusArg>,
        /// Only this seller's payouts (the seller's email).
        #[arg(long, value_name = "EMAIL")]
        seller: Option<String>,
        /// At most this many payouts.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Pay out every seller whose available balance reaches the minimum
    /// payout (MARKETPLACE_MINIMUM_PAYOUT), or one seller.
    #[command(after_help = "\
First the earnings whose return window has closed become available, as the
server's worker does on every round; then each balance due is taken whole, in
one atomic step, and handed to the payout provider. With the manual provider
a payout stays `requested` until it is marked paid (with the transfer's
reference) or failed (its funds return to the balance). Running it again
pays nothing more: a balance is never taken twice.")]
    Run {
        /// Only this seller (the seller's email).
        #[arg(long, value_name = "EMAIL")]
        seller: Option<String>,
    },
    /// Record that a requested or unresolved payout reached the seller. The
    /// seller is told by mail.
    MarkPaid {
        /// The payout's id.
        id: PayoutId,
        /// The transfer's reference (a bank reference, say).
        #[arg(long)]
        reference: String,
    },
    /// Record that a requested or unresolved payout did not reach the seller:
    /// its funds return to the seller's available balance.
    MarkFailed {
        /// The payout's id.
        id: PayoutId,
        /// Why it failed.
        #[arg(long)]
        reason: String,
    },
}

/// A payout state as the command line names it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PayoutStatusArg {
    /// The balance was taken; the transfer is under way.
    Requested,
    /// The money reached the seller.
    Paid,
    /// It did not; the funds went back to the balance.
    Failed,
    /// The provider's answer is unknown: mark it paid or failed.
    Unresolved,
}

impl From<PayoutStatusArg> for PayoutStatus {
    fn from(s: PayoutStatusArg) -> Self {
        match s {
            PayoutStatusArg::Requested => PayoutStatus::Requested,
            PayoutStatusArg::Paid => PayoutStatus::Paid,
            PayoutStatusArg::Failed => PayoutStatus::Failed,
            PayoutStatusArg::Unresolved => PayoutStatus::Unresolved,
        }
    }
}

/// `report ...`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The commission earned per period and per seller: commission on the
    /// orders delivered minus what returns gave back, with the totals.
    Commission {
        /// The span reported on.
        #[command(flatten)]
        period: PeriodArgs,
        /// Buckets of a calendar month or day (UTC).
        #[arg(long, value_enum, default_value_t = By::Month)]
        by: By,
        /// Print CSV instead of a table: one line per period and seller,
        /// without the totals (period as its first day, seller_id, email,
        /// store_name, delivered, returned, gross, commission, seller_net,
        /// currency), amounts as decimals (12.50).
        #[arg(long)]
        csv: bool,
    },
    /// One seller's statement: every ledger entry of the period with the
    /// balance after it, between the opening and the closing balance.
    Statement {
        /// The seller's email.
        #[arg(long, value_name = "EMAIL")]
        seller: String,
        /// The span of the statement.
        #[command(flatten)]
        period: PeriodArgs,
        /// Print CSV instead of a table: one line per entry (date, entry,
        /// kind, order_id, payout_id, commission, pending_change,
        /// available_change, pending_after, available_after, currency).
        #[arg(long)]
        csv: bool,
    },
}

/// A span of time: `--from` included, `--to` not.
#[derive(Clone, Copy, Debug, Args)]
pub struct PeriodArgs {
    /// The first day included (2026-11-01, midnight UTC) or an RFC 3339 time;
    /// from the beginning when absent.
    #[arg(long, value_parser = parse_instant, value_name = "DATE")]
    pub from: Option<DateTime<Utc>>,
    /// The first day (or time) no longer included; up to now when absent.
    #[arg(long, value_parser = parse_instant, value_name = "DATE")]
    pub to: Option<DateTime<Utc>>,
}

/// A report's buckets as the command line names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Calendar days.
    Day,
    /// Calendar months.
    Month,
}

impl From<By> for Granularity {
    fn from(b: By) -> Self {
        match b {
            By::Day => Granularity::Day,
            By::Month => Granularity::Month,
        }
    }
}

/// Reads a rate in percent (`12.5`, `12.50%`, `0`, `100`) as basis points.
pub fn parse_rate(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "`{s}` is not a rate in percent: 0 to 100 with at most two decimals, like 12.5 (for 12.5 %)"
        )
    };
    let text = s.trim();
    let text = text.strip_suffix('%').unwrap_or(text).trim_end();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 3
        || !digits(whole)
        || fraction.len() > 2
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let cents: u32 = format!("{fraction:0<2}").parse().map_err(|_| bad())?;
    let bps = whole * 100 + cents;
    if bps > marketplace_core::commission::BPS_WHOLE {
        return Err(bad());
    }
    Ok(bps)
}

/// Reads `2026-11-01` (midnight UTC) or an RFC 3339 time.
fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    instant::parse(s.trim())
        .ok_or_else(|| format!("`{s}` is not a date (2026-11-01) or an RFC 3339 time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_percent_with_two_decimals() {
        for (text, bps) in [
            ("10", 1000),
            ("12.5", 1250),
            ("12.50%", 1250),
            ("0.01", 1),
            ("0", 0),
            ("100", 10_000),
            ("7.25 %", 725),
        ] {
            assert_eq!(parse_rate(text), Ok(bps), "{text}");
        }
        for bad in [
            "", "abc", "-1", "100.01", "101", "12.345", "1,5", "12.", ".5", "1e2",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn payment_states_are_named_as_stored() {
        for arg in PaymentStatusArg::value_variants() {
            let name = arg
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            assert_eq!(name, PaymentStatus::from(*arg).as_str());
        }
        assert_eq!(
            PaymentStatusArg::value_variants().len(),
            PaymentStatus::ALL.len()
        );
    }

    #[test]
    fn dates_or_times() {
        assert!(parse_instant("2026-11-01").is_ok());
        assert!(parse_instant("2026-11-01T12:00:00Z").is_ok());
        assert!(parse_instant("2026-13-01").is_err());
        assert!(parse_instant("yesterday").is_err());
    }
}
