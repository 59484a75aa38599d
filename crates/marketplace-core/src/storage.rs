//! The `Storage` trait: what a backend must provide, and the contract it must keep.
//!
//! Core computes every decision (prices, snapshots, which transition is legal,
//! which mails to send); a backend stores and applies them. Each *atomic step* of
//! the domain is one method here, so a backend can use its native atomicity: a
//! lock in memory, a transaction in SQL, a session transaction in MongoDB.
//!
//! # Contract
//! - Methods marked **atomic** either apply every write they describe or none, and
//!   concurrent callers never observe a partial application.
//! - **Conditional** writes (compare-and-swap) never overwrite a value that changed
//!   since the caller read it; they report the mismatch instead.
//! - Outbox messages handed to a method are written in the same atomic step as the
//!   change that caused them.
//! - Timestamps are stored with at least millisecond precision and read back equal
//!   to what was written (core truncates them to milliseconds first).
//! - Errors: [`StorageError::Transient`] marks a failure worth retrying as a whole
//!   (serialization failures, busy databases, transient transaction errors); core
//!   retries those a bounded number of times. Everything else is final.
//!
//! The `marketplace-conformance` crate is this contract made executable: a backend
//! is correct when it passes that suite.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::address::Address;
use crate::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use crate::cart::{Cart, WishlistEntry};
use crate::catalog::{Category, Product, ProductQuery};
use crate::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use crate::ids::{AddressId, CategoryId, CheckoutId, MessageId, OrderId, ProductId, UserId};
use crate::order::{Order, OrderQuery, OrderTransition};
use crate::outbox::{DeliveryUpdate, OutboxMessage, OutboxQuery};
use crate::user::{SellerStatus, User};

/// A boxed error from a backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The addressed record does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; names what was duplicated (`email`,
    /// `category name`, `idempotency key`).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A precondition of a conditional write did not hold.
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// A failure that may succeed when the whole call is repeated.
    #[error("transient storage failure: {0}")]
    Transient(#[source] BoxError),
    /// Any other backend failure.
    #[error("storage failure: {0}")]
    Backend(#[source] BoxError),
}

impl StorageError {
    /// Wraps a driver error as a final backend failure.
    pub fn backend(e: impl Into<BoxError>) -> Self {
        StorageError::Backend(e.into())
    }

    /// Wraps a driver error as a retryable failure.
    pub fn transient(e: impl Into<BoxError>) -> Self {
        StorageError::Transient(e.into())
    }
}

/// The result type of storage calls.
pub type StorageResult<T> = Result<T, StorageError>;

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

/// Failed login attempts counted for one key within a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures in the current window.
    pub count: u32,
    /// When the current window started.
    pub window_started: DateTime<Utc>,
}

/// Persistence for the marketplace. See the [module documentation](self) for the
/// contract every method keeps.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Checks that the backend can serve requests (used by readiness probes).
    async fn ping(&self) -> StorageResult<()>;

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

    /// The users with these ids that exist, in any order (one query where the
    /// backend can; the provided version asks for each in turn).
    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(self.user(*id).await?);
        }
        Ok(found)
    }

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

    // ----- single-use tokens (email verification, password reset) -----------------

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

    // ----- refresh tokens ------------------------------------------------------------

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

    // ----- login throttling ------------------------------------------------------------

    /// **Atomic.** Counts one failed login for `key`: starts a new window when the
    /// current one began more than `window` before `now`. Returns the new count.
    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures>;

    /// Failures counted for `key` in the window still open at `now`, if any.
    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>>;

    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> StorageResult<()>;

    // ----- addresses -----------------------------------------------------------------

    /// The addresses of a user, oldest first.
    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>>;

    /// **Atomic.** Inserts or replaces an address (matched by id and user). When it
    /// is the default, every other address of the user stops being the default in
    /// the same step.
    async fn save_address(&self, address: &Address) -> StorageResult<()>;

    /// Deletes one of the user's addresses; returns whether it existed.
    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool>;

    // ----- categories -------------------------------------------------------------------

    /// Stores a category; `AlreadyExists("category name")` when the name is taken
    /// (case-insensitively).
    async fn insert_category(&self, category: &Category) -> StorageResult<()>;

    /// Every category, by name.
    async fn categories(&self) -> StorageResult<Vec<Category>>;

    /// One category.
    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>>;

    /// Renames a category; `false` when it does not exist, `AlreadyExists` when the
    /// name is taken.
    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool>;

    /// **Conditional.** Deletes a category unless a product uses it
    /// (`Precondition`); `false` when it does not exist.
    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool>;

    // ----- products ------------------------------------------------------------------------

    /// Stores a new product.
    async fn insert_product(&self, product: &Product) -> StorageResult<()>;

    /// One product, whatever its state.
    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>>;

    /// The products with these ids that exist, in any order.
    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>>;

    /// **Conditional.** Replaces the product whose stored version is
    /// `expected_version` with `product` (whose `version` the caller has already
    /// incremented). `Precondition` when the version moved (another edit, or a
    /// checkout or restock changed the stock), `NotFound` when it does not exist.
    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()>;

    /// A page of products matching `query` in its sort order, starting after its
    /// cursor. See [`ProductQuery`] for the meaning of each filter.
    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>>;

    // ----- cart and wishlist ----------------------------------------------------------------

    /// The buyer's cart; an empty cart of version 0 when none was saved.
    async fn cart(&self, buyer: UserId) -> StorageResult<Cart>;

    /// **Conditional.** Replaces the buyer's cart when its stored version is
    /// `expected_version` (0 for a cart never saved), storing `cart.version`, which
    /// the caller has incremented. `Precondition` otherwise.
    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()>;

    /// Adds a product to a wishlist; `false` when it was already there.
    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool>;

    /// Removes a product from a wishlist; `false` when it was not there.
    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool>;

    /// The buyer's wishlist, newest first.
    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>>;

    // ----- checkout and orders -----------------------------------------------------------------

    /// The checkout a buyer made with an idempotency key, if any.
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>>;

    /// **Atomic, conditional: the checkout commit.** In one step:
    /// 1. when the buyer already used `plan.idempotency_key`, returns `Replayed`
    ///    and changes nothing;
    /// 2. when the buyer's cart version is not `plan.cart_version`, returns
    ///    `CartChanged` and changes nothing;
    /// 3. decrements the stock of every reservation, each only if enough remains
    ///    and the product is still active, not archived and not blocked; when any
    ///    falls short, returns `Short` listing **every** short item with the units
    ///    available (0 for an unsellable product) and changes nothing;
    /// 4. otherwise stores the orders, the idempotency record, the outbox messages,
    ///    empties the cart (bumping its version) and bumps each product's version.
    ///
    /// Concurrent commits never oversell: stock never goes below zero.
    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome>;

    /// One order.
    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>>;

    /// The orders of one checkout, by seller id.
    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>>;

    /// A page of orders matching `query`, newest first.
    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>>;

    /// **Atomic, conditional.** When the order's status is still `t.from`: sets it to
    /// `t.to`, appends `t.change` to its history, adds back `t.restock` units to
    /// each product (bumping its version) and stores `t.outbox`; returns the updated
    /// order. When the status differs, changes nothing and returns `None`.
    /// `NotFound` when the order does not exist.
    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>>;

    // ----- notification outbox -------------------------------------------------------------------

    /// **Atomic.** Claims up to `limit` pending messages due at `now` that no live
    /// claim holds (none, or one whose lease ended before `now`), oldest due first:
    /// marks them held by `worker` until `lease_until` and returns them. Two
    /// concurrent claims never return the same message.
    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>>;

    /// **Conditional.** Records the result of a delivery attempt of a message still
    /// pending and held by `worker`: counts the attempt, applies `update` and
    /// releases the claim. `false` (nothing changed) when the claim was lost.
    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool>;

    /// Releases every claim `worker` holds without counting an attempt (shutdown).
    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64>;

    /// One message.
    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>>;

    /// A page of messages, newest first.
    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>>;

    /// **Conditional.** Puts a dead message back to pending, due at `now`, with its
    /// attempts reset; `false` when it is not dead.
    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool>;
}

/// Shares one backend between owners, and lets a host pick a backend at run time
/// (`Arc<dyn Storage>`). Every method forwards; there are no defaults to forget.
#[async_trait]
impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    async fn ping(&self) -> StorageResult<()> {
        (**self).ping().await
    }

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

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        (**self).record_login_failure(key, now, window).await
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        (**self).login_failures(key, now, window).await
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
        (**self).clear_login_failures(key).await
    }

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        (**self).addresses(user).await
    }

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        (**self).save_address(address).await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        (**self).delete_address(user, id).await
    }

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        (**self).insert_category(category).await
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        (**self).categories().await
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        (**self).category(id).await
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        (**self).rename_category(id, name).await
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        (**self).delete_category(id).await
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        (**self).insert_product(product).await
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        (**self).product(id).await
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        (**self).products(ids).await
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        (**self).update_product(product, expected_version).await
    }

    async fn list_products(&self, query: &ProductQuery) -> StorageResult<Vec<Product>> {
        (**self).list_products(query).await
    }

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        (**self).cart(buyer).await
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        (**self).save_cart(cart, expected_version).await
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        (**self).add_to_wishlist(buyer, product, at).await
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        (**self).remove_from_wishlist(buyer, product).await
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        (**self).wishlist(buyer).await
    }

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        (**self).checkout_by_key(buyer, key).await
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        (**self).commit_checkout(plan).await
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        (**self).order(id).await
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        (**self).checkout_orders(id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> StorageResult<Vec<Order>> {
        (**self).list_orders(query).await
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        (**self).transition_order(t).await
    }

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        (**self).claim_outbox(worker, now, lease_until, limit).await
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        (**self).finish_delivery(id, worker, update).await
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        (**self).release_claims(worker).await
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        (**self).outbox_message(id).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        (**self).list_outbox(query).await
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        (**self).requeue_dead(id, now).await
    }
}
