//! The conformance suite on both SQL dialects: always on SQLite (a temporary file
//! per scenario), and on PostgreSQL (a schema per scenario) when
//! `TEST_POSTGRES_URL` is set (without it, the runner reports the PostgreSQL
//! scenarios ignored). Each scenario gets the dialect's store itself.

mod common;

mod sqlite {
    use storage_sql::SqliteStorage;

    use super::common;

    async fn fresh() -> Option<(SqliteStorage, tempfile::TempDir)> {
        Some(common::sqlite().await.into_parts())
    }

    marketplace_conformance::conformance_suite!(fresh);
}

mod postgres {
    use storage_sql::PostgresStorage;

    use super::common::{self, DropSchema};

    async fn fresh() -> Option<(PostgresStorage, DropSchema)> {
        Some(common::postgres().await?.into_parts())
    }

    marketplace_conformance::conformance_suite!(
        fresh,
        #[cfg_attr(
            no_postgres,
            ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
        )]
    );
}
