//! # marketplace-conformance
//!
//! One test suite, written once against the [`Marketplace`] API, that every
//! [`Storage`] backend runs: the storage contract made executable. A backend is
//! done when it passes it.
//!
//! A backend's test file names a factory and invokes the macro:
//!
//! ```ignore
//! async fn fresh() -> Option<(MyStorage, TempDir)> {
//!     // `None` (after printing why) skips every test, e.g. when a server URL is unset.
//!     // The second part is whatever must outlive the store (a temporary folder, a
//!     // guard that drops the test schema); `()` when nothing must.
//!     Some((MyStorage::new(), tempdir()))
//! }
//! marketplace_conformance::conformance_suite!(fresh);
//! ```
//!
//! Every scenario gets its own fresh store from the factory. The store is handed
//! to the scenario as the backend's own type, not behind a wrapper, so every
//! method the scenario reaches is the backend's own. The scenarios are
//! also public functions ([`scenarios`]) for backends outside this workspace.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{TimeZone, Utc};
use marketplace_core::address::Address;
use marketplace_core::outbox::{OutboxMessage, OutboxQuery};
use marketplace_core::{
    AddressInput, AuthConfig, Config, HashCost, IdempotencyKey, JwtSecret, ManualClock,
    Marketplace, Money, NewAccount, NewProduct, Principal, ProductId, ProductView, Role, Storage,
};

pub mod scenarios;
pub mod test_images;

/// The secret test marketplaces sign tokens with.
pub const TEST_SECRET: &[u8] = b"conformance-suite-secret-of-32-bytes-or-more";

/// A marketplace over the backend under test, with a manual clock and helpers
/// to populate it.
pub struct World<S> {
    /// The marketplace.
    pub market: Marketplace<S>,
    /// Its clock; starts at 2026-01-01T00:00:00Z.
    pub clock: Arc<ManualClock>,
    seq: AtomicU32,
}

/// The configuration test marketplaces use: cheap password hashing, defaults
/// otherwise.
pub fn test_config() -> Config {
    let mut auth = AuthConfig::new(JwtSecret::new(TEST_SECRET.to_vec()).unwrap());
    auth.hash_cost = HashCost::FAST_INSECURE;
    Config::new(auth)
}

/// A valid idempotency key (panics on an invalid one: test code).
pub fn key(raw: impl AsRef<str>) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_ref()).unwrap()
}

/// US dollars in minor units.
pub fn usd(amount: i64) -> Money {
    Money::new(amount, marketplace_core::Currency::USD)
}

impl<S: Storage> World<S> {
    /// A marketplace over `storage` with [`test_config`].
    pub async fn new(storage: S) -> World<S> {
        Self::with_config(storage, test_config()).await
    }

    /// A marketplace over `storage` with `config`.
    pub async fn with_config(storage: S, config: Config) -> World<S> {
        Self::with_payouts(storage, config, Arc::new(marketplace_core::ManualPayouts)).await
    }

    /// A marketplace over `storage` with `config`, paying out through `payouts`.
    pub async fn with_payouts(
        storage: S,
        config: Config,
        payouts: Arc<dyn marketplace_core::PayoutProvider>,
    ) -> World<S> {
        Self::with_providers(
            storage,
            config,
            payouts,
            Arc::new(marketplace_core::ManualPayments),
        )
        .await
    }

    /// A marketplace over `storage` with `config`, taking payments through
    /// `payments`.
    pub async fn with_payments(
        storage: S,
        config: Config,
        payments: Arc<dyn marketplace_core::PaymentProvider>,
    ) -> World<S> {
        Self::with_providers(
            storage,
            config,
            Arc::new(marketplace_core::ManualPayouts),
            payments,
        )
        .await
    }

    /// A marketplace over `storage` with `config` and both providers.
    pub async fn with_providers(
        storage: S,
        config: Config,
        payouts: Arc<dyn marketplace_core::PayoutProvider>,
        payments: Arc<dyn marketplace_core::PaymentProvider>,
    ) -> World<S> {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let market = Marketplace::builder(storage, config)
            .clock(clock.clone())
            .payouts(payouts)
            .payments(payments)
            .build()
            .await
            .unwrap();
        World {
            market,
            clock,
            seq: AtomicU32::new(0),
        }
    }

    /// The marketplace's current time, at storage precision.
    pub fn now(&self) -> chrono::DateTime<Utc> {
        use marketplace_core::Clock;
        marketplace_core::clock::storage_precision(self.clock.now())
    }

    /// A fresh unique email.
    pub fn email(&self, who: &str) -> String {
        format!(
            "{who}{}@example.com",
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Registers an account and returns it as a caller.
    pub async fn register(&self, role: Role, email: &str) -> Principal {
        let user = self
            .market
            .register(NewAccount {
                email: email.to_owned(),
                password: "correct horse".to_owned(),
                role,
                name: Some(format!("{role:?} {email}")),
                store_name: (role == Role::Seller).then(|| format!("Store of {email}")),
            })
            .await
            .unwrap();
        Principal {
            user_id: user.id,
            role: user.role,
        }
    }

    /// A new buyer.
    pub async fn buyer(&self) -> Principal {
        let email = self.email("buyer");
        self.register(Role::Buyer, &email).await
    }

    /// A new seller, verified by an admin.
    pub async fn seller(&self) -> Principal {
        let email = self.email("seller");
        let p = self.register(Role::Seller, &email).await;
        self.market.verify_seller_by_email(&email).await.unwrap();
        p
    }

    /// A new seller still awaiting verification.
    pub async fn pending_seller(&self) -> Principal {
        let email = self.email("seller");
        self.register(Role::Seller, &email).await
    }

    /// A new admin.
    pub async fn admin(&self) -> Principal {
        let email = self.email("admin");
        let u = self
            .market
            .create_admin(&email, "correct horse")
            .await
            .unwrap();
        Principal {
            user_id: u.id,
            role: Role::Admin,
        }
    }

    /// A product of `seller` at `price` cents with `stock` units.
    pub async fn product(
        &self,
        seller: &Principal,
        title: &str,
        price: i64,
        stock: u32,
    ) -> ProductView {
        self.market
            .create_product(seller, new_product(title, price, stock))
            .await
            .unwrap()
    }

    /// A valid address for `buyer`.
    pub async fn address(&self, buyer: &Principal) -> Address {
        self.market
            .add_address(buyer, address_input("Ada Buyer"))
            .await
            .unwrap()
    }

    /// The stored stock of a product.
    pub async fn stock(&self, id: ProductId) -> u32 {
        self.market
            .storage()
            .product(id)
            .await
            .unwrap()
            .unwrap()
            .stock
    }

    /// Every outbox message.
    pub async fn outbox(&self) -> Vec<OutboxMessage> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let q = OutboxQuery {
                status: None,
                after,
                limit: 500,
            };
            let page = self.market.storage().list_outbox(&q).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id));
            all.extend(page);
        }
        all
    }

    /// Outbox messages of one kind.
    pub async fn mails(&self, kind: &str) -> Vec<OutboxMessage> {
        self.outbox()
            .await
            .into_iter()
            .filter(|m| m.kind == kind)
            .collect()
    }
}

/// A valid new product.
pub fn new_product(title: &str, price: i64, stock: u32) -> NewProduct {
    NewProduct {
        sku: None,
        title: title.to_owned(),
        description: format!("A fine {title}"),
        price: usd(price),
        stock,
        category_id: None,
        images: Vec::new(),
        discount: None,
        active: None,
    }
}

/// A valid address input.
pub fn address_input(name: &str) -> AddressInput {
    AddressInput {
        name: Some(name.to_owned()),
        line1: Some("1 Main Street".to_owned()),
        city: Some("Springfield".to_owned()),
        postal_code: Some("12345".to_owned()),
        country: Some("us".to_owned()),
        ..AddressInput::default()
    }
}

/// Generates one `#[tokio::test]` per conformance scenario, each with a fresh store
/// from `$factory`: an async fn returning `Option<(S, G)>`, the store and what must
/// outlive it (dropped after the scenario); `None` skips.
///
/// Attributes after the factory go on every generated test, e.g. to have the
/// test runner report the suite as ignored when its server is missing:
///
/// ```ignore
/// marketplace_conformance::conformance_suite!(
///     fresh,
///     #[cfg_attr(no_postgres, ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README")]
/// );
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path $(, $(#[$attr:meta])*)?) => {
        $crate::conformance_suite!(@each $factory; [$($(#[$attr])*)?];
            register_validates_and_rejects_duplicates,
            login_authenticates_and_hides_which_part_failed,
            login_is_throttled_per_account_and_client,
            concurrent_guesses_at_one_account_try_exactly_its_limit,
            concurrent_guesses_from_one_client_try_exactly_its_limit,
            successful_logins_give_back_only_their_own_attempt,
            refresh_rotates_and_reuse_revokes_the_family,
            logout_revokes_the_login,
            access_tokens_are_checked,
            email_verification_is_single_use_and_expires,
            password_reset_replaces_password_and_revokes_logins,
            profile_updates,
            deactivated_users_are_locked_out,
            addresses_keep_one_default,
            addresses_are_private,
            categories_are_admin_managed_unique_and_guarded,
            unverified_sellers_are_neither_listed_nor_buyable,
            product_input_is_validated,
            products_belong_to_their_seller,
            concurrent_product_edits_and_checkouts_lose_nothing,
            browse_filters_sorts_and_pages_without_gaps,
            offers_set_the_price_everywhere,
            archived_and_blocked_products_leave_catalog_and_carts,
            images_are_checked_from_their_bytes,
            images_are_decoded_within_limits_and_stored_without_metadata,
            images_are_stored_by_key_and_named_by_the_reader,
            cart_groups_by_seller_with_totals,
            cart_quantities_are_bounded,
            carts_are_private_to_buyers,
            wishlist_holds_a_product_once,
            checkout_splits_into_one_order_per_seller,
            checkout_with_a_short_item_changes_nothing,
            checkout_replays_by_idempotency_key,
            checkout_needs_an_own_address_and_a_cart,
            concurrent_checkouts_never_oversell,
            a_cart_checks_out_at_most_once,
            orders_move_one_step_at_a_time_with_history,
            cancellation_restocks_exactly_once,
            returns_restock,
            orders_are_private,
            order_lists_page_and_filter,
            outbox_worker_delivers_retries_and_gives_up,
            outbox_claims_are_exclusive,
            dead_messages_can_be_retried,
            seller_decisions_are_mailed_and_listed,
            client_text_with_nul_bytes_is_refused_everywhere,
            concurrent_address_creates_never_pass_the_limit,
            concurrent_cart_adds_never_pass_the_line_limit,
            concurrent_image_uploads_never_pass_the_image_limit,
            ending_a_login_ends_its_access_tokens,
            skus_round_trip_and_are_validated,
            a_sellers_skus_are_unique_until_archived,
            concurrent_creates_with_one_sku_list_one_product,
            lookup_by_sku_finds_only_own_products,
            operator_commands_keep_the_admin_rules,
            commission_rules_are_snapshotted_on_each_order,
            ledger_holds_earnings_for_the_return_window,
            returns_reverse_at_the_orders_own_commission,
            payouts_take_the_available_balance_once,
            provider_outcomes_settle_payouts,
            statements_add_up_to_the_balance,
            a_return_and_a_release_never_both_win,
            money_invariants_hold_under_contention,
            manual_payments_are_marked_paid_and_refunded,
            unpaid_checkouts_expire_once_and_return_their_stock,
            capture_waits_for_every_seller_and_takes_the_live_sum,
            capture_deadline_takes_what_is_live,
            immediate_capture_refunds_cancellations_and_returns,
            webhooks_are_verified_deduplicated_and_order_tolerant,
            payments_after_expiry_are_voided_or_refunded,
            provider_timeouts_never_charge_twice,
            payment_invariants_hold_under_contention,
            payments_are_settled_only_by_their_provider,
        );
    };
    (@each $factory:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::conformance_suite!(@one $factory; $attrs; $name); )*
    };
    (@one $factory:path; [$(#[$attr:meta])*]; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn $name() {
            let Some((storage, guard)) = $factory().await else { return };
            $crate::scenarios::$name(storage).await;
            drop(guard);
        }
    };
}
