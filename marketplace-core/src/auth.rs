//! Authentication: password hashing, access tokens (JWT), rotating refresh tokens,
//! single-use email tokens, and login throttling.

use std::net::IpAddr;
use std::time::Duration as StdDuration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fields::{Email, Password};
use crate::ids::{TokenFamilyId, UserId};
use crate::marketplace::Marketplace;
use crate::notify::Notification;
use crate::storage::{LoginAttempt, RotateOutcome, Storage, TokenEffect};
use crate::user::{Principal, Role, User};

/// A signing secret for access tokens. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// The smallest accepted secret, in bytes (HS256 wants at least 256 bits).
    pub const MIN_LEN: usize = 32;

    /// Wraps a secret of at least [`Self::MIN_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<JwtSecret, String> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(format!(
                "the JWT secret must have at least {} bytes",
                Self::MIN_LEN
            ));
        }
        Ok(JwtSecret(bytes))
    }

    /// A fresh random secret, as a string fit for a file or variable.
    pub fn generate() -> String {
        random_token()
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// How expensive password hashing is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
}

impl HashCost {
    /// OWASP's recommended argon2id cost (19 MiB, 2 passes).
    pub const RECOMMENDED: HashCost = HashCost {
        memory_kib: 19_456,
        iterations: 2,
    };
    /// The cheapest cost argon2 allows: for tests only.
    pub const FAST_INSECURE: HashCost = HashCost {
        memory_kib: 8,
        iterations: 1,
    };
}

/// Authentication settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Key that signs access tokens.
    pub jwt_secret: JwtSecret,
    /// Keys no longer signing but still accepted, so tokens signed before a
    /// rotation stay valid until they expire (default none).
    pub previous_secrets: Vec<JwtSecret>,
    /// Lifetime of an access token (default 15 minutes).
    pub access_ttl: Duration,
    /// Lifetime of a refresh token (default 30 days).
    pub refresh_ttl: Duration,
    /// Lifetime of an email-verification token (default 48 hours).
    pub verify_email_ttl: Duration,
    /// Lifetime of a password-reset token (default 1 hour).
    pub reset_password_ttl: Duration,
    /// Whether an unverified email blocks cart and checkout (default off).
    pub require_verified_email: bool,
    /// Login attempts allowed per account within `throttle_window` (default 5,
    /// at least 1); a successful login starts the account's count afresh.
    pub max_failures_per_account: u32,
    /// Login attempts allowed per client address within `throttle_window`
    /// (default 20, at least 1); a successful login does not count.
    pub max_failures_per_client: u32,
    /// The window attempts are counted in (default 15 minutes).
    pub throttle_window: Duration,
    /// Password hashing cost.
    pub hash_cost: HashCost,
    /// Password hashes computed at once (default: the number of CPUs). Each
    /// takes the cost's memory (19 MiB at the recommended cost), so this bounds
    /// what a burst of logins can take.
    pub max_concurrent_hashes: usize,
    /// Logins and registrations that may wait for a hash slot (default 64);
    /// beyond them a request is refused at once with [`Error::Busy`].
    pub max_waiting_hashes: usize,
}

impl AuthConfig {
    /// The defaults, signing with `jwt_secret`.
    pub fn new(jwt_secret: JwtSecret) -> AuthConfig {
        AuthConfig {
            jwt_secret,
            previous_secrets: Vec::new(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
            verify_email_ttl: Duration::hours(48),
            reset_password_ttl: Duration::hours(1),
            require_verified_email: false,
            max_failures_per_account: 5,
            max_failures_per_client: 20,
            throttle_window: Duration::minutes(15),
            hash_cost: HashCost::RECOMMENDED,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_waiting_hashes: 64,
        }
    }
}

/// The bounded pool password hashes run in: a fixed number at once, a bounded
/// queue behind them.
pub(crate) struct HashSlots {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

impl HashSlots {
    pub(crate) fn new(config: &AuthConfig) -> HashSlots {
        HashSlots {
            permits: tokio::sync::Semaphore::new(config.max_concurrent_hashes.max(1)),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: config.max_waiting_hashes,
        }
    }

    /// Runs `work` (a hash or a verification) in a slot, waiting for one while
    /// the queue has room; `Busy` when it has none.
    pub(crate) async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        use std::sync::atomic::Ordering;
        let _permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                /// Leaves the queue however the wait ends (a client that hangs
                /// up drops it).
                struct InQueue<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for InQueue<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::Busy {
                        retry_after: std::time::Duration::from_secs(1),
                    });
                }
                let _queued = InQueue(&self.waiting);
                self.permits
                    .acquire()
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
            }
        };
        work.await
    }
}

/// What a single-use token proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// The holder controls the account's mailbox.
    VerifyEmail,
    /// The holder may set a new password.
    ResetPassword,
}

impl TokenPurpose {
    /// The purpose name as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }

    /// Parses a stored purpose name.
    pub fn parse(s: &str) -> Option<TokenPurpose> {
        match s {
            "verify_email" => Some(TokenPurpose::VerifyEmail),
            "reset_password" => Some(TokenPurpose::ResetPassword),
            _ => None,
        }
    }
}

/// A single-use token as stored: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Whose token.
    pub user_id: UserId,
    /// What it proves.
    pub purpose: TokenPurpose,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// A refresh token as stored: only its hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Whose token.
    pub user_id: UserId,
    /// The login it descends from; reuse revokes the whole family.
    pub family: TokenFamilyId,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// The tokens a login or refresh returns.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Serialize)]
pub struct TokenPair {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Long-lived opaque token for `/auth/refresh`; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    /// The login the token was issued to: its refresh-token family. Ending the
    /// login (logout, reuse detection, password reset, deactivation) ends the
    /// token. Required: a token without it names no login and is refused.
    fam: TokenFamilyId,
    iat: i64,
    exp: i64,
    iss: String,
}

const ISSUER: &str = "marketplace";

/// Signs and checks access tokens; the algorithm is pinned to HS256.
pub(crate) struct JwtKeys {
    encoding: EncodingKey,
    /// The signing key first, then the previous ones.
    decoding: Vec<DecodingKey>,
    validation: Validation,
}

impl JwtKeys {
    pub(crate) fn new(secret: &JwtSecret, previous: &[JwtSecret]) -> JwtKeys {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.algorithms = vec![jsonwebtoken::Algorithm::HS256];
        validation.leeway = 0;
        // `exp` must be present (required below) but is compared against the
        // marketplace's clock in `authenticate`, so an injected clock is honoured.
        validation.validate_exp = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: std::iter::once(secret)
                .chain(previous)
                .map(|s| DecodingKey::from_secret(&s.0))
                .collect(),
            validation,
        }
    }
}

/// A random 256-bit token, base64url.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: what storage keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn argon2(cost: HashCost) -> Result<Argon2<'static>> {
    let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with argon2id off the async threads.
pub(crate) async fn hash_password(password: &Password, cost: HashCost) -> Result<String> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2(cost)?
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(e.to_string()))
    })
    .await
    .map_err(Error::internal)?
}

/// Checks a password against a stored hash off the async threads.
pub(crate) async fn verify_password(password: &str, hash: &str) -> Result<bool> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| Error::internal(e.to_string()))?;
        // The cost is read from the hash itself.
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(Error::internal)?
}

/// A login attempt counted under a throttle key, remembered so it can be given
/// back.
#[derive(Clone, Copy)]
struct TakenAttempt<'k> {
    key: &'k str,
    window_started: DateTime<Utc>,
}

impl<S: Storage> Marketplace<S> {
    /// Establishes who presents an access token: checks signature, algorithm,
    /// issuer, expiry and issue time, then, in one storage read, that the account
    /// is still active and the login the token was issued to is still live (not
    /// logged out, revoked by a password reset or deactivation, or ended by
    /// refresh-token reuse).
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal> {
        let keys = &self.inner.jwt;
        let data = keys
            .decoding
            .iter()
            .find_map(|key| {
                jsonwebtoken::decode::<Claims>(access_token, key, &keys.validation).ok()
            })
            .ok_or(Error::Unauthenticated)?;
        let now = self.now().timestamp();
        // Expiry and a sane issue time, against the marketplace's clock.
        if data.claims.exp <= now || data.claims.iat > now + 60 {
            return Err(Error::Unauthenticated);
        }
        let user_id: UserId = data
            .claims
            .sub
            .parse()
            .map_err(|_| Error::Unauthenticated)?;
        let user = self
            .storage()
            .session_user(user_id, data.claims.fam)
            .await?
            .filter(|u| u.active && u.role == data.claims.role)
            .ok_or(Error::Unauthenticated)?;
        Ok(Principal {
            user_id: user.id,
            role: user.role,
        })
    }

    /// Signs in with email and password. Attempts are throttled per account and
    /// per `client` address: each is counted before the password is checked, so
    /// concurrent guesses get no more tries than sequential ones. A success
    /// clears the account's count and gives back its own attempt on the client
    /// address. The error never says whether the email exists.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<TokenPair> {
        let cfg = &self.inner.config.auth;
        let now = self.now();
        // Only a valid address can name an account, so only a valid address gets an
        // account throttle key: the raw text a client sent never reaches storage
        // (a NUL or any other byte it cannot hold would fail there). Without one,
        // only the client address counts.
        let email = Email::parse(email).ok();
        let account_key = email.as_ref().map(|e| format!("account:{e}"));
        let client_key = client.map(|ip| format!("client:{ip}"));
        let on_account = match &account_key {
            Some(key) => Some(
                self.take_login_attempt(key, cfg.max_failures_per_account, now)
                    .await?,
            ),
            None => None,
        };
        let on_client = match &client_key {
            Some(key) => match self
                .take_login_attempt(key, cfg.max_failures_per_client, now)
                .await
            {
                Ok(taken) => Some(taken),
                Err(refused) => {
                    // This attempt never reaches the password: it does not count
                    // against the account either.
                    self.give_back_login_attempts(&[on_account]).await;
                    return Err(refused);
                }
            },
            None => None,
        };

        let user = match self.check_password(email.as_ref(), password).await {
            Ok(user) => user,
            Err(e) => {
                // Nothing was decided (storage down, hashing busy): the attempts
                // are not spent.
                self.give_back_login_attempts(&[on_account, on_client])
                    .await;
                return Err(e);
            }
        };
        // A wrong guess keeps the attempts it took.
        let user = user.ok_or(Error::InvalidCredentials)?;
        if let Some(key) = &account_key {
            self.storage().clear_login_attempts(key).await?;
        }
        // Only this login's own attempt: a client cannot erase its wrong guesses
        // by signing in to an account of its own in between.
        if let Some(taken) = on_client {
            self.storage()
                .give_back_login_attempt(taken.key, taken.window_started)
                .await?;
        }
        self.issue_tokens(user.id, user.role, TokenFamilyId(self.new_id()))
            .await
    }

    /// The active account `email` names when `password` is its password; `None`
    /// for a wrong password, an unknown email or a deactivated account.
    async fn check_password(&self, email: Option<&Email>, password: &str) -> Result<Option<User>> {
        let user = match email {
            Some(e) => self.storage().user_by_email(e.as_str()).await?,
            None => None,
        };
        // Verify against a fixed hash when the account is unknown, so the answer
        // takes as long as for a real account.
        let hash = user
            .as_ref()
            .map_or(self.inner.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let ok = self
            .inner
            .hashing
            .run(verify_password(password, hash))
            .await?;
        Ok(user.filter(|u| ok && u.active))
    }

    /// Takes one login attempt under `key`, or `RateLimited` until its window
    /// ends when the window already holds `max`.
    async fn take_login_attempt<'k>(
        &self,
        key: &'k str,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<TakenAttempt<'k>> {
        let window = self.inner.config.auth.throttle_window;
        // A limit of 0 would lock everyone out for good: one attempt is the least.
        let max = max.max(1);
        let attempt = self
            .retry(|| self.storage().take_login_attempt(key, now, window, max))
            .await?;
        match attempt {
            LoginAttempt::Taken { window_started, .. } => Ok(TakenAttempt {
                key,
                window_started,
            }),
            LoginAttempt::Refused { window_started } => {
                let wait = (window_started + window - now).num_seconds().max(1);
                Err(Error::RateLimited {
                    retry_after: StdDuration::from_secs(wait.unsigned_abs()),
                })
            }
        }
    }

    /// Gives back attempts that never got a verdict. Best effort: the caller is
    /// already answering with another error, and an attempt left counted only
    /// errs on the side of caution.
    async fn give_back_login_attempts(&self, taken: &[Option<TakenAttempt<'_>>]) {
        for t in taken.iter().flatten() {
            if let Err(e) = self
                .storage()
                .give_back_login_attempt(t.key, t.window_started)
                .await
            {
                tracing::warn!(error = %e, "could not give back a login attempt");
            }
        }
    }

    async fn issue_tokens(
        &self,
        user_id: UserId,
        role: Role,
        family: TokenFamilyId,
    ) -> Result<TokenPair> {
        let now = self.now();
        let (pair, hash) = self.new_token_pair(user_id, role, family)?;
        let record = RefreshToken {
            hash,
            user_id,
            family,
            expires_at: now + self.inner.config.auth.refresh_ttl,
            created_at: now,
        };
        self.storage().insert_refresh_token(&record).await?;
        Ok(pair)
    }

    /// A signed access token of login `family` and a fresh refresh token with its
    /// hash.
    fn new_token_pair(
        &self,
        user_id: UserId,
        role: Role,
        family: TokenFamilyId,
    ) -> Result<(TokenPair, String)> {
        let cfg = &self.inner.config.auth;
        let now = self.now();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            fam: family,
            iat: now.timestamp(),
            exp: (now + cfg.access_ttl).timestamp(),
            iss: ISSUER.to_owned(),
        };
        let access_token = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.inner.jwt.encoding,
        )
        .map_err(Error::internal)?;
        let refresh_token = random_token();
        let hash = token_hash(&refresh_token);
        let pair = TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer",
            expires_in: cfg.access_ttl.num_seconds(),
        };
        Ok((pair, hash))
    }

    /// Exchanges a refresh token for a new pair. The presented token is spent;
    /// presenting a spent token again revokes every token of that login.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let presented = token_hash(refresh_token);
        let now = self.now();
        let next = random_token();
        let next_hash = token_hash(&next);
        let expires_at = now + self.inner.config.auth.refresh_ttl;
        let outcome = self
            .retry(|| {
                self.storage()
                    .rotate_refresh_token(&presented, &next_hash, expires_at, now)
            })
            .await?;
        match outcome {
            RotateOutcome::Rotated { user_id, family } => {
                // Not `session_user`: the new pair is this rotation's answer even
                // when a concurrent presentation of the same token (a reuse) has
                // revoked the login meanwhile; its access token then dies with
                // the login like every other.
                let user = self
                    .storage()
                    .user(user_id)
                    .await?
                    .filter(|u| u.active)
                    .ok_or(Error::Unauthenticated)?;
                let (mut pair, _) = self.new_token_pair(user.id, user.role, family)?;
                pair.refresh_token = next;
                Ok(pair)
            }
            RotateOutcome::Reused { user_id } => {
                tracing::warn!(%user_id, "refresh token reused; its family was revoked");
                Err(Error::Unauthenticated)
            }
            RotateOutcome::Invalid => Err(Error::Unauthenticated),
        }
    }

    /// Revokes the login a refresh token belongs to, and with it the access tokens
    /// issued to that login. Unknown tokens are ignored, so logging out twice is
    /// harmless.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        self.storage()
            .revoke_refresh_family(&token_hash(refresh_token))
            .await?;
        Ok(())
    }

    /// Confirms an email address with the token mailed at registration.
    pub async fn verify_email(&self, token: &str) -> Result<()> {
        let now = self.now();
        self.storage()
            .redeem_token(
                &token_hash(token),
                TokenPurpose::VerifyEmail,
                now,
                &TokenEffect::VerifyEmail,
            )
            .await?
            .map(|_| ())
            .ok_or(Error::InvalidToken)
    }

    /// Mails a fresh verification token to a signed-in user whose email is not yet
    /// verified.
    pub async fn resend_verification(&self, who: &Principal) -> Result<()> {
        let user = self
            .storage()
            .user(who.user_id)
            .await?
            .ok_or(Error::Unauthenticated)?;
        if user.email_verified {
            return Err(Error::conflict(
                "already_verified",
                "the email address is already verified",
            ));
        }
        let (token, record) = self.one_time_token(user.id, TokenPurpose::VerifyEmail);
        let mail = self.render(&Notification::VerifyEmail {
            user: &user,
            token: &token,
        })?;
        self.storage().insert_token(&record, &[mail]).await?;
        Ok(())
    }

    /// Starts a password reset: mails a single-use token when the email belongs to
    /// an active account. Succeeds either way, so it never reveals whether it does.
    pub async fn request_password_reset(&self, email: &str) -> Result<()> {
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        let Some(user) = self
            .storage()
            .user_by_email(email.as_str())
            .await?
            .filter(|u| u.active)
        else {
            return Ok(());
        };
        let (token, record) = self.one_time_token(user.id, TokenPurpose::ResetPassword);
        let mail = self.render(&Notification::PasswordReset {
            user: &user,
            token: &token,
        })?;
        self.storage().insert_token(&record, &[mail]).await?;
        Ok(())
    }

    /// Sets a new password with a reset token; every existing login of the account
    /// is revoked.
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<()> {
        let password = Password::parse(new_password).map_err(|e| Error::Validation(vec![e]))?;
        let password_hash = self
            .inner
            .hashing
            .run(hash_password(&password, self.inner.config.auth.hash_cost))
            .await?;
        self.storage()
            .redeem_token(
                &token_hash(token),
                TokenPurpose::ResetPassword,
                self.now(),
                &TokenEffect::ResetPassword { password_hash },
            )
            .await?
            .map(|_| ())
            .ok_or(Error::InvalidToken)
    }

    pub(crate) fn one_time_token(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> (String, OneTimeToken) {
        let cfg = &self.inner.config.auth;
        let ttl = match purpose {
            TokenPurpose::VerifyEmail => cfg.verify_email_ttl,
            TokenPurpose::ResetPassword => cfg.reset_password_ttl,
        };
        let now = self.now();
        let token = random_token();
        let record = OneTimeToken {
            hash: token_hash(&token),
            user_id,
            purpose,
            expires_at: now + ttl,
            created_at: now,
        };
        (token, record)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hashing_runs_a_bounded_number_at_once_behind_a_bounded_queue() {
        let secret = JwtSecret::new(vec![7u8; 32]).unwrap();
        let mut config = AuthConfig::new(secret);
        config.max_concurrent_hashes = 2;
        config.max_waiting_hashes = 3;
        let slots = Arc::new(HashSlots::new(&config));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (slots, now, most) = (slots.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    slots
                        .run(async {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(n, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            now.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        let (mut done, mut busy) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => done += 1,
                Err(Error::Busy { retry_after }) => {
                    assert!(retry_after.as_secs() >= 1);
                    busy += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(
            (done, busy),
            (5, 5),
            "2 at once and 3 waiting; the rest refused"
        );
        assert_eq!(most.load(Ordering::SeqCst), 2, "never more than 2 at once");
        // The queue empties: later work runs again.
        slots.run(async { Ok(()) }).await.unwrap();
        assert_eq!(slots.waiting.load(Ordering::SeqCst), 0);
    }
}
