//! Accounts: users and sellers, single-use and refresh tokens, login throttling, addresses.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::storage::{LoginAttempt, RotateOutcome, TokenEffect};
use marketplace_core::{
    AccountStore, AddressId, SellerStatus, StorageError, StorageResult, TokenFamilyId, User, UserId,
};

use crate::{MemoryStorage, RefreshState, ThrottleWindow};

#[async_trait]
impl AccountStore for MemoryStorage {
    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut s = self.lock();
        if s.emails.contains_key(user.email.as_str()) {
            return Err(StorageError::AlreadyExists("email"));
        }
        s.emails.insert(user.email.as_str().to_owned(), user.id);
        s.users.insert(user.id, user.clone());
        if let Some(t) = token {
            s.tokens.insert(t.hash.clone(), (t.clone(), false));
        }
        s.push_outbox(outbox);
        Ok(())
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        Ok(self.lock().users.get(&id).cloned())
    }

    async fn session_user(
        &self,
        user: UserId,
        family: TokenFamilyId,
    ) -> StorageResult<Option<User>> {
        let s = self.lock();
        let live = s.live_families.get(&family).is_some_and(|hashes| {
            hashes
                .iter()
                .any(|h| s.refresh.get(h).is_some_and(|(t, _)| t.user_id == user))
        });
        Ok(s.users.get(&user).filter(|u| live && u.active).cloned())
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.users.get(id))
            .cloned()
            .collect())
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        let s = self.lock();
        Ok(s.emails.get(email).and_then(|id| s.users.get(id)).cloned())
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        let mut s = self.lock();
        Ok(s.users.get_mut(&id).map(|u| {
            u.name = name.map(str::to_owned);
            u.phone = phone.map(str::to_owned);
            u.clone()
        }))
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut s = self.lock();
        let u = s
            .users
            .get_mut(&id)
            .filter(|u| u.seller_status.is_some())
            .ok_or(StorageError::NotFound)?;
        u.seller_status = Some(status);
        s.push_outbox(outbox);
        Ok(())
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        let mut s = self.lock();
        s.users.get_mut(&id).ok_or(StorageError::NotFound)?.active = active;
        if !active {
            s.revoke_user_tokens(id);
        }
        Ok(())
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        let s = self.lock();
        let mut v: Vec<User> = s
            .users
            .values()
            .filter(|u| u.seller_status.is_some())
            .filter(|u| status.is_none() || u.seller_status == status)
            .filter(|u| after.is_none_or(|a| u.id > a))
            .cloned()
            .collect();
        v.sort_by_key(|u| u.id);
        v.truncate(limit as usize);
        Ok(v)
    }

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        let mut s = self.lock();
        s.tokens.insert(token.hash.clone(), (token.clone(), false));
        s.push_outbox(outbox);
        Ok(())
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        let mut s = self.lock();
        let Some((t, used)) = s.tokens.get_mut(hash) else {
            return Ok(None);
        };
        if *used || t.purpose != purpose || t.expires_at <= now {
            return Ok(None);
        }
        let user_id = t.user_id;
        if !s.users.contains_key(&user_id) {
            return Ok(None);
        }
        if let Some((_, used)) = s.tokens.get_mut(hash) {
            *used = true;
        }
        match effect {
            TokenEffect::VerifyEmail => {
                if let Some(u) = s.users.get_mut(&user_id) {
                    u.email_verified = true;
                }
            }
            TokenEffect::ResetPassword { password_hash } => {
                if let Some(u) = s.users.get_mut(&user_id) {
                    u.password_hash.clone_from(password_hash);
                }
                s.revoke_user_tokens(user_id);
            }
        }
        Ok(Some(user_id))
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        self.lock().put_refresh(token.clone(), RefreshState::Live);
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        let mut s = self.lock();
        let Some((token, state)) = s.refresh.get(presented).cloned() else {
            return Ok(RotateOutcome::Invalid);
        };
        match state {
            RefreshState::Live if token.expires_at > now => {
                s.set_refresh_state(presented, RefreshState::Spent);
                let next = RefreshToken {
                    hash: next_hash.to_owned(),
                    user_id: token.user_id,
                    family: token.family,
                    expires_at: next_expires_at,
                    created_at: now,
                };
                s.put_refresh(next, RefreshState::Live);
                Ok(RotateOutcome::Rotated {
                    user_id: token.user_id,
                    family: token.family,
                })
            }
            RefreshState::Live => Ok(RotateOutcome::Invalid),
            RefreshState::Spent | RefreshState::Revoked => {
                s.revoke_refresh(|t| t.family == token.family);
                Ok(RotateOutcome::Reused {
                    user_id: token.user_id,
                })
            }
        }
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        let mut s = self.lock();
        let Some(family) = s.refresh.get(hash).map(|(t, _)| t.family) else {
            return Ok(false);
        };
        s.revoke_refresh(|t| t.family == family);
        Ok(true)
    }

    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt> {
        let mut s = self.lock();
        let w = s.throttle.entry(key.to_owned()).or_insert(ThrottleWindow {
            count: 0,
            started: now,
        });
        if w.started + window <= now {
            *w = ThrottleWindow {
                count: 0,
                started: now,
            };
        }
        if w.count >= max {
            return Ok(LoginAttempt::Refused {
                window_started: w.started,
            });
        }
        w.count += 1;
        Ok(LoginAttempt::Taken {
            count: w.count,
            window_started: w.started,
        })
    }

    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()> {
        let mut s = self.lock();
        if let Some(w) = s.throttle.get_mut(key)
            && w.started == window_started
        {
            w.count = w.count.saturating_sub(1);
            if w.count == 0 {
                s.throttle.remove(key);
            }
        }
        Ok(())
    }

    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()> {
        self.lock().throttle.remove(key);
        Ok(())
    }

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        Ok(self
            .lock()
            .addresses
            .iter()
            .filter(|a| a.user_id == user)
            .cloned()
            .collect())
    }

    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()> {
        // One lock for the count, the check and the writes: concurrent saves are
        // serialised, so the limit and the one default hold.
        let mut s = self.lock();
        let mut kept = 0usize;
        let mut present = false;
        for a in s.addresses.iter().filter(|a| a.user_id == address.user_id) {
            kept += 1;
            present |= a.id == address.id;
        }
        if !present && kept >= max_addresses as usize {
            return Err(StorageError::Precondition(format!(
                "the user keeps {max_addresses} addresses already"
            )));
        }
        if address.is_default {
            for a in s
                .addresses
                .iter_mut()
                .filter(|a| a.user_id == address.user_id)
            {
                a.is_default = false;
            }
        }
        match s
            .addresses
            .iter_mut()
            .find(|a| a.id == address.id && a.user_id == address.user_id)
        {
            Some(a) => *a = address.clone(),
            None => s.addresses.push(address.clone()),
        }
        Ok(())
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        let mut s = self.lock();
        let before = s.addresses.len();
        s.addresses.retain(|a| !(a.id == id && a.user_id == user));
        Ok(s.addresses.len() != before)
    }
}
