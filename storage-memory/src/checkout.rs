//! The checkout commit: claim the key, check the cart version, take stock, write the orders.

use async_trait::async_trait;
use marketplace_core::cart::Cart;
use marketplace_core::checkout::{CheckoutOutcome, CheckoutPlan, CheckoutRecord};
use marketplace_core::error::ShortItem;
use marketplace_core::{CheckoutStore, IdempotencyKey, StorageResult, UserId};

use crate::MemoryStorage;

#[async_trait]
impl CheckoutStore for MemoryStorage {
    async fn checkout_by_key(
        &self,
        buyer: UserId,
        key: &IdempotencyKey,
    ) -> StorageResult<Option<CheckoutRecord>> {
        Ok(self.lock().checkouts.get(&(buyer, key.clone())).cloned())
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
        if let Some(p) = &plan.payment {
            s.checkout_payment.insert(p.checkout_id, p.id);
            s.payments.insert(p.id, p.clone());
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
}
