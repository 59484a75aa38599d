//! Checkout: one request turns the cart into one order per seller, atomically.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::token_hash;
use crate::error::{Error, FieldError, Result, ShortItem};
use crate::ids::{AddressId, CategoryId, CheckoutId, OrderId, ProductId, UserId};
use crate::marketplace::Marketplace;
use crate::money::{Money, effective_price};
use crate::notify::Notification;
use crate::order::{Order, OrderItem, OrderStatus, StatusChange};
use crate::outbox::OutboxMessage;
use crate::payment::{Payment, PaymentStatus, with_status_of};
use crate::storage::Storage;
use crate::user::{Principal, Role, User};

/// A checkout request as a client sends it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// One of the buyer's addresses; the default address when absent.
    #[serde(default)]
    pub address_id: Option<AddressId>,
}

/// Units of one product to reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The product.
    pub product_id: ProductId,
    /// Units to take from its stock.
    pub quantity: u32,
}

/// Everything a checkout writes, computed by core and applied by
/// [`CheckoutStore::commit_checkout`](crate::storage::CheckoutStore::commit_checkout) in one atomic step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutPlan {
    /// The new checkout.
    pub checkout_id: CheckoutId,
    /// The buyer.
    pub buyer_id: UserId,
    /// The client's idempotency key.
    pub idempotency_key: IdempotencyKey,
    /// Fingerprint of the request, to refuse a key reused for another request.
    pub request_hash: String,
    /// The cart version the plan was computed from.
    pub cart_version: u64,
    /// Stock to take, one entry per product, sorted by product id (a fixed lock
    /// order for backends that lock rows).
    pub reservations: Vec<Reservation>,
    /// One order per seller.
    pub orders: Vec<Order>,
    /// Confirmation to the buyer, new-order mails to the sellers.
    pub outbox: Vec<OutboxMessage>,
    /// The checkout's payment, awaiting the buyer.
    pub payment: Option<Payment>,
    /// When the checkout happened.
    pub created_at: DateTime<Utc>,
}

/// A stored idempotency record: which checkout a buyer's key produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRecord {
    /// The checkout the key produced.
    pub checkout_id: CheckoutId,
    /// Fingerprint of the request that produced it.
    pub request_hash: String,
}

/// What [`CheckoutStore::commit_checkout`](crate::storage::CheckoutStore::commit_checkout) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutOutcome {
    /// Everything in the plan was written.
    Committed,
    /// The key was already used; nothing was written.
    Replayed(CheckoutRecord),
    /// The cart changed (or was checked out) since the plan was made; nothing was
    /// written.
    CartChanged,
    /// Some items could not be reserved; nothing was written.
    Short(Vec<ShortItem>),
}

/// The result of a checkout: its id and one order per seller.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkout {
    /// Shared by the orders.
    pub checkout_id: CheckoutId,
    /// One order per seller, by seller id.
    pub orders: Vec<Order>,
    /// How to pay: the payment, with the provider's client secret or
    /// instructions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
    /// Whether this is the stored result of an earlier request with the same key.
    #[serde(skip)]
    pub replayed: bool,
}

/// A client's idempotency key for a checkout: 1..=255 visible ASCII characters.
/// Hosts parse it at the edge (the `Idempotency-Key` header), so core and the
/// backends only ever see a valid one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Checks a key as a client sent it; the error names the field
    /// `idempotency_key`.
    pub fn parse(raw: &str) -> std::result::Result<IdempotencyKey, FieldError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !raw.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(FieldError::new(
                "idempotency_key",
                "invalid",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(IdempotencyKey(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a key already validated (read back from storage).
    pub fn from_trusted(s: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey(s.into())
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Storage> Marketplace<S> {
    /// Turns the buyer's cart into one order per seller. All or nothing: when any
    /// item is short, nothing changes and every short item is listed. Repeating a
    /// request with the same `idempotency_key` returns the first result.
    pub async fn checkout(
        &self,
        who: &Principal,
        idempotency_key: &IdempotencyKey,
        request: CheckoutRequest,
    ) -> Result<Checkout> {
        self.require(who, Role::Buyer)?;
        let buyer = self.account(who).await?;
        if self.inner.config.auth.require_verified_email && !buyer.email_verified {
            return Err(Error::Forbidden("verify your email address first"));
        }
        let request_hash = token_hash(&format!("checkout:{:?}", request.address_id));
        // The idempotency key is not looked up first: the commit claims it
        // atomically and reports a replay. Only a request refused before the
        // commit (its cart emptied or changed by the first attempt, say) asks
        // whether the key already produced a checkout.
        let plan = match self
            .plan_checkout(who, &buyer, idempotency_key, &request_hash, request)
            .await
        {
            Ok(plan) => plan,
            Err(
                refused @ (Error::Conflict { .. }
                | Error::Validation(_)
                | Error::InsufficientStock(_)),
            ) => {
                return match self
                    .storage()
                    .checkout_by_key(who.user_id, idempotency_key)
                    .await?
                {
                    Some(done) => self.replay(done, &request_hash, buyer.email.as_str()).await,
                    None => Err(refused),
                };
            }
            Err(e) => return Err(e),
        };
        let checkout_id = plan.checkout_id;

        match self.retry(|| self.storage().commit_checkout(&plan)).await? {
            CheckoutOutcome::Committed => {
                // The checkout is committed with its payment due: a request cut
                // off here (at its deadline) or a crash leaves the payment to be
                // opened by the money worker, or by the request repeated with its
                // idempotency key, with the same key at the provider.
                let payment = match plan.payment {
                    Some(p) => Some(self.open_payment(p, buyer.email.as_str()).await?),
                    None => None,
                };
                // A declined payment cancelled the orders it was to pay for.
                let ended = payment.as_ref().is_some_and(|p| {
                    matches!(p.status, PaymentStatus::Failed | PaymentStatus::Voided)
                });
                let orders = if ended {
                    self.storage().checkout_orders(checkout_id).await?
                } else {
                    plan.orders
                };
                let orders = orders.into_iter().map(Order::for_buyer).collect();
                // The payment just opened is the one these orders are paid by:
                // no need to read it back.
                Ok(Checkout {
                    checkout_id,
                    orders: with_status_of(orders, payment.iter().cloned().collect()),
                    payment,
                    replayed: false,
                })
            }
            CheckoutOutcome::Replayed(done) => {
                self.replay(done, &request_hash, buyer.email.as_str()).await
            }
            CheckoutOutcome::Short(items) => Err(Error::InsufficientStock(items)),
            CheckoutOutcome::CartChanged => {
                // A concurrent request with the same key may have won the race.
                match self
                    .storage()
                    .checkout_by_key(who.user_id, idempotency_key)
                    .await?
                {
                    Some(done) => self.replay(done, &request_hash, buyer.email.as_str()).await,
                    None => Err(Error::conflict(
                        "cart_changed",
                        "the cart changed or was already checked out; review it and try again",
                    )),
                }
            }
        }
    }

    /// Reads the cart, the address and the products, and computes everything the
    /// checkout would write; refuses an empty cart, an unknown address or any
    /// short item (all of them listed).
    async fn plan_checkout(
        &self,
        who: &Principal,
        buyer: &User,
        idempotency_key: &IdempotencyKey,
        request_hash: &str,
        request: CheckoutRequest,
    ) -> Result<CheckoutPlan> {
        let cart = self.storage().cart(buyer.id).await?;
        if cart.lines.is_empty() {
            return Err(Error::conflict("cart_empty", "the cart is empty"));
        }
        let address = match request.address_id {
            Some(id) => self.own_address(who, id).await.ok(),
            None => self
                .storage()
                .addresses(buyer.id)
                .await?
                .into_iter()
                .find(|a| a.is_default),
        }
        .ok_or_else(|| {
            Error::invalid(
                "address_id",
                "unknown",
                "name one of your delivery addresses",
            )
        })?;

        // Check availability up front so the buyer hears of every problem at once;
        // the commit checks stock again, atomically.
        let ids: Vec<_> = cart.lines.iter().map(|l| l.product_id).collect();
        let listing = self.listing(&ids).await?;
        let short: Vec<ShortItem> = cart
            .lines
            .iter()
            .filter_map(|l| {
                let available = listing.sellable(l.product_id).map_or(0, |p| p.stock);
                (available < l.quantity).then_some(ShortItem {
                    product_id: l.product_id,
                    requested: l.quantity,
                    available,
                })
            })
            .collect();
        if !short.is_empty() {
            return Err(Error::InsufficientStock(short));
        }

        let now = self.now();
        let checkout_id = CheckoutId(self.new_id());
        let currency = self.inner.config.currency;
        let rules = self.rule_book().await?;
        let mut by_seller: BTreeMap<UserId, Vec<OrderItem>> = BTreeMap::new();
        let mut categories: BTreeMap<ProductId, Option<CategoryId>> = BTreeMap::new();
        let mut reservations: BTreeMap<ProductId, u32> = BTreeMap::new();
        for line in &cart.lines {
            let p = listing
                .sellable(line.product_id)
                .ok_or_else(|| Error::internal("product vanished"))?;
            let eff = effective_price(p.price, p.discount.as_ref(), now);
            categories.insert(p.id, p.category_id);
            by_seller.entry(p.seller_id).or_default().push(OrderItem {
                product_id: p.id,
                title: p.title.clone(),
                unit_price: p.price,
                effective_price: eff,
                quantity: line.quantity,
                line_total: eff
                    .checked_mul(line.quantity)
                    .ok_or_else(|| Error::internal("line total overflow"))?,
            });
            *reservations.entry(p.id).or_default() += line.quantity;
        }
        let mut orders = Vec::with_capacity(by_seller.len());
        for (seller_id, items) in by_seller {
            let total = items
                .iter()
                .try_fold(Money::zero(currency), |acc, i| {
                    acc.checked_add(i.line_total)
                })
                .ok_or_else(|| Error::internal("order total overflow"))?;
            let lines: Vec<_> = items
                .iter()
                .map(|i| {
                    (
                        categories.get(&i.product_id).copied().flatten(),
                        i.line_total,
                    )
                })
                .collect();
            let commission = rules.commission(seller_id, &lines, total);
            orders.push(Order {
                id: OrderId(self.new_id()),
                checkout_id,
                buyer_id: buyer.id,
                seller_id,
                store_name: listing
                    .sellers
                    .get(&seller_id)
                    .and_then(|s| s.store_name.clone())
                    .unwrap_or_default(),
                status: OrderStatus::Pending,
                items,
                address: address.clone(),
                total,
                commission: Some(commission),
                return_until: None,
                earning_released_at: None,
                payment_status: None,
                history: vec![StatusChange {
                    from: None,
                    to: OrderStatus::Pending,
                    at: now,
                    by: buyer.id,
                }],
                created_at: now,
                updated_at: now,
            });
        }
        let mut outbox = vec![self.render(&Notification::OrderConfirmation {
            buyer,
            checkout_id,
            orders: &orders,
        })?];
        for order in &orders {
            if let Some(seller) = listing.sellers.get(&order.seller_id) {
                outbox.push(self.render(&Notification::NewOrder { seller, order })?);
            }
        }
        let grand_total = orders_total(&orders, currency)?;
        Ok(CheckoutPlan {
            checkout_id,
            buyer_id: buyer.id,
            idempotency_key: idempotency_key.clone(),
            request_hash: request_hash.to_owned(),
            cart_version: cart.version,
            reservations: reservations
                .into_iter()
                .map(|(product_id, quantity)| Reservation {
                    product_id,
                    quantity,
                })
                .collect(),
            orders,
            payment: Some(self.new_payment(checkout_id, buyer.id, grand_total, now)),
            outbox,
            created_at: now,
        })
    }

    async fn replay(
        &self,
        done: CheckoutRecord,
        request_hash: &str,
        buyer_email: &str,
    ) -> Result<Checkout> {
        if done.request_hash != request_hash {
            return Err(Error::conflict(
                "idempotency_key_reused",
                "this idempotency key was used for a different checkout request",
            ));
        }
        let orders = self
            .storage()
            .checkout_orders(done.checkout_id)
            .await?
            .into_iter()
            .map(Order::for_buyer)
            .collect();
        // A repeated request finishes what the first could not: opening the
        // payment at the provider, with the same key.
        let payment = match self
            .storage()
            .checkout_payments(&[done.checkout_id])
            .await?
            .pop()
        {
            Some(p) => Some(self.open_payment(p, buyer_email).await?),
            None => None,
        };
        Ok(Checkout {
            checkout_id: done.checkout_id,
            orders: self.with_payment_status(orders).await?,
            payment,
            replayed: true,
        })
    }
}

/// The grand total of a checkout's orders.
fn orders_total(orders: &[Order], currency: crate::money::Currency) -> Result<Money> {
    orders
        .iter()
        .try_fold(Money::zero(currency), |acc, o| acc.checked_add(o.total))
        .ok_or_else(|| Error::internal("grand total overflow"))
}
