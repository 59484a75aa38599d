//! Accounts: users and sellers, single-use and refresh tokens, login throttling, addresses.
//!
//! Part of the storage contract: see the [module documentation](super).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::StorageResult;
use crate::address::Address;
use crate::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use crate::ids::{AddressId, TokenFamilyId, UserId};
use crate::outbox::OutboxMessage;
use crate::user::{SellerStatus, User};

/// What redeeming a single-use token does, atomically with marking it used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenEffect {
    /// Marks the user's email as verified.
    VerifyEmail,
    /// Replaces the password hash and revokes every refresh token of the user.
    ResetPassword {
        /// The new argon2id PHC string.
        password_hash: String,
    },
}

/// The outcome of presenting a refresh token for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was live; it is now spent and its successor is live.
    Rotated {
        /// Whose token it was.
        user_id: UserId,
        /// The login it belongs to, as its successor does.
        family: TokenFamilyId,
    },
    /// The token had already been rotated or revoked: a sign of theft. The whole
    /// family is now revoked, and no successor was stored.
    Reused {
        /// Whose token it was.
        user_id: UserId,
    },
    /// Unknown or expired token; nothing changed.
    Invalid,
}

/// The answer to asking for one login attempt under a throttle key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The attempt is counted: the key's window, which started at
    /// `window_started`, now holds `count` attempts, this one included.
    Taken {
        /// Attempts counted in the window, this one included.
        count: u32,
        /// When the window the attempt is counted in started.
        window_started: DateTime<Utc>,
    },
    /// The attempt is not counted: the key's window, which started at
    /// `window_started`, already holds the most attempts allowed.
    Refused {
        /// When the full window started; it ends one window length later.
        window_started: DateTime<Utc>,
    },
}

/// Accounts: what a backend stores for this concept. See the
/// [storage contract](super) for what **atomic** and **conditional** mean.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    // ----- users -----------------------------------------------------------------
    /// **Atomic.** Stores a new user, an optional single-use token for it and the
    /// messages its registration sends. Fails with `AlreadyExists("email")` when the
    /// (already lower-cased) email is taken.
    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()>;

    /// The user with this id.
    async fn user(&self, id: UserId) -> StorageResult<Option<User>>;

    /// The user `user` when it is active **and** its login `family` is still
    /// live, i.e. holds a refresh token of this user that is neither spent nor
    /// revoked; `None` otherwise. What authenticating an access token reads on
    /// every request, so one query where the backend can, by primary key and
    /// index only. Because logout, reuse detection, a password reset and
    /// deactivation all revoke refresh tokens, each of them ends the access
    /// tokens of the logins it revokes at once.
    async fn session_user(
        &self,
        user: UserId,
        family: TokenFamilyId,
    ) -> StorageResult<Option<User>>;

    /// The users with these ids that exist, in any order, in one query where the
    /// backend can (a cart or checkout reads all its sellers at once).
    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>>;

    /// The user with this (lower-cased) email.
    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>>;

    /// Replaces the profile fields (name, phone) of a user; returns the updated user,
    /// or `None` when there is no such user.
    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>>;

    /// **Atomic.** Sets a seller's verification status and records the messages
    /// announcing it. `NotFound` when no seller has this id.
    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()>;

    /// **Atomic.** Activates or deactivates a user; deactivation also revokes every
    /// refresh token of the user. `NotFound` when there is no such user.
    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()>;

    /// Sellers ordered by id, after `after`, optionally of one status.
    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>>;

    // ----- single-use tokens (email verification, password reset) ----------------
    /// **Atomic.** Stores a single-use token and the message that delivers it.
    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()>;

    /// **Atomic, conditional.** When a token with this hash and purpose exists,
    /// is unused and expires after `now`, marks it used and applies `effect`;
    /// returns its user. Otherwise changes nothing and returns `None`. Of two
    /// concurrent redemptions at most one succeeds.
    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>>;

    // ----- refresh tokens --------------------------------------------------------
    /// Stores a new live refresh token.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()>;

    /// **Atomic, conditional.** Rotates the live token with hash `presented`
    /// (unexpired at `now`): marks it spent and stores a live token of the same user
    /// and family with hash `next_hash`, expiring at `next_expires_at`. Presenting a
    /// spent or revoked token revokes its whole family. Of two concurrent rotations
    /// of one token, exactly one gets `Rotated`.
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome>;

    /// Revokes the family of the token with this hash (a logout); returns whether
    /// such a token existed.
    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool>;

    // ----- login throttling ------------------------------------------------------
    /// **Atomic, conditional.** Takes one login attempt under `key`, before the
    /// password is checked. A key's window holds a count and the time it
    /// started; a window that started `window` or more before `now` (or none)
    /// is over, and a new one starting at `now` replaces it. The attempt is
    /// counted (`Taken`) while the open window holds fewer than `max` attempts
    /// (`max` is at least 1), and refused otherwise, changing nothing. However
    /// many callers race on one key, exactly as many as the window has room for
    /// get `Taken`: the check and the count are one step.
    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt>;

    /// **Atomic, conditional.** Gives back one attempt taken under `key` in the
    /// window that started at `window_started` (a successful login, or an
    /// attempt that never got to the password): the count goes down by one,
    /// never below zero. Changes nothing when the key's window is another one
    /// by now (it was cleared or has been replaced).
    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()>;

    /// Forgets every attempt counted under `key` (a successful login to the
    /// account it names).
    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()>;

    // ----- addresses -------------------------------------------------------------
    /// The addresses of a user, oldest first.
    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>>;

    /// **Atomic, conditional.** Inserts or replaces an address (matched by id and
    /// user). A *new* address is stored only while the user keeps fewer than
    /// `max_addresses`; otherwise nothing changes and the call fails with
    /// `Precondition`. Replacing an existing address is never refused by the
    /// limit. When the address is the default, every other address of the user
    /// stops being the default in the same step. Concurrent saves for one user
    /// are serialised: however many race, the user never ends up with more than
    /// `max_addresses` addresses, nor with two defaults.
    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()>;

    /// Deletes one of the user's addresses; returns whether it existed.
    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool>;
}

/// Forwards every method to the shared store.
#[async_trait]
impl<T: AccountStore + ?Sized> AccountStore for std::sync::Arc<T> {
    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        (**self).create_user(user, token, outbox).await
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        (**self).user(id).await
    }

    async fn session_user(
        &self,
        user: UserId,
        family: TokenFamilyId,
    ) -> StorageResult<Option<User>> {
        (**self).session_user(user, family).await
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        (**self).users(ids).await
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        (**self).user_by_email(email).await
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        (**self).update_profile(id, name, phone).await
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        (**self).set_seller_status(id, status, outbox).await
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        (**self).set_user_active(id, active).await
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        (**self).list_sellers(status, after, limit).await
    }

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        (**self).insert_token(token, outbox).await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        (**self).redeem_token(hash, purpose, now, effect).await
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        (**self).insert_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        (**self)
            .rotate_refresh_token(presented, next_hash, next_expires_at, now)
            .await
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        (**self).revoke_refresh_family(hash).await
    }

    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt> {
        (**self).take_login_attempt(key, now, window, max).await
    }

    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()> {
        (**self).give_back_login_attempt(key, window_started).await
    }

    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()> {
        (**self).clear_login_attempts(key).await
    }

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        (**self).addresses(user).await
    }

    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()> {
        (**self).save_address(address, max_addresses).await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        (**self).delete_address(user, id).await
    }
}
