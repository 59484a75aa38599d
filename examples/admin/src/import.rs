//! The CSV import of a seller's products, keyed on the seller's own SKUs.
//!
//! Each row is the product as the seller wants it: a SKU the seller has no
//! (live) product with creates one; a SKU it has updates that product where the
//! row differs and leaves it alone where nothing does. So running a file again
//! creates nothing and changes nothing. Every row is one call of the library
//! (`create_product` or `update_product`), so it is imported whole or refused
//! whole, by the same rules the API keeps; a refused row is reported with its
//! line and its reasons, and the others go on.

use std::collections::HashMap;
use std::fs::File;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use csv::{ByteRecord, ReaderBuilder, Trim};
use indicatif::{ProgressBar, ProgressStyle};
use marketplace_core::{
    Category, CategoryId, Currency, Error, Money, NewProduct, Principal, ProductId, ProductUpdate,
    ProductView, Role,
};
use marketplace_host::Market;
use serde::Serialize;

use crate::cli::{ImportCommand, ImportProducts};
use crate::output::{Output, rendered, table};

/// The columns a file may have, in the order the help lists them.
const COLUMNS: [&str; 7] = [
    "sku",
    "title",
    "description",
    "price",
    "stock",
    "category",
    "active",
];

/// The columns a file must have.
const REQUIRED: [&str; 4] = ["sku", "title", "price", "stock"];

/// Imports from this many rows on show a progress bar (on a terminal).
const PROGRESS_FROM: usize = 50;

/// Where each known column is in the file's rows.
struct Layout {
    /// The index of each of [`COLUMNS`] in a row, when the file has it.
    at: [Option<usize>; COLUMNS.len()],
    /// How many fields the header has.
    width: usize,
}

impl Layout {
    /// Reads the header: every name a known column, each at most once, the
    /// required ones present.
    fn of(header: &ByteRecord) -> Result<Layout> {
        let mut at = [None; COLUMNS.len()];
        for (i, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw)
                .context("the header is not UTF-8 text")?
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            let Some(k) = COLUMNS.iter().position(|c| *c == name) else {
                bail!(
                    "the header names an unknown column `{}` (the columns are {})",
                    name.escape_debug(),
                    COLUMNS.join(",")
                );
            };
            if at[k].replace(i).is_some() {
                bail!("the header names the column `{name}` twice");
            }
        }
        let missing: Vec<_> = REQUIRED
            .iter()
            .filter(|c| at[column(c)].is_none())
            .copied()
            .collect();
        if !missing.is_empty() {
            bail!(
                "the header lacks the column(s) {} (it needs {}; {} are optional)",
                missing.join(","),
                REQUIRED.join(","),
                "description,category,active"
            );
        }
        Ok(Layout {
            at,
            width: header.len(),
        })
    }
}

/// The index of a known column in [`COLUMNS`].
fn column(name: &str) -> usize {
    COLUMNS.iter().position(|c| *c == name).unwrap_or(0)
}

/// Why a row was refused, or one of the reasons: a field and what is wrong
/// with it, or (without a field) what the marketplace answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The column (or the library's field name) at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    fn field(field: &str, message: impl Into<String>) -> Problem {
        Problem {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// The reasons the library gave for refusing a row: each field of a
    /// validation error, or the error's own message.
    fn from_error(e: &Error) -> Vec<Problem> {
        match e.field_errors() {
            [] => vec![Problem {
                field: None,
                message: e.to_string(),
            }],
            fields => fields
                .iter()
                .map(|f| Problem::field(&f.field, &f.message))
                .collect(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A product as a row describes it, read but not yet checked by the library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The seller's SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Description (empty when the column is absent or blank).
    pub description: String,
    /// Price in the marketplace currency.
    pub price: Money,
    /// Units in stock.
    pub stock: u32,
    /// Category (none when absent or blank).
    pub category_id: Option<CategoryId>,
    /// Listed (default true).
    pub active: bool,
}

/// Reads one row: every problem of its fields at once, like the library's own
/// validation.
fn read_row(
    record: &ByteRecord,
    layout: &Layout,
    currency: Currency,
    categories: &[Category],
) -> Result<Wanted, Vec<Problem>> {
    let mut problems = Vec::new();
    if record.len() != layout.width {
        return Err(vec![Problem {
            field: None,
            message: format!(
                "the row has {} fields, the header {}",
                record.len(),
                layout.width
            ),
        }]);
    }
    let mut text = |name: &str| -> String {
        let Some(i) = layout.at[column(name)] else {
            return String::new();
        };
        match std::str::from_utf8(record.get(i).unwrap_or_default()) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                problems.push(Problem::field(name, "is not UTF-8 text"));
                String::new()
            }
        }
    };
    let (sku, title, description) = (text("sku"), text("title"), text("description"));
    let (price, stock) = (text("price"), text("stock"));
    let (category, active) = (text("category"), text("active"));

    if sku.is_empty() {
        problems.push(Problem::field(
            "sku",
            "is required: the import finds products again by their SKU",
        ));
    }
    let price = match price.as_str() {
        "" => {
            problems.push(Problem::field("price", "is required"));
            None
        }
        p => {
            let money = Money::from_decimal(p, currency);
            if money.is_none() {
                problems.push(Problem::field(
                    "price",
                    format!("`{p}` is not an amount in {currency} (like 12.50)"),
                ));
            }
            money
        }
    };
    let stock = match stock.as_str() {
        "" => {
            problems.push(Problem::field("stock", "is required"));
            None
        }
        s => {
            let n = s.parse::<u32>().ok();
            if n.is_none() {
                problems.push(Problem::field(
                    "stock",
                    format!("`{s}` is not a whole number of units"),
                ));
            }
            n
        }
    };
    let category_id = if category.is_empty() {
        Some(None)
    } else {
        let key = category.to_lowercase();
        let found = categories.iter().find(|c| c.name.to_lowercase() == key);
        if found.is_none() {
            problems.push(Problem::field(
                "category",
                format!("no category is named `{category}`"),
            ));
        }
        found.map(|c| Some(c.id))
    };
    let active = match active.to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        other => {
            problems.push(Problem::field(
                "active",
                format!("`{other}` is not true or false"),
            ));
            None
        }
    };
    match (price, stock, category_id, active) {
        (Some(price), Some(stock), Some(category_id), Some(active)) if problems.is_empty() => {
            Ok(Wanted {
                sku,
                title,
                description,
                price,
                stock,
                category_id,
                active,
            })
        }
        _ => Err(problems),
    }
}

/// The changes that make `current` what `wanted` describes: `None` when it
/// already is, so nothing is written.
fn changes(current: &ProductView, wanted: &Wanted) -> Option<(ProductUpdate, Vec<&'static str>)> {
    let mut update = ProductUpdate::default();
    let mut changed = Vec::new();
    if current.title != wanted.title {
        update.title = Some(wanted.title.clone());
        changed.push("title");
    }
    if current.description != wanted.description {
        update.description = Some(wanted.description.clone());
        changed.push("description");
    }
    if current.price != wanted.price {
        update.price = Some(wanted.price);
        changed.push("price");
    }
    if current.stock != wanted.stock {
        update.stock = Some(wanted.stock);
        changed.push("stock");
    }
    if current.category_id != wanted.category_id {
        update.category_id = Some(wanted.category_id);
        changed.push("category");
    }
    if current.active != wanted.active {
        update.active = Some(wanted.active);
        changed.push("active");
    }
    (!changed.is_empty()).then_some((update, changed))
}

/// What became of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new product was listed.
    Created,
    /// The seller's product with this SKU was changed.
    Updated,
    /// The seller's product with this SKU already was what the row says.
    Unchanged,
    /// Nothing was written.
    Refused,
}

/// One row of the report.
#[derive(Debug, Serialize)]
pub struct RowReport {
    /// The row's line in the file (its first, for a row spanning several).
    pub line: u64,
    /// Its SKU, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// The product it created, updated or found unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_id: Option<ProductId>,
    /// The fields an update changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<&'static str>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// The whole import's report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Rows that listed a new product.
    pub created: usize,
    /// Rows that changed a product.
    pub updated: usize,
    /// Rows whose product already was as described.
    pub unchanged: usize,
    /// Rows refused whole.
    pub refused: usize,
    /// Every row, in file order.
    pub rows: Vec<RowReport>,
}

impl Report {
    fn add(&mut self, row: RowReport) {
        match row.outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Refused => self.refused += 1,
        }
        self.rows.push(row);
    }

    fn summary(&self) -> String {
        format!(
            "{} rows: {} created, {} updated, {} unchanged, {} refused",
            self.rows.len(),
            self.created,
            self.updated,
            self.unchanged,
            self.refused
        )
    }

    fn human(&self) -> String {
        let mut t = table(["line", "sku", "refused because"]);
        for row in self.rows.iter().filter(|r| r.outcome == Outcome::Refused) {
            let reasons: Vec<String> = row.problems.iter().map(ToString::to_string).collect();
            t.add_row([
                row.line.to_string(),
                row.sku.clone().unwrap_or_default(),
                reasons.join("; "),
            ]);
        }
        match t.row_count() {
            0 => self.summary(),
            _ => format!("{}\n{}", rendered(&t, ""), self.summary()),
        }
    }
}

/// `import ...`
pub async fn import(market: &Market, out: Output, command: ImportCommand) -> Result<()> {
    let ImportCommand::Products(args) = command;
    let report = import_products(market, &args).await?;
    out.show(&report, Report::human)?;
    if report.refused > 0 {
        bail!(
            "{} of {} rows refused (nothing was written for them)",
            report.refused,
            report.rows.len()
        );
    }
    Ok(())
}

/// The seller the import acts for: an active, verified seller account.
async fn seller(market: &Market, email: &str) -> Result<Principal> {
    let user = market
        .account_by_email(email)
        .await
        .with_context(|| format!("cannot import for {email}"))?;
    if user.role != Role::Seller {
        bail!(
            "{} is a {} account, not a seller",
            user.email,
            user.role.as_str()
        );
    }
    if !user.is_selling() {
        let status = user.seller_status.map_or("pending", |s| s.as_str());
        let why = if user.active {
            format!("is {status}")
        } else {
            "is deactivated".to_owned()
        };
        bail!(
            "the seller {} cannot list products: it {why} (see `marketplace-admin sellers verify` and `users activate`)",
            user.email
        );
    }
    Ok(Principal {
        user_id: user.id,
        role: Role::Seller,
    })
}

/// Reads the file whole (a malformed header or an unreadable file stops the
/// import before it writes anything), then imports it row by row.
async fn import_products(market: &Market, args: &ImportProducts) -> Result<Report> {
    let seller = seller(market, &args.seller).await?;
    let (layout, records) = read_file(&args.file)?;
    let categories = market
        .categories()
        .await
        .context("cannot read the categories")?;
    let currency = market.config().currency;

    let progress = if records.len() >= PROGRESS_FROM && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(records.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({eta} left)") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut report = Report::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in &records {
        let line = record.position().map_or(0, csv::Position::line);
        let row = match read_row(record, &layout, currency, &categories) {
            Err(problems) => refused(line, sku_of(record, &layout), problems),
            Ok(wanted) => match seen.get(&wanted.sku) {
                // A SKU twice in one file would have its last row win, and a
                // second run change the product back and forth.
                Some(first) => refused(
                    line,
                    Some(wanted.sku.clone()),
                    vec![Problem::field(
                        "sku",
                        format!("`{}` is already on line {first}", wanted.sku),
                    )],
                ),
                None => {
                    seen.insert(wanted.sku.clone(), line);
                    import_row(market, &seller, line, wanted).await
                }
            },
        };
        report.add(row);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(report)
}

/// The header's layout and every record of the file.
fn read_file(path: &Path) -> Result<(Layout, Vec<ByteRecord>)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = ReaderBuilder::new()
        .flexible(true)
        .trim(Trim::All)
        .from_reader(file);
    let header = reader
        .byte_headers()
        .with_context(|| format!("cannot read {}", path.display()))?
        .clone();
    let layout =
        Layout::of(&header).with_context(|| format!("{} is not an import", path.display()))?;
    let records = reader
        .byte_records()
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((layout, records))
}

/// The SKU of a row that could not be read, for the report.
fn sku_of(record: &ByteRecord, layout: &Layout) -> Option<String> {
    let raw = record.get(layout.at[column("sku")]?)?;
    let sku = String::from_utf8_lossy(raw).into_owned();
    (!sku.is_empty()).then_some(sku)
}

fn refused(line: u64, sku: Option<String>, problems: Vec<Problem>) -> RowReport {
    RowReport {
        line,
        sku,
        outcome: Outcome::Refused,
        product_id: None,
        changed: Vec::new(),
        problems,
    }
}

/// One row: one call of the library at most.
async fn import_row(market: &Market, seller: &Principal, line: u64, wanted: Wanted) -> RowReport {
    let sku = Some(wanted.sku.clone());
    let done = |outcome, id, changed| RowReport {
        line,
        sku: sku.clone(),
        outcome,
        product_id: Some(id),
        changed,
        problems: Vec::new(),
    };
    let current = match market.product_by_sku(seller, &wanted.sku).await {
        Ok(current) => current,
        Err(e) => return refused(line, sku.clone(), Problem::from_error(&e)),
    };
    match current {
        None => {
            let new = NewProduct {
                sku: Some(wanted.sku.clone()),
                title: wanted.title,
                description: wanted.description,
                price: wanted.price,
                stock: wanted.stock,
                category_id: wanted.category_id,
                images: Vec::new(),
                discount: None,
                active: Some(wanted.active),
            };
            match market.create_product(seller, new).await {
                Ok(p) => done(Outcome::Created, p.id, Vec::new()),
                Err(e) => refused(line, sku.clone(), Problem::from_error(&e)),
            }
        }
        Some(p) => match changes(&p, &wanted) {
            None => done(Outcome::Unchanged, p.id, Vec::new()),
            Some((update, changed)) => match market.update_product(seller, p.id, update).await {
                Ok(p) => done(Outcome::Updated, p.id, changed),
                Err(e) => refused(line, sku.clone(), Problem::from_error(&e)),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> ByteRecord {
        ByteRecord::from(fields.to_vec())
    }

    fn layout() -> Layout {
        Layout::of(&record(&COLUMNS)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn headers_need_the_required_columns_only_once() {
        assert!(Layout::of(&record(&["SKU", " title ", "price", "stock"])).is_ok());
        for bad in [
            &["sku", "title", "price"][..],
            &["sku", "title", "price", "stock", "colour"],
            &["sku", "title", "price", "stock", "sku"],
            &[],
        ] {
            assert!(Layout::of(&record(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rows_report_every_bad_field() {
        let tea = Category {
            id: CategoryId(Default::default()),
            name: "Tea".into(),
        };
        let row = record(&["T-1", "Sencha", "", "8.50", "3", "tea", "no"]);
        let w = read_row(&row, &layout(), Currency::USD, std::slice::from_ref(&tea));
        let w = w.unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(w.price, Money::new(850, Currency::USD));
        assert_eq!((w.stock, w.category_id, w.active), (3, Some(tea.id), false));

        let row = record(&["", "x", "", "8,50", "-1", "Coffee", "maybe"]);
        let problems = read_row(&row, &layout(), Currency::USD, &[])
            .err()
            .unwrap_or_default();
        let fields: Vec<_> = problems.iter().filter_map(|p| p.field.as_deref()).collect();
        assert_eq!(fields, ["sku", "price", "stock", "category", "active"]);
        let short = record(&["T-1", "Sencha"]);
        assert!(read_row(&short, &layout(), Currency::USD, &[]).is_err());
    }
}
