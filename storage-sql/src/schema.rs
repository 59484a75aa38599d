//! Where a database's schema stands against the migrations this build
//! carries, and whether this build may serve it.
//!
//! The migrations are numbered per backend (`migrations/postgres`,
//! `migrations/sqlite`); sqlx records each one applied in `_sqlx_migrations`.
//! During a rolling deploy, servers of two builds run on one database: the
//! newer one migrates, and an older one that restarts then finds migrations it
//! does not carry. Whether it can still serve is written down by the migrations
//! themselves, in the one-row table `marketplace_schema`:
//! `oldest_compatible` is the newest migration of the oldest build the schema
//! still serves.
//!
//! - A migration that only adds (a table, an index, a column with a default or
//!   that may be null) leaves `oldest_compatible` alone: older builds ignore
//!   what they do not know.
//! - A migration an older build cannot live with (it drops or renames what
//!   that build reads, or adds a column that build would have to write) sets
//!   `oldest_compatible` to its own number.
//!
//! On connect, [`check`] decides: an up-to-date schema serves; an older one is
//! migrated (with [`SqlOptions::run_migrations`](crate::SqlOptions)) or refused
//! with the command that migrates it; a newer one serves if it still serves
//! this build, and is refused with what to deploy otherwise.

use marketplace_core::{StorageError, StorageResult};

/// A database's schema version against this build's migrations, as found on
/// connect and as left by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaStatus {
    /// The newest migration applied when the storage connected; `None` for a
    /// database no migration had touched.
    pub found: Option<i64>,
    /// The newest migration applied once connected (after migrating, when
    /// this connect migrated).
    pub current: Option<i64>,
    /// The newest migration this build carries.
    pub build: i64,
    /// The oldest build (by its newest migration) the schema still serves, as
    /// the migrations recorded it; `None` before the migration that records it.
    pub oldest_compatible: Option<i64>,
}

impl SchemaStatus {
    /// Migrations this build carries that the database had not applied when
    /// the storage connected.
    pub fn pending_at_connect(&self) -> i64 {
        (self.build - self.found.unwrap_or(0)).max(0)
    }

    /// Whether the database's schema is newer than this build (a newer build
    /// migrated it).
    pub fn is_newer_than_build(&self) -> bool {
        self.current.is_some_and(|v| v > self.build)
    }
}

/// What a connect does with the schema it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing: the schema is this build's and this connect may not migrate,
    /// or it is a newer one that serves this build.
    Serve,
    /// Run the migrator, then serve: it applies what is pending and checks
    /// that the migrations applied are the ones this build carries.
    Migrate,
}

/// Decides what a connect does, or why this build must not serve the
/// database: `found` is the newest migration applied, `oldest_compatible` the
/// database's record of the oldest build it serves, `build` this build's newest
/// migration, `run_migrations` whether this connect may migrate.
pub(crate) fn check(
    found: Option<i64>,
    oldest_compatible: Option<i64>,
    build: i64,
    run_migrations: bool,
) -> StorageResult<Plan> {
    match found {
        Some(v) if v <= build && run_migrations => Ok(Plan::Migrate),
        Some(v) if v == build => Ok(Plan::Serve),
        Some(v) if v > build => match oldest_compatible {
            Some(oldest) if oldest <= build => {
                tracing::info!(
                    schema = v,
                    build,
                    oldest_compatible = oldest,
                    "the database's schema is newer than this build and still serves it"
                );
                Ok(Plan::Serve)
            }
            _ => Err(StorageError::backend(format!(
                "the database's schema is at migration {v}, which no longer serves a build \
                 older than migration {oldest}; this build carries migrations up to {build}. \
                 Deploy a build of migration {oldest} or newer (the one that migrated this \
                 database), or restore the database from before migration {oldest}",
                oldest = oldest_compatible.map_or_else(|| "?".to_owned(), |o| o.to_string())
            ))),
        },
        _ if run_migrations => Ok(Plan::Migrate),
        found => Err(StorageError::backend(format!(
            "the database's schema is {}, and this build needs migration {build}: run \
             `marketplace-server migrate` with this build (or start one server with \
             DATABASE_RUN_MIGRATIONS=on)",
            found.map_or_else(|| "empty".to_owned(), |v| format!("at migration {v}"))
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_build_s_own_schema_serves_and_an_older_one_is_migrated() {
        assert_eq!(check(Some(8), Some(8), 8, false).unwrap(), Plan::Serve);
        assert_eq!(check(Some(8), Some(8), 8, true).unwrap(), Plan::Migrate);
        assert_eq!(check(Some(5), None, 8, true).unwrap(), Plan::Migrate);
        assert_eq!(check(None, None, 8, true).unwrap(), Plan::Migrate);
    }

    #[test]
    fn without_migrating_an_older_schema_is_refused_with_the_command() {
        let e = check(Some(5), None, 8, false).unwrap_err().to_string();
        assert!(e.contains("at migration 5"), "{e}");
        assert!(e.contains("marketplace-server migrate"), "{e}");
        let e = check(None, None, 8, false).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_newer_schema_serves_the_builds_it_says_it_serves() {
        assert_eq!(check(Some(10), Some(8), 8, false).unwrap(), Plan::Serve);
        assert_eq!(check(Some(10), Some(7), 8, true).unwrap(), Plan::Serve);
        let e = check(Some(10), Some(9), 8, true).unwrap_err().to_string();
        assert!(e.contains("at migration 10"), "{e}");
        assert!(e.contains("up to 8"), "{e}");
        assert!(e.contains("Deploy a build of migration 9"), "{e}");
        // Newer, with no record of what it serves: refused.
        assert!(check(Some(10), None, 8, true).is_err());
    }
}
