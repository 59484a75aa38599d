//! How a [`MongoStorage`](crate::MongoStorage) connects and behaves.

use std::time::Duration;

/// Settings of a MongoDB store. Build with [`MongoOptions::default`] and the
/// `with_*` methods; every field has a documented default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MongoOptions {
    /// The database holding the marketplace's collections. When `None` (the
    /// default), the database named in the connection URL's path is used
    /// (`mongodb://host/marketplace`); naming neither is an error.
    pub database: Option<String>,
    /// Whether `connect` creates the collections' indexes (default `true`).
    /// Index creation is idempotent; turn it off when indexes are managed by an
    /// operator and the application's user may not create them.
    pub ensure_indexes: bool,
    /// How long one atomic step may keep retrying its transaction after
    /// transient failures (write conflicts, elections, an unknown commit result)
    /// before it reports [`StorageError::Transient`](marketplace_core::StorageError)
    /// (default 120 s, the budget of the driver's own `with_transaction`
    /// convenience API; lower it when a fast failure matters more than riding
    /// out a burst of contention on a popular product). Within a request, its
    /// [deadline](marketplace_core::deadline) stops the retries earlier when it
    /// comes first.
    pub transaction_retry_timeout: Duration,
    /// How many transactions this store runs at once (default 32); more wait
    /// their turn, first come first served. Backpressure, not a lock: it guards
    /// no invariant (the database does, and several processes share it), but
    /// when hundreds of requests hit the same popular products, letting them all
    /// retry write conflicts at once only burns the server; queueing them keeps
    /// the transaction holding a hot document fast.
    pub max_concurrent_transactions: usize,
    /// The application name sent to the server, shown in its logs and
    /// `currentOp` (default `marketplace`). A name in the URL wins.
    pub app_name: Option<String>,
}

impl Default for MongoOptions {
    fn default() -> Self {
        MongoOptions {
            database: None,
            ensure_indexes: true,
            transaction_retry_timeout: Duration::from_secs(120),
            max_concurrent_transactions: 32,
            app_name: Some("marketplace".to_owned()),
        }
    }
}

impl MongoOptions {
    /// Uses `name` as the database, whatever the URL says.
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        self.database = Some(name.into());
        self
    }

    /// Creates (or not) the indexes on connect.
    pub fn with_ensure_indexes(mut self, ensure: bool) -> Self {
        self.ensure_indexes = ensure;
        self
    }

    /// Sets how long transient transaction failures are retried.
    pub fn with_transaction_retry_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_retry_timeout = timeout;
        self
    }

    /// Sets how many transactions run at once (at least 1).
    pub fn with_max_concurrent_transactions(mut self, n: usize) -> Self {
        self.max_concurrent_transactions = n;
        self
    }

    /// Sets the application name reported to the server.
    pub fn with_app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }
}
