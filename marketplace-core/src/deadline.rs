//! The request deadline: the instant by which a caller wants its answer, set
//! once per request by the host and read by every retry loop underneath, so no
//! parameter has to be threaded through each call.
//!
//! A host runs a request's future with [`within`] (or [`until`]): inside it,
//! [`current`] and [`remaining`] tell how long is left, and the future is cut
//! off at that same instant, answering [`Exceeded`] (a 503 with `Retry-After`
//! over HTTP, see [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded)).
//! [`scope`] sets the deadline without cutting anything off, for a caller that
//! bounds the work another way.
//!
//! Retry loops (core's own around storage calls, a backend's around its
//! transactions) ask [`allows`] before each backoff: when the wait would end at
//! or past the deadline, they stop and report
//! [`StorageError::DeadlineExceeded`](crate::StorageError::DeadlineExceeded)
//! instead of retrying into a request the host has already answered. Their own
//! budgets still apply where they are shorter, and wherever no deadline is set
//! (the background workers run without one).
//!
//! Cutting a request off is safe at every step boundary: each write is one
//! atomic step of the storage contract, and multi-step flows (an upload that
//! writes the blobs, then the product; a checkout that commits, then opens its
//! payment) are designed to survive the process dying between steps, which is
//! what a cut-off request looks like to them.
//!
//! Times are [`tokio::time::Instant`]s, so a test with a paused clock sees its
//! deadlines pass as its sleeps do.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// The request deadline passed before the work was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request did not finish before its deadline")]
pub struct Exceeded;

/// The deadline of the request being served, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// How long the request being served has left (zero once its deadline
/// passed); `None` without a deadline.
pub fn remaining() -> Option<Duration> {
    current().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Whether waiting `wait` before another attempt would still end before the
/// request deadline (always true without one).
pub fn allows(wait: Duration) -> bool {
    current().is_none_or(|d| Instant::now() + wait < d)
}

/// Runs `fut` with `deadline` as its request deadline, or the earlier deadline
/// it is already running under. Nothing is cut off: the retry loops inside
/// stop at the deadline, the rest runs to its end.
pub async fn scope<F: Future>(deadline: Instant, fut: F) -> F::Output {
    DEADLINE.scope(earliest(deadline), fut).await
}

/// Runs `fut` with a request deadline `budget` from now, and cuts it off at
/// that instant: [`Exceeded`] when it has not finished by then.
pub async fn within<F: Future>(budget: Duration, fut: F) -> Result<F::Output, Exceeded> {
    until(Instant::now() + budget, fut).await
}

/// Runs `fut` with `deadline` as its request deadline (or the earlier one it
/// is already running under), and cuts it off at that instant: [`Exceeded`]
/// when it has not finished by then.
pub async fn until<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, Exceeded> {
    let deadline = earliest(deadline);
    tokio::time::timeout_at(deadline, DEADLINE.scope(deadline, fut))
        .await
        .map_err(|_| Exceeded)
}

/// `deadline`, or the current one when that comes first.
fn earliest(deadline: Instant) -> Instant {
    current().map_or(deadline, |outer| outer.min(deadline))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::StorageError;
    use crate::marketplace::retry_transient;

    /// A storage call that always fails transiently, counting its attempts.
    async fn starving(attempts: &AtomicU32) -> Result<(), StorageError> {
        attempts.fetch_add(1, Ordering::SeqCst);
        Err(StorageError::transient("database is locked"))
    }

    #[tokio::test]
    async fn no_deadline_is_none_and_allows_any_wait() {
        assert_eq!((current(), remaining()), (None, None));
        assert!(allows(Duration::from_secs(3600)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_earlier_deadline_wins_and_is_seen_inside() {
        let soon = Instant::now() + Duration::from_millis(100);
        let later = soon + Duration::from_secs(10);
        scope(soon, async {
            assert_eq!(current(), Some(soon));
            assert_eq!(remaining(), Some(Duration::from_millis(100)));
            assert!(allows(Duration::from_millis(99)));
            assert!(!allows(Duration::from_millis(100)));
            // An inner, later deadline does not extend the request's.
            scope(later, async { assert_eq!(current(), Some(soon)) }).await;
            // An inner, earlier one shortens it for the inner work only.
            let sooner = soon - Duration::from_millis(50);
            scope(sooner, async { assert_eq!(current(), Some(sooner)) }).await;
            assert_eq!(current(), Some(soon));
        })
        .await;
        assert_eq!(current(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn within_cuts_the_work_off_at_the_deadline() {
        let started = Instant::now();
        let cut = within(Duration::from_millis(200), async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
        .await;
        assert_eq!(cut, Err(Exceeded));
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert_eq!(within(Duration::from_secs(1), async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_under_a_passed_deadline_makes_no_second_attempt() {
        let attempts = AtomicU32::new(0);
        let now = Instant::now();
        let r = scope(now, retry_transient(|| starving(&attempts))).await;
        assert!(matches!(r, Err(StorageError::DeadlineExceeded(_))), "{r:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(Instant::now(), now, "no backoff slept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_stops_when_its_next_backoff_would_pass_the_deadline() {
        // The first backoff is 10..=20 ms (fits in 25 ms), the second 20..=40 ms
        // (ends at 30 ms or later): exactly two attempts, whatever the jitter.
        let attempts = AtomicU32::new(0);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(25);
        let r = scope(deadline, retry_transient(|| starving(&attempts))).await;
        assert!(matches!(r, Err(StorageError::DeadlineExceeded(_))), "{r:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert!(Instant::now() < deadline, "it answered before the deadline");
        let e = crate::Error::from(r.unwrap_err());
        assert_eq!(e.code(), "deadline_exceeded");
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_keeps_its_own_budget_under_a_distant_deadline_or_none() {
        for deadline in [Some(Instant::now() + Duration::from_secs(3600)), None] {
            let attempts = AtomicU32::new(0);
            let r = match deadline {
                Some(d) => scope(d, retry_transient(|| starving(&attempts))).await,
                None => retry_transient(|| starving(&attempts)).await,
            };
            assert!(matches!(r, Err(StorageError::Transient(_))), "{r:?}");
            assert_eq!(attempts.load(Ordering::SeqCst), 5, "{deadline:?}");
        }
    }
}
