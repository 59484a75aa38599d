//! The store a `DATABASE_URL` names: the one place that knows every backend's
//! scheme.

use std::path::PathBuf;
use std::sync::Arc;

use marketplace_core::Storage;
use storage_sql::{PostgresStorage, SqlOptions, SqliteStorage};

use crate::error::{BoxError, Error, Result};

/// Opens the store `url` names: `memory:`, `sqlite:<file>`, `postgres://...`
/// (or `postgresql://`), `mongodb://...` (or `mongodb+srv://`). Returns it with
/// the file the development JWT secret is kept in, when the store has a home on
/// disk (beside a SQLite file: `marketplace.db.jwt-secret`).
pub async fn open_storage(
    url: &str,
    sql: &SqlOptions,
) -> Result<(Arc<dyn Storage>, Option<PathBuf>)> {
    let failed = |e: BoxError| Error::Store {
        url: redact_url(url),
        source: e,
    };
    if url.starts_with("memory:") {
        tracing::warn!(
            "DATABASE_URL=memory: data lives in this process only and is lost when it stops"
        );
        return Ok((Arc::new(storage_memory::MemoryStorage::new()), None));
    }
    if url.starts_with("sqlite:") {
        let store = SqliteStorage::connect(url, sql.clone())
            .await
            .map_err(|e| failed(e.into()))?;
        // The development secret lives beside the database file it protects.
        let secret = sqlite_file(url).map(|db| {
            let mut name = db.file_name().unwrap_or_default().to_os_string();
            name.push(".jwt-secret");
            db.with_file_name(name)
        });
        return Ok((Arc::new(store), secret));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStorage::connect(url, sql.clone())
            .await
            .map_err(|e| failed(e.into()))?;
        return Ok((Arc::new(store), None));
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        let options =
            storage_mongo::MongoOptions::default().with_ensure_indexes(sql.run_migrations);
        let store = storage_mongo::MongoStorage::connect(url, options)
            .await
            .map_err(|e| failed(e.into()))?;
        return Ok((Arc::new(store), None));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(Error::UnsupportedStore(scheme.to_owned()))
}

/// Brings the schema of the store `url` names up to this build (whatever
/// `sql.run_migrations` says) and describes what it found and did, for the
/// `migrate` command of the hosts: the migrations of a SQL database, the
/// indexes of a MongoDB database. Fails like [`open_storage`], and when the
/// schema is newer than this build and no longer serves it.
pub async fn migrate(url: &str, sql: &SqlOptions) -> Result<String> {
    let failed = |e: BoxError| Error::Store {
        url: redact_url(url),
        source: e,
    };
    let sql = sql.clone().run_migrations(true);
    let report = |s: storage_sql::SchemaStatus| {
        let found = s
            .found
            .map_or_else(|| "empty".to_owned(), |v| format!("at migration {v}"));
        match s.current {
            Some(v) if s.is_newer_than_build() => format!(
                "the schema is at migration {v}, newer than this build's {}; it still serves this build (down to migration {})",
                s.build,
                s.oldest_compatible.unwrap_or_default()
            ),
            Some(v) if Some(v) == s.found => format!("the schema is at migration {v}: up to date"),
            current => format!(
                "the schema was {found}, and is now at migration {}: {} applied",
                current.unwrap_or_default(),
                s.pending_at_connect()
            ),
        }
    };
    if url.starts_with("sqlite:") {
        let store = SqliteStorage::connect(url, sql)
            .await
            .map_err(|e| failed(e.into()))?;
        return Ok(report(store.schema()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStorage::connect(url, sql)
            .await
            .map_err(|e| failed(e.into()))?;
        let line = report(store.schema());
        store.close().await;
        return Ok(line);
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        storage_mongo::MongoStorage::connect(url, storage_mongo::MongoOptions::default())
            .await
            .map_err(|e| failed(e.into()))?;
        return Ok("the collections' indexes are in place".to_owned());
    }
    if url.starts_with("memory:") {
        return Ok("memory: nothing to migrate (the data lives in one process)".to_owned());
    }
    let scheme = url.split(':').next().unwrap_or_default();
    Err(Error::UnsupportedStore(scheme.to_owned()))
}

/// The file of a SQLite URL (`sqlite://marketplace.db`, `sqlite:data/shop.db?mode=rwc`);
/// `None` for an in-memory SQLite database or another scheme.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Hides the password of a URL (`postgres://user:secret@host` -> `postgres://user:***@host`),
/// for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite://marketplace.db"),
            Some(PathBuf::from("marketplace.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:data/shop.db?mode=rwc"),
            Some(PathBuf::from("data/shop.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("sqlite://marketplace.db"),
            "sqlite://marketplace.db"
        );
    }

    #[tokio::test]
    async fn migrate_brings_a_database_up_to_this_build_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let first = migrate(&url, &SqlOptions::default().run_migrations(false))
            .await
            .unwrap();
        assert!(
            first.starts_with("the schema was empty, and is now at migration "),
            "{first}"
        );
        let second = migrate(&url, &SqlOptions::default()).await.unwrap();
        assert!(second.ends_with(": up to date"), "{second}");
        // A server that may not migrate now opens it.
        let opened = open_storage(&url, &SqlOptions::default().run_migrations(false)).await;
        assert!(opened.is_ok());
        let memory = migrate("memory:", &SqlOptions::default()).await.unwrap();
        assert!(memory.contains("nothing to migrate"));
        assert!(matches!(
            migrate("oracle://db", &SqlOptions::default()).await,
            Err(Error::UnsupportedStore(_))
        ));
    }

    #[tokio::test]
    async fn stores_open_by_scheme() {
        let (_, secret) = open_storage("memory:", &SqlOptions::default())
            .await
            .unwrap();
        assert_eq!(secret, None);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shop.db").display());
        let (store, secret) = open_storage(&url, &SqlOptions::default()).await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(secret, Some(dir.path().join("shop.db.jwt-secret")));
        match open_storage("redis://cache", &SqlOptions::default()).await {
            Err(Error::UnsupportedStore(scheme)) => assert_eq!(scheme, "redis"),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
