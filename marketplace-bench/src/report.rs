//! The table: each figure with its ratio to the baseline measured in the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::baseline::DbRun;
use crate::contention::{Contention, Invariants};
use crate::load::Stats;

/// One line of the table.
pub struct Row {
    name: String,
    rate: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    first_error: Option<String>,
    ratios: Vec<(String, f64)>,
}

impl Row {
    /// A measured phase, with its ratio to `baseline` (name, rate) when given.
    pub fn new(name: &str, s: &Stats, baseline: Option<(&str, f64)>) -> Row {
        let rate = s.rate();
        Row {
            name: name.to_owned(),
            rate,
            p50: s.ms(0.5),
            p99: s.ms(0.99),
            errors: s.errors,
            first_error: s.first_error.clone(),
            ratios: baseline
                .map(|(b, r)| vec![(b.to_owned(), rate / r)])
                .unwrap_or_default(),
        }
    }

    /// Adds a ratio to another baseline.
    pub fn also(mut self, baseline: Option<(&str, f64)>) -> Row {
        if let Some((b, r)) = baseline {
            self.ratios.push((b.to_owned(), self.rate / r));
        }
        self
    }

    /// A database baseline: the database doing the same work without us.
    pub fn db(name: &str, run: DbRun) -> Row {
        Row {
            name: name.to_owned(),
            rate: run.tps,
            p50: run.p50_ms,
            p99: run.p99_ms,
            errors: 0,
            first_error: Some(format!("{} transactions", run.transactions)),
            ratios: Vec::new(),
        }
    }
}

/// Everything one run measured.
pub struct Report {
    /// `memory`, `sqlite` or `postgres`.
    pub backend: String,
    /// Whether the server under test was the `marketplace-server` binary in its
    /// own process.
    pub external: bool,
    /// The external server's settings beyond the required ones.
    pub server_env: Vec<(String, String)>,
    /// Peak RSS of the external server process.
    pub server_rss_kib: Option<u64>,
    /// Lines the external server wrote to its output.
    pub log_lines: Option<usize>,
    /// Concurrent connections.
    pub clients: usize,
    /// Seconds per phase.
    pub seconds: u64,
    /// SQL pool size.
    pub pool: u32,
    /// Seconds spent seeding.
    pub seed_secs: f64,
    /// Products seeded.
    pub products: usize,
    /// Sellers seeded.
    pub sellers: usize,
    /// Buyers seeded.
    pub buyers: usize,
    /// The table.
    pub rows: Vec<Row>,
    /// Peak RSS of the process.
    pub peak_rss_kib: Option<u64>,
    /// The contention phase.
    pub contention: Contention,
    /// Its invariants.
    pub invariants: Invariants,
}

fn num(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".to_owned()
    } else {
        format!("{v:.digits$}")
    }
}

fn machine() -> String {
    let cpu = std::process::Command::new("lscpu")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pick = |k: &str| {
        cpu.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".to_owned())
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    format!(
        "{} CPU(s), {}, {} thread(s) per core; memory {mem}; load generator, server and database on the same machine, shared with other work",
        pick("CPU(s):"),
        pick("Model name:"),
        pick("Thread(s) per core:"),
    )
}

impl Report {
    /// What names this run's section: the backend, and how the server ran.
    pub fn section_key(&self) -> String {
        let mut key = self.backend.clone();
        if self.external {
            key.push_str(", external");
            for (k, v) in &self.server_env {
                key.push_str(&format!(", {k}={v}"));
            }
        }
        key
    }

    /// The section of `docs/BENCHMARKS.md` for this backend.
    pub fn markdown(&self, command: &str, took: Duration) -> String {
        let mut s = String::new();
        let server = if self.external {
            "The server under test is the `marketplace-server` binary in a process of its own, \
             with its default configuration and logging (its output to a file), and the bare \
             warp baseline another process; this process only seeds, drives the load and audits."
        } else {
            "The server under test runs in the benchmark's process, which also drives the load."
        };
        let _ = writeln!(
            s,
            "## Backend: {}\n\nRun {} UTC, {:.0} s in all. Command: `{command}`\n\nMachine: {}\n\n{server}\n\n\
             {} products across {} verified sellers, {} buyers with an address (seeded through \
             the library in {:.1} s, passwords hashed with `HashCost::FAST_INSECURE`); {} \
             concurrent keep-alive connections on loopback; {} s measured per phase after 1 s of \
             warm-up; SQL pool {}.\n",
            self.section_key(),
            chrono::Utc::now().format("%Y-%m-%d %H:%M"),
            took.as_secs_f64(),
            machine(),
            self.products,
            self.sellers,
            self.buyers,
            self.seed_secs,
            self.clients,
            self.seconds,
            self.pool,
        );
        let _ = writeln!(
            s,
            "| measurement | per second | p50 ms | p99 ms | ratio to baseline (same run) | errors |\n| --- | ---: | ---: | ---: | --- | --- |"
        );
        for r in &self.rows {
            let ratios = r
                .ratios
                .iter()
                .map(|(b, v)| format!("{:.0}% of {b}", v * 100.0))
                .collect::<Vec<_>>()
                .join("; ");
            let errors = match (&r.first_error, r.errors) {
                (Some(e), 0) => e.clone(),
                (Some(e), n) => format!("{n} ({e})"),
                (None, n) => n.to_string(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.name,
                // Below 10/s the decimals are the figure (a slow test server).
                num(r.rate, if r.rate < 10.0 { 2 } else { 0 }),
                num(r.p50, 2),
                num(r.p99, 2),
                if ratios.is_empty() {
                    "baseline".to_owned()
                } else {
                    ratios
                },
                errors.replace('|', "/"),
            );
        }
        let c = &self.contention;
        let i = &self.invariants;
        let _ = writeln!(
            s,
            "\n{}\n",
            match self.server_rss_kib {
                Some(k) => format!(
                    "Peak RSS: the server process {}, the benchmark process (load generator, seeding) {}; the server wrote {} lines of log.",
                    mib(Some(k)),
                    mib(self.peak_rss_kib),
                    self.log_lines
                        .map_or("an unknown number of".to_owned(), |n| n.to_string()),
                ),
                None => format!(
                    "Peak RSS (VmHWM of the one process: server, load generator and seeding together): {}",
                    mib(self.peak_rss_kib)
                ),
            }
        );
        let checks = i.checks(c);
        let _ = writeln!(
            s,
            "Contention: {} buyers each wanting {} of the {} hot units, {:.1} s: {} checkouts accepted, {} refused as sold out, {} other failures{}; checkout p50 {} ms, p99 {} ms.\n\n\
             Audit (stock read from the store as signed numbers): {}. **{}**\n",
            c.buyers,
            c.wanted,
            c.hot_units,
            c.stats.seconds,
            c.accepted,
            c.sold_out,
            c.failed,
            c.first_failure
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            num(c.stats.ms(0.5), 2),
            num(c.stats.ms(0.99), 2),
            checks
                .iter()
                .map(|(check, ok)| format!("{check}: {}", yes(*ok)))
                .collect::<Vec<_>>()
                .join("; "),
            if checks.iter().all(|(_, ok)| *ok) {
                "all invariants hold"
            } else {
                "INVARIANT VIOLATED"
            },
        );
        s
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn yes(b: bool) -> &'static str {
    if b { "ok" } else { "VIOLATED" }
}

/// Replaces (or appends) the section of `backend` in the markdown file at `path`,
/// keeping the other backends' sections.
pub fn write_section(path: &Path, backend: &str, section: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let head = format!("## Backend: {backend}\n");
    let mut out = String::new();
    let mut found = false;
    let mut parts = old.split("\n## Backend: ").peekable();
    let preamble = parts.next().unwrap_or_default();
    out.push_str(if preamble.trim().is_empty() || preamble.starts_with("## Backend: ") {
        "# Benchmarks\n\nProduced by `marketplace-bench` (see its README section); every figure has its ratio to a baseline measured in the same run.\n"
    } else {
        preamble
    });
    let rest: Vec<String> = if preamble.starts_with("## Backend: ") {
        std::iter::once(preamble.trim_start_matches("## Backend: ").to_owned())
            .chain(parts.map(str::to_owned))
            .collect()
    } else {
        parts.map(str::to_owned).collect()
    };
    for part in rest {
        let full = format!("## Backend: {part}");
        if full.starts_with(&head) {
            out.push('\n');
            out.push_str(section.trim_end());
            out.push('\n');
            found = true;
        } else {
            out.push('\n');
            out.push_str(full.trim_end());
            out.push('\n');
        }
    }
    if !found {
        out.push('\n');
        out.push_str(section.trim_end());
        out.push('\n');
    }
    std::fs::write(path, out)
}
