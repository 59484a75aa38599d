//! The PostgreSQL dialect.
//!
//! Every atomic step is one transaction at PostgreSQL's default READ COMMITTED
//! isolation. Correctness under concurrency comes from conditional writes and row
//! locks, not from a stricter isolation level: an `UPDATE ... WHERE version = $n`
//! or `WHERE stock >= $q` that finds its row locked waits for the other
//! transaction and re-checks its condition against the committed row, so a lost
//! update or an oversell is impossible. Rows are locked in id order where a step
//! locks several, so concurrent checkouts do not deadlock; should the database
//! still report a deadlock or serialization failure, the call fails with
//! `Transient` and core repeats it.
//!
//! One module per concept of the storage traits, each holding that trait's
//! `impl` for [`PostgresStorage`]; this one connects, migrates and pings.

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

use async_trait::async_trait;
use marketplace_core::{Storage, StorageError, StorageResult};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::SqlOptions;
use crate::error;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

fn e(err: sqlx::Error) -> StorageError {
    error::map::<Postgres>(err)
}

/// The marketplace [`Storage`] on PostgreSQL: one connection pool, shared by
/// clones. Several servers may use one database at once.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    /// `host:port/database`, for `Debug`: never the URL, which may hold a password.
    server: Arc<str>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to the PostgreSQL database `url` names (`postgres://user@host/db`
    /// or `postgresql://...`) and applies pending migrations. The usual libpq
    /// parameters apply (`sslmode=require` for TLS with rustls and the webpki
    /// roots, `sslrootcert=...`, `options=-c search_path=...`).
    ///
    /// Fails with `Backend` for a URL of another scheme, an unreachable server or
    /// a failed migration.
    pub async fn connect(url: &str, options: SqlOptions) -> StorageResult<PostgresStorage> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(error::wrong_scheme(
                "PostgresStorage",
                "postgres:// or postgresql://",
                url,
            ));
        }
        let connect = PgConnectOptions::from_str(url).map_err(StorageError::backend)?;
        let server = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or_default()
        );
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(e)?;
        if options.run_migrations {
            MIGRATOR.run(&pool).await.map_err(StorageError::backend)?;
        }
        Ok(PostgresStorage {
            pool,
            server: server.into(),
        })
    }

    /// Closes every pooled connection, waiting for calls in flight to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction (READ COMMITTED).
    async fn begin(&self) -> StorageResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(e)
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(())
    }

    /// The server's `clock_timestamp()`: the time the statement ran, not the
    /// start of its transaction (`now()`), in microseconds.
    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&self.pool)
            .await
            .map(Some)
            .map_err(e)
    }
}
