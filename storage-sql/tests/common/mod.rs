//! Test databases for the SQL backend: a temporary SQLite file per test, and an
//! isolated PostgreSQL schema per test when `TEST_POSTGRES_URL` is set. Each is
//! removed when its guard is dropped, after the store.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration as StdDuration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use storage_sql::{PostgresStorage, SqlOptions, SqliteStorage};
use uuid::Uuid;

/// The variable naming the PostgreSQL server the tests may use.
pub const POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

/// Schemas this suite creates start with this prefix, then the creation time.
const SCHEMA_PREFIX: &str = "mkt_test_";

/// A fresh store, what must outlive it (its temporary directory, its schema)
/// and the URL it was opened with, for raw SQL and second stores in backend tests.
pub struct Fresh<S, G> {
    /// The store under test; dropped before the guard.
    pub storage: S,
    /// Cleans up after the store.
    pub guard: G,
    /// The URL the store was opened with.
    pub url: String,
}

impl<S, G> Fresh<S, G> {
    /// The store and its guard, for the conformance suite's factory.
    pub fn into_parts(self) -> (S, G) {
        (self.storage, self.guard)
    }
}

/// A fresh SQLite file in its own temporary directory.
pub async fn sqlite() -> Fresh<SqliteStorage, tempfile::TempDir> {
    sqlite_with(SqlOptions::default()).await
}

/// [`sqlite`] opened with `options`.
pub async fn sqlite_with(options: SqlOptions) -> Fresh<SqliteStorage, tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("marketplace-sql-")
        .tempdir()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("marketplace.db").display());
    let storage = SqliteStorage::connect(&url, options).await.unwrap();
    Fresh {
        storage,
        guard: dir,
        url,
    }
}

/// The PostgreSQL server URL, or `None` after saying loudly why the tests skip.
///
/// Without `TEST_POSTGRES_URL` when the tests were compiled, `build.rs` sets the
/// `no_postgres` cfg and the tests that need it are reported `ignored`; this
/// handles a test compiled with the variable and run without it: a notice on
/// the process's stderr, which the test harness does not capture (it captures
/// `eprintln!`), or, under CI (`CI` set), a panic: CI never passes by skipping.
pub fn postgres_url() -> Option<String> {
    use std::io::Write;
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL tests need {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test); \
                 CI is set, so a missing server fails the test instead of skipping it"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: PostgreSQL tests need {POSTGRES_ENV} (e.g. \
                 postgres://postgres@127.0.0.1:5432/test), unset when they ran \
                 (the test reports `ok` but checked nothing) ***\n"
            );
            None
        }
    }
}

/// Drops its schema when dropped.
pub struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime: do the async work on a thread of
        // its own and wait for it.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = worker.join();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(StdDuration::ZERO)
        .as_secs()
}

/// Drops schemas an interrupted earlier run left behind (older than an hour, so a
/// run going on beside this one keeps its own).
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)")
                .bind(SCHEMA_PREFIX)
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
        let cutoff = now_secs().saturating_sub(3600);
        for (name,) in names {
            let created = name
                .strip_prefix(SCHEMA_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|t| t.parse::<u64>().ok());
            if created.is_some_and(|t| t < cutoff) {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut *conn)
                .await;
            }
        }
    })
    .await;
}

/// A fresh schema on the PostgreSQL server, or `None` when none is configured.
pub async fn postgres() -> Option<Fresh<PostgresStorage, DropSchema>> {
    postgres_with(SqlOptions::default().max_connections(8)).await
}

/// [`postgres`] opened with `options`.
pub async fn postgres_with(options: SqlOptions) -> Option<Fresh<PostgresStorage, DropSchema>> {
    let url = postgres_url()?;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    drop_stale_schemas(&mut admin).await;
    // The catalog's trigram indexes need pg_trgm: installed once in `public`, it
    // never belongs to (and never goes away with) a test's schema.
    let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut admin)
        .await;
    let schema = format!("{SCHEMA_PREFIX}{}_{}", now_secs(), Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    let guard = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let storage = PostgresStorage::connect(&scoped, options).await.unwrap();
    Some(Fresh {
        storage,
        guard,
        url: scoped,
    })
}
