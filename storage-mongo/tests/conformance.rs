//! The conformance suite against a real MongoDB-wire server (a replica set).
//!
//! Runs when `TEST_MONGODB_URL` is set (see `tests/support`; without it, the
//! runner reports every scenario ignored, see `build.rs`); every scenario
//! gets its own database, dropped when the scenario passes (a failed one keeps
//! it for inspection), and a run first drops the databases earlier runs left.

mod support;

use std::future::IntoFuture;

use storage_mongo::{MongoOptions, MongoStorage};
use tokio::sync::OnceCell;

/// Drops the test databases of earlier runs, once per test process.
async fn clean_earlier_runs(url: &str) {
    static CLEANED: OnceCell<()> = OnceCell::const_new();
    CLEANED
        .get_or_init(|| async {
            let client = mongodb::Client::with_uri_str(url)
                .await
                .unwrap_or_else(|e| panic!("TEST_MONGODB_URL: {e}"));
            let names = client
                .list_database_names()
                .await
                .unwrap_or_else(|e| panic!("listing databases: {e}"));
            for name in names
                .iter()
                .filter(|n| n.starts_with(support::TEST_DB_PREFIX))
            {
                client
                    .database(name)
                    .drop()
                    .await
                    .unwrap_or_else(|e| panic!("dropping {name}: {e}"));
            }
        })
        .await;
}

/// Drops a scenario's database once the scenario passed. When it failed (the
/// guard is dropped while panicking), the database stays for inspection; the
/// next run drops it.
struct DropDatabase(mongodb::Database);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // `drop` cannot await: block this thread on the drop, which
        // `block_in_place` allows on the suite's multi-threaded runtime.
        let db = &self.0;
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(db.drop().into_future())
        })
        .unwrap_or_else(|e| panic!("dropping {}: {e}", db.name()));
    }
}

async fn fresh() -> Option<(MongoStorage, DropDatabase)> {
    let url = support::replica_set_url()?;
    clean_earlier_runs(&url).await;
    let name = format!(
        "{}{}",
        support::TEST_DB_PREFIX,
        uuid::Uuid::new_v4().simple()
    );
    let storage = MongoStorage::connect(&url, MongoOptions::default().with_database(name))
        .await
        .unwrap_or_else(|e| panic!("connecting to TEST_MONGODB_URL: {e}"));
    let guard = DropDatabase(storage.database().clone());
    Some((storage, guard))
}

marketplace_conformance::conformance_suite!(
    fresh,
    #[cfg_attr(
        no_mongodb,
        ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
    )]
);
