//! Multi-document transactions on a `ClientSession`, retried the way the
//! driver specification says.
//!
//! One atomic step of the `Storage` contract is one *body*: an async function
//! that runs its reads and writes on the session and ends with
//! `Step::Commit` or `Step::Abort`. `MongoStorage::transaction` runs it
//! in a transaction (snapshot reads, majority writes, primary) and:
//!
//! - retries the **whole body** when an operation or the commit fails with the
//!   `TransientTransactionError` label (write conflicts with a concurrent
//!   transaction, elections, network errors inside the transaction), or when the
//!   body itself reports a `Fail::Retry` (e.g. a unique index raced);
//! - retries **only the commit** on `UnknownTransactionCommitResult` (the commit
//!   may or may not have applied; `commitTransaction` is idempotent);
//! - backs off with full jitter between attempts (10 ms .. 5.12 s), and gives up after
//!   [`MongoOptions::transaction_retry_timeout`](crate::MongoOptions), reporting
//!   what is still transient as `StorageError::Transient` so core's own bounded
//!   retry can take over;
//! - never sleeps a backoff that would end at or past the [request
//!   deadline](marketplace_core::deadline) of the call: it reports
//!   `StorageError::DeadlineExceeded` (with the last failure) instead, which
//!   nobody retries. The budget above still applies when it ends first, and on
//!   its own where no deadline is set (the background workers).
//!
//! An attempt cut off by its host at the deadline is dropped like any other
//! future: the session's transaction is aborted (by the driver when the
//! session is dropped, or by the server when the transaction times out), and a
//! commit cut off in flight has applied entirely or not at all.
//!
//! A step that writes one document outside a transaction runs through
//! `MongoStorage::single`, which repeats the write while it loses a write
//! conflict against a transaction (a lost conflict means it did not apply).

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use marketplace_core::{StorageError, StorageResult, deadline};
use mongodb::ClientSession;
use mongodb::error::{
    Error as DriverError, TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{ReadConcern, ReadPreference, SelectionCriteria, WriteConcern};
use rand::Rng;

use crate::MongoStorage;
use crate::error::{is_write_conflict, storage_error};

/// How a transaction body ends.
pub(crate) enum Step<T> {
    /// Commit the writes and return the value.
    Commit(T),
    /// Roll every write back and return the value (a refused precondition).
    Abort(T),
}

/// Why a transaction body stopped early.
pub(crate) enum Fail {
    /// The driver failed; retried when it carries the transient label.
    Db(DriverError),
    /// The body saw a race it cannot settle inside this snapshot (e.g. a
    /// concurrent insert of the same unique key); the whole body is retried.
    Retry(&'static str),
    /// A final answer that must not commit anything.
    Refuse(StorageError),
}

impl From<DriverError> for Fail {
    fn from(e: DriverError) -> Self {
        Fail::Db(e)
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Self {
        Fail::Refuse(e)
    }
}

/// What a transaction body returns.
pub(crate) type Body<T> = Result<Step<T>, Fail>;

/// Ends a step whose conditional write matched nothing: `unchanged` when the
/// document `id` exists (its condition no longer held), `NotFound` when it
/// does not. Nothing is written either way.
pub(crate) async fn unmatched<T>(
    coll: &mongodb::Collection<mongodb::bson::Document>,
    s: &mut ClientSession,
    id: mongodb::bson::Bson,
    unchanged: T,
) -> Body<StorageResult<T>> {
    let exists = coll
        .find_one(mongodb::bson::doc! { "_id": id })
        .projection(mongodb::bson::doc! { "_id": 1 })
        .session(&mut *s)
        .await?
        .is_some();
    Ok(Step::Abort(if exists {
        Ok(unchanged)
    } else {
        Err(StorageError::NotFound)
    }))
}

/// Commit attempts after an unknown commit result, within the time budget.
const COMMIT_ATTEMPTS: u32 = 5;

/// The wait before retry `attempt` (1-based): full jitter over an exponential
/// ceiling of 10 ms .. 5.12 s. Full jitter spreads many contenders on one hot
/// document (a popular product at checkout) over time instead of letting them
/// collide again in lockstep; the high ceiling keeps a crowd of retries from
/// starving the transaction that holds the document.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = 10u64 << attempt.min(9);
    Duration::from_millis(rand::thread_rng().gen_range(1..=ceiling))
}

/// What a retry loop does after failed attempt `attempt` with `budget` its own
/// time limit: wait this long and try again, or stop.
fn next_attempt(attempt: u32, budget: Instant) -> Next {
    if Instant::now() >= budget {
        return Next::BudgetSpent;
    }
    let wait = backoff(attempt);
    if deadline::allows(wait) {
        Next::After(wait)
    } else {
        Next::DeadlineExceeded
    }
}

/// The decision of [`next_attempt`].
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Sleep, then retry.
    After(Duration),
    /// The loop's own budget is spent: report what is still transient.
    BudgetSpent,
    /// The wait would end at or past the request deadline.
    DeadlineExceeded,
}

/// A transient failure that outlived the retry budget.
#[derive(Debug, thiserror::Error)]
#[error("transaction still conflicting after {attempts} attempts: {last}")]
struct RetriesExhausted {
    attempts: u32,
    last: String,
}

impl MongoStorage {
    /// Runs `body` in a transaction on a fresh session, retrying as described in
    /// the [module documentation](self). `ctx` is what the body needs besides the
    /// session (the driver's own `and_run` takes its context the same way, which
    /// lets the body borrow it for exactly as long as the session).
    pub(crate) async fn transaction<C, T, F>(&self, ctx: &C, mut body: F) -> StorageResult<T>
    where
        C: Sync + ?Sized,
        T: Send,
        F: for<'s> FnMut(&'s mut ClientSession, &'s C) -> BoxFuture<'s, Body<T>>,
    {
        let mut session = self.client.start_session().await.map_err(storage_error)?;
        let budget = Instant::now() + self.options.transaction_retry_timeout;
        let mut attempt = 0u32;
        'transaction: loop {
            attempt += 1;
            // One turn per attempt, given back before a backoff, so waiting
            // transactions go first meanwhile.
            let turn = self
                .turns
                .acquire()
                .await
                .map_err(|e| StorageError::Backend(Box::new(e)))?;
            session
                .start_transaction()
                .read_concern(ReadConcern::snapshot())
                .write_concern(WriteConcern::majority())
                .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
                .await
                .map_err(storage_error)?;
            let value = match body(&mut session, ctx).await {
                Ok(Step::Commit(value)) => value,
                Ok(Step::Abort(value)) => {
                    // Nothing was meant to be written; an abort that fails leaves
                    // the server to abort the transaction when it times out.
                    let _ = session.abort_transaction().await;
                    return Ok(value);
                }
                Err(fail) => {
                    let _ = session.abort_transaction().await;
                    let retryable = match &fail {
                        Fail::Db(e) => e.contains_label(TRANSIENT_TRANSACTION_ERROR),
                        Fail::Retry(_) => true,
                        Fail::Refuse(_) => false,
                    };
                    let next = if retryable {
                        next_attempt(attempt, budget)
                    } else {
                        Next::BudgetSpent
                    };
                    if let Next::After(wait) = next {
                        tracing::debug!(attempt, "transient transaction failure, retrying");
                        drop(turn);
                        tokio::time::sleep(wait).await;
                        continue 'transaction;
                    }
                    let at_deadline = next == Next::DeadlineExceeded;
                    return Err(match fail {
                        Fail::Db(e) if at_deadline => {
                            StorageError::DeadlineExceeded(exhausted_error(attempt, &e))
                        }
                        Fail::Retry(why) if at_deadline => {
                            StorageError::DeadlineExceeded(Box::new(RetriesExhausted {
                                attempts: attempt,
                                last: why.to_owned(),
                            }))
                        }
                        Fail::Db(e) if retryable => exhausted(attempt, &e),
                        Fail::Db(e) => storage_error(e),
                        Fail::Retry(why) => StorageError::Transient(Box::new(RetriesExhausted {
                            attempts: attempt,
                            last: why.to_owned(),
                        })),
                        Fail::Refuse(e) => e,
                    });
                }
            };
            let mut commits = 0u32;
            loop {
                commits += 1;
                match session.commit_transaction().await {
                    Ok(()) => return Ok(value),
                    // Committing again waits for nothing: it goes on while the
                    // budget and the request deadline last, since it settles
                    // whether the step applied.
                    Err(e)
                        if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
                            && commits < COMMIT_ATTEMPTS
                            && Instant::now() < budget
                            && deadline::allows(Duration::ZERO) =>
                    {
                        tracing::debug!(commits, "unknown commit result, committing again");
                    }
                    Err(e) if e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                        match next_attempt(attempt, budget) {
                            Next::After(wait) => {
                                tracing::debug!(attempt, "transient commit failure, retrying");
                                drop(turn);
                                tokio::time::sleep(wait).await;
                                continue 'transaction;
                            }
                            Next::DeadlineExceeded => {
                                return Err(StorageError::DeadlineExceeded(exhausted_error(
                                    attempt, &e,
                                )));
                            }
                            Next::BudgetSpent => return Err(exhausted(attempt, &e)),
                        }
                    }
                    Err(e) if e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => {
                        return Err(if deadline::allows(Duration::ZERO) {
                            exhausted(attempt, &e)
                        } else {
                            StorageError::DeadlineExceeded(exhausted_error(attempt, &e))
                        });
                    }
                    Err(e) => return Err(storage_error(e)),
                }
            }
        }
    }

    /// Runs a single-document write, repeating it while it loses a write
    /// conflict against a transaction (which means it did not apply), within
    /// the same budget and request deadline as a transaction; the last conflict
    /// is returned when they run out (a `Transient` failure once mapped, which
    /// core's own retry ends at the deadline too).
    pub(crate) async fn single<T, F, Fut>(&self, mut op: F) -> Result<T, DriverError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, DriverError>>,
    {
        let budget = Instant::now() + self.options.transaction_retry_timeout;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match op().await {
                Err(e) if is_write_conflict(&e) => match next_attempt(attempt, budget) {
                    Next::After(wait) => tokio::time::sleep(wait).await,
                    Next::BudgetSpent | Next::DeadlineExceeded => return Err(e),
                },
                other => return other,
            }
        }
    }
}

fn exhausted(attempts: u32, e: &DriverError) -> StorageError {
    StorageError::Transient(exhausted_error(attempts, e))
}

fn exhausted_error(attempts: u32, e: &DriverError) -> marketplace_core::storage::BoxError {
    Box::new(RetriesExhausted {
        attempts,
        last: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_retry_waits_while_budget_and_deadline_allow() {
        let budget = Instant::now() + Duration::from_secs(120);
        assert!(
            matches!(next_attempt(1, budget), Next::After(w) if w <= Duration::from_millis(20))
        );
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let next = deadline::scope(far, async { next_attempt(3, budget) }).await;
        assert!(matches!(next, Next::After(_)), "{next:?}");
    }

    #[tokio::test]
    async fn a_retry_stops_at_the_request_deadline_before_its_own_budget() {
        let budget = Instant::now() + Duration::from_secs(120);
        let now = tokio::time::Instant::now();
        for attempt in 1..=12 {
            let next = deadline::scope(now, async { next_attempt(attempt, budget) }).await;
            assert_eq!(next, Next::DeadlineExceeded, "attempt {attempt}");
        }
    }

    #[tokio::test]
    async fn a_spent_budget_stops_with_or_without_a_deadline() {
        let spent = Instant::now();
        assert_eq!(next_attempt(1, spent), Next::BudgetSpent);
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let next = deadline::scope(far, async { next_attempt(1, spent) }).await;
        assert_eq!(next, Next::BudgetSpent);
    }
}
