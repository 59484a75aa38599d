//! Orders: every order to CSV, a page at a time.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::SecondsFormat;
use marketplace_core::{Money, Order, OrderListQuery, OrderStatus, Principal};
use marketplace_host::Market;
use serde::Serialize;

use crate::cli::ExportCommand;
use crate::output::Output;

/// The header of the orders export.
const HEADER: [&str; 9] = [
    "order_id",
    "checkout_id",
    "created_at",
    "status",
    "buyer_id",
    "seller_id",
    "item_count",
    "total",
    "currency",
];

/// What `export orders` reports when the CSV went to a file.
#[derive(Serialize)]
struct Exported {
    orders: usize,
    out: String,
}

/// `export ...`
pub async fn export(market: &Market, out: Output, command: ExportCommand) -> Result<()> {
    let ExportCommand::Orders { status, out: file } = command;
    match file {
        Some(path) => {
            let f =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            let n = write_orders(market, status, f, &path).await?;
            let report = Exported {
                orders: n,
                out: path.display().to_string(),
            };
            out.show(&report, |r| {
                format!("exported {} orders to {}", r.orders, r.out)
            })
        }
        // The CSV is the answer: nothing else goes to standard output.
        None => {
            let n = write_orders(market, status, std::io::stdout(), Path::new("-")).await?;
            eprintln!("exported {n} orders");
            Ok(())
        }
    }
}

/// Writes every order (of `status`) to `sink` as CSV, newest first; returns
/// how many.
async fn write_orders(
    market: &Market,
    status: Option<OrderStatus>,
    sink: impl Write,
    path: &Path,
) -> Result<usize> {
    let failed = || format!("cannot write the orders to {}", path.display());
    let mut csv = csv::Writer::from_writer(sink);
    csv.write_record(HEADER).with_context(failed)?;
    let operator = Principal::operator();
    let mut cursor = None;
    let mut n = 0;
    loop {
        let query = OrderListQuery {
            limit: Some(100),
            cursor,
            status,
        };
        let page = market
            .all_orders(&operator, query)
            .await
            .context("cannot list the orders")?;
        for order in &page.items {
            csv.write_record(row(order)).with_context(failed)?;
            n += 1;
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    csv.flush().with_context(failed)?;
    Ok(n)
}

/// One order's line.
fn row(o: &Order) -> [String; 9] {
    let units: u64 = o.items.iter().map(|i| u64::from(i.quantity)).sum();
    [
        o.id.to_string(),
        o.checkout_id.to_string(),
        // To the millisecond, as stored.
        o.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        o.status.as_str().to_owned(),
        o.buyer_id.to_string(),
        o.seller_id.to_string(),
        units.to_string(),
        decimal(o.total),
        o.total.currency.as_str().to_owned(),
    ]
}

/// An amount in its currency's major units, as the import reads prices
/// (`12.50`): money's own display (`12.50 USD`) without the code.
fn decimal(m: Money) -> String {
    let shown = m.to_string();
    match shown.rsplit_once(' ') {
        Some((amount, _code)) => amount.to_owned(),
        None => shown,
    }
}

#[cfg(test)]
mod tests {
    use marketplace_core::Currency;

    use super::*;

    #[test]
    fn totals_are_written_in_major_units() {
        assert_eq!(decimal(Money::new(1250, Currency::USD)), "12.50");
        assert_eq!(decimal(Money::new(7, Currency::USD)), "0.07");
        let jpy = Currency::parse("JPY").unwrap_or(Currency::USD);
        assert_eq!(decimal(Money::new(1250, jpy)), "1250");
    }
}
