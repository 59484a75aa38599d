//! The PostgreSQL dialect.
//!
//! Every atomic step is one transaction at PostgreSQL's default READ COMMITTED
//! isolation. Correctness under concurrency comes from conditional writes and row
//! locks, not from a stricter isolation level: an `UPDATE ... WHERE version = $n`
//! or `WHERE stock >= $q` that finds its row locked waits for the other
//! transaction and re-checks its condition against the committed row, so a lost
//! update or an oversell is impossible. Rows are locked in id order where a step
//! locks several, so concurrent checkouts do not deadlock; should the database
//! still report a deadlock or serialization failure, the call fails with
//! `Transient` and core repeats it.

use std::str::FromStr;

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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::SqlOptions;
use crate::codec::{self, Columns, to_i64};
use crate::error::{self, Dialect};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

fn e(err: sqlx::Error) -> StorageError {
    error::map(Dialect::Postgres, err)
}

const PRODUCT_COLUMNS: &str = "p.id, p.seller_id, p.title, p.description, p.price_amount, \
     p.currency, p.discount, p.stock, p.images, p.category_id, p.active, p.archived, \
     p.blocked, p.version, p.created_at, p.updated_at";

const OUTBOX_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, status, \
     attempts, next_attempt_at, last_error, created_at, delivered_at, claimed_by, claimed_until";

/// Adds `qty` units back to each product, locking the rows in id order.
const RESTOCK: &str = "WITH wanted AS ( \
         SELECT id, sum(qty)::int8 AS qty FROM unnest($1::uuid[], $2::int8[]) AS t(id, qty) GROUP BY id \
     ), locked AS ( \
         SELECT p.id FROM products p JOIN wanted w ON w.id = p.id ORDER BY p.id FOR NO KEY UPDATE OF p \
     ) \
     UPDATE products p SET stock = p.stock + w.qty, version = p.version + 1 \
     FROM wanted w WHERE p.id = w.id AND p.id IN (SELECT id FROM locked)";

/// The PostgreSQL store: one connection pool.
#[derive(Clone)]
pub(crate) struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub(crate) async fn connect(url: &str, options: &SqlOptions) -> StorageResult<PgStore> {
        let connect = PgConnectOptions::from_str(url).map_err(StorageError::backend)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(e)?;
        if options.run_migrations {
            MIGRATOR.run(&pool).await.map_err(StorageError::backend)?;
        }
        Ok(PgStore { pool })
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

async fn insert_outbox(conn: &mut PgConnection, messages: &[OutboxMessage]) -> StorageResult<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Postgres>::new(format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) "));
    push_outbox_values(&mut qb, messages)?;
    qb.build().execute(conn).await.map_err(e)?;
    Ok(())
}

fn push_outbox_values(
    qb: &mut QueryBuilder<Postgres>,
    messages: &[OutboxMessage],
) -> StorageResult<()> {
    let mut attempts = Vec::with_capacity(messages.len());
    for m in messages {
        attempts.push(i64::from(m.attempts));
    }
    qb.push_values(messages.iter().zip(attempts), |mut b, (m, attempts)| {
        b.push_bind(m.id.0)
            .push_bind(&m.kind)
            .push_bind(&m.recipient)
            .push_bind(&m.subject)
            .push_bind(&m.text_body)
            .push_bind(&m.html_body)
            .push_bind(m.status.as_str())
            .push_bind(attempts)
            .push_bind(m.next_attempt_at)
            .push_bind(&m.last_error)
            .push_bind(m.created_at)
            .push_bind(m.delivered_at)
            .push_bind(m.claimed_by)
            .push_bind(m.claimed_until);
    });
    Ok(())
}

async fn revoke_user_tokens(conn: &mut PgConnection, user: UserId) -> StorageResult<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET state = 'revoked' WHERE user_id = $1 AND state <> 'revoked'",
    )
    .bind(user.0)
    .execute(conn)
    .await
    .map_err(e)?;
    Ok(())
}

fn restock_arrays(restock: &[(ProductId, u32)]) -> (Vec<Uuid>, Vec<i64>) {
    restock.iter().map(|(p, n)| (p.0, i64::from(*n))).unzip()
}

#[async_trait]
impl Storage for PgStore {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(e)?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, name, phone, store_name, \
             seller_status, email_verified, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(user.created_at)
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
        sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::user)
            .transpose()
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = sqlx::query("SELECT * FROM users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
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
        sqlx::query("UPDATE users SET name = $2, phone = $3 WHERE id = $1 RETURNING *")
            .bind(id.0)
            .bind(name)
            .bind(phone)
            .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(e)?;
        let done = sqlx::query(
            "UPDATE users SET seller_status = $2 WHERE id = $1 AND seller_status IS NOT NULL",
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
        let mut tx = self.pool.begin().await.map_err(e)?;
        let done = sqlx::query("UPDATE users SET active = $2 WHERE id = $1")
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
             AND ($1::text IS NULL OR seller_status = $1) \
             AND ($2::uuid IS NULL OR id > $2) \
             ORDER BY id LIMIT $3",
        )
        .bind(status.map(|s| s.as_str()))
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(e)?;
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
        let mut tx = self.pool.begin().await.map_err(e)?;
        // The conditional write: of two concurrent redemptions, the second waits
        // for the first and then finds the token used.
        let row = sqlx::query(
            "UPDATE one_time_tokens SET used = true \
             WHERE hash = $1 AND purpose = $2 AND NOT used AND expires_at > $3 \
             RETURNING user_id",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id = UserId(row.uuid("user_id")?);
        match effect {
            TokenEffect::VerifyEmail => {
                sqlx::query("UPDATE users SET email_verified = true WHERE id = $1")
                    .bind(user_id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
            }
            TokenEffect::ResetPassword { password_hash } => {
                sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
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
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, user_id, family, state, expires_at, created_at) \
             VALUES ($1, $2, $3, 'live', $4, $5) \
             ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
             family = excluded.family, state = 'live', expires_at = excluded.expires_at, \
             created_at = excluded.created_at",
        )
        .bind(&token.hash)
        .bind(token.user_id.0)
        .bind(token.family.0)
        .bind(token.expires_at)
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        let mut tx = self.pool.begin().await.map_err(e)?;
        // Locking the presented token serialises concurrent rotations of it: the
        // second sees it spent.
        let row = sqlx::query(
            "SELECT user_id, family, state, expires_at FROM refresh_tokens \
             WHERE hash = $1 FOR UPDATE",
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
                sqlx::query("UPDATE refresh_tokens SET state = 'spent' WHERE hash = $1")
                    .bind(presented)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, user_id, family, state, expires_at, created_at) \
                     VALUES ($1, $2, $3, 'live', $4, $5) \
                     ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
                     family = excluded.family, state = 'live', \
                     expires_at = excluded.expires_at, created_at = excluded.created_at",
                )
                .bind(next_hash)
                .bind(user_id.0)
                .bind(family)
                .bind(next_expires_at)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
                RotateOutcome::Rotated { user_id }
            }
            "live" => return Ok(RotateOutcome::Invalid),
            _ => {
                sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family = $1")
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
        let done = sqlx::query(
            "WITH t AS (SELECT family FROM refresh_tokens WHERE hash = $1), \
             r AS (UPDATE refresh_tokens SET state = 'revoked' \
                   WHERE family IN (SELECT family FROM t)) \
             SELECT count(*) AS n FROM t",
        )
        .bind(hash)
        .fetch_one(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.int("n")? > 0)
    }

    // ----- login throttling ------------------------------------------------------------

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        // One statement: a row lock serialises concurrent failures of one key.
        let row = sqlx::query(
            "INSERT INTO login_failures AS f (key, count, window_started) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN f.window_started <= $3 THEN 1 ELSE f.count + 1 END, \
               window_started = CASE WHEN f.window_started <= $3 THEN $2 ELSE f.window_started END \
             RETURNING count, window_started",
        )
        .bind(key)
        .bind(now)
        .bind(now - window)
        .fetch_one(&self.pool)
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
             WHERE key = $1 AND window_started > $2",
        )
        .bind(key)
        .bind(now - window)
        .fetch_optional(&self.pool)
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
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(())
    }

    // ----- addresses -----------------------------------------------------------------

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        let rows = sqlx::query("SELECT * FROM addresses WHERE user_id = $1 ORDER BY seq")
            .bind(user.0)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::address)
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        let mut tx = self.pool.begin().await.map_err(e)?;
        if address.is_default {
            // Locking the owner serialises concurrent default changes of one user,
            // so the one-default index never sees two.
            sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(address.user_id.0)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            sqlx::query(
                "UPDATE addresses SET is_default = false \
                 WHERE user_id = $1 AND is_default AND id <> $2",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
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
        let done = sqlx::query("DELETE FROM addresses WHERE id = $1 AND user_id = $2")
            .bind(id.0)
            .bind(user.0)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    // ----- categories -------------------------------------------------------------------

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        sqlx::query("INSERT INTO categories (id, name) VALUES ($1, $2)")
            .bind(category.id.0)
            .bind(&category.name)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        // Byte order, like the reference store, whatever the database's collation.
        let rows = sqlx::query("SELECT id, name FROM categories ORDER BY name COLLATE \"C\", id")
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::category)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        sqlx::query("SELECT id, name FROM categories WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::category)
            .transpose()
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let done = sqlx::query("UPDATE categories SET name = $2 WHERE id = $1")
            .bind(id.0)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        // The products' foreign key refuses to delete a category in use.
        match sqlx::query("DELETE FROM categories WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
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
            "INSERT INTO products (id, seller_id, title, description, price_amount, currency, \
             discount, stock, images, category_id, active, archived, blocked, version, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(p.id.0)
        .bind(p.seller_id.0)
        .bind(&p.title)
        .bind(&p.description)
        .bind(p.price.amount)
        .bind(p.price.currency.as_str())
        .bind(p.discount.as_ref().map(Json))
        .bind(i64::from(p.stock))
        .bind(Json(&p.images))
        .bind(p.category_id.map(|c| c.0))
        .bind(p.active)
        .bind(p.archived)
        .bind(p.blocked)
        .bind(to_i64(p.version)?)
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
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
            "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?
        .as_ref()
        .map(codec::product)
        .transpose()
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p WHERE p.id = ANY($1)"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(e)?;
        codec::all(&rows, codec::product)
    }

    async fn update_product(&self, p: &Product, expected_version: u64) -> StorageResult<()> {
        let result = sqlx::query(
            "UPDATE products SET seller_id = $2, title = $3, description = $4, \
             price_amount = $5, currency = $6, discount = $7, stock = $8, images = $9, \
             category_id = $10, active = $11, archived = $12, blocked = $13, version = $14, \
             created_at = $15, updated_at = $16 \
             WHERE id = $1 AND version = $17",
        )
        .bind(p.id.0)
        .bind(p.seller_id.0)
        .bind(&p.title)
        .bind(&p.description)
        .bind(p.price.amount)
        .bind(p.price.currency.as_str())
        .bind(p.discount.as_ref().map(Json))
        .bind(i64::from(p.stock))
        .bind(Json(&p.images))
        .bind(p.category_id.map(|c| c.0))
        .bind(p.active)
        .bind(p.archived)
        .bind(p.blocked)
        .bind(to_i64(p.version)?)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(to_i64(expected_version)?)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) if done.rows_affected() > 0 => Ok(()),
            Ok(_) => {
                let exists = sqlx::query("SELECT 1 FROM products WHERE id = $1")
                    .bind(p.id.0)
                    .fetch_optional(&self.pool)
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
            QueryBuilder::<Postgres>::new(format!("SELECT {PRODUCT_COLUMNS} FROM products p "));
        if q.public_only {
            // `seller_selling` mirrors the seller's state (kept by triggers, see
            // migration 0003): one table, so the planner sees how many rows match.
            qb.push("WHERE p.seller_selling AND p.active AND NOT p.archived AND NOT p.blocked");
        } else {
            qb.push("WHERE TRUE");
        }
        if !q.include_archived {
            qb.push(" AND NOT p.archived");
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
            let pattern = codec::contains_pattern(text);
            qb.push(" AND (p.title ILIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR p.description ILIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(k) = &q.after {
            match q.sort {
                ProductSort::Newest => qb
                    .push(" AND (p.created_at, p.id) < (")
                    .push_bind(k.created_at)
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
        // A search pattern or a price range changes the best plan with its value: a
        // prepared statement's generic plan cannot know that `%lamp%` matches one
        // product in 20 and sorts every product in the price range (24 ms instead
        // of 1 ms on a 10,000-product catalog). Such queries are planned with their
        // values each time; plain pages keep their prepared statements.
        let persistent = q.text.is_none() && q.min_price.is_none() && q.max_price.is_none();
        let rows = qb
            .build()
            .persistent(persistent)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::product)
    }

    // ----- cart and wishlist ----------------------------------------------------------------

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        let row = sqlx::query("SELECT version, lines FROM carts WHERE buyer_id = $1")
            .bind(buyer.0)
            .fetch_optional(&self.pool)
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
            // "Never saved": insert, or take over a row still at version 0.
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES ($1, $2, $3) \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = excluded.version, \
                 lines = excluded.lines WHERE c.version = 0",
            )
            .bind(cart.buyer_id.0)
            .bind(to_i64(cart.version)?)
            .bind(Json(&cart.lines))
            .execute(&self.pool)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = $2, lines = $3 WHERE buyer_id = $1 AND version = $4",
            )
            .bind(cart.buyer_id.0)
            .bind(to_i64(cart.version)?)
            .bind(Json(&cart.lines))
            .bind(to_i64(expected_version)?)
            .execute(&self.pool)
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
            "INSERT INTO wishlist_entries (buyer_id, product_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (buyer_id, product_id) DO NOTHING",
        )
        .bind(buyer.0)
        .bind(product.0)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        let done =
            sqlx::query("DELETE FROM wishlist_entries WHERE buyer_id = $1 AND product_id = $2")
                .bind(buyer.0)
                .bind(product.0)
                .execute(&self.pool)
                .await
                .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        let rows = sqlx::query(
            "SELECT product_id, added_at FROM wishlist_entries WHERE buyer_id = $1 \
             ORDER BY seq DESC",
        )
        .bind(buyer.0)
        .fetch_all(&self.pool)
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
            "SELECT id, request_hash FROM checkouts WHERE buyer_id = $1 AND idempotency_key = $2",
        )
        .bind(buyer.0)
        .bind(key)
        .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(e)?;

        // 1. The idempotency record goes in first: a concurrent commit with the
        //    same key waits on the unique index, then finds the key taken.
        let claimed = sqlx::query(
            "INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (buyer_id, idempotency_key) DO NOTHING",
        )
        .bind(plan.checkout_id.0)
        .bind(plan.buyer_id.0)
        .bind(&plan.idempotency_key)
        .bind(&plan.request_hash)
        .bind(plan.created_at)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await.map_err(e)?;
            return match self
                .checkout_by_key(plan.buyer_id, &plan.idempotency_key)
                .await?
            {
                Some(done) => Ok(CheckoutOutcome::Replayed(done)),
                // The other commit rolled back after all: try again.
                None => Err(StorageError::transient("idempotency key in flux")),
            };
        }

        // 2. Compare-and-swap on the cart version, emptying it ("no row" is 0).
        let cart = if plan.cart_version == 0 {
            sqlx::query(
                "INSERT INTO carts AS c (buyer_id, version, lines) VALUES ($1, 1, '[]') \
                 ON CONFLICT (buyer_id) DO UPDATE SET version = c.version + 1, lines = '[]' \
                 WHERE c.version = 0",
            )
            .bind(plan.buyer_id.0)
            .execute(&mut *tx)
            .await
        } else {
            sqlx::query(
                "UPDATE carts SET version = version + 1, lines = '[]' \
                 WHERE buyer_id = $1 AND version = $2",
            )
            .bind(plan.buyer_id.0)
            .bind(to_i64(plan.cart_version)?)
            .execute(&mut *tx)
            .await
        }
        .map_err(e)?;
        if cart.rows_affected() == 0 {
            tx.rollback().await.map_err(e)?;
            return Ok(CheckoutOutcome::CartChanged);
        }

        // 3. Conditional decrements, one statement: rows are locked in product-id
        //    order, and each decrement re-checks stock and sellability against the
        //    committed row it locked.
        let ids: Vec<Uuid> = plan.reservations.iter().map(|r| r.product_id.0).collect();
        let qtys: Vec<i64> = plan
            .reservations
            .iter()
            .map(|r| i64::from(r.quantity))
            .collect();
        let taken = sqlx::query(
            "WITH wanted AS ( \
                 SELECT id, sum(qty)::int8 AS qty FROM unnest($1::uuid[], $2::int8[]) AS t(id, qty) \
                 GROUP BY id \
             ), locked AS ( \
                 SELECT p.id FROM products p JOIN wanted w ON w.id = p.id \
                 ORDER BY p.id FOR NO KEY UPDATE OF p \
             ) \
             UPDATE products p SET stock = p.stock - w.qty, version = p.version + 1 \
             FROM wanted w \
             WHERE p.id = w.id AND p.id IN (SELECT id FROM locked) AND p.stock >= w.qty \
               AND p.active AND NOT p.archived AND NOT p.blocked \
             RETURNING p.id",
        )
        .bind(&ids)
        .bind(&qtys)
        .fetch_all(&mut *tx)
        .await
        .map_err(e)?;
        if taken.len() < plan.reservations.len() {
            let taken: Vec<Uuid> = taken
                .iter()
                .map(|r| r.uuid("id"))
                .collect::<StorageResult<_>>()?;
            let missing: Vec<Uuid> = ids.iter().copied().filter(|i| !taken.contains(i)).collect();
            // The short rows are still locked by this transaction: what it reads is
            // what was available.
            let rows = sqlx::query(
                "SELECT id, CASE WHEN active AND NOT archived AND NOT blocked \
                 THEN stock ELSE 0 END AS available FROM products WHERE id = ANY($1)",
            )
            .bind(&missing)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
            tx.rollback().await.map_err(e)?;
            let mut available = std::collections::HashMap::new();
            for r in &rows {
                available.insert(r.uuid("id")?, r.count("available")?);
            }
            let short: Vec<ShortItem> = plan
                .reservations
                .iter()
                .filter(|r| missing.contains(&r.product_id.0))
                .map(|r| ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available: available.get(&r.product_id.0).copied().unwrap_or(0),
                })
                .collect();
            // The decrement judged a row by the statement's snapshot; a restock
            // committed while it waited for the row lock can leave enough after all.
            // That is a race, not a shortage: let core run the commit again.
            if short.iter().any(|s| s.available >= s.requested) {
                return Err(StorageError::transient(
                    "stock changed while the checkout waited for it",
                ));
            }
            return Ok(CheckoutOutcome::Short(short));
        }

        // 4. Orders and their mails, in one statement.
        let mut qb = QueryBuilder::<Postgres>::new("");
        if !plan.orders.is_empty() {
            qb.push(
                "WITH new_orders AS (INSERT INTO orders (id, checkout_id, buyer_id, seller_id, \
                 store_name, status, items, address, total_amount, currency, history, \
                 created_at, updated_at) ",
            );
            qb.push_values(&plan.orders, |mut b, o| {
                b.push_bind(o.id.0)
                    .push_bind(o.checkout_id.0)
                    .push_bind(o.buyer_id.0)
                    .push_bind(o.seller_id.0)
                    .push_bind(&o.store_name)
                    .push_bind(o.status.as_str())
                    .push_bind(Json(&o.items))
                    .push_bind(Json(&o.address))
                    .push_bind(o.total.amount)
                    .push_bind(o.total.currency.as_str())
                    .push_bind(Json(&o.history))
                    .push_bind(o.created_at)
                    .push_bind(o.updated_at);
            });
            qb.push(") ");
        }
        if plan.outbox.is_empty() {
            qb.push("SELECT 1");
        } else {
            qb.push(format!("INSERT INTO outbox ({OUTBOX_COLUMNS}) "));
            push_outbox_values(&mut qb, &plan.outbox)?;
        }
        qb.build().execute(&mut *tx).await.map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(CheckoutOutcome::Committed)
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        sqlx::query("SELECT * FROM orders WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?
            .as_ref()
            .map(codec::order)
            .transpose()
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let rows = sqlx::query("SELECT * FROM orders WHERE checkout_id = $1 ORDER BY seller_id")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, codec::order)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM orders WHERE TRUE");
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
                .push_bind(k.created_at)
                .push(", ")
                .push_bind(k.id.0)
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, codec::order)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut tx = self.pool.begin().await.map_err(e)?;
        // The conditional write: a concurrent transition of the same order waits,
        // then finds the status moved and changes nothing.
        let row = sqlx::query(
            "UPDATE orders SET status = $2, history = history || jsonb_build_array($3::jsonb), \
             updated_at = $4 WHERE id = $1 AND status = $5 RETURNING *",
        )
        .bind(t.order_id.0)
        .bind(t.to.as_str())
        .bind(Json(&t.change))
        .bind(t.change.at)
        .bind(t.from.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM orders WHERE id = $1")
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
        if !t.restock.is_empty() {
            let (ids, qtys) = restock_arrays(&t.restock);
            sqlx::query(RESTOCK)
                .bind(ids)
                .bind(qtys)
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
        // One statement: rows another claimer holds locked are skipped, and a row
        // claimed and committed meanwhile fails the re-checked lease condition.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH due AS ( \
                 SELECT id FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (claimed_until IS NULL OR claimed_until <= $1) \
                 ORDER BY next_attempt_at, id LIMIT $2 \
                 FOR UPDATE SKIP LOCKED \
             ) \
             UPDATE outbox o SET claimed_by = $3, claimed_until = $4 FROM due \
             WHERE o.id = due.id RETURNING {}",
            OUTBOX_COLUMNS
                .split(", ")
                .map(|c| format!("o.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(now)
        .bind(i64::from(limit))
        .bind(worker)
        .bind(lease_until)
        .fetch_all(&self.pool)
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
            DeliveryUpdate::Delivered { at } => (OutboxStatus::Delivered, Some(*at), None, None),
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => (
                OutboxStatus::Pending,
                None,
                Some(*next_attempt_at),
                Some(error.as_str()),
            ),
            DeliveryUpdate::Dead { error } => {
                (OutboxStatus::Dead, None, None, Some(error.as_str()))
            }
        };
        let done = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL, \
             status = $3, delivered_at = COALESCE($4, delivered_at), \
             next_attempt_at = COALESCE($5, next_attempt_at), \
             last_error = COALESCE($6, last_error) \
             WHERE id = $1 AND status = 'pending' AND claimed_by = $2",
        )
        .bind(id.0)
        .bind(worker)
        .bind(status.as_str())
        .bind(delivered_at)
        .bind(next_attempt_at)
        .bind(error)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        )
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected())
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?
        .as_ref()
        .map(codec::outbox_message)
        .transpose()
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE TRUE"
        ));
        if let Some(s) = q.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some((at, id)) = q.after {
            qb.push(" AND (created_at, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id.0)
                .push(")");
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(e)?;
        codec::all(&rows, codec::outbox_message)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, \
             claimed_by = NULL, claimed_until = NULL WHERE id = $1 AND status = 'dead'",
        )
        .bind(id.0)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(done.rows_affected() > 0)
    }
}

async fn upsert_token(conn: &mut PgConnection, t: &OneTimeToken) -> StorageResult<()> {
    sqlx::query(
        "INSERT INTO one_time_tokens (hash, user_id, purpose, expires_at, created_at, used) \
         VALUES ($1, $2, $3, $4, $5, false) \
         ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
         purpose = excluded.purpose, expires_at = excluded.expires_at, \
         created_at = excluded.created_at, used = false",
    )
    .bind(&t.hash)
    .bind(t.user_id.0)
    .bind(t.purpose.as_str())
    .bind(t.expires_at)
    .bind(t.created_at)
    .execute(conn)
    .await
    .map_err(e)?;
    Ok(())
}
