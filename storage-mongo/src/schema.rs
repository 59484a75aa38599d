//! The collections and their indexes, created when a store connects.

use marketplace_core::UserId;
use mongodb::bson::{Document, doc};
use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::{Database, IndexModel, options::IndexOptions};

/// Accounts; `email` is stored lower-cased and unique.
pub(crate) const USERS: &str = "users";
/// Single-use tokens (email verification, password reset), keyed by hash.
pub(crate) const TOKENS: &str = "one_time_tokens";
/// Refresh tokens, keyed by hash, with their family and state.
pub(crate) const REFRESH: &str = "refresh_tokens";
/// Failed-login counters, keyed by throttle key.
pub(crate) const LOGIN_FAILURES: &str = "login_failures";
/// Delivery addresses.
pub(crate) const ADDRESSES: &str = "addresses";
/// Categories, with a lower-cased `name_key` for case-insensitive uniqueness.
pub(crate) const CATEGORIES: &str = "categories";
/// Products, with the denormalized `seller_selling` flag.
pub(crate) const PRODUCTS: &str = "products";
/// One cart document per buyer: `{_id: buyer, version, lines}`.
pub(crate) const CARTS: &str = "carts";
/// Wishlist entries.
pub(crate) const WISHLIST: &str = "wishlist";
/// Idempotency records of checkouts.
pub(crate) const CHECKOUTS: &str = "checkouts";
/// Orders, with item and address snapshots and history embedded.
pub(crate) const ORDERS: &str = "orders";
/// The notification outbox.
pub(crate) const OUTBOX: &str = "outbox";
/// Commission rules, one per scope.
pub(crate) const COMMISSION_RULES: &str = "commission_rules";
/// The seller ledger's entries.
pub(crate) const LEDGER: &str = "ledger_entries";
/// Each seller's balance per currency, moved with every entry.
pub(crate) const BALANCES: &str = "seller_balances";
/// Payouts to sellers.
pub(crate) const PAYOUTS: &str = "payouts";
/// Checkouts' payments, one per checkout.
pub(crate) const PAYMENTS: &str = "payments";
/// The payment providers' events already handled, keyed `<provider>:<event_id>`.
pub(crate) const PAYMENT_EVENTS: &str = "payment_events";

/// What each unique index guards, as `AlreadyExists` names it.
const UNIQUE: &[(&str, &str)] = &[
    ("users_email", "email"),
    ("categories_name_key", "category name"),
    ("checkouts_buyer_key", "idempotency key"),
    ("wishlist_buyer_product", "wishlist entry"),
    ("products_seller_sku", "sku"),
    ("ledger_once_per_order", "ledger entry"),
    ("payouts_key", "idempotency key"),
    ("payments_checkout", "checkout payment"),
    ("payments_reference", "payment reference"),
];

/// The products the SKU rule covers: those with a SKU (a string, not `null`)
/// that are not archived. The partial filter of `products_seller_sku`.
fn sku_rule() -> Document {
    doc! { "sku": { "$type": "string" }, "archived": false }
}

/// The filter of `seller`'s live product with this SKU: it holds the index's
/// partial filter, so the server can answer from that index.
pub(crate) fn live_sku(seller: UserId, sku: &str) -> Document {
    doc! {
        "seller_id": crate::values::uuid(seller.0),
        "sku": { "$eq": sku, "$type": "string" },
        "archived": false,
    }
}

/// Names what a duplicate-key error message is about, from the index it names
/// (`E11000 duplicate key error collection: db.users index: users_email dup key`).
pub(crate) fn duplicated_by_message(message: &str) -> &'static str {
    let index = message
        .split_once("index: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_default();
    UNIQUE
        .iter()
        .find(|(name, _)| *name == index)
        .map_or("id", |(_, what)| what)
}

fn index(name: &str, keys: Document, unique: bool) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .name(name.to_owned())
                .unique(unique.then_some(true))
                .build(),
        )
        .build()
}

/// Every collection with its secondary indexes.
fn indexes() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            USERS,
            vec![
                index("users_email", doc! { "email": 1 }, true),
                // list_sellers: by status, then by id.
                index(
                    "users_sellers",
                    doc! { "seller_status": 1, "_id": 1 },
                    false,
                ),
            ],
        ),
        (
            TOKENS,
            vec![index("tokens_user", doc! { "user_id": 1 }, false)],
        ),
        (
            REFRESH,
            vec![
                // A login's live token (every authenticated request), and every
                // token of a login (revoking it).
                index(
                    "refresh_family_state",
                    doc! { "family": 1, "state": 1 },
                    false,
                ),
                index("refresh_user", doc! { "user_id": 1 }, false),
            ],
        ),
        (LOGIN_FAILURES, vec![]),
        (
            ADDRESSES,
            vec![index(
                "addresses_user",
                doc! { "user_id": 1, "seq": 1 },
                false,
            )],
        ),
        (
            CATEGORIES,
            vec![
                index("categories_name_key", doc! { "name_key": 1 }, true),
                index("categories_name", doc! { "name": 1, "_id": 1 }, false),
            ],
        ),
        (
            PRODUCTS,
            vec![
                // Keyset pagination: newest first and by price, id breaking ties.
                index(
                    "products_newest",
                    doc! { "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "products_price",
                    doc! { "price.amount": 1, "_id": 1 },
                    false,
                ),
                // Filters by seller and by category (and delete_category's check).
                index(
                    "products_seller",
                    doc! { "seller_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "products_category",
                    doc! { "category_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                // A seller's SKUs are unique among its live products.
                IndexModel::builder()
                    .keys(doc! { "seller_id": 1, "sku": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("products_seller_sku".to_owned())
                            .unique(true)
                            .partial_filter_expression(sku_rule())
                            .build(),
                    )
                    .build(),
            ],
        ),
        (CARTS, vec![]),
        (
            WISHLIST,
            vec![
                index(
                    "wishlist_buyer_product",
                    doc! { "buyer_id": 1, "product_id": 1 },
                    true,
                ),
                index(
                    "wishlist_newest",
                    doc! { "buyer_id": 1, "added_at": -1, "_id": -1 },
                    false,
                ),
            ],
        ),
        (
            CHECKOUTS,
            vec![index(
                "checkouts_buyer_key",
                doc! { "buyer_id": 1, "key": 1 },
                true,
            )],
        ),
        (
            ORDERS,
            vec![
                index(
                    "orders_buyer",
                    doc! { "buyer_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "orders_seller_status",
                    doc! { "seller_id": 1, "status": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "orders_seller",
                    doc! { "seller_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "orders_status",
                    doc! { "status": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index("orders_newest", doc! { "created_at": -1, "_id": -1 }, false),
                // Earnings due for release: delivered, unreleased, by deadline.
                index(
                    "orders_to_release",
                    doc! { "status": 1, "return_until": 1, "_id": 1 },
                    false,
                ),
                index("orders_checkout", doc! { "checkout_id": 1 }, false),
            ],
        ),
        (
            OUTBOX,
            vec![
                // claim_outbox: pending messages, oldest due first.
                index(
                    "outbox_due",
                    doc! { "status": 1, "next_attempt_at": 1, "_id": 1 },
                    false,
                ),
                index(
                    "outbox_status_newest",
                    doc! { "status": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index("outbox_newest", doc! { "created_at": -1, "_id": -1 }, false),
                index("outbox_claims", doc! { "claimed_by": 1 }, false),
            ],
        ),
        (COMMISSION_RULES, vec![]),
        (
            LEDGER,
            vec![
                // One earning, release and reversal per order: only those
                // entries carry `once` (`<order>:<kind>`).
                IndexModel::builder()
                    .keys(doc! { "once": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("ledger_once_per_order".to_owned())
                            .unique(true)
                            .partial_filter_expression(doc! { "once": { "$type": "string" } })
                            .build(),
                    )
                    .build(),
                index(
                    "ledger_seller_newest",
                    doc! { "seller_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index("ledger_newest", doc! { "created_at": -1, "_id": -1 }, false),
            ],
        ),
        (
            BALANCES,
            vec![index("balances_seller", doc! { "seller_id": 1 }, false)],
        ),
        (
            PAYOUTS,
            vec![
                index("payouts_key", doc! { "idempotency_key": 1 }, true),
                index(
                    "payouts_seller_newest",
                    doc! { "seller_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "payouts_status_newest",
                    doc! { "status": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "payouts_newest",
                    doc! { "created_at": -1, "_id": -1 },
                    false,
                ),
            ],
        ),
        (
            PAYMENTS,
            vec![
                index("payments_checkout", doc! { "checkout_id": 1 }, true),
                // A provider's reference names one payment; payments not yet
                // created at their provider have none (`null`).
                IndexModel::builder()
                    .keys(doc! { "provider": 1, "reference": 1 })
                    .options(
                        IndexOptions::builder()
                            .name("payments_reference".to_owned())
                            .unique(true)
                            .partial_filter_expression(doc! { "reference": { "$type": "string" } })
                            .build(),
                    )
                    .build(),
                // payments_due: earliest due first.
                index("payments_due", doc! { "due_at": 1, "_id": 1 }, false),
                index(
                    "payments_status_newest",
                    doc! { "status": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "payments_buyer_newest",
                    doc! { "buyer_id": 1, "created_at": -1, "_id": -1 },
                    false,
                ),
                index(
                    "payments_newest",
                    doc! { "created_at": -1, "_id": -1 },
                    false,
                ),
            ],
        ),
        (PAYMENT_EVENTS, vec![]),
    ]
}

/// Creates every collection (transactions on servers before 4.4 cannot create
/// them implicitly) and its indexes. Idempotent.
pub(crate) async fn ensure(db: &Database) -> Result<(), DriverError> {
    let existing = db.list_collection_names().await?;
    for (name, models) in indexes() {
        if !existing.iter().any(|c| c == name) {
            match db.create_collection(name).await {
                Ok(()) => {}
                // Created meanwhile by another process starting up.
                Err(e) if matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 48) => {}
                Err(e) => return Err(e),
            }
        }
        if !models.is_empty() {
            db.collection::<Document>(name)
                .create_indexes(models)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_key_messages_name_the_rule() {
        let m = "E11000 duplicate key error collection: shop.users index: users_email dup key: { email: \"a@b.c\" }";
        assert_eq!(duplicated_by_message(m), "email");
        let m = "E11000 duplicate key error collection: shop.categories index: categories_name_key dup key: { name_key: \"tea\" }";
        assert_eq!(duplicated_by_message(m), "category name");
        let m = "E11000 duplicate key error collection: shop.products index: products_seller_sku dup key: { seller_id: UUID(\"0190\"), sku: \"A-1\" }";
        assert_eq!(duplicated_by_message(m), "sku");
        assert_eq!(
            duplicated_by_message("E11000 duplicate key error index: _id_ dup key"),
            "id"
        );
        assert_eq!(duplicated_by_message("garbled"), "id");
    }
}
