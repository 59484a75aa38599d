//! # storage-memory
//!
//! An in-memory [`Storage`] for the marketplace: everything lives in one process
//! and is lost when it exits. For tests, examples and throw-away demos.
//!
//! Atomicity comes from one mutex around the whole state: every method takes the
//! lock once, does all its reads and writes, and releases it, so each atomic step of
//! the contract is trivially all-or-nothing and serialized. (The one in-process lock
//! the design allows; the real backends use their database's transactions.)
//!
//! ## Layout
//! One module per storage concept, like every backend: `accounts`, `catalog`,
//! `shopping`, `checkout`, `orders`, `outbox`, `commission`, `ledger`, `payouts`, `payments`, each implementing its trait over the
//! shared state kept here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accounts;
mod catalog;
mod checkout;
mod commission;
mod ledger;
mod orders;
mod outbox;
mod payments;
mod payouts;
mod shopping;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken};
use marketplace_core::cart::{Cart, WishlistEntry};
use marketplace_core::catalog::{Category, Product};
use marketplace_core::checkout::CheckoutRecord;
use marketplace_core::commission::{CommissionRule, RuleScope};
use marketplace_core::ledger::{EntryKind, LedgerEntry};
use marketplace_core::order::Order;
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::payment::Payment;
use marketplace_core::payout::Payout;
use marketplace_core::{
    CategoryId, CheckoutId, Currency, IdempotencyKey, MessageId, OrderId, PaymentId, PayoutId,
    ProductId, Storage, StorageError, StorageResult, TokenFamilyId, User, UserId,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    Spent,
    Revoked,
}

/// The login attempts counted under one throttle key.
#[derive(Clone, Copy)]
struct ThrottleWindow {
    count: u32,
    started: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, User>,
    emails: HashMap<String, UserId>,
    tokens: HashMap<String, (OneTimeToken, bool)>,
    /// Refresh tokens by hash. Written only through [`State::put_refresh`] and
    /// [`State::set_refresh_state`], which keep `live_families` in step.
    refresh: HashMap<String, (RefreshToken, RefreshState)>,
    /// The hashes of each login's live refresh tokens, so checking a session is
    /// one lookup however many tokens a long login has spent.
    live_families: HashMap<TokenFamilyId, HashSet<String>>,
    /// Login attempts by throttle key, in each key's current window.
    throttle: HashMap<String, ThrottleWindow>,
    addresses: Vec<Address>,
    categories: HashMap<CategoryId, Category>,
    products: HashMap<ProductId, Product>,
    /// The catalog's two sort orders, so a page walks an order and stops after
    /// `limit` matches instead of filtering the whole catalog.
    newest: BTreeSet<(DateTime<Utc>, ProductId)>,
    by_price: BTreeSet<(i64, ProductId)>,
    /// The SKUs of products that are not archived, by seller: the uniqueness
    /// rule's index. Kept by [`State::put_product`].
    skus: HashMap<(UserId, String), ProductId>,
    carts: HashMap<UserId, Cart>,
    wishlists: HashMap<UserId, Vec<WishlistEntry>>,
    checkouts: HashMap<(UserId, IdempotencyKey), CheckoutRecord>,
    orders: BTreeMap<OrderId, Order>,
    outbox: BTreeMap<MessageId, OutboxMessage>,
    rules: BTreeMap<RuleScope, CommissionRule>,
    /// Every ledger entry, in write order.
    ledger: Vec<LedgerEntry>,
    /// `(pending, available)` by seller and currency, moved with every entry.
    balances: BTreeMap<(UserId, Currency), (i64, i64)>,
    /// Which order-bound entry kinds exist, for the one-per-order rule.
    order_entries: HashSet<(OrderId, EntryKind)>,
    payouts: HashMap<PayoutId, Payout>,
    payments: HashMap<PaymentId, Payment>,
    checkout_payment: HashMap<CheckoutId, PaymentId>,
    payment_events: HashSet<(String, String)>,
}

impl State {
    fn push_outbox(&mut self, messages: &[OutboxMessage]) {
        for m in messages {
            self.outbox.insert(m.id, m.clone());
        }
    }

    /// The key `product` holds in the SKU index, if it holds one.
    fn sku_key(product: &Product) -> Option<(UserId, String)> {
        match &product.sku {
            Some(sku) if !product.archived => Some((product.seller_id, sku.clone())),
            _ => None,
        }
    }

    /// Refuses `product` when another live product of its seller has its SKU.
    fn check_sku(&self, product: &Product) -> StorageResult<()> {
        match State::sku_key(product).and_then(|k| self.skus.get(&k)) {
            Some(owner) if *owner != product.id => Err(StorageError::AlreadyExists("sku")),
            _ => Ok(()),
        }
    }

    /// Stores `product`, keeping the sort orders and the SKU index in step (the
    /// caller has run [`State::check_sku`]).
    fn put_product(&mut self, product: &Product) {
        if let Some(old) = self.products.insert(product.id, product.clone()) {
            self.newest.remove(&(old.created_at, old.id));
            self.by_price.remove(&(old.price.amount, old.id));
            if let Some(k) = State::sku_key(&old) {
                self.skus.remove(&k);
            }
        }
        self.newest.insert((product.created_at, product.id));
        self.by_price.insert((product.price.amount, product.id));
        if let Some(k) = State::sku_key(product) {
            self.skus.insert(k, product.id);
        }
    }

    /// Stores a refresh token in `state`, replacing one with the same hash.
    fn put_refresh(&mut self, token: RefreshToken, state: RefreshState) {
        let hash = token.hash.clone();
        self.set_refresh_state(&hash, RefreshState::Revoked);
        if state == RefreshState::Live {
            self.live_families
                .entry(token.family)
                .or_default()
                .insert(hash.clone());
        }
        self.refresh.insert(hash, (token, state));
    }

    /// Moves the refresh token with this hash, if any, to `state`.
    fn set_refresh_state(&mut self, hash: &str, state: RefreshState) {
        let Some((token, current)) = self.refresh.get_mut(hash) else {
            return;
        };
        *current = state;
        let family = token.family;
        if state == RefreshState::Live {
            self.live_families
                .entry(family)
                .or_default()
                .insert(hash.to_owned());
        } else if let Some(live) = self.live_families.get_mut(&family) {
            live.remove(hash);
            if live.is_empty() {
                self.live_families.remove(&family);
            }
        }
    }

    /// Revokes every refresh token `matching` selects.
    fn revoke_refresh(&mut self, matching: impl Fn(&RefreshToken) -> bool) {
        let hashes: Vec<String> = self
            .refresh
            .values()
            .filter(|(t, _)| matching(t))
            .map(|(t, _)| t.hash.clone())
            .collect();
        for hash in hashes {
            self.set_refresh_state(&hash, RefreshState::Revoked);
        }
    }

    fn revoke_user_tokens(&mut self, user: UserId) {
        self.revoke_refresh(|t| t.user_id == user);
    }
}

/// The in-memory storage. Cheap to create; each instance is an empty marketplace.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied step behind:
        // every method validates before it writes.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn ping(&self) -> StorageResult<()> {
        Ok(())
    }

    /// One process: its own clock is the only one.
    async fn database_time(&self) -> StorageResult<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }
}
