//! Registration, profiles, and the admin's moderation of accounts.

use serde::Deserialize;

use crate::auth::{TokenPurpose, hash_password};
use crate::error::{Error, Result, Violations};
use crate::fields::{Email, Password, optional_text, phone, text};
use crate::ids::UserId;
use crate::marketplace::Marketplace;
use crate::notify::Notification;
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role, SellerStatus, SellerSummary, User};

/// A sign-up request as a client sends it; validated by [`Marketplace::register`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Login email.
    #[cfg_attr(feature = "openapi", schema(max_length = 254, format = "email"))]
    pub email: String,
    /// Clear-text password, 8..=128 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
    /// `buyer` or `seller`.
    pub role: Role,
    /// Display name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub name: Option<String>,
    /// Store name; required for sellers.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(min_length = 2, max_length = 100))]
    pub store_name: Option<String>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Changes to a profile: absent fields stay, `null` clears.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// New display name.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub name: Option<Option<String>>,
    /// New phone.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 32, pattern = "^\\+?[0-9 .()-]+$")
    )]
    pub phone: Option<Option<String>>,
}

/// A page request for the admin's seller list ([`Marketplace::sellers`]).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct SellerListQuery {
    /// Only sellers in this status.
    pub status: Option<SellerStatus>,
    /// Cursor from the previous page's `next_cursor`; empty is the first page.
    pub cursor: Option<String>,
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
}

impl<S: Storage> Marketplace<S> {
    /// Opens a buyer or seller account and mails an email-verification token.
    /// Sellers start `pending` until an admin verifies them.
    pub async fn register(&self, account: NewAccount) -> Result<User> {
        let mut v = Violations::default();
        let email = v.check(Email::parse(&account.email));
        let password = v.check(Password::parse(&account.password));
        let name = v.check(optional_text("name", account.name.as_deref(), 100));
        let store_name = match account.role {
            Role::Seller => v
                .check(text(
                    "store_name",
                    account.store_name.as_deref().unwrap_or(""),
                    2,
                    100,
                    false,
                ))
                .map(Some),
            Role::Buyer => {
                if account.store_name.is_some() {
                    v.add(
                        "store_name",
                        "not_allowed",
                        "only sellers have a store name",
                    );
                }
                Some(None)
            }
            Role::Admin => {
                v.add("role", "invalid", "must be buyer or seller");
                None
            }
        };
        v.finish()?;
        let (Some(email), Some(password), Some(name), Some(store_name)) =
            (email, password, name, store_name)
        else {
            return Err(Error::internal("validated fields missing"));
        };
        self.create_account(email, &password, account.role, name, store_name)
            .await
    }

    /// Creates an admin account. For bootstrap tools (a command line, configuration),
    /// never for open sign-up.
    pub async fn create_admin(&self, email: &str, password: &str) -> Result<User> {
        let mut v = Violations::default();
        let email = v.check(Email::parse(email));
        let password = v.check(Password::parse(password));
        v.finish()?;
        let (Some(email), Some(password)) = (email, password) else {
            return Err(Error::internal("validated fields missing"));
        };
        self.create_account(email, &password, Role::Admin, None, None)
            .await
    }

    async fn create_account(
        &self,
        email: Email,
        password: &Password,
        role: Role,
        name: Option<String>,
        store_name: Option<String>,
    ) -> Result<User> {
        let password_hash = self
            .inner
            .hashing
            .run(hash_password(password, self.inner.config.auth.hash_cost))
            .await?;
        let user = User {
            id: UserId(self.new_id()),
            email,
            password_hash,
            role,
            name,
            phone: None,
            store_name,
            seller_status: (role == Role::Seller).then_some(SellerStatus::Pending),
            // An admin's address is vouched for by the operator who created it.
            email_verified: role == Role::Admin,
            active: true,
            created_at: self.now(),
        };
        let result = if user.email_verified {
            self.storage().create_user(&user, None, &[]).await
        } else {
            let (token, record) = self.one_time_token(user.id, TokenPurpose::VerifyEmail);
            let mail = self.render(&Notification::VerifyEmail {
                user: &user,
                token: &token,
            })?;
            self.storage()
                .create_user(&user, Some(&record), &[mail])
                .await
        };
        match result {
            Ok(()) => Ok(user),
            Err(StorageError::AlreadyExists(_)) => Err(Error::conflict(
                "email_taken",
                "an account with this email already exists",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The caller's own profile.
    pub async fn profile(&self, who: &Principal) -> Result<User> {
        self.account(who).await
    }

    /// Updates the caller's own name and phone.
    pub async fn update_profile(&self, who: &Principal, update: ProfileUpdate) -> Result<User> {
        let current = self.account(who).await?;
        let mut v = Violations::default();
        let name = match &update.name {
            None => Some(current.name.clone()),
            Some(n) => v.check(optional_text("name", n.as_deref(), 100)),
        };
        let phone = match &update.phone {
            None => Some(current.phone.clone()),
            Some(p) => v.check(phone("phone", p.as_deref())),
        };
        v.finish()?;
        let (Some(name), Some(phone)) = (name, phone) else {
            return Err(Error::internal("validated fields missing"));
        };
        self.storage()
            .update_profile(who.user_id, name.as_deref(), phone.as_deref())
            .await?
            .ok_or(Error::Unauthenticated)
    }

    /// Sellers, for an admin, optionally of one status; ordered by id, paged by
    /// the last id seen.
    pub async fn list_sellers(
        &self,
        who: &Principal,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: Option<u32>,
    ) -> Result<crate::Page<SellerSummary>> {
        self.require(who, Role::Admin)?;
        let limit = self.page_size(limit);
        let sellers = self
            .storage()
            .list_sellers(status, after, limit + 1)
            .await?;
        Ok(
            crate::Page::from_overfetch(sellers, limit, |u| u.id.to_string())
                .map(|u| SellerSummary::of(&u)),
        )
    }

    /// Sellers, for an admin, a page at a time: the query's cursor is the
    /// `next_cursor` of the page before, and anything else is
    /// [`Error::Malformed`] (`invalid_cursor`).
    pub async fn sellers(
        &self,
        who: &Principal,
        query: SellerListQuery,
    ) -> Result<crate::Page<SellerSummary>> {
        self.require(who, Role::Admin)?;
        let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse::<UserId>().map_err(|_| {
                Error::malformed("cursor", "invalid_cursor", "is not a cursor of this list")
            })?),
        };
        self.list_sellers(who, query.status, after, query.limit)
            .await
    }

    /// An admin verifies a seller (`verified = true`) or rejects it; the seller is
    /// told by mail.
    pub async fn decide_seller(
        &self,
        who: &Principal,
        seller: UserId,
        verified: bool,
    ) -> Result<SellerSummary> {
        self.require(who, Role::Admin)?;
        let user = self.storage().user(seller).await?;
        self.apply_seller_decision(user, verified).await
    }

    /// Verifies (`verified = true`) or rejects a seller found by email, for
    /// bootstrap tools acting with the operator's authority (a command line),
    /// not for API callers. The same decision as [`decide_seller`](Self::decide_seller),
    /// mail included.
    pub async fn decide_seller_by_email(
        &self,
        email: &str,
        verified: bool,
    ) -> Result<SellerSummary> {
        let user = self.user_by_email_for_operator(email).await?;
        self.apply_seller_decision(user, verified).await
    }

    /// Verifies a seller by email: [`decide_seller_by_email`](Self::decide_seller_by_email)
    /// with `verified = true`.
    pub async fn verify_seller_by_email(&self, email: &str) -> Result<SellerSummary> {
        self.decide_seller_by_email(email, true).await
    }

    /// The one rule of a seller decision: only a seller account can be decided
    /// on; its new status is stored with the mail that tells it.
    async fn apply_seller_decision(
        &self,
        user: Option<User>,
        verified: bool,
    ) -> Result<SellerSummary> {
        let mut user = user
            .filter(|u| u.role == Role::Seller)
            .ok_or(Error::NotFound("seller"))?;
        let status = if verified {
            SellerStatus::Verified
        } else {
            SellerStatus::Rejected
        };
        user.seller_status = Some(status);
        let mail = self.render(&Notification::SellerDecision { seller: &user })?;
        self.storage()
            .set_seller_status(user.id, status, &[mail])
            .await?;
        Ok(SellerSummary::of(&user))
    }

    /// The account with this email, for bootstrap tools acting with the
    /// operator's authority (a command line that acts for a seller, say), not
    /// for API callers: `NotFound("user")` when there is none, a validation
    /// error on `email` when the address is malformed.
    pub async fn account_by_email(&self, email: &str) -> Result<User> {
        self.user_by_email_for_operator(email)
            .await?
            .ok_or(Error::NotFound("user"))
    }

    /// The account with this email, for the operator's by-email commands: the
    /// address is validated first (a malformed one is a validation error, never
    /// a lookup).
    async fn user_by_email_for_operator(&self, email: &str) -> Result<Option<User>> {
        let email = Email::parse(email).map_err(|e| Error::Validation(vec![e]))?;
        Ok(self.storage().user_by_email(email.as_str()).await?)
    }

    /// An admin deactivates (or reactivates) an account: a deactivated user cannot
    /// sign in, every login is revoked, and a seller's products disappear.
    pub async fn set_user_active(&self, who: &Principal, user: UserId, active: bool) -> Result<()> {
        self.require(who, Role::Admin)?;
        if user == who.user_id && !active {
            return Err(Error::conflict(
                "self_deactivation",
                "an admin cannot deactivate itself",
            ));
        }
        match self.storage().set_user_active(user, active).await {
            Err(StorageError::NotFound) => Err(Error::NotFound("user")),
            other => Ok(other?),
        }
    }

    /// Deactivates (or reactivates) the account with this email, for bootstrap
    /// tools acting with the operator's authority (a command line), not for API
    /// callers: [`set_user_active`](Self::set_user_active) as
    /// [`Principal::operator`], so its every rule holds. Returns the account as
    /// it now stands.
    pub async fn set_user_active_by_email(&self, email: &str, active: bool) -> Result<User> {
        let mut user = self.account_by_email(email).await?;
        self.set_user_active(&Principal::operator(), user.id, active)
            .await?;
        user.active = active;
        Ok(user)
    }

    /// An admin looks an account up by its email (a moderation page finding
    /// whom to deactivate, say): a malformed address is a validation error on
    /// `email`, never a lookup, and no account with it is `NotFound("user")`.
    pub async fn find_user(&self, who: &Principal, email: &str) -> Result<User> {
        self.require(who, Role::Admin)?;
        self.user_by_email_for_operator(email)
            .await?
            .ok_or(Error::NotFound("user"))
    }
}
