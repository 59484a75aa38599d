//! The schema version on connect, on SQLite and real PostgreSQL: a new
//! database is migrated to this build; an older schema is migrated, or refused
//! with the command to run when this connect may not migrate; a schema a newer
//! build migrated is served while it records that it still serves this build,
//! and refused, untouched, once it does not.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::pin::Pin;

use chrono::Utc;
use marketplace_core::fields::Email;
use marketplace_core::{AccountStore, Role, StorageResult, User, UserId};
use sqlx::{AssertSqlSafe, Connection};
use storage_sql::{PostgresStorage, SchemaStatus, SqlOptions, SqliteStorage};
use uuid::Uuid;

type Fut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One backend as these tests drive it: connect with options (returning the
/// schema status, after creating and reading back an account through the
/// store), and raw SQL on the same database.
struct Backend {
    connect: Box<dyn Fn(SqlOptions) -> Fut<StorageResult<SchemaStatus>>>,
    sql: Box<dyn Fn(String) -> Fut<()>>,
    /// A query answering one integer.
    count: Box<dyn Fn(String) -> Fut<i64>>,
    /// How the backend writes a bytes literal of one zero byte.
    zero_bytes: &'static str,
}

/// Creates an account through the store and reads it back: the store serves.
async fn serves<S: AccountStore>(storage: &S) -> StorageResult<()> {
    let id = UserId(Uuid::now_v7());
    let email = format!("{}@example.com", Uuid::new_v4().simple());
    let user = User {
        id,
        email: Email::parse(&email).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::Buyer,
        name: None,
        phone: None,
        store_name: None,
        seller_status: None,
        email_verified: false,
        active: true,
        created_at: marketplace_core::clock::storage_precision(Utc::now()),
    };
    storage.create_user(&user, None, &[]).await?;
    let back = storage.user_by_email(&email).await?.unwrap();
    assert_eq!(back.id, id);
    Ok(())
}

async fn lifecycle(b: Backend) {
    // A new database: every migration applied, and its record written.
    let fresh = (b.connect)(SqlOptions::default()).await.unwrap();
    let build = fresh.build;
    assert!(build > 1);
    assert_eq!(fresh.found, None);
    assert_eq!(fresh.current, Some(build));
    assert!(fresh.oldest_compatible.is_some_and(|o| o <= build));
    assert_eq!(fresh.pending_at_connect(), build);
    let again = (b.connect)(SqlOptions::default().run_migrations(false))
        .await
        .unwrap();
    assert_eq!((again.found, again.current), (Some(build), Some(build)));
    assert!(!again.is_newer_than_build());

    // An older schema (this build's last migration not applied): refused
    // without migrating, with what to run; migrated with.
    (b.sql)(format!(
        "DELETE FROM _sqlx_migrations WHERE version = {build}; DROP TABLE marketplace_schema"
    ))
    .await;
    let refused = (b.connect)(SqlOptions::default().run_migrations(false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&format!("at migration {}", build - 1)),
        "{refused}"
    );
    assert!(refused.contains("marketplace-server migrate"), "{refused}");
    let migrated = (b.connect)(SqlOptions::default()).await.unwrap();
    assert_eq!(migrated.found, Some(build - 1));
    assert_eq!(migrated.current, Some(build));
    assert_eq!(migrated.pending_at_connect(), 1);

    // A newer build migrated the database: an additive migration this build
    // does not carry. This build still serves it, and so does a server that
    // may migrate (nothing of this build's is pending).
    let newer = build + 100;
    (b.sql)(format!(
        "ALTER TABLE users ADD COLUMN nickname TEXT; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({newer}, 'nicknames', TRUE, {}, 0)",
        b.zero_bytes
    ))
    .await;
    for run in [false, true] {
        let status = (b.connect)(SqlOptions::default().run_migrations(run))
            .await
            .unwrap();
        assert_eq!(status.found, Some(newer));
        assert_eq!(status.current, Some(newer));
        assert!(status.is_newer_than_build());
    }

    // A newer migration this build cannot live with: refused, saying what to
    // deploy, and the database is left as it was.
    (b.sql)(format!(
        "UPDATE marketplace_schema SET oldest_compatible = {newer}"
    ))
    .await;
    let migrations = (b.count)("SELECT COUNT(*) FROM _sqlx_migrations".into()).await;
    for run in [false, true] {
        let refused = (b.connect)(SqlOptions::default().run_migrations(run))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&format!("Deploy a build of migration {newer}")),
            "{refused}"
        );
        assert!(refused.contains(&format!("up to {build}")), "{refused}");
    }
    assert_eq!(
        (b.count)("SELECT COUNT(*) FROM _sqlx_migrations".into()).await,
        migrations
    );
}

#[tokio::test]
async fn sqlite_schema_versions_on_connect() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let (u1, u2, u3) = (url.clone(), url.clone(), url);
    lifecycle(Backend {
        connect: Box::new(move |options| {
            let url = u1.clone();
            Box::pin(async move {
                let storage = SqliteStorage::connect(&url, options).await?;
                serves(&storage).await?;
                Ok(storage.schema())
            })
        }),
        sql: Box::new(move |sql| {
            let url = u2.clone();
            Box::pin(async move {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            })
        }),
        count: Box::new(move |sql| {
            let url = u3.clone();
            Box::pin(async move {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            })
        }),
        zero_bytes: "X'00'",
    })
    .await;
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn postgres_schema_versions_on_connect() {
    // A fresh schema of its own, emptied: the test migrates it from nothing.
    let Some(db) = common::postgres().await else {
        return;
    };
    let url = db.url.clone();
    {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let (u1, u2, u3) = (url.clone(), url.clone(), url);
    lifecycle(Backend {
        connect: Box::new(move |options| {
            let url = u1.clone();
            Box::pin(async move {
                let storage = PostgresStorage::connect(&url, options.max_connections(2)).await?;
                serves(&storage).await?;
                let status = storage.schema();
                storage.close().await;
                Ok(status)
            })
        }),
        sql: Box::new(move |sql| {
            let url = u2.clone();
            Box::pin(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            })
        }),
        count: Box::new(move |sql| {
            let url = u3.clone();
            Box::pin(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            })
        }),
        zero_bytes: "'\\x00'::bytea",
    })
    .await;
    drop(db);
}
