//! The life of a running host: the mail and ledger workers beside the host's own server,
//! one stop signal for both, and a shutdown that lets the server drain and the
//! worker hand back the messages it claimed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use marketplace_core::{DatabaseClock, Mailer, OutboxWorker};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::market::{Host, Market};
use crate::settings::Settings;

/// A stop signal shared by every part of a running host. Cheap to clone;
/// clones share the signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    /// A signal not yet given.
    pub fn new() -> Shutdown {
        Shutdown {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks every part to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether stopping was asked.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A future that completes once stopping is asked (at once if it was), to
    /// hand to a server's graceful shutdown or a worker.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = self.tx.subscribe();
        async move {
            // An error means every sender is gone: nobody can ask any more, so stop.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Completes when the process is asked to stop: Ctrl-C (SIGINT) or, on Unix,
/// SIGTERM (what a service manager or a container runtime sends). What a host
/// binary hands to [`Host::run`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// A background worker of this process: the outbox worker delivering mail, or
/// the ledger worker releasing held earnings and running scheduled payouts.
#[derive(Debug)]
pub struct Worker {
    what: &'static str,
    task: Option<JoinHandle<()>>,
}

impl Worker {
    /// Delivers `market`'s outbox through `mailer`, looking for work every
    /// `poll` when idle, until `shutdown` completes; then it releases the claims
    /// it still holds, so another process may send those messages at once. A
    /// zero `poll` starts nothing (other processes deliver).
    pub fn spawn(
        market: &Market,
        mailer: Arc<dyn Mailer>,
        poll: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Worker {
        let task = (!poll.is_zero())
            .then(|| tokio::spawn(OutboxWorker::new(market.clone(), mailer).run(poll, shutdown)));
        Worker {
            what: "mail worker",
            task,
        }
    }

    /// Every `poll`, releases the earnings whose return window has closed and,
    /// every `payout_interval` when one is set, pays out every seller due a
    /// payout, until `shutdown` completes. Several processes may run it at
    /// once: each earning is released once and each balance taken once. A zero
    /// `poll` starts nothing.
    pub fn spawn_ledger(
        market: &Market,
        poll: Duration,
        payout_interval: Option<Duration>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Worker {
        let market = market.clone();
        let task = (!poll.is_zero()).then(|| {
            tokio::spawn(async move {
                tokio::pin!(shutdown);
                let mut last_payout = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(poll) => {}
                    }
                    ledger_round(&market, &mut last_payout, payout_interval).await;
                }
            })
        });
        Worker {
            what: "ledger worker",
            task,
        }
    }

    /// Keeps `clock` synced against `market`'s database every
    /// [`DatabaseClock::SYNC_EVERY`](marketplace_core::DatabaseClock::SYNC_EVERY) until `shutdown` completes; starts
    /// nothing without a database clock.
    pub fn spawn_clock(
        market: &Market,
        clock: Option<Arc<DatabaseClock>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Worker {
        let task = clock.map(|clock| {
            let storage = Arc::clone(market.storage());
            tokio::spawn(async move {
                clock
                    .keep_synced(
                        storage.as_ref(),
                        DatabaseClock::<marketplace_core::SystemClock>::SYNC_EVERY,
                        shutdown,
                    )
                    .await;
            })
        });
        Worker {
            what: "clock sync",
            task,
        }
    }

    /// Whether a worker runs in this process.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Waits until the worker has stopped (its shutdown future completed) and
    /// released its claims.
    pub async fn join(self) -> Result<()> {
        match self.task {
            Some(task) => task.await.map_err(|source| Error::Task {
                what: self.what,
                source,
            }),
            None => Ok(()),
        }
    }
}

/// One round of the ledger worker: release what is due (a batch at a time until
/// none is left), then pay out when the interval has passed.
async fn ledger_round(
    market: &Market,
    last_payout: &mut tokio::time::Instant,
    payout_interval: Option<Duration>,
) {
    const BATCH: u32 = 200;
    match market.run_payments(BATCH).await {
        Ok(run) if run.changed > 0 => {
            tracing::info!(
                settled = run.changed,
                "payments expired, captured, voided or refunded"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "settling payments failed; retrying next round"),
    }
    loop {
        match market.release_earnings(BATCH).await {
            Ok(n) if n == BATCH as usize => continue,
            Ok(0) => break,
            Ok(n) => {
                tracing::info!(released = n, "earnings released after their return window");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "releasing earnings failed; retrying next round");
                break;
            }
        }
    }
    let Some(every) = payout_interval else { return };
    if last_payout.elapsed() < every {
        return;
    }
    *last_payout = tokio::time::Instant::now();
    match market
        .run_payouts(&marketplace_core::Principal::operator())
        .await
    {
        Ok(made) if made.is_empty() => {}
        Ok(made) => tracing::info!(payouts = made.len(), "scheduled payouts made"),
        Err(e) => tracing::warn!(error = %e, "scheduled payouts failed; retrying next interval"),
    }
}

impl Host {
    /// Runs a host until `shutdown` completes. `serve` starts the host's own
    /// server, which must stop accepting and drain when the [`Shutdown`] it is
    /// given signals; beside it run the database clock's sync (with a
    /// [`Host::clock`]), the mail worker (unless
    /// `settings.outbox_poll` is zero), the ledger worker (unless
    /// `settings.ledger_poll` is zero) and, with SMTP, a check that the mail
    /// server answers. When `shutdown` completes both are told at once; this
    /// returns when the server has drained and the worker has released its
    /// claims.
    pub async fn run<F>(
        &self,
        settings: &Settings,
        shutdown: impl Future<Output = ()>,
        serve: impl FnOnce(Shutdown) -> F,
    ) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(smtp) = settings.smtp.clone() {
            tokio::spawn(async move { crate::mail::check_smtp(&smtp).await });
        }
        let stop = Shutdown::new();
        let clock = Worker::spawn_clock(&self.market, self.clock.clone(), stop.signal());
        let worker = Worker::spawn(
            &self.market,
            Arc::clone(&self.mailer),
            settings.outbox_poll,
            stop.signal(),
        );
        let ledger = Worker::spawn_ledger(
            &self.market,
            settings.ledger_poll,
            settings.payout_interval,
            stop.signal(),
        );
        let server = tokio::spawn(serve(stop.clone()));
        shutdown.await;
        stop.trigger();
        server.await.map_err(|source| Error::Task {
            what: "server",
            source,
        })?;
        worker.join().await?;
        ledger.join().await?;
        clock.join().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use marketplace_core::HashCost;

    use super::*;

    #[tokio::test]
    async fn the_signal_reaches_every_holder_even_late_ones() {
        let stop = Shutdown::new();
        let early = tokio::spawn(stop.signal());
        assert!(!stop.is_triggered());
        stop.trigger();
        early.await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), stop.clone().signal())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn run_stops_the_server_and_the_worker_together() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            database_url: "memory:".into(),
            media_dir: dir.path().join("media"),
            hash_cost: HashCost::FAST_INSECURE,
            outbox_poll: Duration::from_millis(10),
            ..Settings::default()
        };
        let host = crate::build(&settings).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (served_tx, served_rx) = tokio::sync::oneshot::channel::<()>();
        let run = host.run(
            &settings,
            async move {
                let _ = rx.await;
            },
            move |stop| async move {
                stop.signal().await;
                let _ = served_tx.send(());
            },
        );
        tokio::pin!(run);
        tokio::select! {
            _ = &mut run => panic!("ran without a shutdown"),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap();
        served_rx.await.unwrap();
    }
}
