//! Orders, once for both dialects: their columns, decoder, listing and the
//! release round's query.

use chrono::{DateTime, Utc};
use marketplace_core::OrderStatus;
use marketplace_core::StorageResult;
use marketplace_core::address::Address;
use marketplace_core::commission::Commission;
use marketplace_core::order::{Order, OrderItem, OrderQuery, StatusChange};
use sqlx::QueryBuilder;

use super::{Binds, Columns, corrupt};
use crate::dialect::Dialect;

/// The columns of `orders`, in the order [`push_insert_orders`] binds them.
const ORDER_COLUMNS: &str = "id, checkout_id, buyer_id, seller_id, store_name, status, items, \
     address, total_amount, currency, commission, return_until, earning_released_at, history, \
     created_at, updated_at";

/// Pushes `INSERT INTO orders ... VALUES ...` for these orders (at least one).
pub(crate) fn push_insert_orders<'o, D: Dialect>(
    qb: &mut QueryBuilder<D>,
    orders: impl IntoIterator<Item = &'o Order>,
) {
    qb.push(format!("INSERT INTO orders ({ORDER_COLUMNS}) "));
    qb.push_values(orders, |mut b, o| {
        (&mut b)
            .uuid(o.id.0)
            .uuid(o.checkout_id.0)
            .uuid(o.buyer_id.0)
            .uuid(o.seller_id.0)
            .text(&o.store_name)
            .text(o.status.as_str())
            .json(&o.items)
            .json(&o.address)
            .int(o.total.amount)
            .text(o.total.currency.as_str())
            .opt_json(o.commission.as_ref())
            .opt_time(o.return_until)
            .opt_time(o.earning_released_at)
            .json(&o.history)
            .time(o.created_at)
            .time(o.updated_at);
    });
}

pub(crate) fn order<R: Columns>(r: &R) -> StorageResult<Order> {
    let status = r.text("status")?;
    Ok(Order {
        id: r.uuid("id")?.into(),
        checkout_id: r.uuid("checkout_id")?.into(),
        buyer_id: r.uuid("buyer_id")?.into(),
        seller_id: r.uuid("seller_id")?.into(),
        store_name: r.text("store_name")?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("order status", &status))?,
        items: r.json::<Vec<OrderItem>>("items")?,
        address: r.json::<Address>("address")?,
        total: r.money("total_amount", "currency")?,
        commission: r.opt_json::<Commission>("commission")?,
        return_until: r.opt_time("return_until")?,
        earning_released_at: r.opt_time("earning_released_at")?,
        // Not stored: core fills it in from the checkout's payment.
        payment_status: None,
        history: r.json::<Vec<StatusChange>>("history")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// A page of orders matching `q`, newest first.
pub(crate) fn list_orders<D: Dialect>(q: &OrderQuery) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new("SELECT * FROM orders WHERE TRUE");
    if let Some(b) = q.buyer_id {
        qb.push(" AND buyer_id = ").uuid(b.0);
    }
    if let Some(s) = q.seller_id {
        qb.push(" AND seller_id = ").uuid(s.0);
    }
    if let Some(s) = q.status {
        qb.push(" AND status = ").text(s.as_str());
    }
    if let Some(k) = q.after {
        qb.push(" AND (created_at, id) < (").time(k.created_at);
        qb.push(", ").uuid(k.id.0).push(")");
    }
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(i64::from(q.limit));
    qb
}

/// Up to `limit` delivered orders whose earning is due at `now`, oldest deadline
/// first (served by the partial index `orders_release_due_idx`).
pub(crate) fn orders_to_release<D: Dialect>(now: DateTime<Utc>, limit: u32) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(
        "SELECT * FROM orders WHERE status = 'delivered' AND earning_released_at IS NULL \
         AND return_until <= ",
    );
    qb.time(now)
        .push(" ORDER BY return_until, id LIMIT ")
        .int(i64::from(limit));
    qb
}
