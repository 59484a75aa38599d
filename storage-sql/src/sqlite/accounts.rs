//! Accounts on SQLite: users and sellers, tokens, login throttling, addresses.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::storage::{AccountStore, LoginAttempt, RotateOutcome, TokenEffect};
use marketplace_core::{
    AddressId, SellerStatus, StorageError, StorageResult, TokenFamilyId, User, UserId,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::outbox::insert_outbox;
use super::{SqliteStorage, e};
use crate::codec::accounts::{self, LiveRefresh, Rotation};
use crate::codec::{self, Binds, Columns};

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

async fn upsert_token(conn: &mut SqliteConnection, token: &OneTimeToken) -> StorageResult<()> {
    let mut upsert = accounts::upsert_token::<Sqlite>(token);
    upsert.build().execute(conn).await.map_err(e)?;
    Ok(())
}

async fn upsert_refresh(conn: &mut SqliteConnection, token: &LiveRefresh<'_>) -> StorageResult<()> {
    let mut upsert = accounts::upsert_refresh::<Sqlite>(token);
    upsert.build().execute(conn).await.map_err(e)?;
    Ok(())
}

async fn revoke_family(conn: &mut SqliteConnection, family: uuid::Uuid) -> StorageResult<()> {
    sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family = ?1")
        .bind(family)
        .execute(conn)
        .await
        .map_err(e)?;
    Ok(())
}

#[async_trait]
impl AccountStore for SqliteStorage {
    // ----- users -----------------------------------------------------------------

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin_write().await?;
        let mut insert = accounts::insert_user::<Sqlite>(user);
        insert.build().execute(&mut *tx).await.map_err(e)?;
        if let Some(t) = token {
            upsert_token(&mut tx, t).await?;
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(e)
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        codec::optional(row, accounts::user)
    }

    async fn session_user(
        &self,
        user: UserId,
        family: TokenFamilyId,
    ) -> StorageResult<Option<User>> {
        // One statement, by primary key and the index of live tokens by family.
        let row = sqlx::query(
            "SELECT u.* FROM users u WHERE u.id = ?1 AND u.active = 1 AND EXISTS ( \
               SELECT 1 FROM refresh_tokens r \
               WHERE r.family = ?2 AND r.state = 'live' AND r.user_id = u.id)",
        )
        .bind(user.0)
        .bind(family.0)
        .fetch_optional(&self.reader)
        .await
        .map_err(e)?;
        codec::optional(row, accounts::user)
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        // One query for every id: a cart or checkout reads all its sellers at once.
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
        codec::all(&rows, accounts::user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE lower(email) = lower(?1)")
            .bind(email)
            .fetch_optional(&self.reader)
            .await
            .map_err(e)?;
        codec::optional(row, accounts::user)
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        let row = sqlx::query("UPDATE users SET name = ?2, phone = ?3 WHERE id = ?1 RETURNING *")
            .bind(id.0)
            .bind(name)
            .bind(phone)
            .fetch_optional(&self.writer)
            .await
            .map_err(e)?;
        codec::optional(row, accounts::user)
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
        codec::all(&rows, accounts::user)
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
        .time(now)
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
        upsert_refresh(&mut conn, &LiveRefresh::new(token)).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        // The write lock serialises concurrent rotations: the second sees the
        // token spent.
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT user_id, family, state, expires_at FROM refresh_tokens WHERE hash = ?1",
        )
        .bind(presented)
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let Some(token) = codec::optional(row, accounts::presented_refresh)? else {
            return Ok(RotateOutcome::Invalid);
        };
        let user_id = token.user_id;
        let outcome = match token.rotation(now) {
            Rotation::Rotate => {
                sqlx::query("UPDATE refresh_tokens SET state = 'spent' WHERE hash = ?1")
                    .bind(presented)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                let next = token.successor(next_hash, next_expires_at, now);
                upsert_refresh(&mut tx, &next).await?;
                RotateOutcome::Rotated {
                    user_id,
                    family: TokenFamilyId(token.family),
                }
            }
            Rotation::Expired => return Ok(RotateOutcome::Invalid),
            Rotation::RevokeFamily => {
                revoke_family(&mut tx, token.family).await?;
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
        revoke_family(&mut tx, row.uuid("family")?).await?;
        tx.commit().await.map_err(e)?;
        Ok(true)
    }

    // ----- login throttling ------------------------------------------------------------

    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt> {
        // Under the write lock: the upsert counts the attempt only while the
        // window is over (a new one starts) or has room; when it counts nothing,
        // the row it left alone holds the full window's start.
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "INSERT INTO login_failures AS f (key, count, window_started) VALUES (?1, 1, ?2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN f.window_started <= ?3 THEN 1 ELSE f.count + 1 END, \
               window_started = CASE WHEN f.window_started <= ?3 THEN ?2 ELSE f.window_started END \
             WHERE f.window_started <= ?3 OR f.count < ?4 \
             RETURNING 1 AS taken, count, window_started",
        )
        .bind(key)
        .time(now)
        .time(now - window)
        .bind(i64::from(max))
        .fetch_optional(&mut *tx)
        .await
        .map_err(e)?;
        let row = match taken {
            Some(row) => row,
            None => sqlx::query(
                "SELECT 0 AS taken, count, window_started FROM login_failures WHERE key = ?1",
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?,
        };
        tx.commit().await.map_err(e)?;
        accounts::login_attempt(&row)
    }

    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()> {
        // One statement on the writer; the last attempt of a window empties it
        // (see `EMPTIED_WINDOW`).
        sqlx::query(
            "UPDATE login_failures SET \
               count = CASE WHEN count > 1 THEN count - 1 ELSE 1 END, \
               window_started = CASE WHEN count > 1 THEN window_started ELSE ?3 END \
             WHERE key = ?1 AND window_started = ?2",
        )
        .bind(key)
        .time(window_started)
        .time(accounts::EMPTIED_WINDOW)
        .execute(&self.writer)
        .await
        .map_err(e)?;
        Ok(())
    }

    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()> {
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
        codec::all(&rows, accounts::address)
    }

    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()> {
        // The write lock (BEGIN IMMEDIATE) is taken before the count: concurrent
        // saves run one after the other, each counting what the previous stored.
        let mut tx = self.begin_write().await?;
        let counted = sqlx::query(
            "SELECT count(*) AS kept, count(CASE WHEN id = ?2 THEN 1 END) AS present \
             FROM addresses WHERE user_id = ?1",
        )
        .bind(address.user_id.0)
        .bind(address.id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        accounts::address_limit(&counted, max_addresses)?;
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
        let mut upsert = accounts::upsert_address::<Sqlite>(address);
        upsert.build().execute(&mut *tx).await.map_err(e)?;
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
}
