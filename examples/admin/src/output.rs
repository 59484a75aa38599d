//! What a command prints: a table (or a sentence) for people, JSON for
//! scripts (`--json`), or a report's CSV (`--csv`), always on standard output. Errors go to standard error
//! (see `main`).

use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// Where and how a command's answer is printed.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// `--json`: one JSON document per command.
    pub json: bool,
}

impl Output {
    /// Prints `value` as JSON, or else what `human` renders of it.
    pub fn show<T: Serialize + ?Sized>(
        &self,
        value: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Result<()> {
        let text = if self.json {
            serde_json::to_string_pretty(value).context("cannot write JSON")?
        } else {
            human(value)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").context("cannot write to standard output")
    }
}

/// A table with a header row, in the style every command uses.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// A table's rendering, or `empty` when it has no rows.
pub fn rendered(t: &Table, empty: &str) -> String {
    if t.row_count() == 0 {
        empty.to_owned()
    } else {
        t.to_string()
    }
}

/// A time as tables show it: RFC 3339, to the second, in UTC.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `1 payout`, `2 payouts`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Prints `text` as it is (a CSV document): nothing else goes to standard
/// output.
pub fn raw(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}
