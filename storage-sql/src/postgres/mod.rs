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
use crate::schema::{self, Plan, SchemaStatus};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a pooled connection may sit idle and still be handed out without a
/// ping first.
const IDLE_BEFORE_PING: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads where the schema stands, decides ([`schema::check`]) and migrates
/// when it should. The migrator holds an advisory lock while it runs, so
/// servers starting at once apply each migration once.
async fn migrate(pool: &PgPool, run_migrations: bool) -> StorageResult<SchemaStatus> {
    let build = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let exists = |table: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(pool)
    };
    let applied = || {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(pool)
    };
    let found = if exists("_sqlx_migrations").await.map_err(e)? {
        applied().await.map_err(e)?
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
    let mut status = SchemaStatus {
        found,
        current: found,
        build,
        oldest_compatible,
    };
    if schema::check(found, oldest_compatible, build, run_migrations)? == Plan::Migrate {
        MIGRATOR.run(pool).await.map_err(StorageError::backend)?;
        status.current = applied().await.map_err(e)?;
        status.oldest_compatible =
            sqlx::query_scalar("SELECT oldest_compatible FROM marketplace_schema")
                .fetch_optional(pool)
                .await
                .map_err(e)?;
    }
    Ok(status)
}

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
    /// The schema version as connect found and left it.
    schema: SchemaStatus,
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
            // A ping before every checkout is one more round trip per
            // statement (a checkout makes 13 statements): a connection is
            // pinged only when it sat idle long enough for the server or the
            // network to have dropped it meanwhile.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await
            .map_err(e)?;
        let schema = migrate(&pool, options.run_migrations).await?;
        Ok(PostgresStorage {
            pool,
            server: server.into(),
            schema,
        })
    }

    /// The database's schema version against this build's migrations, as
    /// found on connect and as left by it.
    pub fn schema(&self) -> SchemaStatus {
        self.schema
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
