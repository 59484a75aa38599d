//! # marketplace-core
//!
//! The domain of a multi-vendor marketplace: many sellers, one storefront, one
//! checkout. [`Marketplace`] is the whole product as a typed async API; it owns every
//! business rule (roles and ownership, pricing and offers, the cart, checkout split
//! into one order per seller, the order status machine, notifications) and stores
//! through a [`Storage`] backend it is generic over. It knows no HTTP and no
//! database: hosts map requests onto it, backends implement [`Storage`].
//!
//! ## Layout
//! - [`storage`]: the storage traits and their contract, one per concept
//!   (accounts, catalog, shopping, checkout, orders, outbox, commission, ledger,
//!   payouts) with `Storage` their
//!   union: each atomic step of the domain (the checkout commit, a status change
//!   with restock, an outbox claim, a refresh-token rotation) is one method a
//!   backend applies with its native atomicity.
//! - [`accounts`], [`auth`]: registration, profiles, tokens, throttled login.
//! - [`address`], [`catalog`], [`images`], [`cart`], [`checkout`], [`order`]: the
//!   shopping flows.
//! - [`outbox`], [`mailer`]: notifications recorded with their cause and delivered
//!   by a worker with retries.
//! - [`money`]: integer money and the one definition of the effective price.
//! - [`commission`], [`ledger`], [`payout`]: the operator's fee snapshotted on
//!   each order, the append-only seller ledger with its held and available
//!   balances, and payouts through a [`PayoutProvider`].
//! - [`payment`]: one payment per checkout through a [`PaymentProvider`]: held
//!   stock that expires, capture once, refunds on cancellation and return.
//! - [`deadline`]: the request deadline a host sets once per request; every
//!   retry loop, core's and the backends', stops there.
//!
//! ## Example
//! ```no_run
//! # async fn demo<S: marketplace_core::Storage>(storage: S) -> marketplace_core::Result<()> {
//! use marketplace_core::{AuthConfig, Config, JwtSecret, Marketplace};
//! let secret = JwtSecret::new(b"a secret of at least thirty-two bytes!".to_vec()).expect("long enough");
//! let market = Marketplace::builder(storage, Config::new(AuthConfig::new(secret))).build().await?;
//! let page = market.browse(Default::default()).await?;
//! println!("{} products listed", page.items.len());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod address;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod clock;
pub mod commission;
pub mod deadline;
pub mod error;
pub mod fields;
pub mod ids;
pub mod images;
pub mod ledger;
pub mod mailer;
pub mod marketplace;
pub mod money;
mod notify;
pub mod order;
pub mod outbox;
pub mod page;
mod patch;
pub mod payment;
pub mod payout;
pub mod storage;
pub mod user;

pub use accounts::{NewAccount, ProfileUpdate, SellerListQuery};
pub use address::{Address, AddressInput};
pub use auth::{AuthConfig, HashCost, JwtSecret, TokenPair};
pub use cart::{CartView, WishlistItem};
pub use catalog::{CatalogQuery, Category, NewProduct, ProductSort, ProductUpdate, ProductView};
pub use checkout::{Checkout, CheckoutRequest, IdempotencyKey};
pub use clock::{Clock, ClockSync, DatabaseClock, IdGenerator, ManualClock, SystemClock};
pub use commission::{Commission, CommissionRule, CommissionTerms, RuleScope};
pub use error::{Error, ErrorKind, FieldError, Result, ShortItem};
pub use ids::*;
pub use ledger::{Balance, CommissionReport, EntryKind, LedgerEntry, Period, Statement};
pub use mailer::{DevMailer, MailError, Mailer};
pub use marketplace::{
    Config, DeliveryPolicy, Limits, Marketplace, MarketplaceBuilder, MoneyPolicy,
};
pub use money::{Currency, Discount, DiscountKind, Money};
pub use order::{Order, OrderListQuery, OrderStatus};
pub use outbox::{DeliveryReport, OutboxMessage, OutboxStatus, OutboxWorker};
pub use page::Page;
pub use payment::{
    CapturePolicy, ManualPayments, OrderPaymentStatus, Payment, PaymentPolicy, PaymentProvider,
    PaymentStatus, Refund, RefundStatus, SimulatedPayments,
};
pub use payout::{ManualPayouts, Payout, PayoutProvider, PayoutStatus, SimulatedPayouts};
pub use storage::{
    AccountStore, CatalogStore, CheckoutStore, CommissionStore, LedgerStore, OrderStore,
    OutboxStore, PaymentStore, PayoutStore, ShoppingStore, Storage, StorageError, StorageResult,
};
pub use user::{Principal, Role, SellerStatus, SellerSummary, User};
