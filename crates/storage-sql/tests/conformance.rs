//! The conformance suite on both SQL dialects: always on SQLite (a temporary file
//! per scenario), and on PostgreSQL (a schema per scenario) when
//! `TEST_POSTGRES_URL` is set.

mod common;

mod sqlite {
    use super::common::{self, Guarded};

    async fn fresh() -> Option<Guarded<tempfile::TempDir>> {
        Some(common::sqlite().await)
    }

    marketplace_conformance::conformance_suite!(fresh);
}

mod postgres {
    use super::common::{self, DropSchema, Guarded};

    async fn fresh() -> Option<Guarded<DropSchema>> {
        common::postgres().await
    }

    marketplace_conformance::conformance_suite!(fresh);
}
