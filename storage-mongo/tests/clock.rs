//! The database's clock against a real replica set: the `localTime` of the
//! primary's `hello`, and a [`DatabaseClock`] over a badly skewed base clock
//! that reads it rather than its base.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{DateTime, Duration, Utc};
use marketplace_core::{Clock, DatabaseClock, Storage, SystemClock};

/// This machine's clock, `skew` off: a server whose clock is wrong.
struct Skewed(Duration);

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn a_database_clock_reads_mongodb_time_not_its_skewed_base() {
    let Some((storage, _guard)) = support::fresh().await else {
        return;
    };
    let told = storage.database_time().await.unwrap();
    assert!(told.is_some(), "hello answers localTime");

    // The real offset of this machine against the server.
    let honest = DatabaseClock::new(SystemClock);
    let sync = honest.sync(&storage).await.unwrap().unwrap();
    eprintln!(
        "MongoDB clock: offset {} us, round trip {} us",
        sync.offset.num_microseconds().unwrap_or(i64::MAX),
        sync.round_trip.num_microseconds().unwrap_or(i64::MAX)
    );
    assert!(sync.round_trip < Duration::seconds(1), "{sync:?}");

    let skew = Duration::minutes(10);
    let clock = DatabaseClock::new(Skewed(skew));
    let sync = clock.sync(&storage).await.unwrap().unwrap();
    eprintln!(
        "MongoDB clock over a base 10 min ahead: offset {} us, round trip {} us",
        sync.offset.num_microseconds().unwrap_or(i64::MAX),
        sync.round_trip.num_microseconds().unwrap_or(i64::MAX)
    );
    assert!(
        (clock.offset() + skew).abs() < Duration::seconds(1),
        "the offset undoes the skew: {}",
        clock.offset()
    );
    let before = storage.database_time().await.unwrap().unwrap();
    let ours = clock.now();
    let after = storage.database_time().await.unwrap().unwrap();
    assert!(
        ours > before - Duration::seconds(1) && ours < after + Duration::seconds(1),
        "{before} <= {ours} <= {after}"
    );
    assert!(
        (clock.base().now() - ours - skew).abs() < Duration::seconds(1),
        "and not the skewed base"
    );
}
