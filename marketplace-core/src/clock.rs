//! Injectable time and identifiers, so tests can be deterministic, and the
//! clock several processes on one database agree on.
//!
//! Every instant the marketplace decides by comes from one [`Clock`]: outbox
//! leases (a message is claimed until `now + lease`), login-throttle windows,
//! token issue and expiry times, payment expiry. [`SystemClock`] is this
//! machine's clock; [`ManualClock`] moves only when a test says so.
//!
//! # Several processes, one clock: [`DatabaseClock`]
//! When several servers share one PostgreSQL database or one MongoDB replica
//! set, each decides with its own clock, and their clocks disagree: a server
//! whose clock runs half a lease ahead sees another's claim as lapsed while
//! that one is still sending, and sends the same mail again. A
//! [`DatabaseClock`] makes them agree on the database's clock instead. It reads
//! the time of a base clock (normally the system clock) plus an *offset*
//! measured against the database ([`Storage::database_time`]): one sample is
//! `(t0, db, t1)`, this machine's time before the question, the database's
//! answer and this machine's time after it, and its offset is
//! `db - (t0 + t1) / 2`, exact to within half the round trip `t1 - t0`. Of a
//! few samples the one with the smallest round trip wins (the least room for
//! error). [`DatabaseClock::now`] stays a plain, synchronous read (the base
//! clock plus an atomic offset); [`DatabaseClock::sync`] measures again, and
//! [`DatabaseClock::keep_synced`] does so periodically (every 30 s in the
//! hosts) so drift between measurements stays far below a second.
//!
//! A store without a clock of its own (memory, SQLite: one machine) answers
//! `None`; hosts keep the [`SystemClock`] there.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use uuid::Uuid;

use crate::storage::{Storage, StorageError, StorageResult};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to: for tests of expiry, windows and backoff.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One measurement of the database's clock against a base clock: see the
/// [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClockSync {
    /// The database's time minus the base clock's: what [`DatabaseClock::now`]
    /// adds to the base clock. Positive when this machine's clock is behind.
    pub offset: Duration,
    /// The round trip of the sample the offset comes from; the offset is exact
    /// to within half of it.
    pub round_trip: Duration,
    /// The database's time when it was measured.
    pub measured_at: DateTime<Utc>,
}

/// A [`Clock`] that follows the database's clock: the base clock `C` plus an
/// offset measured against the database (see the [module documentation](self)).
///
/// Until the first successful [`sync`](DatabaseClock::sync) the offset is zero
/// (it reads the base clock). A failed sync keeps the last offset. Share it as
/// `Arc<DatabaseClock>`: one handle goes to the marketplace's builder as its
/// clock, another to whatever keeps it synced.
#[derive(Debug)]
pub struct DatabaseClock<C = SystemClock> {
    base: C,
    /// The offset in force, in microseconds: read by every `now()`.
    offset_micros: AtomicI64,
    /// The measurement it came from, for logs and operators. Never held across
    /// an await.
    last: Mutex<Option<ClockSync>>,
}

impl DatabaseClock<SystemClock> {
    /// A database clock over this machine's clock.
    pub fn system() -> Self {
        DatabaseClock::new(SystemClock)
    }
}

impl<C: Clock> DatabaseClock<C> {
    /// Samples taken per [`sync`](DatabaseClock::sync); the one with the
    /// smallest round trip is kept.
    pub const SAMPLES: usize = 5;

    /// How often hosts measure again ([`keep_synced`](DatabaseClock::keep_synced)).
    pub const SYNC_EVERY: StdDuration = StdDuration::from_secs(30);

    /// A database clock over `base`, not yet synced (offset zero).
    pub fn new(base: C) -> Self {
        DatabaseClock {
            base,
            offset_micros: AtomicI64::new(0),
            last: Mutex::new(None),
        }
    }

    /// The base clock the offset is added to.
    pub fn base(&self) -> &C {
        &self.base
    }

    /// The offset in force (zero before the first sync).
    pub fn offset(&self) -> Duration {
        Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }

    /// The measurement in force, `None` before the first successful sync.
    pub fn last_sync(&self) -> Option<ClockSync> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Measures the offset against `storage`'s clock ([`SAMPLES`](Self::SAMPLES)
    /// samples, the smallest round trip kept) and puts it in force. `None`
    /// (nothing changes) when the store has no clock of its own; an error when
    /// the database cannot be asked (the last offset stays in force).
    pub async fn sync<S: Storage + ?Sized>(&self, storage: &S) -> StorageResult<Option<ClockSync>> {
        self.sync_with(|| storage.database_time()).await
    }

    /// [`sync`](Self::sync) against any source of the database's time: `ask`
    /// is called once per sample.
    pub async fn sync_with<F, Fut>(&self, mut ask: F) -> StorageResult<Option<ClockSync>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StorageResult<Option<DateTime<Utc>>>>,
    {
        let mut best: Option<ClockSync> = None;
        for _ in 0..Self::SAMPLES {
            let t0 = self.base.now();
            let Some(db) = ask().await? else {
                return Ok(None);
            };
            let t1 = self.base.now();
            let round_trip = t1 - t0;
            // The base clock stepped back during the question: no bound on the
            // error of this sample.
            if round_trip < Duration::zero() {
                continue;
            }
            let sample = ClockSync {
                offset: db - (t0 + round_trip / 2),
                round_trip,
                measured_at: db,
            };
            if best.is_none_or(|b| sample.round_trip < b.round_trip) {
                best = Some(sample);
            }
        }
        let Some(best) = best else {
            return Err(StorageError::backend(
                "the local clock went backwards during every sample of the database's clock",
            ));
        };
        let micros = best
            .offset
            .num_microseconds()
            .unwrap_or(if best.offset < Duration::zero() {
                i64::MIN
            } else {
                i64::MAX
            });
        self.offset_micros.store(micros, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(best);
        Ok(Some(best))
    }

    /// Syncs against `storage` every `every` until `shutdown` completes (the
    /// first sync is the caller's, before it serves). A failed sync is logged
    /// and the last offset kept; a jump of the offset by more than a second
    /// (this machine's clock was stepped) is logged as a warning.
    pub async fn keep_synced<S: Storage + ?Sized>(
        &self,
        storage: &S,
        every: StdDuration,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(every) => {}
            }
            let before = self.offset();
            match self.sync(storage).await {
                Ok(Some(s)) => {
                    let (offset_ms, round_trip_ms) =
                        (s.offset.num_milliseconds(), s.round_trip.num_milliseconds());
                    if (s.offset - before).abs() > Duration::seconds(1) {
                        tracing::warn!(
                            offset_ms,
                            previous_ms = before.num_milliseconds(),
                            "this machine's clock jumped against the database's; leases and windows follow the database"
                        );
                    } else {
                        tracing::debug!(offset_ms, round_trip_ms, "database clock synced");
                    }
                }
                Ok(None) => break,
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot read the database's clock; keeping the last offset"
                ),
            }
        }
    }
}

impl<C: Clock> Clock for DatabaseClock<C> {
    fn now(&self) -> DateTime<Utc> {
        let base = self.base.now();
        base.checked_add_signed(self.offset()).unwrap_or(base)
    }
}

/// Truncates to whole milliseconds: the finest precision every backend keeps
/// (BSON dates are milliseconds), so a value read back equals the value written.
pub fn storage_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::milliseconds(1)).unwrap_or(t)
}

/// A source of fresh identifiers.
pub trait IdGenerator: Send + Sync + 'static {
    /// A new identifier, never returned before.
    fn new_id(&self) -> Uuid;
}

/// Time-ordered UUIDv7 identifiers: unique, and index-friendly in every backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Sequential identifiers (`00000000-0000-0000-0000-000000000001`, ...): for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128(u128::from(n))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_767_225_600_000 + ms).unwrap()
    }

    /// A database whose clock is `ahead` of the base clock, answering after
    /// `out` on the way there and `back` on the way back (advancing the
    /// manual base clock by each).
    struct FakeDatabase {
        base: Arc<ManualClock>,
        ahead: Duration,
        /// (out, back) of each sample in turn.
        legs: Mutex<Vec<(Duration, Duration)>>,
    }

    impl FakeDatabase {
        async fn ask(&self) -> StorageResult<Option<DateTime<Utc>>> {
            let (out, back) = self.legs.lock().unwrap().remove(0);
            self.base.advance(out);
            let db = self.base.now() + self.ahead;
            self.base.advance(back);
            Ok(Some(db))
        }
    }

    /// A base clock the database clock reads through a shared handle.
    struct Shared(Arc<ManualClock>);

    impl Clock for Shared {
        fn now(&self) -> DateTime<Utc> {
            self.0.now()
        }
    }

    fn ms(n: i64) -> Duration {
        Duration::milliseconds(n)
    }

    #[tokio::test]
    async fn the_offset_is_the_database_time_minus_the_midpoint() {
        let base = Arc::new(ManualClock::new(at(0)));
        let clock = DatabaseClock::new(Shared(Arc::clone(&base)));
        assert_eq!(clock.now(), at(0), "not synced: the base clock");
        assert_eq!(clock.last_sync(), None);
        // t0 = 0, the database reads 600 000 + 40 at local 40, t1 = 100: the
        // midpoint is 50, so the offset is 600 040 - 50 = 599 990 (a sample
        // whose legs differ is off by half their difference).
        let db = FakeDatabase {
            base: Arc::clone(&base),
            ahead: Duration::minutes(10),
            legs: Mutex::new(vec![(ms(40), ms(60)); DatabaseClock::<Shared>::SAMPLES]),
        };
        let sync = clock.sync_with(|| db.ask()).await.unwrap().unwrap();
        assert_eq!(sync.offset, Duration::minutes(10) - ms(10));
        assert_eq!(sync.round_trip, ms(100));
        assert_eq!(sync.measured_at, at(40) + Duration::minutes(10));
        assert_eq!(clock.offset(), sync.offset);
        assert_eq!(clock.last_sync(), Some(sync));
        // now() is the base plus the offset, and follows the base.
        let local = base.now();
        assert_eq!(clock.now(), local + Duration::minutes(10) - ms(10));
        base.advance(Duration::seconds(7));
        assert_eq!(
            clock.now(),
            local + Duration::seconds(7) + Duration::minutes(10) - ms(10)
        );
    }

    #[tokio::test]
    async fn the_sample_with_the_smallest_round_trip_wins() {
        let base = Arc::new(ManualClock::new(at(0)));
        let clock = DatabaseClock::new(Shared(Arc::clone(&base)));
        // A database 3 s behind. Slow samples are lopsided (their estimate is
        // off by half the difference of their legs); the fastest is even.
        let db = FakeDatabase {
            base: Arc::clone(&base),
            ahead: -Duration::seconds(3),
            legs: Mutex::new(vec![
                (ms(400), ms(0)),
                (ms(0), ms(300)),
                (ms(2), ms(2)),
                (ms(100), ms(20)),
                (ms(50), ms(50)),
            ]),
        };
        let sync = clock.sync_with(|| db.ask()).await.unwrap().unwrap();
        assert_eq!(sync.round_trip, ms(4));
        assert_eq!(sync.offset, -Duration::seconds(3));
        assert!(db.legs.lock().unwrap().is_empty(), "every sample was taken");
    }

    #[tokio::test]
    async fn a_failed_sync_keeps_the_last_offset_and_no_clock_changes_nothing() {
        let base = Arc::new(ManualClock::new(at(0)));
        let clock = DatabaseClock::new(Shared(Arc::clone(&base)));
        let db = FakeDatabase {
            base: Arc::clone(&base),
            ahead: Duration::seconds(5),
            legs: Mutex::new(vec![(ms(1), ms(1)); DatabaseClock::<Shared>::SAMPLES]),
        };
        clock.sync_with(|| db.ask()).await.unwrap().unwrap();
        assert_eq!(clock.offset(), Duration::seconds(5));

        let down = clock
            .sync_with(|| async { Err(StorageError::transient("connection refused")) })
            .await;
        assert!(matches!(down, Err(StorageError::Transient(_))));
        assert_eq!(clock.offset(), Duration::seconds(5));

        let none = clock.sync_with(|| async { Ok(None) }).await.unwrap();
        assert_eq!(none, None);
        assert_eq!(clock.offset(), Duration::seconds(5));
    }

    #[tokio::test]
    async fn a_base_clock_going_backwards_spoils_only_its_sample() {
        let base = Arc::new(ManualClock::new(at(0)));
        let clock = DatabaseClock::new(Shared(Arc::clone(&base)));
        // Every sample: the base steps back 1 s on the way back, except the
        // third, which takes 10 ms each way.
        let mut n = 0;
        let sync = clock
            .sync_with(|| {
                n += 1;
                let base = Arc::clone(&base);
                let third = n == 3;
                async move {
                    let db = base.now() + Duration::seconds(1) + if third { ms(10) } else { ms(0) };
                    base.advance(if third { ms(20) } else { -Duration::seconds(1) });
                    Ok(Some(db))
                }
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sync.round_trip, ms(20));
        assert_eq!(sync.offset, Duration::seconds(1));

        let backwards = clock
            .sync_with(|| {
                let base = Arc::clone(&base);
                async move {
                    let db = base.now();
                    base.advance(-ms(1));
                    Ok(Some(db))
                }
            })
            .await;
        assert!(matches!(backwards, Err(StorageError::Backend(_))));
        assert_eq!(clock.offset(), Duration::seconds(1), "kept");
    }
}
