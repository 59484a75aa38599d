//! The outside servers some tests need, and how a test without one skips.
//!
//! | server | variable | cfg set by `build.rs` without it |
//! | --- | --- | --- |
//! | PostgreSQL (a database the tests may create schemas in) | `TEST_POSTGRES_URL` | `no_postgres` |
//! | MongoDB replica set (the tests create databases on it) | `TEST_MONGODB_URL` | `no_mongodb` |
//! | aiosmtpd, run by [`crate::smtp`] | `MARKETPLACE_TEST_PYTHON` (optional) | `no_smtp` |
//! | an S3-compatible server (moto in server mode; the tests create buckets on it) | `TEST_S3_URL` | `no_s3` |
//!
//! Skipping happens at two moments. When the tests are compiled, `build.rs`
//! sets the cfg of each missing server (unless `CI` is set), and every test that
//! needs it carries `#[cfg_attr(no_postgres, ignore = "...")]`: the runner
//! reports it `ignored` with its reason and counts it. When a test compiled with
//! the server runs without it (the variable unset since), [`postgres_schema`],
//! [`mongodb_database`] and [`crate::smtp::SmtpServer::start`] call [`skipped`]:
//! a notice on the real stderr, or a panic under CI.

use std::io::Write;

/// Whether the tests run under CI (`CI` set, as `.ci/run` sets it): there, a
/// missing server fails the test that needs it instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Skips `test` because `why` (a server is missing): says so on the process's
/// stderr, which the test harness does not capture (it captures `eprintln!`,
/// and shows it only for failing tests), so a plain `cargo test` shows it.
/// Under CI it panics instead: CI never passes by skipping.
pub fn skipped(test: &str, why: &str) {
    assert!(
        !under_ci(),
        "{test}: {why}. CI is set, so a missing server fails the test instead of skipping it"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: {why} (the test reports `ok` but checked nothing) ***\n"
    );
}

/// A PostgreSQL schema of its own for one test, dropped when this is dropped.
pub struct PgSchema {
    /// A URL that points every connection at the schema.
    pub url: String,
    server: String,
    schema: String,
}

/// The variable naming the PostgreSQL server tests may create schemas on.
pub const POSTGRES_ENV: &str = "TEST_POSTGRES_URL";

/// A fresh schema on the server `TEST_POSTGRES_URL` names; `None` (after
/// [`skipped`] said so) when it is unset.
pub async fn postgres_schema(test: &str) -> Option<PgSchema> {
    use sqlx::Connection;
    let Some(server) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) else {
        skipped(
            test,
            &format!(
                "it needs {POSTGRES_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test), unset when it ran"
            ),
        );
        return None;
    };
    let schema = format!("mkt_e2e_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
    // The catalog's trigram indexes need pg_trgm: installed once in `public`, it
    // never belongs to (and never goes away with) a test's schema.
    let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .execute(&mut conn)
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    let sep = if server.contains('?') { '&' } else { '?' };
    Some(PgSchema {
        url: format!("{server}{sep}options=-c%20search_path%3D{schema}"),
        server,
        schema,
    })
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (server, schema) = (self.server.clone(), self.schema.clone());
        // Dropped inside a test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The variable naming the MongoDB replica set tests may create databases on.
pub const MONGODB_ENV: &str = "TEST_MONGODB_URL";

/// A URL naming a fresh database on the replica set `TEST_MONGODB_URL` names;
/// `None` (after [`skipped`] said so) when it is unset. The server the CI
/// starts is thrown away after the run, so the database is not dropped.
pub fn mongodb_database(test: &str) -> Option<String> {
    let Some(server) = std::env::var(MONGODB_ENV).ok().filter(|u| !u.is_empty()) else {
        skipped(
            test,
            &format!(
                "it needs {MONGODB_ENV} (e.g. mongodb://127.0.0.1:27017/?directConnection=true), unset when it ran"
            ),
        );
        return None;
    };
    let db = format!("mkt_e2e_{}", uuid::Uuid::new_v4().simple());
    // mongodb://host[:port][/][?options] -> mongodb://host[:port]/db[?options]
    let (base, query) = server
        .split_once('?')
        .map_or((server.as_str(), None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let hosts = base[scheme_end..].split('/').next().unwrap_or_default();
    let mut url = format!("{}{hosts}/{db}", &base[..scheme_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    Some(url)
}

/// The variable naming an S3-compatible server the tests may create buckets on
/// (e.g. `moto_server` on loopback: `http://127.0.0.1:5000`).
pub const S3_ENV: &str = "TEST_S3_URL";

/// A fresh bucket on the S3-compatible server `TEST_S3_URL` names, as the
/// variables of the `marketplace-server` binary that keep images there
/// (`MARKETPLACE_MEDIA_STORE`, `AWS_*`); `None` (after [`skipped`] said so)
/// when the variable is unset. The server the CI starts is thrown away after
/// the run, so the bucket is not removed.
pub async fn s3_bucket(test: &str) -> Option<Vec<(&'static str, String)>> {
    let Some(endpoint) = std::env::var(S3_ENV).ok().filter(|u| !u.is_empty()) else {
        skipped(
            test,
            &format!(
                "it needs {S3_ENV} (e.g. http://127.0.0.1:5000, moto_server), unset when it ran"
            ),
        );
        return None;
    };
    let endpoint = endpoint.trim_end_matches('/').to_owned();
    let bucket = format!("mkt-e2e-{}", uuid::Uuid::new_v4().simple());
    // moto creates a bucket on an unsigned PUT; a real store would need a
    // signed one (or a bucket made beforehand).
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{S3_ENV}={endpoint}: {e}"));
    assert!(
        r.status().is_success(),
        "creating bucket {bucket}: {}",
        r.status()
    );
    Some(vec![
        ("MARKETPLACE_MEDIA_STORE", format!("s3://{bucket}/media")),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ])
}
