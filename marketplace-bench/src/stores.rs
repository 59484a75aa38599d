//! The stores under test: a fresh PostgreSQL schema or MongoDB database per run,
//! and the statistics an operator gathers after a bulk load.

use anyhow::{Context, Result};
use sqlx::Connection;

use crate::Backend;

/// A fresh PostgreSQL schema, dropped at the end.
pub struct Schema {
    server: String,
    /// The schema's name.
    pub name: String,
    /// The server's URL with the schema as its search path.
    pub url: String,
}

impl Schema {
    /// Creates the schema (and pg_trgm in `public`, once).
    pub async fn create(server: &str) -> Result<Schema> {
        let name = format!("mkt_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(server)
            .await
            .context("cannot reach PostgreSQL")?;
        // The catalog's trigram indexes need pg_trgm: installed once in `public`, it
        // never belongs to (and never goes away with) the benchmark's schema.
        let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            .execute(&mut conn)
            .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&mut conn)
            .await?;
        let sep = if server.contains('?') { '&' } else { '?' };
        Ok(Schema {
            url: format!("{server}{sep}options=-c%20search_path%3D{name}"),
            server: server.to_owned(),
            name,
        })
    }

    /// Runs `sql` in the schema.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) -> Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// `url` with its database (the path) set to `name`, keeping the hosts and the
/// options.
pub fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("mongodb", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let hosts = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{hosts}/{name}?{q}"),
        None => format!("{scheme}://{hosts}/{name}"),
    }
}

/// Planner statistics, as an operator gathers them after a bulk load.
pub async fn analyze(backend: Backend, schema: Option<&Schema>, url: &str) -> Result<()> {
    match (backend, schema) {
        (Backend::Postgres, Some(s)) => s.execute("ANALYZE").await?,
        (Backend::Sqlite, _) => {
            let mut conn = sqlx::SqliteConnection::connect(url).await?;
            sqlx::raw_sql("ANALYZE").execute(&mut conn).await?;
            conn.close().await?;
        }
        _ => {}
    }
    Ok(())
}
