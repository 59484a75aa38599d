//! Accounts on PostgreSQL: users and sellers, tokens, login throttling, addresses.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::storage::{AccountStore, LoginAttempt, RotateOutcome, TokenEffect};
use marketplace_core::{
    AddressId, SellerStatus, StorageError, StorageResult, TokenFamilyId, User, UserId,
};
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use super::outbox::insert_outbox;
use super::{PostgresStorage, e};
use crate::codec::accounts::{self, LiveRefresh, Rotation};
use crate::codec::{self, Columns};

/// How often a take whose answer raced another take is repeated before the
/// call reports `Transient`.
const TAKE_ATTEMPTS: u32 = 4;

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

async fn upsert_token(conn: &mut PgConnection, token: &OneTimeToken) -> StorageResult<()> {
    let mut upsert = accounts::upsert_token::<Postgres>(token);
    upsert.build().execute(conn).await.map_err(e)?;
    Ok(())
}

async fn upsert_refresh(conn: &mut PgConnection, token: &LiveRefresh<'_>) -> StorageResult<()> {
    let mut upsert = accounts::upsert_refresh::<Postgres>(token);
    upsert.build().execute(conn).await.map_err(e)?;
    Ok(())
}

#[async_trait]
impl AccountStore for PostgresStorage {
    // ----- users -----------------------------------------------------------------

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let mut insert = accounts::insert_user::<Postgres>(user);
        insert.build().execute(&mut *tx).await.map_err(e)?;
        if let Some(t) = token {
            upsert_token(&mut tx, t).await?;
        }
        insert_outbox(&mut tx, outbox).await?;
        tx.commit().await.map_err(e)
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
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
            "SELECT u.* FROM users u WHERE u.id = $1 AND u.active AND EXISTS ( \
               SELECT 1 FROM refresh_tokens r \
               WHERE r.family = $2 AND r.state = 'live' AND r.user_id = u.id)",
        )
        .bind(user.0)
        .bind(family.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(e)?;
        codec::optional(row, accounts::user)
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        // One query for every id: a cart or checkout reads all its sellers at once.
        let ids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows = sqlx::query("SELECT * FROM users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        codec::all(&rows, accounts::user)
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
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
        let row = sqlx::query("UPDATE users SET name = $2, phone = $3 WHERE id = $1 RETURNING *")
            .bind(id.0)
            .bind(name)
            .bind(phone)
            .fetch_optional(&self.pool)
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
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
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
        codec::all(&rows, accounts::user)
    }

    // ----- single-use tokens -------------------------------------------------------

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
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
        let mut tx = self.begin().await?;
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
        let mut conn = self.pool.acquire().await.map_err(e)?;
        upsert_refresh(&mut conn, &LiveRefresh::new(token)).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        let mut tx = self.begin().await?;
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
        let Some(token) = codec::optional(row, accounts::presented_refresh)? else {
            return Ok(RotateOutcome::Invalid);
        };
        let user_id = token.user_id;
        let outcome = match token.rotation(now) {
            Rotation::Rotate => {
                sqlx::query("UPDATE refresh_tokens SET state = 'spent' WHERE hash = $1")
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
                sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family = $1")
                    .bind(token.family)
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
        // One statement: find the family and revoke it.
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

    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt> {
        let cutoff = now - window;
        // One statement: the upsert counts the attempt only while the window is
        // over (a new one starts) or has room, under the row lock that
        // serialises every take of one key. When it counts nothing, the second
        // branch reads the full window's start for the answer.
        for _ in 0..TAKE_ATTEMPTS {
            let row = sqlx::query(
                "WITH taken AS ( \
                   INSERT INTO login_failures AS f (key, count, window_started) VALUES ($1, 1, $2) \
                   ON CONFLICT (key) DO UPDATE SET \
                     count = CASE WHEN f.window_started <= $3 THEN 1 ELSE f.count + 1 END, \
                     window_started = CASE WHEN f.window_started <= $3 THEN $2 ELSE f.window_started END \
                   WHERE f.window_started <= $3 OR f.count < $4 \
                   RETURNING count, window_started) \
                 SELECT true AS taken, count, window_started FROM taken \
                 UNION ALL \
                 SELECT false, count, window_started FROM login_failures \
                 WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM taken)",
            )
            .bind(key)
            .bind(now)
            .bind(cutoff)
            .bind(i64::from(max))
            .fetch_optional(&self.pool)
            .await
            .map_err(e)?;
            // The second branch reads the statement's snapshot, which can predate
            // the row version the upsert found full (a take committed meanwhile):
            // no row, or an ended window. Then the statement is run again.
            match row.as_ref().map(accounts::login_attempt).transpose()? {
                Some(LoginAttempt::Refused { window_started }) if window_started <= cutoff => {}
                Some(attempt) => return Ok(attempt),
                None => {}
            }
        }
        Err(StorageError::transient(
            "login attempt counter kept changing",
        ))
    }

    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()> {
        // One statement under the row lock; the last attempt of a window empties
        // it (see `EMPTIED_WINDOW`).
        sqlx::query(
            "UPDATE login_failures SET \
               count = CASE WHEN count > 1 THEN count - 1 ELSE 1 END, \
               window_started = CASE WHEN count > 1 THEN window_started ELSE $3 END \
             WHERE key = $1 AND window_started = $2",
        )
        .bind(key)
        .bind(window_started)
        .bind(accounts::EMPTIED_WINDOW)
        .execute(&self.pool)
        .await
        .map_err(e)?;
        Ok(())
    }

    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()> {
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
        codec::all(&rows, accounts::address)
    }

    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        // Locking the owner serialises every save of one user's addresses. The
        // count below is a later statement, so (READ COMMITTED) it sees every
        // address the previous holder of the lock committed: concurrent creates
        // cannot both take the last place, nor two defaults both stay.
        let owner = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(address.user_id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
        if owner.is_none() {
            return Err(StorageError::NotFound);
        }
        let counted = sqlx::query(
            "SELECT count(*) AS kept, count(*) FILTER (WHERE id = $2) AS present \
             FROM addresses WHERE user_id = $1",
        )
        .bind(address.user_id.0)
        .bind(address.id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        accounts::address_limit(&counted, max_addresses)?;
        if address.is_default {
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
        let mut upsert = accounts::upsert_address::<Postgres>(address);
        upsert.build().execute(&mut *tx).await.map_err(e)?;
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
}
