//! `connect` against real servers: it refuses a standalone server with a way
//! out, and accepts a replica set.

mod support;

use marketplace_core::Storage;
use storage_mongo::{ConnectError, MongoOptions, MongoStorage};

#[tokio::test]
#[cfg_attr(
    no_mongodb_standalone,
    ignore = "needs TEST_MONGODB_STANDALONE_URL (a standalone MongoDB server), see README"
)]
async fn a_standalone_server_is_refused_with_instructions() {
    let Some(url) = support::standalone_url() else {
        return;
    };
    let options = MongoOptions::default().with_database("mkt_conformance_standalone");
    match MongoStorage::connect(&url, options).await {
        Err(e @ ConnectError::Standalone(_)) => {
            let text = e.to_string();
            assert!(text.contains("--replSet"), "{text}");
            assert!(text.contains("rs.initiate()"), "{text}");
        }
        other => panic!("expected a standalone refusal, got {other:?}"),
    }
}

#[tokio::test]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn a_replica_set_is_accepted_and_answers() {
    let Some(url) = support::replica_set_url() else {
        return;
    };
    let name = format!("{}connect", support::TEST_DB_PREFIX);
    let storage = MongoStorage::connect(&url, MongoOptions::default().with_database(&name))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    storage.ping().await.unwrap_or_else(|e| panic!("{e}"));
    // Connecting again finds the collections and indexes in place.
    MongoStorage::connect(&url, MongoOptions::default().with_database(&name))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    storage
        .database()
        .drop()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_database_must_be_named() {
    match MongoStorage::connect("mongodb://127.0.0.1:1/", MongoOptions::default()).await {
        Err(ConnectError::NoDatabase) => {}
        other => panic!("expected NoDatabase, got {other:?}"),
    }
    match MongoStorage::connect("http://nope", MongoOptions::default()).await {
        Err(ConnectError::InvalidUrl(_)) => {}
        other => panic!("expected InvalidUrl, got {other:?}"),
    }
}
