//! The SQLite dialect.
//!
//! SQLite allows one writer at a time. Every multi-statement write runs in a
//! `BEGIN IMMEDIATE` transaction, which takes the write lock before reading, so
//! the transaction's reads and conditional writes see a database nobody else can
//! change until it commits, and two writers never deadlock upgrading a read lock.
//! Writes go through one writer connection (queueing in the pool instead of
//! polling the lock); reads use a pool of read-only connections, which WAL mode
//! lets run beside the writer. Another process holding the lock is waited for
//! (`busy_timeout`), the `BEGIN` is retried a few times (never past the
//! [request deadline](marketplace_core::deadline)), and a lock still busy after
//! that is reported as `Transient` (`DeadlineExceeded` at the deadline).
//!
//! One module per concept of the storage traits, each holding that trait's
//! `impl` for [`SqliteStorage`]; this one opens the file, migrates, begins write
//! transactions and pings.

mod accounts;
mod catalog;
mod checkout;
mod commission;
mod ledger;
mod orders;
mod outbox;
mod payments;
mod payouts;
mod shopping;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use marketplace_core::{Storage, StorageError, StorageResult, deadline};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};

use crate::SqlOptions;
use crate::error;
use crate::schema::{self, Plan, SchemaStatus};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

fn e(err: sqlx::Error) -> StorageError {
    error::map::<Sqlite>(err)
}

/// How often a `BEGIN IMMEDIATE` that found the database busy (past the busy
/// timeout) is retried before the call reports `Transient`.
const BEGIN_ATTEMPTS: u32 = 4;

/// How often the first connection to a file found locked is retried (about six
/// seconds in all): another process may be creating or migrating it.
const OPEN_ATTEMPTS: u32 = 8;

/// The marketplace [`Storage`] on SQLite: one writer connection and a pool of
/// readers on one file (the same single connection for an in-memory database),
/// shared by clones. Several processes may open one file at once.
#[derive(Clone)]
pub struct SqliteStorage {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The database file, for `Debug`.
    file: Arc<str>,
    /// The schema version as connect found and left it.
    schema: SchemaStatus,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// The database's schema version against this build's migrations, as
    /// found on open and as left by it.
    pub fn schema(&self) -> SchemaStatus {
        self.schema
    }

    /// Opens the SQLite database `url` names and applies pending migrations.
    ///
    /// - `sqlite://path/to/file.db`, `sqlite:file.db`: a SQLite file, created when
    ///   missing (see [`SqlOptions::create_if_missing`]), in WAL mode with foreign
    ///   keys on.
    /// - `sqlite::memory:`: a private in-memory database (one connection; gone
    ///   when the storage is dropped).
    ///
    /// Fails with `Backend` for a URL of another scheme, a file that cannot be
    /// opened or a failed migration.
    pub async fn connect(url: &str, options: SqlOptions) -> StorageResult<SqliteStorage> {
        if !url.starts_with("sqlite:") {
            return Err(error::wrong_scheme("SqliteStorage", "sqlite:", url));
        }
        let base = SqliteConnectOptions::from_str(url)
            .map_err(StorageError::backend)?
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let file: Arc<str> = base.get_filename().to_string_lossy().into();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Every connection would see its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(base)
                .await
                .map_err(e)?;
            let schema = migrate(&pool, options.run_migrations).await?;
            return Ok(SqliteStorage {
                writer: pool.clone(),
                reader: pool,
                file,
                schema,
            });
        }
        // Turning a new file to WAL takes an exclusive lock that does not wait on
        // the busy timeout: processes opening a new file at once can find it
        // locked, so the first connection is retried a bounded number of times.
        let writer_options = base
            .clone()
            .create_if_missing(options.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal);
        let mut attempt = 0;
        let writer = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(writer_options.clone())
                .await;
            match opened {
                Ok(pool) => break pool,
                Err(err) if error::is_busy(&err) && attempt + 1 < OPEN_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(StdDuration::from_millis(25 << attempt)).await;
                }
                Err(err) => return Err(e(err)),
            }
        };
        let schema = migrate(&writer, options.run_migrations).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await
            .map_err(e)?;
        Ok(SqliteStorage {
            writer,
            reader,
            schema,
            file,
        })
    }

    /// Closes every pooled connection, waiting for calls in flight to finish
    /// (SQLite checkpoints its WAL on the last close).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction holding the database's write lock. A `BEGIN`
    /// still busy is retried, unless the pause before the next attempt would
    /// end at or past the request deadline: then `DeadlineExceeded`.
    ///
    /// A call cut off while its `BEGIN` waits on the lock leaves nothing behind:
    /// sqlx rolls back a `BEGIN` whose caller is gone, and a dropped
    /// transaction, as every write here is one transaction.
    async fn begin_write(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        let mut attempt = 0;
        loop {
            match self.writer.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(tx),
                Err(err) if error::is_busy(&err) && attempt + 1 < BEGIN_ATTEMPTS => {
                    attempt += 1;
                    let wait = StdDuration::from_millis(10 << attempt);
                    if !deadline::allows(wait) {
                        return Err(StorageError::deadline_exceeded(e(err)));
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(err) => return Err(e(err)),
            }
        }
    }
}

/// Reads where the schema stands, decides ([`schema::check`]) and applies
/// pending migrations when it should. SQLite has no advisory lock for the
/// migrator, so two processes opening a new file at once can race: the loser's
/// attempt fails on the tables the winner created, and a second look finds
/// them applied.
async fn migrate(pool: &SqlitePool, run_migrations: bool) -> StorageResult<SchemaStatus> {
    let build = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let (found, oldest_compatible) = schema_found(pool).await?;
    let mut status = SchemaStatus {
        found,
        current: found,
        build,
        oldest_compatible,
    };
    if schema::check(found, oldest_compatible, build, run_migrations)? == Plan::Migrate {
        run_migrator(pool).await?;
        (status.current, status.oldest_compatible) = schema_found(pool).await?;
    }
    Ok(status)
}

/// The newest migration applied and the oldest build the schema serves (each
/// `None` before the migration that creates its table).
async fn schema_found(pool: &SqlitePool) -> StorageResult<(Option<i64>, Option<i64>)> {
    let exists = |table: &'static str| {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        )
        .bind(table)
        .fetch_one(pool)
    };
    let found = if exists("_sqlx_migrations").await.map_err(e)? {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(pool)
        .await
        .map_err(e)?
    } else {
        None
    };
    let oldest_compatible = if exists("marketplace_schema").await.map_err(e)? {
        sqlx::query_scalar("SELECT oldest_compatible FROM marketplace_schema")
            .fetch_optional(pool)
            .await
            .map_err(e)?
    } else {
        None
    };
    Ok((found, oldest_compatible))
}

/// Runs the migrator, again when it lost a race with another process.
async fn run_migrator(pool: &SqlitePool) -> StorageResult<()> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt + 1 < BEGIN_ATTEMPTS => {
                attempt += 1;
                tracing::debug!(attempt, error = %err, "SQLite migration failed, retrying");
                tokio::time::sleep(StdDuration::from_millis(25 << attempt)).await;
            }
            Err(err) => return Err(StorageError::backend(err)),
        }
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(e)?;
        Ok(())
    }

    /// One file on one machine: the processes using it share that machine's
    /// clock, so there is nothing to agree on.
    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }
}
