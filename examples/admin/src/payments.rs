//! Buyers' payments, one per checkout: listing them, one with its refunds,
//! recording that a manual payment was paid (the manual provider, the
//! default, never learns it on its own), and settling the payments that are
//! due, as the server's worker does.

use anyhow::{Context, Result};
use marketplace_core::payment::PaymentListQuery;
use marketplace_core::{Page, Payment, Principal, Refund, RefundStatus};
use marketplace_host::Market;
use serde::Serialize;

use crate::cli::PaymentsCommand;
use crate::output::{Output, count, rendered, table, time};

/// What `payments settle` did.
#[derive(Serialize)]
struct Settled {
    /// Payments that were due and looked at.
    looked_at: usize,
    /// Of those, payments that changed (expired, captured, voided, refunded).
    changed: usize,
    /// The most one run looks at.
    limit: u32,
}

/// `payments ...`
pub async fn payments(market: &Market, out: Output, command: PaymentsCommand) -> Result<()> {
    let operator = Principal::operator();
    match command {
        PaymentsCommand::List {
            status,
            limit,
            cursor,
        } => {
            let status = status.map(Into::into);
            let mut items = Vec::new();
            let mut cursor = cursor;
            let mut next_cursor = None;
            while items.len() < limit as usize {
                let want = (limit as usize - items.len()).min(100);
                let query = PaymentListQuery {
                    limit: Some(u32::try_from(want).unwrap_or(100)),
                    cursor: cursor.take(),
                    status,
                };
                let page = market
                    .payments(&operator, query)
                    .await
                    .context("cannot list the payments")?;
                items.extend(page.items);
                next_cursor = page.next_cursor;
                match &next_cursor {
                    Some(next) => cursor = Some(next.clone()),
                    None => break,
                }
            }
            let page = Page { items, next_cursor };
            out.show(&page, |page| {
                let list = rendered(&payment_table(&page.items), "no payments");
                match &page.next_cursor {
                    Some(next) => format!("{list}\nmore follow: --cursor {next}"),
                    None => list,
                }
            })
        }
        PaymentsCommand::Show { id } => {
            let payment = market
                .payment(&operator, id)
                .await
                .with_context(|| format!("cannot show the payment {id}"))?;
            out.show(&payment, details)
        }
        PaymentsCommand::MarkPaid { id } => {
            let paid = market
                .mark_payment_paid(&operator, id)
                .await
                .with_context(|| format!("cannot mark the payment {id} paid"))?;
            out.show(&paid, |p| {
                let uncharged = if p.captured == p.amount {
                    String::new()
                } else {
                    format!(" (of {}: cancelled orders are not charged)", p.amount)
                };
                format!(
                    "payment {} of checkout {} is {}: {} for {}{uncharged}",
                    p.id,
                    p.checkout_id,
                    p.status,
                    p.captured,
                    count(p.captured_orders.len(), "order", "orders"),
                )
            })
        }
        PaymentsCommand::Settle { limit } => {
            let run = market
                .run_payments(limit)
                .await
                .context("cannot settle the payments")?;
            let settled = Settled {
                looked_at: run.looked_at,
                changed: run.changed,
                limit,
            };
            out.show(&settled, |s| {
                if s.looked_at == 0 {
                    return "no payment is due: looked at 0, changed 0".to_owned();
                }
                let mut text = format!(
                    "looked at {} due, {} changed",
                    count(s.looked_at, "payment", "payments"),
                    s.changed
                );
                if s.looked_at >= s.limit as usize {
                    text.push_str(&format!(
                        "\nmore may be due: this run stopped at --limit {}; run it again",
                        s.limit
                    ));
                }
                text
            })
        }
    }
}

/// Payments as a table.
fn payment_table(list: &[Payment]) -> comfy_table::Table {
    let mut t = table([
        "id", "checkout", "provider", "status", "amount", "captured", "refunded", "created",
    ]);
    for p in list {
        t.add_row([
            p.id.to_string(),
            p.checkout_id.to_string(),
            p.provider.clone(),
            p.status.to_string(),
            p.amount.to_string(),
            p.captured.to_string(),
            p.refunded.to_string(),
            time(p.created_at),
        ]);
    }
    t
}

/// One payment in words, then its refunds as a table.
fn details(p: &Payment) -> String {
    let mut lines = vec![
        format!(
            "payment {} of checkout {} ({}): {}",
            p.id, p.checkout_id, p.provider, p.status
        ),
        format!(
            "amount {}, authorized {}, captured {}, refunded {}",
            p.amount, p.authorized, p.captured, p.refunded
        ),
        format!("buyer {}", p.buyer_id),
    ];
    if !p.captured_orders.is_empty() {
        let orders: Vec<String> = p.captured_orders.iter().map(ToString::to_string).collect();
        lines.push(format!("paid for: {}", orders.join(", ")));
    }
    let optional = [
        ("reference", p.reference.clone()),
        ("instructions", p.instructions.clone()),
        ("failure", p.failure.clone()),
        ("expires", p.expires_at.map(time)),
        ("capture by", p.capture_by.map(time)),
        (
            "due",
            p.due_at
                .map(|t| format!("{} (for the payment worker)", time(t))),
        ),
    ];
    for (what, value) in optional {
        if let Some(v) = value {
            lines.push(format!("{what}: {v}"));
        }
    }
    lines.push(format!(
        "created {}, updated {}",
        time(p.created_at),
        time(p.updated_at)
    ));
    lines.push(rendered(&refund_table(&p.refunds), "no refunds"));
    lines.join("\n")
}

/// Refunds as a table.
fn refund_table(list: &[Refund]) -> comfy_table::Table {
    let mut t = table([
        "refund",
        "order",
        "amount",
        "status",
        "reason",
        "reference or failure",
        "created",
    ]);
    for r in list {
        t.add_row([
            r.id.to_string(),
            r.order_id
                .map_or_else(|| "the whole payment".to_owned(), |o| o.to_string()),
            r.amount.to_string(),
            refund_state(r.status).to_owned(),
            r.reason.clone(),
            r.reference
                .clone()
                .or_else(|| r.failure.clone())
                .unwrap_or_default(),
            time(r.created_at),
        ]);
    }
    t
}

/// A refund's state as stored and sent.
fn refund_state(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Requested => "requested",
        RefundStatus::Succeeded => "succeeded",
        RefundStatus::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_states_read_as_the_api_sends_them() {
        for s in [
            RefundStatus::Requested,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(refund_state(s)))
            );
        }
    }
}
