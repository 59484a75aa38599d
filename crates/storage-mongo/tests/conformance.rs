//! The conformance suite against a real MongoDB-wire server (a replica set).
//!
//! Runs when `TEST_MONGODB_URL` is set (see `tests/support`); every scenario
//! gets its own database, and a run first drops the databases earlier runs left.

mod support;

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

async fn fresh() -> Option<MongoStorage> {
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
    Some(storage)
}

marketplace_conformance::conformance_suite!(fresh);
