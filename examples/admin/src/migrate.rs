//! `migrate`: brings the store's schema up to this build (SQL migrations,
//! MongoDB collections and indexes), even where servers run with
//! `DATABASE_RUN_MIGRATIONS=off`, checks that it answers, and says what it did.

use anyhow::{Context, Result};
use marketplace_core::Storage as _;
use marketplace_host::{Settings, open_storage, redact_url};
use serde::Serialize;

use crate::output::Output;

/// What `migrate` reports.
#[derive(Serialize)]
struct Migrated {
    /// `sqlite`, `postgres`, `mongodb` or `memory`.
    backend: &'static str,
    /// `DATABASE_URL`, without its password.
    database: String,
    /// `current`: the schema serves this version (every migration of it is
    /// applied, or a newer build's schema still serves it).
    schema: &'static str,
    /// What was found and done, in words.
    detail: String,
}

/// The backend a `DATABASE_URL` names, by its scheme.
fn backend(url: &str) -> &'static str {
    match url.split(':').next().unwrap_or_default() {
        "sqlite" => "sqlite",
        "postgres" | "postgresql" => "postgres",
        "mongodb" | "mongodb+srv" => "mongodb",
        "memory" => "memory",
        _ => "unknown",
    }
}

/// `migrate`
pub async fn migrate(settings: &Settings, out: Output) -> Result<()> {
    let url = &settings.database_url;
    let detail = marketplace_host::migrate(url, &settings.sql)
        .await
        .context("cannot migrate the store")?;
    let (storage, _) = open_storage(url, &settings.sql.clone().run_migrations(true))
        .await
        .context("cannot open the store")?;
    storage
        .ping()
        .await
        .with_context(|| format!("the store at {} does not answer", redact_url(url)))?;
    let report = Migrated {
        backend: backend(url),
        database: redact_url(url),
        schema: "current",
        detail,
    };
    out.show(&report, |r| {
        let note = if r.backend == "memory" {
            " (a memory store keeps nothing: there is nothing to migrate)"
        } else {
            ""
        };
        format!(
            "{} store at {}: the schema is current{note} ({})",
            r.backend, r.database, r.detail
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_named_by_scheme() {
        assert_eq!(backend("sqlite://m.db"), "sqlite");
        assert_eq!(backend("postgresql://u@h/db"), "postgres");
        assert_eq!(backend("mongodb+srv://h/db"), "mongodb");
        assert_eq!(backend("memory:"), "memory");
    }
}
