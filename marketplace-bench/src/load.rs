//! The load generator: `clients` concurrent tasks repeat one operation for a fixed
//! time; latencies of operations started after the warm-up are recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run of an operation reports: `Ok(Some(d))` when it also timed an
/// inner step (the checkout call inside the buyer step), `Err` when it failed.
pub type OpResult = anyhow::Result<Option<Duration>>;

/// Returned by an operation when it has no more work (its prepared inputs are
/// used up): the client stops, and the phase is measured until the last client
/// stopped.
#[derive(Debug)]
pub struct Exhausted;

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("prepared inputs used up")
    }
}

impl std::error::Error for Exhausted {}

/// Latencies and counts of one phase.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Seconds measured (the warm-up excluded).
    pub seconds: f64,
    /// Latency of each successful operation, in microseconds.
    pub micros: Vec<u64>,
    /// Latency of the inner step of each successful operation, in microseconds.
    pub inner_micros: Vec<u64>,
    /// Failed operations.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Whether the operation ran out of prepared inputs before the time was up.
    pub exhausted: bool,
}

impl Stats {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.micros.len() as f64 / self.seconds.max(1e-9)
    }

    /// The `q` quantile (0..=1) of the operation latency, in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        quantile(&self.micros, q)
    }
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Runs `op(client, iteration)` from `clients` tasks for `warmup + measure`.
pub async fn run<F, Fut>(clients: usize, warmup: Duration, measure: Duration, op: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = OpResult> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let from = start + warmup;
    let until = from + measure;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut s = Stats::default();
            let mut i = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let r = op(client, i).await;
                i += 1;
                let t1 = Instant::now();
                if r.as_ref().is_err_and(|e| e.is::<Exhausted>()) {
                    s.exhausted = true;
                    break;
                }
                if t0 < from || t1 > until {
                    continue;
                }
                match r {
                    Ok(inner) => {
                        s.micros.push((t1 - t0).as_micros() as u64);
                        if let Some(d) = inner {
                            s.inner_micros.push(d.as_micros() as u64);
                        }
                    }
                    Err(e) => {
                        s.errors += 1;
                        if s.first_error.is_none() {
                            s.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            (s, Instant::now())
        }));
    }
    let mut all = Stats {
        seconds: measure.as_secs_f64(),
        ..Stats::default()
    };
    let mut last = from;
    for t in tasks {
        if let Ok((s, ended)) = t.await {
            last = last.max(ended.min(until));
            all.exhausted |= s.exhausted;
            all.micros.extend(s.micros);
            all.inner_micros.extend(s.inner_micros);
            all.errors += s.errors;
            if all.first_error.is_none() {
                all.first_error = s.first_error;
            }
        }
    }
    if all.exhausted {
        all.seconds = (last - from).as_secs_f64();
    }
    all.micros.sort_unstable();
    all.inner_micros.sort_unstable();
    all
}
