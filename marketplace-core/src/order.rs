//! Orders: one per seller per checkout, their status machine and history.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::commission::Commission;
use crate::error::{Error, Result};
use crate::ids::{CheckoutId, OrderId, ProductId, UserId};
use crate::ledger::LedgerEntry;
use crate::marketplace::Marketplace;
use crate::money::Money;
use crate::notify::Notification;
use crate::outbox::OutboxMessage;
use crate::page::{Page, newest_cursor, parse_newest_cursor};
use crate::payment::OrderPaymentStatus;
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// Where an order stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, awaiting the seller.
    Pending,
    /// The seller took it on.
    Accepted,
    /// Packed for shipping.
    Packed,
    /// Handed to the carrier.
    Shipped,
    /// Received by the buyer.
    Delivered,
    /// Cancelled; its stock went back.
    Cancelled,
    /// The buyer asked to return it.
    ReturnRequested,
    /// The return arrived; its stock went back.
    Returned,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Pending,
        OrderStatus::Accepted,
        OrderStatus::Packed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::ReturnRequested,
        OrderStatus::Returned,
    ];

    /// The status name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Accepted => "accepted",
            OrderStatus::Packed => "packed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::Returned => "returned",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The next step of fulfilment, if any.
    pub fn next(&self) -> Option<OrderStatus> {
        match self {
            OrderStatus::Pending => Some(OrderStatus::Accepted),
            OrderStatus::Accepted => Some(OrderStatus::Packed),
            OrderStatus::Packed => Some(OrderStatus::Shipped),
            OrderStatus::Shipped => Some(OrderStatus::Delivered),
            OrderStatus::ReturnRequested => Some(OrderStatus::Returned),
            _ => None,
        }
    }

    /// Whether the order's units count as sold (for stock accounting).
    pub fn holds_stock(&self) -> bool {
        !matches!(self, OrderStatus::Cancelled | OrderStatus::Returned)
    }
}

impl OrderStatus {
    /// Whether an account of `role` may move an order from this status to
    /// `to`: a buyer cancels a pending order or asks to return a delivered
    /// one; a seller (or an admin) takes it one step forward, cancels it while
    /// pending or accepted, and completes a requested return. The rule
    /// [`Marketplace::set_order_status`] and the buyer's cancel and return
    /// apply, for a host to offer only the buttons that can succeed.
    pub fn can_move(self, role: Role, to: OrderStatus) -> bool {
        let actor = match role {
            Role::Buyer => Actor::Buyer,
            _ => Actor::Seller,
        };
        allowed(actor, self, to)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may move an order, as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Actor {
    Buyer,
    Seller,
}

/// Whether `actor` may move an order from `from` to `to`.
fn allowed(actor: Actor, from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus::*;
    match actor {
        Actor::Buyer => matches!(
            (from, to),
            (Pending, Cancelled) | (Delivered, ReturnRequested)
        ),
        Actor::Seller => {
            matches!((from, to), (Pending | Accepted, Cancelled))
                || (from.next() == Some(to) && from != Delivered)
        }
    }
}

/// One line of an order: a snapshot taken at checkout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// Its title at checkout.
    pub title: String,
    /// Listed unit price at checkout.
    pub unit_price: Money,
    /// Unit price paid.
    pub effective_price: Money,
    /// Units bought.
    pub quantity: u32,
    /// `effective_price x quantity`.
    pub line_total: Money,
}

/// One entry of an order's status history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// Previous status (`None` when the order was placed).
    pub from: Option<OrderStatus>,
    /// New status.
    pub to: OrderStatus,
    /// When.
    pub at: DateTime<Utc>,
    /// Who made the change.
    pub by: UserId,
}

/// One seller's order within a checkout.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Identifier (also the order number shown to people).
    pub id: OrderId,
    /// The checkout it came from, shared with the orders of the other sellers.
    pub checkout_id: CheckoutId,
    /// The buyer.
    pub buyer_id: UserId,
    /// The seller.
    pub seller_id: UserId,
    /// The seller's store name at checkout.
    pub store_name: String,
    /// Current status.
    pub status: OrderStatus,
    /// Item snapshots.
    pub items: Vec<OrderItem>,
    /// Delivery address snapshot.
    pub address: Address,
    /// Sum of the line totals.
    pub total: Money,
    /// The operator's commission and the seller's net, fixed at checkout. Shown
    /// to the seller and admins; `None` in a buyer's view (and on orders placed
    /// before commissions existed, which earn their whole total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Commission>,
    /// Set when the order is delivered: the end of its return window, until
    /// which the buyer may ask to return it and the seller's earning is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_until: Option<DateTime<Utc>>,
    /// When the seller's earning became available, once the return window
    /// closed. Not in a buyer's view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earning_released_at: Option<DateTime<Utc>>,
    /// Where its payment stands, as its buyer sees it; filled in when the
    /// order is read (not stored), absent for orders without a payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<OrderPaymentStatus>,
    /// Every status change, oldest first.
    pub history: Vec<StatusChange>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// The order as its buyer sees it: without the operator's commission and the
    /// seller's payout state.
    pub fn for_buyer(mut self) -> Order {
        self.commission = None;
        self.earning_released_at = None;
        self
    }

    /// Units of each product the order holds.
    pub fn units(&self) -> Vec<(ProductId, u32)> {
        self.items
            .iter()
            .map(|i| (i.product_id, i.quantity))
            .collect()
    }
}

/// The sort key of the last order of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderKey {
    /// Placement time.
    pub created_at: DateTime<Utc>,
    /// Tie-breaker.
    pub id: OrderId,
}

/// An order listing as storage executes it: newest first (`created_at`, then id,
/// both descending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderQuery {
    /// Only this buyer's orders.
    pub buyer_id: Option<UserId>,
    /// Only this seller's orders.
    pub seller_id: Option<UserId>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Start after this key.
    pub after: Option<OrderKey>,
    /// Maximum number of results.
    pub limit: u32,
}

impl OrderQuery {
    /// Whether `o` matches the filters (not the cursor).
    pub fn matches(&self, o: &Order) -> bool {
        self.buyer_id.is_none_or(|b| o.buyer_id == b)
            && self.seller_id.is_none_or(|s| o.seller_id == s)
            && self.status.is_none_or(|s| o.status == s)
            && self
                .after
                .is_none_or(|k| (o.created_at, o.id) < (k.created_at, k.id))
    }
}

/// A status change as storage applies it; see [`OrderStore::transition_order`](crate::storage::OrderStore::transition_order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderTransition {
    /// The order.
    pub order_id: OrderId,
    /// The status it must still have.
    pub from: OrderStatus,
    /// The new status.
    pub to: OrderStatus,
    /// The history entry to append.
    pub change: StatusChange,
    /// Units to add back to stock.
    pub restock: Vec<(ProductId, u32)>,
    /// Sets the order's `return_until` (when it is delivered).
    pub return_until: Option<DateTime<Utc>>,
    /// Requires the order's earning not to be released yet (a return request):
    /// when it was, the transition changes nothing and returns `None`.
    pub require_unreleased: bool,
    /// The ledger entry the change writes: the earning at delivery, the reversal
    /// when a return completes.
    pub ledger: Option<LedgerEntry>,
    /// Mails announcing the change.
    pub outbox: Vec<OutboxMessage>,
}

/// A page request for orders.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OrderListQuery {
    /// Page size (1..=100, default 20).
    pub limit: Option<u32>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

fn encode_cursor(o: &Order) -> String {
    newest_cursor(o.created_at, o.id)
}

fn decode_cursor(c: &str) -> Result<OrderKey> {
    let (created_at, id) = parse_newest_cursor(c)?;
    Ok(OrderKey { created_at, id })
}

impl<S: Storage> Marketplace<S> {
    async fn order_page(&self, mut q: OrderQuery, page: &OrderListQuery) -> Result<Page<Order>> {
        q.after = page
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(decode_cursor)
            .transpose()?;
        let limit = self.page_size(page.limit);
        q.limit = limit + 1;
        q.status = page.status;
        let rows = self.storage().list_orders(&q).await?;
        let rows = self.with_payment_status(rows).await?;
        Ok(Page::from_overfetch(rows, limit, encode_cursor))
    }

    /// The buyer's orders, newest first.
    pub async fn my_orders(&self, who: &Principal, page: OrderListQuery) -> Result<Page<Order>> {
        self.require(who, Role::Buyer)?;
        let q = OrderQuery {
            buyer_id: Some(who.user_id),
            seller_id: None,
            status: None,
            after: None,
            limit: 0,
        };
        Ok(self.order_page(q, &page).await?.map(Order::for_buyer))
    }

    /// The seller's orders, newest first, optionally of one status.
    pub async fn seller_orders(
        &self,
        who: &Principal,
        page: OrderListQuery,
    ) -> Result<Page<Order>> {
        self.require(who, Role::Seller)?;
        let q = OrderQuery {
            buyer_id: None,
            seller_id: Some(who.user_id),
            status: None,
            after: None,
            limit: 0,
        };
        self.order_page(q, &page).await
    }

    /// Every order, for an admin.
    pub async fn all_orders(&self, who: &Principal, page: OrderListQuery) -> Result<Page<Order>> {
        self.require(who, Role::Admin)?;
        let q = OrderQuery {
            buyer_id: None,
            seller_id: None,
            status: None,
            after: None,
            limit: 0,
        };
        self.order_page(q, &page).await
    }

    /// One order the caller may see: the buyer's own, the seller's own, or any for
    /// an admin. Someone else's order is `NotFound`, like a missing one.
    pub async fn order(&self, who: &Principal, id: OrderId) -> Result<Order> {
        let order = self.visible_order(who, id).await?;
        // Only the reader's answer carries the payment status: `move_order`
        // reads the payment itself, and adds it once to what it returns.
        let order = self
            .with_payment_status(vec![order])
            .await?
            .pop()
            .ok_or(Error::NotFound("order"))?;
        Ok(match who.role {
            Role::Buyer => order.for_buyer(),
            _ => order,
        })
    }

    /// The whole stored order, when the caller may see it.
    async fn visible_order(&self, who: &Principal, id: OrderId) -> Result<Order> {
        let order = self
            .storage()
            .order(id)
            .await?
            .ok_or(Error::NotFound("order"))?;
        match who.role {
            Role::Admin => Ok(order),
            Role::Seller if order.seller_id == who.user_id => Ok(order),
            Role::Buyer if order.buyer_id == who.user_id => Ok(order),
            _ => Err(Error::NotFound("order")),
        }
    }

    /// One of the buyer's own orders. Only buyers ask this way (anyone else is
    /// `Forbidden`); another buyer's order is `NotFound`, like a missing one.
    pub async fn buyer_order(&self, who: &Principal, id: OrderId) -> Result<Order> {
        self.require(who, Role::Buyer)?;
        self.order(who, id).await
    }

    /// One of the seller's own orders. Only sellers ask this way (an admin reads
    /// any order with [`order`](Self::order)); another seller's order is
    /// `NotFound`, like a missing one.
    pub async fn seller_order(&self, who: &Principal, id: OrderId) -> Result<Order> {
        self.require(who, Role::Seller)?;
        self.order(who, id).await
    }

    /// The buyer cancels a pending order; its stock goes back.
    pub async fn cancel_order(&self, who: &Principal, id: OrderId) -> Result<Order> {
        self.require(who, Role::Buyer)?;
        Ok(self
            .move_order(who, id, OrderStatus::Cancelled)
            .await?
            .for_buyer())
    }

    /// The buyer asks to return a delivered order, while its return window
    /// (`return_until`) is open.
    pub async fn request_return(&self, who: &Principal, id: OrderId) -> Result<Order> {
        self.require(who, Role::Buyer)?;
        Ok(self
            .move_order(who, id, OrderStatus::ReturnRequested)
            .await?
            .for_buyer())
    }

    /// The seller (or an admin) moves an order one step forward, cancels it while
    /// `pending` or `accepted`, or completes a requested return. Cancelling and
    /// completing a return put the stock back.
    pub async fn set_order_status(
        &self,
        who: &Principal,
        id: OrderId,
        to: OrderStatus,
    ) -> Result<Order> {
        if who.role == Role::Buyer {
            return Err(Error::Forbidden("only sellers may do this"));
        }
        self.move_order(who, id, to).await
    }

    async fn move_order(&self, who: &Principal, id: OrderId, to: OrderStatus) -> Result<Order> {
        loop {
            let order = self.visible_order(who, id).await?;
            if !order.status.can_move(who.role, to) {
                return Err(Error::InvalidTransition {
                    from: order.status,
                    to,
                });
            }
            let now = self.now();
            if order.status == OrderStatus::Delivered
                && (order.earning_released_at.is_some()
                    || order.return_until.is_some_and(|end| now >= end))
            {
                return Err(Error::conflict(
                    "return_window_closed",
                    "the return window of this order has closed",
                ));
            }
            let t = self.transition_for(&order, to, who.user_id, now).await?;
            // `None`: the status (or the checkout's payment) moved since it was
            // read; judge the request again against the new state.
            let moved = match self.payment_for_move(&order, to, now).await? {
                Some((old, new)) => self.move_with_payment(&old, new, t).await?,
                None => self.retry(|| self.storage().transition_order(&t)).await?,
            };
            if let Some(order) = moved {
                return self
                    .with_payment_status(vec![order])
                    .await?
                    .pop()
                    .ok_or(Error::NotFound("order"));
            }
        }
    }

    /// The status change of `order` to `to` by `by`, as storage applies it:
    /// restock, return deadline, ledger entry and the buyer's mail.
    pub(crate) async fn transition_for(
        &self,
        order: &Order,
        to: OrderStatus,
        by: UserId,
        now: DateTime<Utc>,
    ) -> Result<OrderTransition> {
        let restock = if order.status.holds_stock() && !to.holds_stock() {
            order.units()
        } else {
            Vec::new()
        };
        let mut updated = order.clone().for_buyer();
        updated.status = to;
        let buyer = self.storage().user(order.buyer_id).await?;
        let outbox = match &buyer {
            Some(buyer) => vec![self.render(&Notification::StatusChanged {
                buyer,
                order: &updated,
                from: order.status,
            })?],
            None => Vec::new(),
        };
        Ok(OrderTransition {
            order_id: order.id,
            from: order.status,
            to,
            change: StatusChange {
                from: Some(order.status),
                to,
                at: now,
                by,
            },
            restock,
            return_until: (to == OrderStatus::Delivered).then(|| self.return_deadline(now)),
            require_unreleased: order.status == OrderStatus::Delivered,
            ledger: self.ledger_entry_for(order, to, now),
            outbox,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn the_status_machine() {
        let forward = [
            (Pending, Accepted),
            (Accepted, Packed),
            (Packed, Shipped),
            (Shipped, Delivered),
        ];
        for (from, to) in forward {
            assert!(allowed(Actor::Seller, from, to));
            assert!(!allowed(Actor::Buyer, from, to));
            assert!(
                !allowed(Actor::Seller, to, from),
                "no step back from {to} to {from}"
            );
        }
        assert!(
            !allowed(Actor::Seller, Pending, Packed),
            "one step at a time"
        );
        assert!(allowed(Actor::Buyer, Pending, Cancelled));
        assert!(!allowed(Actor::Buyer, Accepted, Cancelled));
        assert!(allowed(Actor::Seller, Accepted, Cancelled));
        assert!(!allowed(Actor::Seller, Packed, Cancelled));
        assert!(allowed(Actor::Buyer, Delivered, ReturnRequested));
        assert!(!allowed(Actor::Seller, Delivered, ReturnRequested));
        assert!(allowed(Actor::Seller, ReturnRequested, Returned));
        assert!(!allowed(Actor::Buyer, ReturnRequested, Returned));
        for s in OrderStatus::ALL {
            assert!(!allowed(Actor::Seller, Cancelled, s) && !allowed(Actor::Buyer, Cancelled, s));
            assert!(!allowed(Actor::Seller, Returned, s) && !allowed(Actor::Buyer, Returned, s));
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }
}
