//! # storage-memory
//!
//! An in-memory [`Storage`] for the marketplace: everything lives in one process
//! and is lost when it exits. For tests, examples and throw-away demos.
//!
//! Atomicity comes from one mutex around the whole state: every method takes the
//! lock once, does all its reads and writes, and releases it, so each atomic step of
//! the contract is trivially all-or-nothing and serialized. (The one in-process lock
//! the design allows; the real backends use their database's transactions.)
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::cart::{Cart, WishlistEntry};
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
use uuid::Uuid;

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    Spent,
    Revoked,
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, User>,
    emails: HashMap<String, UserId>,
    tokens: HashMap<String, (OneTimeToken, bool)>,
    refresh: HashMap<String, (RefreshToken, RefreshState)>,
    throttle: HashMap<String, LoginFailures>,
    addresses: Vec<Address>,
    categories: HashMap<CategoryId, Category>,
    products: HashMap<ProductId, Product>,
    /// The catalog's two sort orders, so a page walks an order and stops after
    /// `limit` matches instead of filtering the whole catalog.
    newest: BTreeSet<(DateTime<Utc>, ProductId)>,
    by_price: BTreeSet<(i64, ProductId)>,
    carts: HashMap<UserId, Cart>,
    wishlists: HashMap<UserId, Vec<WishlistEntry>>,
    checkouts: HashMap<(UserId, String), CheckoutRecord>,
    orders: BTreeMap<OrderId, Order>,
    outbox: BTreeMap<MessageId, OutboxMessage>,
}

impl State {
    fn push_outbox(&mut self, messages: &[OutboxMessage]) {
        for m in messages {
            self.outbox.insert(m.id, m.clone());
        }
    }

    /// Stores `product`, keeping the sort orders in step.
    fn put_product(&mut self, product: &Product) {
        if let Some(old) = self.products.insert(product.id, product.clone()) {
            self.newest.remove(&(old.created_at, old.id));
            self.by_price.remove(&(old.price.amount, old.id));
        }
        self.newest.insert((product.created_at, product.id));
        self.by_price.insert((product.price.amount, product.id));
    }

    fn revoke_user_tokens(&mut self, user: UserId) {
        for (t, s) in self.refresh.values_mut() {
            if t.user_id == user {
                *s = RefreshState::Revoked;
            }
        }
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
        self.lock()
            .refresh
            .insert(token.hash.clone(), (token.clone(), RefreshState::Live));
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
                if let Some(e) = s.refresh.get_mut(presented) {
                    e.1 = RefreshState::Spent;
                }
                let next = RefreshToken {
                    hash: next_hash.to_owned(),
                    user_id: token.user_id,
                    family: token.family,
                    expires_at: next_expires_at,
                    created_at: now,
                };
                s.refresh
                    .insert(next.hash.clone(), (next, RefreshState::Live));
                Ok(RotateOutcome::Rotated {
                    user_id: token.user_id,
                })
            }
            RefreshState::Live => Ok(RotateOutcome::Invalid),
            RefreshState::Spent | RefreshState::Revoked => {
                for (t, st) in s.refresh.values_mut() {
                    if t.family == token.family {
                        *st = RefreshState::Revoked;
                    }
                }
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
        for (t, st) in s.refresh.values_mut() {
            if t.family == family {
                *st = RefreshState::Revoked;
            }
        }
        Ok(true)
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<LoginFailures> {
        let mut s = self.lock();
        let entry = s.throttle.entry(key.to_owned()).or_insert(LoginFailures {
            count: 0,
            window_started: now,
        });
        if entry.window_started + window <= now {
            *entry = LoginFailures {
                count: 0,
                window_started: now,
            };
        }
        entry.count += 1;
        Ok(*entry)
    }

    async fn login_failures(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
    ) -> StorageResult<Option<LoginFailures>> {
        Ok(self
            .lock()
            .throttle
            .get(key)
            .copied()
            .filter(|f| f.window_started + window > now))
    }

    async fn clear_login_failures(&self, key: &str) -> StorageResult<()> {
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

    async fn save_address(&self, address: &Address) -> StorageResult<()> {
        let mut s = self.lock();
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

    async fn insert_category(&self, category: &Category) -> StorageResult<()> {
        let mut s = self.lock();
        let lower = category.name.to_lowercase();
        if s.categories
            .values()
            .any(|c| c.name.to_lowercase() == lower)
        {
            return Err(StorageError::AlreadyExists("category name"));
        }
        s.categories.insert(category.id, category.clone());
        Ok(())
    }

    async fn categories(&self) -> StorageResult<Vec<Category>> {
        let mut v: Vec<_> = self.lock().categories.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn category(&self, id: CategoryId) -> StorageResult<Option<Category>> {
        Ok(self.lock().categories.get(&id).cloned())
    }

    async fn rename_category(&self, id: CategoryId, name: &str) -> StorageResult<bool> {
        let mut s = self.lock();
        let lower = name.to_lowercase();
        if s.categories
            .values()
            .any(|c| c.id != id && c.name.to_lowercase() == lower)
        {
            return Err(StorageError::AlreadyExists("category name"));
        }
        Ok(s.categories
            .get_mut(&id)
            .map(|c| c.name = name.to_owned())
            .is_some())
    }

    async fn delete_category(&self, id: CategoryId) -> StorageResult<bool> {
        let mut s = self.lock();
        if s.products.values().any(|p| p.category_id == Some(id)) {
            return Err(StorageError::Precondition("category in use".into()));
        }
        Ok(s.categories.remove(&id).is_some())
    }

    async fn insert_product(&self, product: &Product) -> StorageResult<()> {
        let mut s = self.lock();
        if product
            .category_id
            .is_some_and(|c| !s.categories.contains_key(&c))
        {
            return Err(StorageError::Precondition("unknown category".into()));
        }
        s.put_product(product);
        Ok(())
    }

    async fn product(&self, id: ProductId) -> StorageResult<Option<Product>> {
        Ok(self.lock().products.get(&id).cloned())
    }

    async fn products(&self, ids: &[ProductId]) -> StorageResult<Vec<Product>> {
        let s = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| s.products.get(id))
            .cloned()
            .collect())
    }

    async fn update_product(&self, product: &Product, expected_version: u64) -> StorageResult<()> {
        let mut s = self.lock();
        if product
            .category_id
            .is_some_and(|c| !s.categories.contains_key(&c))
        {
            return Err(StorageError::Precondition("unknown category".into()));
        }
        let current = s.products.get(&product.id).ok_or(StorageError::NotFound)?;
        if current.version != expected_version {
            return Err(StorageError::Precondition("product version changed".into()));
        }
        s.put_product(product);
        Ok(())
    }

    async fn list_products(&self, q: &ProductQuery) -> StorageResult<Vec<Product>> {
        let s = self.lock();
        let ids: Box<dyn Iterator<Item = ProductId> + '_> = match (q.sort, &q.after) {
            (ProductSort::Newest, None) => Box::new(s.newest.iter().rev().map(|k| k.1)),
            (ProductSort::Newest, Some(k)) => {
                Box::new(s.newest.range(..(k.created_at, k.id)).rev().map(|k| k.1))
            }
            (ProductSort::PriceAsc, None) => Box::new(s.by_price.iter().map(|k| k.1)),
            (ProductSort::PriceAsc, Some(k)) => Box::new(
                s.by_price
                    .range((Bound::Excluded((k.price, k.id)), Bound::Unbounded))
                    .map(|k| k.1),
            ),
            (ProductSort::PriceDesc, None) => Box::new(s.by_price.iter().rev().map(|k| k.1)),
            (ProductSort::PriceDesc, Some(k)) => {
                Box::new(s.by_price.range(..(k.price, k.id)).rev().map(|k| k.1))
            }
        };
        Ok(ids
            .filter_map(|id| s.products.get(&id))
            .filter(|p| q.matches(p))
            .filter(|p| {
                !q.public_only
                    || (p.is_sellable() && s.users.get(&p.seller_id).is_some_and(User::is_selling))
            })
            .take(q.limit as usize)
            .cloned()
            .collect())
    }

    async fn cart(&self, buyer: UserId) -> StorageResult<Cart> {
        Ok(self.lock().carts.get(&buyer).cloned().unwrap_or(Cart {
            buyer_id: buyer,
            version: 0,
            lines: Vec::new(),
        }))
    }

    async fn save_cart(&self, cart: &Cart, expected_version: u64) -> StorageResult<()> {
        let mut s = self.lock();
        let current = s.carts.get(&cart.buyer_id).map_or(0, |c| c.version);
        if current != expected_version {
            return Err(StorageError::Precondition("cart version changed".into()));
        }
        s.carts.insert(cart.buyer_id, cart.clone());
        Ok(())
    }

    async fn add_to_wishlist(
        &self,
        buyer: UserId,
        product: ProductId,
        at: DateTime<Utc>,
    ) -> StorageResult<bool> {
        let mut s = self.lock();
        let list = s.wishlists.entry(buyer).or_default();
        if list.iter().any(|e| e.product_id == product) {
            return Ok(false);
        }
        list.push(WishlistEntry {
            product_id: product,
            added_at: at,
        });
        Ok(true)
    }

    async fn remove_from_wishlist(&self, buyer: UserId, product: ProductId) -> StorageResult<bool> {
        let mut s = self.lock();
        let list = s.wishlists.entry(buyer).or_default();
        let before = list.len();
        list.retain(|e| e.product_id != product);
        Ok(list.len() != before)
    }

    async fn wishlist(&self, buyer: UserId) -> StorageResult<Vec<WishlistEntry>> {
        let mut v = self
            .lock()
            .wishlists
            .get(&buyer)
            .cloned()
            .unwrap_or_default();
        v.reverse();
        Ok(v)
    }

    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &str,
    ) -> StorageResult<Option<CheckoutRecord>> {
        Ok(self.lock().checkouts.get(&(buyer, key.to_owned())).cloned())
    }

    async fn commit_checkout(&self, plan: &CheckoutPlan) -> StorageResult<CheckoutOutcome> {
        let mut s = self.lock();
        let key = (plan.buyer_id, plan.idempotency_key.clone());
        if let Some(done) = s.checkouts.get(&key) {
            return Ok(CheckoutOutcome::Replayed(done.clone()));
        }
        if s.carts.get(&plan.buyer_id).map_or(0, |c| c.version) != plan.cart_version {
            return Ok(CheckoutOutcome::CartChanged);
        }
        let short: Vec<ShortItem> = plan
            .reservations
            .iter()
            .filter_map(|r| {
                let available = s
                    .products
                    .get(&r.product_id)
                    .filter(|p| p.is_sellable())
                    .map_or(0, |p| p.stock);
                (available < r.quantity).then_some(ShortItem {
                    product_id: r.product_id,
                    requested: r.quantity,
                    available,
                })
            })
            .collect();
        if !short.is_empty() {
            return Ok(CheckoutOutcome::Short(short));
        }
        for r in &plan.reservations {
            if let Some(p) = s.products.get_mut(&r.product_id) {
                p.stock -= r.quantity;
                p.version += 1;
            }
        }
        for o in &plan.orders {
            s.orders.insert(o.id, o.clone());
        }
        s.checkouts.insert(
            key,
            CheckoutRecord {
                checkout_id: plan.checkout_id,
                request_hash: plan.request_hash.clone(),
            },
        );
        s.push_outbox(&plan.outbox);
        let cart = s.carts.entry(plan.buyer_id).or_insert(Cart {
            buyer_id: plan.buyer_id,
            version: 0,
            lines: Vec::new(),
        });
        cart.lines.clear();
        cart.version += 1;
        Ok(CheckoutOutcome::Committed)
    }

    async fn order(&self, id: OrderId) -> StorageResult<Option<Order>> {
        Ok(self.lock().orders.get(&id).cloned())
    }

    async fn checkout_orders(&self, id: CheckoutId) -> StorageResult<Vec<Order>> {
        let mut v: Vec<Order> = self
            .lock()
            .orders
            .values()
            .filter(|o| o.checkout_id == id)
            .cloned()
            .collect();
        v.sort_by_key(|o| o.seller_id);
        Ok(v)
    }

    async fn list_orders(&self, q: &OrderQuery) -> StorageResult<Vec<Order>> {
        let s = self.lock();
        let mut v: Vec<Order> = s
            .orders
            .values()
            .filter(|o| q.matches(o))
            .cloned()
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn transition_order(&self, t: &OrderTransition) -> StorageResult<Option<Order>> {
        let mut s = self.lock();
        let order = s
            .orders
            .get_mut(&t.order_id)
            .ok_or(StorageError::NotFound)?;
        if order.status != t.from {
            return Ok(None);
        }
        order.status = t.to;
        order.history.push(t.change.clone());
        order.updated_at = t.change.at;
        let updated = order.clone();
        for (product, units) in &t.restock {
            if let Some(p) = s.products.get_mut(product) {
                p.stock += units;
                p.version += 1;
            }
        }
        s.push_outbox(&t.outbox);
        Ok(Some(updated))
    }

    async fn claim_outbox(
        &self,
        worker: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StorageResult<Vec<OutboxMessage>> {
        let mut s = self.lock();
        let mut due: Vec<&mut OutboxMessage> = s
            .outbox
            .values_mut()
            .filter(|m| {
                m.status == OutboxStatus::Pending
                    && m.next_attempt_at <= now
                    && m.claimed_until.is_none_or(|u| u <= now)
            })
            .collect();
        due.sort_by_key(|m| (m.next_attempt_at, m.id));
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|m| {
                m.claimed_by = Some(worker);
                m.claimed_until = Some(lease_until);
                m.clone()
            })
            .collect())
    }

    async fn finish_delivery(
        &self,
        id: MessageId,
        worker: Uuid,
        update: &DeliveryUpdate,
    ) -> StorageResult<bool> {
        let mut s = self.lock();
        let Some(m) = s.outbox.get_mut(&id) else {
            return Ok(false);
        };
        if m.status != OutboxStatus::Pending || m.claimed_by != Some(worker) {
            return Ok(false);
        }
        m.attempts += 1;
        m.claimed_by = None;
        m.claimed_until = None;
        match update {
            DeliveryUpdate::Delivered { at } => {
                m.status = OutboxStatus::Delivered;
                m.delivered_at = Some(*at);
            }
            DeliveryUpdate::Retry {
                next_attempt_at,
                error,
            } => {
                m.next_attempt_at = *next_attempt_at;
                m.last_error = Some(error.clone());
            }
            DeliveryUpdate::Dead { error } => {
                m.status = OutboxStatus::Dead;
                m.last_error = Some(error.clone());
            }
        }
        Ok(true)
    }

    async fn release_claims(&self, worker: Uuid) -> StorageResult<u64> {
        let mut s = self.lock();
        let mut n = 0;
        for m in s
            .outbox
            .values_mut()
            .filter(|m| m.claimed_by == Some(worker))
        {
            m.claimed_by = None;
            m.claimed_until = None;
            n += 1;
        }
        Ok(n)
    }

    async fn outbox_message(&self, id: MessageId) -> StorageResult<Option<OutboxMessage>> {
        Ok(self.lock().outbox.get(&id).cloned())
    }

    async fn list_outbox(&self, q: &OutboxQuery) -> StorageResult<Vec<OutboxMessage>> {
        let s = self.lock();
        let mut v: Vec<OutboxMessage> = s
            .outbox
            .values()
            .filter(|m| q.matches(m))
            .cloned()
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        v.truncate(q.limit as usize);
        Ok(v)
    }

    async fn requeue_dead(&self, id: MessageId, now: DateTime<Utc>) -> StorageResult<bool> {
        let mut s = self.lock();
        match s.outbox.get_mut(&id) {
            Some(m) if m.status == OutboxStatus::Dead => {
                m.status = OutboxStatus::Pending;
                m.attempts = 0;
                m.next_attempt_at = now;
                m.claimed_by = None;
                m.claimed_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
