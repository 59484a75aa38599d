//! The sellers' ledgers: every balance, the commission report, and one
//! seller's statement.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use marketplace_core::ledger::{CommissionRow, Granularity, ReportQuery};
use marketplace_core::{
    Balance, LedgerEntry, Money, Period, Principal, Role, SellerSummary, Statement, UserId,
};
use marketplace_host::Market;
use serde::Serialize;

use crate::accounts::{all_sellers, seller_account};
use crate::cli::{By, PeriodArgs, ReportCommand};
use crate::output::{Output, raw, rendered, table, time};

/// One seller's balance, with the seller named.
#[derive(Serialize)]
struct SellerBalance {
    seller_id: UserId,
    email: String,
    store_name: String,
    pending: Money,
    available: Money,
    total: Money,
}

/// `balances`: every seller, those with the most to pay out first, then the
/// sellers who have earned nothing yet.
pub async fn balances(market: &Market, out: Output) -> Result<()> {
    let sellers = all_sellers(market, None).await?;
    let balances = market
        .seller_balances(&Principal::operator())
        .await
        .context("cannot read the balances")?;
    let list = with_sellers(balances, &sellers, market.config().currency);
    out.show(&list, |list| {
        let mut t = table(["store", "email", "pending", "available", "total"]);
        for b in list {
            t.add_row([
                b.store_name.clone(),
                b.email.clone(),
                b.pending.to_string(),
                b.available.to_string(),
                b.total.to_string(),
            ]);
        }
        rendered(&t, "no sellers")
    })
}

/// The balances named, then an empty balance for every seller without one.
fn with_sellers(
    balances: Vec<Balance>,
    sellers: &[SellerSummary],
    currency: marketplace_core::Currency,
) -> Vec<SellerBalance> {
    let by_id: HashMap<UserId, &SellerSummary> = sellers.iter().map(|s| (s.id, s)).collect();
    let named = |b: Balance| {
        let s = by_id.get(&b.seller_id);
        SellerBalance {
            seller_id: b.seller_id,
            email: s.map(|s| s.email.to_string()).unwrap_or_default(),
            store_name: s.map(|s| s.store_name.clone()).unwrap_or_default(),
            pending: b.pending,
            available: b.available,
            total: b.total,
        }
    };
    let with: HashSet<UserId> = balances.iter().map(|b| b.seller_id).collect();
    let mut none: Vec<&SellerSummary> = sellers.iter().filter(|s| !with.contains(&s.id)).collect();
    none.sort_by(|a, b| (&a.store_name, a.id).cmp(&(&b.store_name, b.id)));
    let mut list: Vec<SellerBalance> = balances.into_iter().map(named).collect();
    list.extend(
        none.into_iter()
            .map(|s| named(Balance::empty(s.id, currency))),
    );
    list
}

/// A row of the commission report, with the seller's email.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    row: CommissionRow,
    email: String,
}

/// The commission report as printed.
#[derive(Serialize)]
struct Report {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    by: Granularity,
    /// One per period and seller, oldest period first.
    rows: Vec<Row>,
    /// The sums over every row, one per currency.
    totals: Vec<CommissionRow>,
}

/// The header of the commission report's CSV.
const REPORT_HEADER: [&str; 10] = [
    "period",
    "seller_id",
    "email",
    "store_name",
    "delivered",
    "returned",
    "gross",
    "commission",
    "seller_net",
    "currency",
];

/// `report ...`
pub async fn report(market: &Market, out: Output, command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::Commission { period, by, csv } => {
            commission_report(market, out, period, by, csv).await
        }
        ReportCommand::Statement {
            seller,
            period,
            csv,
        } => statement(market, out, &seller, period, csv).await,
    }
}

async fn commission_report(
    market: &Market,
    out: Output,
    period: PeriodArgs,
    by: By,
    csv: bool,
) -> Result<()> {
    let query = ReportQuery {
        period: Period {
            from: period.from,
            to: period.to,
        },
        by: by.into(),
    };
    let report = market
        .commission_report(&Principal::operator(), query)
        .await
        .context("cannot make the commission report")?;
    let emails: HashMap<UserId, String> = all_sellers(market, None)
        .await?
        .into_iter()
        .map(|s| (s.id, s.email.to_string()))
        .collect();
    let report = Report {
        from: period.from,
        to: period.to,
        by: query.by,
        rows: report
            .rows
            .into_iter()
            .map(|row| Row {
                email: emails.get(&row.seller_id).cloned().unwrap_or_default(),
                row,
            })
            .collect(),
        totals: report.totals,
    };
    if csv {
        return raw(&report_csv(&report)?);
    }
    out.show(&report, |r| {
        let mut t = table([
            "period",
            "store",
            "email",
            "delivered",
            "returned",
            "gross",
            "commission",
            "seller net",
        ]);
        let line = |period: String, row: &CommissionRow, email: &str| {
            [
                period,
                row.store_name.clone(),
                email.to_owned(),
                row.delivered.to_string(),
                row.returned.to_string(),
                row.gross.to_string(),
                row.commission.to_string(),
                row.seller_net.to_string(),
            ]
        };
        for row in &r.rows {
            t.add_row(line(bucket(row.row.period, r.by), &row.row, &row.email));
        }
        for total in &r.totals {
            t.add_row(line("total".to_owned(), total, ""));
        }
        rendered(&t, "no deliveries or returns in the period: no commission")
    })
}

/// A bucket as tables show it: `2026-11` for a month, `2026-11-05` for a day.
fn bucket(first_day: NaiveDate, by: Granularity) -> String {
    match by {
        Granularity::Day => first_day.format("%Y-%m-%d").to_string(),
        Granularity::Month => first_day.format("%Y-%m").to_string(),
    }
}

/// The report's rows as CSV (the totals are left for the spreadsheet to sum):
/// the period as its first day, amounts as decimals.
fn report_csv(report: &Report) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(REPORT_HEADER)
        .context("cannot write the report")?;
    for Row { row, email } in &report.rows {
        w.write_record([
            row.period.format("%Y-%m-%d").to_string(),
            row.seller_id.to_string(),
            email.clone(),
            row.store_name.clone(),
            row.delivered.to_string(),
            row.returned.to_string(),
            row.gross.decimal(),
            row.commission.decimal(),
            row.seller_net.decimal(),
            row.gross.currency.to_string(),
        ])
        .context("cannot write the report")?;
    }
    let bytes = w.into_inner().context("cannot write the report")?;
    String::from_utf8(bytes).context("cannot write the report")
}

/// A statement as printed, with the seller's email.
#[derive(Serialize)]
struct SellerStatement {
    email: String,
    #[serde(flatten)]
    statement: Statement,
}

/// One seller's statement, read as the seller reads its own: the operator
/// acts for the seller here, as `import products` does.
async fn statement(
    market: &Market,
    out: Output,
    email: &str,
    period: PeriodArgs,
    csv: bool,
) -> Result<()> {
    let what = || format!("cannot make the statement of {email}");
    let seller = seller_account(market, email).await.with_context(what)?;
    let principal = Principal {
        user_id: seller.id,
        role: Role::Seller,
    };
    let period = Period {
        from: period.from,
        to: period.to,
    };
    let statement = market
        .seller_statement(&principal, period)
        .await
        .with_context(what)?;
    if csv {
        return raw(&statement.to_csv());
    }
    let shown = SellerStatement {
        email: seller.email.to_string(),
        statement,
    };
    out.show(&shown, |s| {
        let st = &s.statement;
        let from = st.from.map_or("the beginning".to_owned(), time);
        let mut t = table([
            "date",
            "kind",
            "order or payout",
            "commission",
            "pending",
            "available",
            "pending after",
            "available after",
        ]);
        let (mut pending, mut available) = (st.opening.pending, st.opening.available);
        for e in &st.entries {
            pending.amount += e.pending.amount;
            available.amount += e.available.amount;
            t.add_row([
                time(e.created_at),
                e.kind.as_str().to_owned(),
                reference(e),
                e.commission.to_string(),
                e.pending.to_string(),
                e.available.to_string(),
                pending.to_string(),
                available.to_string(),
            ]);
        }
        format!(
            "statement of {} ({}), from {from} to {}\nopening: {}\n{}\nclosing: {}",
            st.store_name,
            s.email,
            st.to.to_rfc3339_opts(SecondsFormat::Secs, true),
            balance(&st.opening),
            rendered(&t, "no entries in the period"),
            balance(&st.closing),
        )
    })
}

/// The order or payout an entry is about.
fn reference(e: &LedgerEntry) -> String {
    match (e.order_id, e.payout_id) {
        (Some(o), _) => format!("order {o}"),
        (None, Some(p)) => format!("payout {p}"),
        (None, None) => String::new(),
    }
}

/// A balance in words.
fn balance(b: &Balance) -> String {
    format!(
        "pending {}, available {}, total {}",
        b.pending, b.available, b.total
    )
}

#[cfg(test)]
mod tests {
    use marketplace_core::fields::Email;
    use marketplace_core::{Currency, SellerStatus};

    use super::*;

    fn seller(n: u32, store: &str) -> SellerSummary {
        SellerSummary {
            id: format!("00000000-0000-0000-0000-{n:012}")
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            email: Email::parse(&format!("s{n}@example.com")).unwrap_or_else(|e| panic!("{e:?}")),
            store_name: store.to_owned(),
            status: SellerStatus::Verified,
            active: true,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn sellers_without_a_balance_come_last_at_zero() {
        let (a, b, c) = (seller(1, "Zed"), seller(2, "Bee"), seller(3, "Ace"));
        let usd = |x| Money::new(x, Currency::USD);
        let balances = vec![Balance::new(a.id, usd(100), usd(250))];
        let list = with_sellers(balances, &[a.clone(), b, c], Currency::USD);
        let stores: Vec<_> = list.iter().map(|s| s.store_name.as_str()).collect();
        assert_eq!(stores, ["Zed", "Ace", "Bee"]);
        assert_eq!(list[0].total, usd(350));
        assert_eq!(list[0].email, "s1@example.com");
        assert_eq!(list[2].total, usd(0));
    }

    #[test]
    fn buckets_read_by_their_granularity() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default();
        assert_eq!(bucket(d, Granularity::Month), "2026-11");
        assert_eq!(bucket(d, Granularity::Day), "2026-11-01");
    }
}
