//! The `Marketplace` handle: configuration, injected services and the helpers every
//! operation shares.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use rand::Rng;
use uuid::Uuid;

use crate::auth::{AuthConfig, HashSlots, JwtKeys};
use crate::clock::{Clock, IdGenerator, SystemClock, UuidV7, storage_precision};
use crate::error::{Error, Result};
use crate::money::Currency;
use crate::notify::Templates;
use crate::payment::{ManualPayments, PaymentPolicy, PaymentProvider};
use crate::payout::{ManualPayouts, PayoutProvider};
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role, User};

/// Runs a storage call, repeating it while it fails with
/// [`StorageError::Transient`]: up to five attempts, 10..20 ms before the
/// second and doubling from there, jittered. A backoff that would end at or
/// past the [request deadline](crate::deadline) is not slept: the call ends
/// with [`StorageError::DeadlineExceeded`] carrying the last failure.
pub(crate) async fn retry_transient<T, F, Fut>(mut call: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    const ATTEMPTS: u32 = 5;
    let mut attempt = 0;
    loop {
        match call().await {
            Err(StorageError::Transient(e)) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                let base = 5u64 << attempt;
                let wait = StdDuration::from_millis(base + rand::thread_rng().gen_range(0..=base));
                if !crate::deadline::allows(wait) {
                    tracing::debug!(attempt, error = %e, "transient storage failure at the request deadline");
                    return Err(StorageError::DeadlineExceeded(e));
                }
                tracing::debug!(attempt, error = %e, "transient storage failure, retrying");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Bounds on what one account may accumulate or send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Units of one product in one cart line (default 999).
    pub max_quantity: u32,
    /// Distinct products in one cart (default 100).
    pub max_cart_lines: usize,
    /// Addresses one buyer may keep (default 20).
    pub max_addresses: usize,
    /// Images on one product (default 10).
    pub max_images: usize,
    /// Size of one uploaded image in bytes (default 5 MiB).
    pub max_image_bytes: usize,
    /// Pixels (width x height) of one uploaded image, checked from its header
    /// before it is decoded (default 40 megapixels): a small file that would
    /// decode to gigabytes is refused unread.
    pub max_image_pixels: u64,
    /// Width or height of one uploaded image (default 12,000 pixels).
    pub max_image_side: u32,
    /// Largest page a list returns (default 100).
    pub max_page: u32,
    /// Stock of one product (default one billion units).
    pub max_stock: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_quantity: 999,
            max_cart_lines: 100,
            max_addresses: 20,
            max_images: 10,
            max_image_bytes: 5 * 1024 * 1024,
            max_image_pixels: 40_000_000,
            max_image_side: 12_000,
            max_page: 100,
            max_stock: 1_000_000_000,
        }
    }
}

/// How the outbox worker retries failed deliveries.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeliveryPolicy {
    /// Attempts before a message is marked dead (default 8).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with each attempt (default 30 s).
    pub base_backoff: Duration,
    /// Longest delay between attempts (default 1 hour).
    pub max_backoff: Duration,
    /// How long a claim on a message lasts before another worker may take it
    /// (default 2 minutes). A worker starts a send only while at least half of
    /// it is left, so a mailer's time limit for one message must stay below half.
    pub lease: Duration,
    /// Messages claimed per round (default 20).
    pub batch: u32,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            max_attempts: 8,
            base_backoff: Duration::seconds(30),
            max_backoff: Duration::hours(1),
            lease: Duration::minutes(2),
            batch: 20,
        }
    }
}

/// How sellers' earnings are held and paid out.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MoneyPolicy {
    /// How long after delivery a buyer may ask for a return; the seller's
    /// earning is held (pending) until it closes (default 14 days).
    pub return_window: Duration,
    /// The least available balance, in minor units of the marketplace's
    /// currency, a payout is made for (default 1 000: 10.00 USD; at least 1).
    pub minimum_payout: i64,
}

impl Default for MoneyPolicy {
    fn default() -> Self {
        MoneyPolicy {
            return_window: Duration::days(14),
            minimum_payout: 1_000,
        }
    }
}

/// Marketplace settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The one currency prices are set and paid in (default USD).
    pub currency: Currency,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Per-account bounds.
    pub limits: Limits,
    /// Mail delivery retries.
    pub delivery: DeliveryPolicy,
    /// Earnings holds and payouts.
    pub money: MoneyPolicy,
    /// Buyers' payments: holds, expiry and capture.
    pub payments: PaymentPolicy,
    /// The marketplace's name, as mails show it.
    pub site_name: String,
    /// Base URL of the storefront, for links in mails (default `http://127.0.0.1:8080`).
    pub public_url: String,
    /// Base URL under which stored images are served (default `{public_url}/media`).
    pub media_url: String,
}

impl Config {
    /// The defaults, signing tokens with the given settings.
    pub fn new(auth: AuthConfig) -> Config {
        let public_url = "http://127.0.0.1:8080".to_owned();
        Config {
            currency: Currency::USD,
            auth,
            limits: Limits::default(),
            delivery: DeliveryPolicy::default(),
            money: MoneyPolicy::default(),
            payments: PaymentPolicy::default(),
            site_name: "Marketplace".to_owned(),
            media_url: format!("{public_url}/media"),
            public_url,
        }
    }
}

pub(crate) struct Inner<S> {
    pub(crate) storage: S,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) images: Arc<dyn ObjectStore>,
    pub(crate) payouts: Arc<dyn PayoutProvider>,
    pub(crate) payments: Arc<dyn PaymentProvider>,
    pub(crate) jwt: JwtKeys,
    pub(crate) hashing: HashSlots,
    pub(crate) templates: Templates,
    /// A hash verified against when a login names an unknown account, so both
    /// cases cost the same time.
    pub(crate) dummy_hash: String,
}

/// The marketplace: every operation of the product, with its rules, over a
/// [`Storage`] backend. Cheap to clone; clones share everything.
pub struct Marketplace<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Marketplace<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Assembles a [`Marketplace`]; see [`Marketplace::builder`].
pub struct MarketplaceBuilder<S> {
    storage: S,
    config: Config,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    images: Option<Arc<dyn ObjectStore>>,
    payouts: Arc<dyn PayoutProvider>,
    payments: Arc<dyn PaymentProvider>,
}

impl<S: Storage> MarketplaceBuilder<S> {
    /// Uses `clock` for every timestamp (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `ids` for every new identifier (default: UUIDv7).
    pub fn ids(mut self, ids: Arc<dyn IdGenerator>) -> Self {
        self.ids = ids;
        self
    }

    /// Keeps uploaded images in `store` (default: in memory, lost on exit).
    pub fn images(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.images = Some(store);
        self
    }

    /// Sends payouts through `provider` (default: [`ManualPayouts`], an admin
    /// marks each one paid or failed).
    pub fn payouts(mut self, provider: Arc<dyn PayoutProvider>) -> Self {
        self.payouts = provider;
        self
    }

    /// Takes buyers' payments through `provider` (default: [`ManualPayments`],
    /// pay on delivery or by transfer, an admin marks each checkout paid).
    pub fn payments(mut self, provider: Arc<dyn PaymentProvider>) -> Self {
        self.payments = provider;
        self
    }

    /// Builds the marketplace.
    pub async fn build(self) -> Result<Marketplace<S>> {
        let templates = Templates::new()?;
        let dummy = crate::fields::Password::parse("not-a-real-password")
            .map_err(|e| Error::internal(e.message))?;
        let dummy_hash = crate::auth::hash_password(&dummy, self.config.auth.hash_cost).await?;
        Ok(Marketplace {
            inner: Arc::new(Inner {
                jwt: JwtKeys::new(
                    &self.config.auth.jwt_secret,
                    &self.config.auth.previous_secrets,
                ),
                hashing: HashSlots::new(&self.config.auth),
                storage: self.storage,
                config: self.config,
                clock: self.clock,
                ids: self.ids,
                images: self.images.unwrap_or_else(|| Arc::new(InMemory::new())),
                payouts: self.payouts,
                payments: self.payments,
                templates,
                dummy_hash,
            }),
        })
    }
}

impl<S: Storage> Marketplace<S> {
    /// Starts assembling a marketplace over `storage` with `config`.
    pub fn builder(storage: S, config: Config) -> MarketplaceBuilder<S> {
        MarketplaceBuilder {
            storage,
            config,
            clock: Arc::new(SystemClock),
            ids: Arc::new(UuidV7),
            images: None,
            payouts: Arc::new(ManualPayouts),
            payments: Arc::new(ManualPayments),
        }
    }

    /// The storage backend (for hosts' readiness checks and for tests that verify
    /// invariants directly).
    pub fn storage(&self) -> &S {
        &self.inner.storage
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The provider payouts go through.
    pub fn payout_provider(&self) -> &Arc<dyn PayoutProvider> {
        &self.inner.payouts
    }

    /// The provider buyers pay through.
    pub fn payment_provider(&self) -> &Arc<dyn PaymentProvider> {
        &self.inner.payments
    }

    /// The blob store holding product images.
    pub fn image_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.images
    }

    /// Checks that storage answers.
    pub async fn ready(&self) -> Result<()> {
        self.storage().ping().await.map_err(Error::from)
    }

    /// The current time at storage precision.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        storage_precision(self.inner.clock.now())
    }

    pub(crate) fn new_id(&self) -> Uuid {
        self.inner.ids.new_id()
    }

    /// Runs a storage call, repeating it while the backend reports a transient
    /// failure (serialization conflicts, busy databases), up to five attempts with
    /// jittered exponential backoff, and never past the request deadline (see
    /// [`retry_transient`]).
    pub(crate) async fn retry<T, F, Fut>(&self, call: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        retry_transient(call).await
    }

    /// Loads the caller's account, refusing a deactivated one.
    pub(crate) async fn account(&self, who: &Principal) -> Result<User> {
        self.storage()
            .user(who.user_id)
            .await?
            .filter(|u| u.active)
            .ok_or(Error::Unauthenticated)
    }

    /// Refuses callers without `role`.
    pub(crate) fn require(&self, who: &Principal, role: Role) -> Result<()> {
        who.require(role)
    }

    /// Clamps a requested page size to `1..=max_page` (default 20).
    pub(crate) fn page_size(&self, limit: Option<u32>) -> u32 {
        limit
            .unwrap_or(20)
            .clamp(1, self.inner.config.limits.max_page)
    }
}
