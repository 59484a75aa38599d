//! How driver failures become the core's [`StorageError`], and why `connect`
//! refuses to start.

use marketplace_core::StorageError;
use marketplace_core::storage::BoxError;
use mongodb::error::{
    Error as DriverError, ErrorKind, TRANSIENT_TRANSACTION_ERROR,
    UNKNOWN_TRANSACTION_COMMIT_RESULT, WriteFailure,
};

use crate::schema;

/// Why [`MongoStorage::connect`](crate::MongoStorage::connect) refused to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection string could not be parsed.
    #[error("invalid MongoDB connection string: {0}")]
    InvalidUrl(#[source] BoxError),
    /// Neither the URL's path nor the options name a database.
    #[error(
        "no database named: put it in the URL path (mongodb://host:27017/marketplace) \
         or set MongoOptions::database"
    )]
    NoDatabase,
    /// The server is a standalone `mongod`, which cannot run the multi-document
    /// transactions every atomic step of the marketplace relies on.
    #[error(
        "the MongoDB server at {0} is a standalone server, which cannot run multi-document \
         transactions; the marketplace needs them to keep checkouts atomic. Run it as a \
         single-node replica set instead: start it with `mongod --replSet rs0 ...`, run \
         `mongosh --eval 'rs.initiate()'` once, and connect with \
         `mongodb://HOST:27017/marketplace?replicaSet=rs0` (or `?directConnection=true`). \
         A sharded cluster (mongos) works too"
    )]
    Standalone(String),
    /// The server is too old for the transactions the marketplace needs.
    #[error("the MongoDB server is too old: {0}")]
    Unsupported(String),
    /// The server could not be reached, or refused a setup command (`hello`,
    /// index creation).
    #[error("MongoDB server error during setup: {0}")]
    Server(#[source] BoxError),
}

/// The duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// Server error codes that mean "try again": write conflicts and replica-set
/// state changes (elections, shutdowns) that a retried call gets past.
const RETRYABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    112,   // WriteConflict
    189,   // PrimarySteppedDown
    251,   // NoSuchTransaction (the server aborted it)
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Every server error code carried by `e`, with its message.
fn codes(e: &DriverError) -> Vec<(i32, &str)> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => vec![(c.code, c.message.as_str())],
        ErrorKind::Write(WriteFailure::WriteError(w)) => vec![(w.code, w.message.as_str())],
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => vec![(w.code, w.message.as_str())],
        ErrorKind::InsertMany(m) => {
            let mut v: Vec<(i32, &str)> = m
                .write_errors
                .iter()
                .flatten()
                .map(|w| (w.code, w.message.as_str()))
                .collect();
            if let Some(w) = &m.write_concern_error {
                v.push((w.code, w.message.as_str()));
            }
            v
        }
        _ => Vec::new(),
    }
}

/// When `e` is a duplicate-key error, names what was duplicated (from the index
/// in the server's message: `... index: users_email dup key: ...`).
pub(crate) fn duplicate_key(e: &DriverError) -> Option<&'static str> {
    let message = codes(e)
        .into_iter()
        .find(|(code, _)| *code == DUPLICATE_KEY)?
        .1;
    Some(schema::duplicated_by_message(message))
}

/// Whether `e` may go away when the whole call is repeated.
pub(crate) fn is_transient(e: &DriverError) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT)
        || matches!(
            e.kind.as_ref(),
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
        )
        || codes(e)
            .iter()
            .any(|(code, _)| RETRYABLE_CODES.contains(code))
}

/// Whether `e` is a write that lost a conflict (and so did not apply), and may
/// simply be repeated.
pub(crate) fn is_write_conflict(e: &DriverError) -> bool {
    e.contains_label(TRANSIENT_TRANSACTION_ERROR) || codes(e).iter().any(|(code, _)| *code == 112)
}

/// Maps a driver error to the core's error: duplicate keys to `AlreadyExists`,
/// transient failures to `Transient`, the rest to `Backend`.
pub(crate) fn storage_error(e: DriverError) -> StorageError {
    if let Some(what) = duplicate_key(&e) {
        return StorageError::AlreadyExists(what);
    }
    if is_transient(&e) {
        StorageError::Transient(Box::new(e))
    } else {
        StorageError::Backend(Box::new(e))
    }
}

/// A stored document that does not decode: a bug or a foreign write, never a
/// reason to panic.
#[derive(Debug, thiserror::Error)]
#[error("malformed {collection} document: {problem}")]
pub(crate) struct Malformed {
    pub(crate) collection: &'static str,
    pub(crate) problem: String,
}

/// `Backend(Malformed)`.
pub(crate) fn malformed(collection: &'static str, problem: impl Into<String>) -> StorageError {
    StorageError::Backend(Box::new(Malformed {
        collection,
        problem: problem.into(),
    }))
}
