//! The SQLite dialect.
//!
//! SQLite allows one writer at a time. Every multi-statement write runs in a
//! `BEGIN IMMEDIATE` transaction, which takes the write lock before reading, so
//! the transaction's reads and conditional writes see a database nobody else can
//! change until it commits, and two writers never deadlock upgrading a read lock.
//! Writes go through one writer connection (queueing in the pool instead of
//! polling the lock); reads use a pool of read-only connections, which WAL mode
//! lets run beside the writer. Another process holding the lock is waited for
//! (`busy_timeout`), the `BEGIN` is retried a few times, and a lock still busy
//! after that is reported as `Transient`.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::cart::{Cart, CartLine, WishlistEntry};
use marketplace_core::catalog::{Category, Product, ProductQuery, ProductSort};
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use marketplace_core::error::ShortItem;
use marketplace_core::order::{Order, OrderQuery, OrderTransition};
use marketplace_core::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery, OutboxStatus};
use marketplace_core::storage::{LoginFailures, RotateOutcome, TokenEffect};
use marketplace_core::{
    AddressId, CategoryId, CheckoutId, MessageId, OrderId, ProductId, SellerStatus, Storage,
    StorageError, StorageResult, User, UserId,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use crate::SqlOptions;
use crate::codec::{self, Columns, fold, millis, to_i64, to_json};
use crate::error::{self, Dialect};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

fn e(err: sqlx::Error) -> StorageError {
    error::map(Dialect::Sqlite, err)
}

const PRODUCT_COLUMNS: &str = "p.id, p.seller_id, p.title, p.description, p.price_amount, \
     p.currency, p.discount, p.stock, p.images, p.category_id, p.active, p.archived, \
     p.blocked, p.version, p.created_at, p.updated_at";

const OUTBOX_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, status, \
     attempts, next_attempt_at, last_error, created_at, delivered_at, claimed_by, claimed_until";

/// How often a `BEGIN IMMEDIATE` that found the database busy (past the busy
/// timeout) is retried before the call reports `Transient`.
const BEGIN_ATTEMPTS: u32 = 4;

/// How often the first connection to a file found locked is retried (about six
/// seconds in all): another process may be creating or migrating it.
const OPEN_ATTEMPTS: u32 = 8;

/// The SQLite store: one writer connection and a pool of readers (the same single
/// connection for an in-memory database).
#[derive(Clone)]
pub(crate) struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str, options: &SqlOptions) -> StorageResult<SqliteStore> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(StorageError::backend)?
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory {
            // Every connection would see its own database: keep exactly one, forever.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(base)
                .await
                .map_err(e)?;
            if options.run_migrations {
                migrate(&pool).await?;
            }
            return Ok(SqliteStore {
                writer: pool.clone(),
                reader: pool,
            });
        }
        // Turning a new file to WAL takes an exclusive lock that does not wait on
        // the busy timeout: processes opening a new file at once can find it
        // locked, so the first connection is retried a bounded number of times.
        let writer_options = base
            .clone()
            .create_if_missing(options.create_if_missing)
            .journal_mode(SqliteJournalMode::Wal);
        let mut attempt = 0;
        let writer = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(writer_options.clone())
                .await;
            match opened {
                Ok(pool) => break pool,
                Err(err) if error::is_busy(&err) && attempt + 1 < OPEN_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(StdDuration::from_millis(25 << attempt)).await;
                }
                Err(err) => return Err(e(err)),
            }
        };
        if options.run_migrations {
            migrate(&writer).await?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await
            .map_err(e)?;
        Ok(SqliteStore { writer, reader })
    }

    pub(crate) async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Starts a write transaction holding the database's write lock.
    async fn begin_write(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        let mut attempt = 0;
        loop {
            match self.writer.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => return Ok(tx),
                Err(err) if error::is_busy(&err) && attempt + 1 < BEGIN_ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(StdDuration::from_millis(10 << attempt)).await;
                }
                Err(err) => return Err(e(err)),
            }
        }
    }
}

/// Applies pending migrations. SQLite has no advisory lock for the migrator, so
/// two processes opening a new file at once can race: the loser's attempt fails
/// on the tables the winner created, and a second look finds them applied.
async fn migrate(pool: &SqlitePool) -> StorageResult<()> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt + 1 < BEGIN_ATTEMPTS => {
                attempt += 1;
                tracing::debug!(attempt, error = %err, "SQLite migration failed, retrying");
                tokio::time::sleep(StdDuration::from_millis(25 << attempt)).await;
            }
            Err(err) => return Err(StorageError::backend(err)),
        }
    }
}

async fn insert_outbox(
    conn: &mut SqliteConnection,
    messages: &[OutboxMessage],
) -> StorageResult<()> {
    // Few rows each time; SQLite statements cost no round trip.
    for m in messages {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outbox ({OUTBOX_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        )))
        .bind(m.id.0)
        .bind(&m.kind)
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.text_body)
        .bind(&m.html_body)
        .bind(m.status.as_str())
        .bind(i64::from(m.attempts))
        .bind(millis(m.next_attempt_at))
        .bind(&m.last_error)
        .bind(millis(m.created_at))
        .bind(m.delivered_at.map(millis))
        .bind(m.claimed_by)
        .bind(m.claimed_until.map(millis))
        .execute(&mut *conn)
        .await
        .map_err(e)?;
    }
    Ok(())
}

async fn revoke_user_tokens(conn: &mut SqliteConnection, user: UserId) -> StorageResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET state = 'revoked' WHERE user_id = ?1 AND state <> 'revoked'",
    )
    .bind(user.0)
    .execute(conn)
    .await
    .map_err(e)?;
    Ok(())
}

async fn upsert_token(conn: &mut SqliteConnection, t: &OneTimeToken) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO one_time_tokens (hash, user_id, purpose, expires_at, created_at, used) \
         VALUES (?1, ?2, ?3, ?4, ?5, 0) \
         ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
         purpose = excluded.purpose, expires_at = excluded.expires_at, \
         created_at = excluded.created_at, used = 0",
    )
    .bind(&t.hash)
    .bind(t.user_id.0)
    .bind(t.purpose.as_str())
    .bind(millis(t.expires_at))
    .bind(millis(t.created_at))
    .execute(conn)
    .await
    .map_err(e)?;
    Ok(())
}

async fn upsert_refresh(
    conn: &mut SqliteConnection,
    hash: &str,
    user: UserId,
    family: Uuid,
    expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, user_id, family, state, expires_at, created_at) \
         VALUES (?1, ?2, ?3, 'live', ?4, ?5) \
         ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
         family = excluded.family, state = 'live', expires_at = excluded.expires_at, \
         created_at = excluded.created_at",
    )
    .bind(hash)
    .bind(user.0)
    .bind(family)
    .bind(millis(expires_at))
    .bind(millis(created_at))
    .execute(conn)
    .await
    .map_err(e)?;
    Ok(())
}

#[async_trait]
impl Storage for SqliteStore {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(e)?;
        Ok(())
    }

    // ----- users -----------------------------------------------------------------

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, name, phone, store_name, \
             seller_status, email_verified, active, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(user.id.0)
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.name)
        .bind(&user.phone)
        .bind(&user.store_name)
        .bind(user.seller_status.map(|s| s.as_str()))
        .bind(user.email_verified)
        .bind(user.active)
        .bind(millis(user.created_at))
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if let Some(t) = token {
            upsert_token(&mut tx, t).await?;
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(e)
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::user)
            .transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM users WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, codec::user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE lower(email) = lower(?1)")
            .bind(email)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::user)
            .transpose()
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        sqlx::query("UPDATE users SET name = ?2, phone = ?3 WHERE id = ?1 RETURNING *")
            .bind(id.0)
            .bind(name)
            .bind(phone)
            .fetch_optional(&self.writer)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::user)
            .transpose()
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE users SET seller_status = ?2 WHERE id = ?1 AND seller_status IS NOT NULL",
        )
        .bind(id.0)
        .bind(status.as_str())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(e)
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET active = ?2 WHERE id = ?1")
            .bind(id.0)
            .bind(active)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        if !active {
            revoke_user_tokens(&mut tx, id).await?;
        }
        tx.commit().await.map_err(e)
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT * FROM users WHERE seller_status IS NOT NULL \
             AND (?1 IS NULL OR seller_status = ?1) \
             AND (?2 IS NULL OR id > ?2) \
             ORDER BY id LIMIT ?3",
        )
        .bind(status.map(|s| s.as_str()))
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(e)?;
        codec::all(&rows, codec::user)
    }

    // ----- single-use tokens -------------------------------------------------------

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        upsert_token(&mut tx, token).await?;
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(e)
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE one_time_tokens SET used = 1 \
             WHERE hash = ?1 AND purpose = ?2 AND used = 0 AND expires_at > ?3 \
             RETURNING user_id",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id = UserId(row.uuid("user_id")?);
        match effect {
            TokenEffect::VerifyEmail => {
                sqlx::query("UPDATE users SET email_verified = 1 WHERE id = ?1")
                    .bind(user_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
            }
            TokenEffect::ResetPassword { password_hash } => {
                sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
                    .bind(user_id.0)
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                revoke_user_tokens(&mut tx, user_id).await?;
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(Some(user_id))
    }

    // ----- refresh tokens ------------------------------------------------------------

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        let mut conn = self.writer.acquire().await.map_err(e)?;
        upsert_refresh(
            &mut conn,
            &token.hash,
            token.user_id,
            token.family.0,
            token.expires_at,
            token.created_at,
        )
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT user_id, family, state, expires_at FROM refresh_tokens WHERE hash = ?1",
        )
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Invalid);
        };
        let user_id = UserId(row.uuid("user_id")?);
        let family = row.uuid("family")?;
        let state = row.text("state")?;
        let expires_at = row.time("expires_at")?;
        let outcome = match state.as_str() {
            "live" if expires_at > now => {
                sqlx::query("UPDATE refresh_tokens SET state = 'spent' WHERE hash = ?1")
                    .bind(presented)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                upsert_refresh(&mut tx, next_hash, user_id, family, next_expires_at, now).await?;
                RotateOutcome::Rotated { user_id }
            }
            "live" => return Ok(RotateOutcome::Invalid),
            _ => {
                sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family = ?1")
                    .bind(family)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                RotateOutcome::Reused { user_id }
            }
        };
        tx.commit().await.map_err(e)?;
        Ok(outcome)
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT family FROM refresh_tokens WHERE hash = ?1")
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
        let Some(row) = row else {
            return Ok(false);
        };
        sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family = ?1")
            .bind(row.uuid("family")?)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(true)
    }

    // ----- login throttling ------------------------------------------------------------

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        let row = sqlx::query(
            "INSERT INTO login_failures AS f (key, count, window_started) VALUES (?1, 1, ?2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN f.window_started <= ?3 THEN 1 ELSE f.count + 1 END, \
               window_started = CASE WHEN f.window_started <= ?3 THEN ?2 ELSE f.window_started END \
             RETURNING count, window_started",
        )
        .bind(key)
        .bind(millis(now))
        .bind(millis(now - window))
        .fetch_one(&self.writer)
        .await
        .map_err(e)?;
        Ok(LoginFailures {
            count: row.count("count")?,
            window_started: row.time("window_started")?,
        })
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        let row = sqlx::query(
            "SELECT count, window_started FROM login_failures \
             WHERE key = ?1 AND window_started > ?2",
        )
        .bind(key)
        .bind(millis(now - window))
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        row.map(|r| {
            Ok(LoginFailures {
                count: r.count("count")?,
                window_started: r.time("window_started")?,
            })
        })
        .transpose()
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?1")
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(())
    }

    // ----- addresses -----------------------------------------------------------------

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        let rows = sqlx::query("SELECT * FROM addresses WHERE user_id = ?1 ORDER BY seq")
            .bind(user.0)
            .fetch_all(&self.reader)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::address)
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        if address.is_default {
            sqlx::query(
                "UPDATE addresses SET is_default = 0 \
                 WHERE user_id = ?1 AND is_default = 1 AND id <> ?2",
            )
            .bind(address.user_id.0)
            .bind(address.id.0)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        }
        sqlx::query(
            "INSERT INTO addresses (id, user_id, name, line1, line2, city, region, \
             postal_code, country, phone, is_default) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, line1 = excluded.line1, \
             line2 = excluded.line2, city = excluded.city, region = excluded.region, \
             postal_code = excluded.postal_code, country = excluded.country, \
             phone = excluded.phone, is_default = excluded.is_default \
             WHERE addresses.user_id = excluded.user_id",
        )
        .bind(address.id.0)
        .bind(address.user_id.0)
        .bind(&address.name)
        .bind(&address.line1)
        .bind(&address.line2)
        .bind(&address.city)
        .bind(&address.region)
        .bind(&address.postal_code)
        .bind(&address.country)
        .bind(&address.phone)
        .bind(address.is_default)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        tx.commit().await.map_err(e)
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        let done = sqlx::query("DELETE FROM addresses WHERE id = ?1 AND user_id = ?2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    // ----- categories -------------------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        sqlx::query("INSERT INTO categories (id, name, name_folded) VALUES (?1, ?2, ?3)")
            .bind(category.id.0)
            .bind(&category.name)
            .bind(fold(&category.name))
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        let rows = sqlx::query("SELECT id, name FROM categories ORDER BY name, id")
            .fetch_all(&self.reader)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::category)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        sqlx::query("SELECT id, name FROM categories WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::category)
            .transpose()
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE categories SET name = ?2, name_folded = ?3 WHERE id = ?1")
            .bind(id.0)
            .bind(name)
            .bind(fold(name))
            .execute(&self.writer)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        match sqlx::query("DELETE FROM categories WHERE id = ?1")
            .bind(id.0)
            .execute(&self.writer)
            .await
        {
            Ok(done) => Ok(done.rows_affected() > 0),
            Err(err) if error::is_foreign_key_violation(&err) => {
                Err(StorageError::Precondition("category in use".into()))
            }
            Err(err) => Err(e(err)),
        }
    }

    // ----- products ------------------------------------------------------------------------

    async fn insert_product(&self, p: &Product) -> StorageResult<()> {
        let result = sqlx::query(
            "INSERT INTO products (id, seller_id, title, description, title_folded, \
             description_folded, price_amount, currency, discount, stock, images, category_id, \
             active, archived, blocked, version, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )
        .bind(p.id.0)
        .bind(p.seller_id.0)
        .bind(&p.title)
        .bind(&p.description)
        .bind(fold(&p.title))
        .bind(fold(&p.description))
        .bind(p.price.amount)
        .bind(p.price.currency.as_str())
        .bind(p.discount.as_ref().map(to_json).transpose()?)
        .bind(i64::from(p.stock))
        .bind(to_json(&p.images)?)
        .bind(p.category_id.map(|c| c.0))
        .bind(p.active)
        .bind(p.archived)
        .bind(p.blocked)
        .bind(to_i64(p.version)?)
        .bind(millis(p.created_at))
        .bind(millis(p.updated_at))
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if error::is_foreign_key_violation(&err) => {
                Err(StorageError::Precondition("unknown category".into()))
            }
            Err(err) => Err(e(err)),
        }
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?
        .as_ref()
        .map(codec::product)
        .transpose()
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id IN ("
        ));
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, codec::product)
    }

    async fn update_product(&self, p: &Product, expected_version: u64) -> StorageResult<()> {
        let result = sqlx::query(
            "UPDATE products SET seller_id = ?2, title = ?3, description = ?4, \
             title_folded = ?5, description_folded = ?6, price_amount = ?7, currency = ?8, \
             discount = ?9, stock = ?10, images = ?11, category_id = ?12, active = ?13, \
             archived = ?14, blocked = ?15, version = ?16, created_at = ?17, updated_at = ?18 \
             WHERE id = ?1 AND version = ?19",
        )
        .bind(p.id.0)
        .bind(p.seller_id.0)
        .bind(&p.title)
        .bind(&p.description)
        .bind(fold(&p.title))
        .bind(fold(&p.description))
        .bind(p.price.amount)
        .bind(p.price.currency.as_str())
        .bind(p.discount.as_ref().map(to_json).transpose()?)
        .bind(i64::from(p.stock))
        .bind(to_json(&p.images)?)
        .bind(p.category_id.map(|c| c.0))
        .bind(p.active)
        .bind(p.archived)
        .bind(p.blocked)
        .bind(to_i64(p.version)?)
        .bind(millis(p.created_at))
        .bind(millis(p.updated_at))
        .bind(to_i64(expected_version)?)
        .execute(&self.writer)
        .await;
        match result {
            Ok(done) if done.rows_affected() > 0 => Ok(()),
            Ok(_) => {
                let exists = sqlx::query("SELECT 1 FROM products WHERE id = ?1")
                    .bind(p.id.0)
                    .fetch_optional(&self.reader)
                    .await
                    .map_err(e)?;
                Err(match exists {
                    Some(_) => StorageError::Precondition("product version changed".into()),
                    None => StorageError::NotFound,
                })
            }
            Err(err) if error::is_foreign_key_violation(&err) => {
                Err(StorageError::Precondition("unknown category".into()))
            }
            Err(err) => Err(e(err)),
        }
    }

    async fn list_products(&self, q: &ProductQuery) -> StorageResult<Vec<Product>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {PRODUCT_COLUMNS} FROM products p "));
        if q.public_only {
            // CROSS JOIN keeps products the outer loop (SQLite's join-order rule):
            // a page walks the sort's index and stops after `limit` rows, instead of
            // starting from the sellers and sorting every product they list.
            qb.push(
                "CROSS JOIN users u ON u.id = p.seller_id AND u.active = 1 AND u.role = 'seller' \
                 AND u.seller_status = 'verified' \
                 WHERE p.active = 1 AND p.archived = 0 AND p.blocked = 0",
            );
        } else {
            qb.push("WHERE 1");
        }
        if !q.include_archived {
            qb.push(" AND p.archived = 0");
        }
        if let Some(s) = q.seller_id {
            qb.push(" AND p.seller_id = ").push_bind(s.0);
        }
        if let Some(c) = q.category_id {
            qb.push(" AND p.category_id = ").push_bind(c.0);
        }
        if let Some(m) = q.min_price {
            qb.push(" AND p.price_amount >= ").push_bind(m);
        }
        if let Some(m) = q.max_price {
            qb.push(" AND p.price_amount <= ").push_bind(m);
        }
        if q.in_stock {
            qb.push(" AND p.stock > 0");
        }
        if let Some(text) = &q.text {
            // Both sides Unicode-folded; LIKE then only has to match literally.
            let pattern = codec::contains_pattern(&fold(text));
            qb.push(" AND (p.title_folded LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR p.description_folded LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(k) = &q.after {
            match q.sort {
                ProductSort::Newest => qb
                    .push(" AND (p.created_at, p.id) < (")
                    .push_bind(millis(k.created_at))
                    .push(", ")
                    .push_bind(k.id.0)
                    .push(")"),
                ProductSort::PriceAsc => qb
                    .push(" AND (p.price_amount, p.id) > (")
                    .push_bind(k.price)
                    .push(", ")
                    .push_bind(k.id.0)
                    .push(")"),
                ProductSort::PriceDesc => qb
                    .push(" AND (p.price_amount, p.id) < (")
                    .push_bind(k.price)
                    .push(", ")
                    .push_bind(k.id.0)
                    .push(")"),
            };
        }
        qb.push(match q.sort {
            ProductSort::Newest => " ORDER BY p.created_at DESC, p.id DESC",
            ProductSort::PriceAsc => " ORDER BY p.price_amount, p.id",
            ProductSort::PriceDesc => " ORDER BY p.price_amount DESC, p.id DESC",
        });
        qb.push(" LIMIT ").push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, codec::product)
    }

    // ----- cart and wishlist ----------------------------------------------------------------

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        let row = sqlx::query("SELECT version, lines FROM carts WHERE buyer_id = ?1")
            .bind(buyer.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        Ok(match row {
            Some(r) => Cart {
                buyer_id: buyer,
                version: r.version("version")?,
                lines: r.json::<Vec<CartLine>>("lines")?,
            },
            None => Cart {
                buyer_id: buyer,
                version: 0,
                lines: Vec::new(),
            },
        })
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let done = if expected_version == 0 {
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = excluded.version, \
                 lines = excluded.lines WHERE c.version = 0",
            )
            .bind(cart.buyer_id.0)
            .bind(to_i64(cart.version)?)
            .bind(to_json(&cart.lines)?)
            .execute(&self.writer)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = ?2, lines = ?3 WHERE buyer_id = ?1 AND version = ?4",
            )
            .bind(cart.buyer_id.0)
            .bind(to_i64(cart.version)?)
            .bind(to_json(&cart.lines)?)
            .bind(to_i64(expected_version)?)
            .execute(&self.writer)
            .await
        }
        .map_err(e)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::Precondition("cart version changed".into()));
        }
        Ok(())
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let done = sqlx::query(
            "INSERT INTO wishlist_entries (buyer_id, product_id, added_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (buyer_id, product_id) DO NOTHING",
        )
        .bind(buyer.0)
        .bind(product.0)
        .bind(millis(at))
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        let done =
            sqlx::query("DELETE FROM wishlist_entries WHERE buyer_id = ?1 AND product_id = ?2")
                .bind(buyer.0)
                .bind(product.0)
                .execute(&self.writer)
                .await
                .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        let rows = sqlx::query(
            "SELECT product_id, added_at FROM wishlist_entries WHERE buyer_id = ?1 \
             ORDER BY seq DESC",
        )
        .bind(buyer.0)
        .fetch_all(&self.reader)
        .await
        .map_err(e)?;
        rows.iter()
            .map(|r| {
                Ok(WishlistEntry {
                    product_id: r.uuid("product_id")?.into(),
                    added_at: r.time("added_at")?,
                })
            })
            .collect()
    }

    // ----- checkout and orders -----------------------------------------------------------------

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        let row = sqlx::query(
            "SELECT id, request_hash FROM checkouts WHERE buyer_id = ?1 AND idempotency_key = ?2",
        )
        .bind(buyer.0)
        .bind(key)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        row.map(|r| {
            Ok(CheckoutRecord {
                checkout_id: r.uuid("id")?.into(),
                request_hash: r.text("request_hash")?,
            })
        })
        .transpose()
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        // The write lock is held from the first statement: nothing below can be
        // raced by another writer, in this process or another.
        let mut tx = self.begin_write().await?;

        // 1. Idempotency.
        let done = sqlx::query(
            "SELECT id, request_hash FROM checkouts WHERE buyer_id = ?1 AND idempotency_key = ?2",
        )
        .bind(plan.buyer_id.0)
        .bind(&plan.idempotency_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        if let Some(r) = done {
            return Ok(CheckoutOutcome::Replayed(CheckoutRecord {
                checkout_id: r.uuid("id")?.into(),
                request_hash: r.text("request_hash")?,
            }));
        }

        // 2. Compare-and-swap on the cart version, emptying it ("no row" is 0).
        let cart = if plan.cart_version == 0 {
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES (?1, 1, '[]') \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = c.version + 1, lines = '[]' \
                 WHERE c.version = 0",
            )
            .bind(plan.buyer_id.0)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = version + 1, lines = '[]' \
                 WHERE buyer_id = ?1 AND version = ?2",
            )
            .bind(plan.buyer_id.0)
            .bind(to_i64(plan.cart_version)?)
            .execute(&mut *tx)
            .await
        }
        .map_err(e)?;
        if cart.rows_affected() == 0 {
            return Ok(CheckoutOutcome::CartChanged);
        }

        // 3. Conditional decrements in product-id order (the plan's order),
        //    collecting every short item.
        let mut short = Vec::new();
        for r in &plan.reservations {
            let taken = sqlx::query(
                "UPDATE products SET stock = stock - ?2, version = version + 1 \
                 WHERE id = ?1 AND stock >= ?2 AND active = 1 AND archived = 0 AND blocked = 0",
            )
            .bind(r.product_id.0)
            .bind(i64::from(r.quantity))
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            if taken.rows_affected() == 0 {
                let available = sqlx::query(
                    "SELECT CASE WHEN active = 1 AND archived = 0 AND blocked = 0 \
                     THEN stock ELSE 0 END AS available FROM products WHERE id = ?1",
                )
                .bind(r.product_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
                short.push(ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available: available
                        .map(|a| a.count("available"))
                        .transpose()?
                        .unwrap_or(0),
                });
            }
        }
        if !short.is_empty() {
            tx.rollback().await.map_err(e)?;
            return Ok(CheckoutOutcome::Short(short));
        }

        // 4. The idempotency record, the orders and their mails.
        sqlx::query(
            "INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(plan.checkout_id.0)
        .bind(plan.buyer_id.0)
        .bind(&plan.idempotency_key)
        .bind(&plan.request_hash)
        .bind(millis(plan.created_at))
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        for o in &plan.orders {
            sqlx::query(
                "INSERT INTO orders (id, checkout_id, buyer_id, seller_id, store_name, status, \
                 items, address, total_amount, currency, history, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .bind(o.id.0)
            .bind(o.checkout_id.0)
            .bind(o.buyer_id.0)
            .bind(o.seller_id.0)
            .bind(&o.store_name)
            .bind(o.status.as_str())
            .bind(to_json(&o.items)?)
            .bind(to_json(&o.address)?)
            .bind(o.total.amount)
            .bind(o.total.currency.as_str())
            .bind(to_json(&o.history)?)
            .bind(millis(o.created_at))
            .bind(millis(o.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        }
        insert_outbox(&mut tx, &plan.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(CheckoutOutcome::Committed)
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        sqlx::query("SELECT * FROM orders WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::order)
            .transpose()
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let rows = sqlx::query("SELECT * FROM orders WHERE checkout_id = ?1 ORDER BY seller_id")
            .bind(id.0)
            .fetch_all(&self.reader)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::order)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM orders WHERE 1");
        if let Some(b) = q.buyer_id {
            qb.push(" AND buyer_id = ").push_bind(b.0);
        }
        if let Some(s) = q.seller_id {
            qb.push(" AND seller_id = ").push_bind(s.0);
        }
        if let Some(s) = q.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(k) = q.after {
            qb.push(" AND (created_at, id) < (")
                .push_bind(millis(k.created_at))
                .push(", ")
                .push_bind(k.id.0)
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, codec::order)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE orders SET status = ?2, history = json_insert(history, '$[#]', json(?3)), \
             updated_at = ?4 WHERE id = ?1 AND status = ?5 RETURNING *",
        )
        .bind(t.order_id.0)
        .bind(t.to.as_str())
        .bind(to_json(&t.change)?)
        .bind(millis(t.change.at))
        .bind(t.from.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM orders WHERE id = ?1")
                .bind(t.order_id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(e)?;
            return match exists {
                Some(_) => Ok(None),
                None => Err(StorageError::NotFound),
            };
        };
        let order = codec::order(&row)?;
        for (product, units) in &t.restock {
            sqlx::query(
                "UPDATE products SET stock = stock + ?2, version = version + 1 WHERE id = ?1",
            )
            .bind(product.0)
            .bind(i64::from(*units))
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        }
        insert_outbox(&mut tx, &t.outbox).await?;
        tx.commit().await.map_err(e)?;
        Ok(Some(order))
    }

    // ----- notification outbox -------------------------------------------------------------------

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        // One statement is one write transaction: two claims are serialised by the
        // write lock, and the second no longer finds the first one's messages.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET claimed_by = ?3, claimed_until = ?4 WHERE id IN ( \
                 SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= ?1 \
                   AND (claimed_until IS NULL OR claimed_until <= ?1) \
                 ORDER BY next_attempt_at, id LIMIT ?2 \
             ) RETURNING {OUTBOX_COLUMNS}"
        )))
        .bind(millis(now))
        .bind(i64::from(limit))
        .bind(worker)
        .bind(millis(lease_until))
        .fetch_all(&self.writer)
        .await
        .map_err(e)?;
        let mut claimed = codec::all(&rows, codec::outbox_message)?;
        claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let (status, delivered_at, next_attempt_at, error) = match update {
            DeliveryUpdate::Delivered { at } => {
                (OutboxStatus::Delivered, Some(millis(*at)), None, None)
            }
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => (
                OutboxStatus::Pending,
                None,
                Some(millis(*next_attempt_at)),
                Some(error.as_str()),
            ),
            DeliveryUpdate::Dead { error } => {
                (OutboxStatus::Dead, None, None, Some(error.as_str()))
            }
        };
        let done = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL, \
             status = ?3, delivered_at = COALESCE(?4, delivered_at), \
             next_attempt_at = COALESCE(?5, next_attempt_at), \
             last_error = COALESCE(?6, last_error) \
             WHERE id = ?1 AND status = 'pending' AND claimed_by = ?2",
        )
        .bind(id.0)
        .bind(worker)
        .bind(status.as_str())
        .bind(delivered_at)
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ?1",
        )
        .bind(worker)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected())
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?1"
        )))
        .bind(id.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?
        .as_ref()
        .map(codec::outbox_message)
        .transpose()
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE 1"));
        if let Some(s) = q.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some((at, id)) = q.after {
            qb.push(" AND (created_at, id) < (")
                .push_bind(millis(at))
                .push(", ")
                .push_bind(id.0)
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.reader).await.map_err(e)?;
        codec::all(&rows, codec::outbox_message)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?2, \
             claimed_by = NULL, claimed_until = NULL WHERE id = ?1 AND status = 'dead'",
        )
        .bind(id.0)
        .bind(millis(now))
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}
