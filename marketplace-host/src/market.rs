//! A marketplace assembled from settings: the store, the signing secret, the
//! image folder, the mailer, and the configured first admin.

use std::path::Path;
use std::sync::Arc;

use marketplace_core::{AuthConfig, Config, DatabaseClock, Mailer, Marketplace, Storage};

use crate::error::{Error, Result};
use crate::settings::Settings;

/// The marketplace a host serves: any backend, chosen at run time from
/// `DATABASE_URL`.
pub type Market = Marketplace<Arc<dyn Storage>>;

/// What a host runs on: the marketplace and the mailer its outbox is delivered
/// through. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    /// The marketplace.
    pub market: Market,
    /// The mailer the settings picked; the worker ([`Host::run`]) delivers
    /// through it.
    pub mailer: Arc<dyn Mailer>,
    /// The database's clock the marketplace decides by, on a database several
    /// servers share (PostgreSQL, MongoDB); `None` where this machine's clock
    /// is the only one (SQLite, memory). Synced once by [`build`];
    /// [`Host::run`] keeps it synced.
    pub clock: Option<Arc<DatabaseClock>>,
}

impl Settings {
    /// The marketplace configuration these settings describe, signing with the
    /// secret the policy of [`jwt_secret`](crate::jwt_secret) gives for
    /// `secret_file`.
    pub fn marketplace_config(&self, secret_file: Option<&Path>) -> Result<Config> {
        let named_alike = self.public_url.is_some()
            || (self.storefront_url.is_some() && self.media_base_url.is_some());
        if !self.local_store() && !named_alike {
            return Err(Error::PublicUrlRequired);
        }
        let mut auth = AuthConfig::new(crate::secret::jwt_secret(self, secret_file)?);
        auth.hash_cost = self.hash_cost;
        if let Some((at_once, waiting)) = self.hash_slots {
            auth.max_concurrent_hashes = at_once;
            auth.max_waiting_hashes = waiting;
        }
        for old in &self.jwt_previous_secrets {
            auth.previous_secrets.push(
                marketplace_core::JwtSecret::new(old.clone().into_bytes()).map_err(|e| {
                    Error::setting("JWT_PREVIOUS_SECRETS", format!("JWT_PREVIOUS_SECRETS: {e}"))
                })?,
            );
        }
        let mut config = Config::new(auth);
        config.public_url = self.storefront_base();
        config.media_url = self.media_base();
        config.currency = self.currency;
        config.delivery = self.delivery.clone();
        config.money.return_window =
            chrono::Duration::from_std(self.return_window).map_err(|_| {
                Error::setting("MARKETPLACE_RETURN_WINDOW", "the return window is too long")
            })?;
        let span = |name: &'static str, d: std::time::Duration| {
            chrono::Duration::from_std(d)
                .map_err(|_| Error::setting(name, "the duration is too long"))
        };
        config.payments.hold = span("MARKETPLACE_PAYMENT_HOLD", self.payment_hold)?;
        config.payments.capture_within = span("MARKETPLACE_CAPTURE_WITHIN", self.capture_within)?;
        if self.capture_at_checkout {
            config.payments.capture = marketplace_core::CapturePolicy::AtCheckout;
        }
        if let Some(m) = self
            .minimum_payout
            .as_deref()
            .and_then(|v| marketplace_core::Money::from_decimal(v, self.currency))
        {
            config.money.minimum_payout = m.amount;
        }
        Ok(config)
    }
}

/// Assembles what `settings` describe: opens the store, settles the secret,
/// prepares the image folder and the mailer, and creates the configured admin
/// when absent. Starts nothing in the background: see [`Host::run`].
pub async fn build(settings: &Settings) -> Result<Host> {
    let (storage, secret_file) =
        crate::store::open_storage(&settings.database_url, &settings.sql).await?;
    let config = settings.marketplace_config(secret_file.as_deref())?;
    let clock = database_clock(&storage)
        .await
        .map_err(|source| Error::DatabaseClock {
            url: crate::store::redact_url(&settings.database_url),
            source,
        })?;
    let images = crate::media::configured_store(settings)?;
    let payments: Arc<dyn marketplace_core::PaymentProvider> = match &settings.payments {
        crate::settings::Payments::Manual => Arc::new(marketplace_core::ManualPayments),
        crate::settings::Payments::Stripe(c) => Arc::new(
            marketplace_stripe::StripePayments::new(c.clone())
                .map_err(|e| Error::setting("STRIPE_SECRET_KEY", e.to_string()))?,
        ),
    };
    let mut builder = Marketplace::builder(storage, config)
        .images(images)
        .payments(payments);
    if let Some(clock) = &clock {
        builder = builder.clock(Arc::clone(clock) as Arc<dyn marketplace_core::Clock>);
    }
    let market = builder.build().await.map_err(Error::Marketplace)?;
    let mailer = crate::mail::mailer(settings)?;
    if let Some((email, password)) = &settings.bootstrap_admin {
        bootstrap_admin(&market, email, password).await?;
    }
    Ok(Host {
        market,
        mailer,
        clock,
    })
}

/// The clock a marketplace on `storage` decides by: a [`DatabaseClock`],
/// synced once, when the store has a clock several servers share, so their
/// outbox leases, login windows, token lifetimes and payment deadlines agree
/// however far apart their own clocks are; `None` (keep the system clock) when
/// it has none. Logs the measured offset, and warns when this machine's clock
/// is more than a second off. Fails when the database cannot be asked.
pub async fn database_clock(
    storage: &Arc<dyn Storage>,
) -> std::result::Result<Option<Arc<DatabaseClock>>, marketplace_core::StorageError> {
    let clock = Arc::new(DatabaseClock::system());
    let Some(sync) = clock.sync(storage.as_ref()).await? else {
        return Ok(None);
    };
    let offset_ms = sync.offset.num_milliseconds();
    let round_trip_ms = sync.round_trip.num_milliseconds();
    tracing::info!(
        offset_ms,
        round_trip_ms,
        "deciding leases and windows by the database's clock"
    );
    if sync.offset.abs() > chrono::Duration::seconds(1) {
        tracing::warn!(
            offset_ms,
            "this machine's clock is {offset_ms} ms off the database's; leases and windows follow the database"
        );
    }
    Ok(Some(clock))
}

/// Creates the admin `email` unless an account already has that email (the
/// configuration route to the first admin; restarts find it there).
pub async fn bootstrap_admin(market: &Market, email: &str, password: &str) -> Result<()> {
    match market.create_admin(email, password).await {
        Ok(u) => tracing::info!(email = %u.email, "created the configured admin"),
        Err(marketplace_core::Error::Conflict {
            code: "email_taken",
            ..
        }) => tracing::debug!("the configured admin already exists"),
        Err(e) => return Err(Error::Admin(e)),
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use marketplace_core::{HashCost, Role};

    use super::*;

    fn settings(dir: &tempfile::TempDir) -> Settings {
        Settings {
            database_url: format!("sqlite://{}", dir.path().join("shop.db").display()),
            media_dir: dir.path().join("media"),
            hash_cost: HashCost::FAST_INSECURE,
            public_url: Some("https://shop.example".into()),
            bootstrap_admin: Some(("root@example.com".into(), "a long passphrase".into())),
            ..Settings::default()
        }
    }

    #[test]
    fn a_shared_database_needs_one_public_url_for_every_instance() {
        let shared = Settings {
            database_url: "postgres://db.internal/shop".into(),
            jwt_secret: Some("j".repeat(40)),
            ..Settings::default()
        };
        assert!(matches!(
            shared.marketplace_config(None),
            Err(Error::PublicUrlRequired)
        ));
        let half = Settings {
            media_base_url: Some("https://cdn.example/m".into()),
            ..shared.clone()
        };
        assert!(matches!(
            half.marketplace_config(None),
            Err(Error::PublicUrlRequired)
        ));
        let public = Settings {
            public_url: Some("https://shop.example".into()),
            ..shared.clone()
        };
        let config = public.marketplace_config(None).unwrap();
        assert_eq!(config.media_url, "https://shop.example/media");
        let split = Settings {
            storefront_url: Some("https://shop.example".into()),
            ..half
        };
        assert_eq!(
            split.marketplace_config(None).unwrap().media_url,
            "https://cdn.example/m"
        );
    }

    #[tokio::test]
    async fn settings_build_a_marketplace_with_its_first_admin() {
        let dir = tempfile::tempdir().unwrap();
        let host = build(&settings(&dir)).await.unwrap();
        assert!(
            host.clock.is_none(),
            "one SQLite file: this machine's clock"
        );
        assert_eq!(host.market.config().media_url, "https://shop.example/media");
        assert!(dir.path().join("media").is_dir());
        assert!(dir.path().join("shop.db.jwt-secret").is_file());
        let tokens = host
            .market
            .login("root@example.com", "a long passphrase", None)
            .await
            .unwrap();
        let me = host
            .market
            .authenticate(&tokens.access_token)
            .await
            .unwrap();
        assert_eq!(me.role, Role::Admin);
        drop(host);
        // A restart finds the admin and the secret where it left them.
        let again = build(&settings(&dir)).await.unwrap();
        again
            .market
            .authenticate(&tokens.access_token)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_bad_admin_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&dir);
        s.bootstrap_admin = Some(("root@example.com".into(), "short".into()));
        assert!(matches!(build(&s).await, Err(Error::Admin(_))));
    }

    #[tokio::test]
    async fn a_rotated_secret_keeps_its_tokens_valid_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = ("o".repeat(40), "n".repeat(40));
        let with = |current: &str, previous: &[&str]| Settings {
            jwt_secret: Some(current.to_owned()),
            jwt_previous_secrets: previous.iter().map(|s| (*s).to_owned()).collect(),
            ..settings(&dir)
        };
        let before = build(&with(&old, &[])).await.unwrap();
        let token = before
            .market
            .login("root@example.com", "a long passphrase", None)
            .await
            .unwrap()
            .access_token;
        drop(before);
        // Rotated: the new secret signs, the old one still verifies.
        let rotated = build(&with(&new, &[&old])).await.unwrap();
        rotated.market.authenticate(&token).await.unwrap();
        let fresh = rotated
            .market
            .login("root@example.com", "a long passphrase", None)
            .await
            .unwrap()
            .access_token;
        drop(rotated);
        // The old secret dropped: its tokens end, the new ones live on.
        let after = build(&with(&new, &[])).await.unwrap();
        assert!(matches!(
            after.market.authenticate(&token).await,
            Err(marketplace_core::Error::Unauthenticated)
        ));
        after.market.authenticate(&fresh).await.unwrap();
        // A previous secret too short to be one is refused by name.
        let err = build(&with(&new, &["short"])).await.err().unwrap();
        assert!(err.to_string().contains("JWT_PREVIOUS_SECRETS"), "{err}");
    }
}
