//! Embeds the marketplace on the in-memory store and walks a whole sale: an admin
//! verifies two sellers, they list products, a buyer fills a cart from both, checks
//! out into two orders, the sellers fulfil them, and the mails are delivered.
//!
//! Run it with `cargo run -p marketplace-examples --bin embedded-sale`.

use std::sync::Arc;

use anyhow::Result;
use marketplace_core::{
    AddressInput, AuthConfig, CheckoutRequest, Config, DevMailer, Discount, DiscountKind,
    IdempotencyKey, JwtSecret, Marketplace, Money, NewAccount, NewProduct, OrderStatus,
    OutboxWorker, Principal, Role,
};
use storage_memory::MemoryStorage;

fn usd(cents: i64) -> Money {
    Money::new(cents, marketplace_core::Currency::USD)
}

async fn sign_up(
    m: &Marketplace<MemoryStorage>,
    email: &str,
    role: Role,
    store: Option<&str>,
) -> Result<Principal> {
    let user = m
        .register(NewAccount {
            email: email.into(),
            password: "a long passphrase".into(),
            role,
            name: None,
            store_name: store.map(Into::into),
        })
        .await?;
    // A host would authenticate with the access token from a login; the example
    // does the same to show the round trip.
    let tokens = m.login(email, "a long passphrase", None).await?;
    let who = m.authenticate(&tokens.access_token).await?;
    assert_eq!(who.user_id, user.id);
    println!("{:<7} {email} signed up and logged in", format!("{role:?}"));
    Ok(who)
}

#[tokio::main]
async fn main() -> Result<()> {
    let secret = JwtSecret::new(JwtSecret::generate()).map_err(anyhow::Error::msg)?;
    let market = Marketplace::builder(MemoryStorage::new(), Config::new(AuthConfig::new(secret)))
        .build()
        .await?;

    let admin = {
        let u = market
            .create_admin("admin@example.com", "an admin passphrase")
            .await?;
        Principal {
            user_id: u.id,
            role: u.role,
        }
    };
    let books = sign_up(
        &market,
        "books@example.com",
        Role::Seller,
        Some("Paper Trail Books"),
    )
    .await?;
    let teas = sign_up(
        &market,
        "teas@example.com",
        Role::Seller,
        Some("Leaf & Kettle"),
    )
    .await?;
    for seller in [&books, &teas] {
        let s = market.decide_seller(&admin, seller.user_id, true).await?;
        println!("admin   verified \"{}\"", s.store_name);
    }

    let novel = market
        .create_product(
            &books,
            NewProduct {
                sku: None,
                title: "The Long Checkout".into(),
                description: "A novel about distributed transactions.".into(),
                price: usd(1899),
                stock: 5,
                category_id: None,
                images: vec![],
                discount: Some(Discount {
                    kind: DiscountKind::Percentage { value: 10 },
                    starts_at: None,
                    ends_at: None,
                }),
                active: None,
            },
        )
        .await?;
    let tea = market
        .create_product(
            &teas,
            NewProduct {
                sku: None,
                title: "Sencha, 100 g".into(),
                description: "Steamed green tea.".into(),
                price: usd(850),
                stock: 20,
                category_id: None,
                images: vec![],
                discount: None,
                active: None,
            },
        )
        .await?;
    println!(
        "sellers listed \"{}\" at {} (offer: {}) and \"{}\" at {}",
        novel.title, novel.price, novel.effective_price, tea.title, tea.price
    );

    let buyer = sign_up(&market, "ada@example.com", Role::Buyer, None).await?;
    let home = market
        .add_address(
            &buyer,
            AddressInput {
                name: Some("Ada Lovelace".into()),
                line1: Some("12 St James's Square".into()),
                city: Some("London".into()),
                postal_code: Some("SW1Y 4JH".into()),
                country: Some("GB".into()),
                ..Default::default()
            },
        )
        .await?;
    market.add_to_cart(&buyer, novel.id, 1).await?;
    let cart = market.add_to_cart(&buyer, tea.id, 3).await?;
    for group in &cart.sellers {
        println!(
            "cart    {}: {} line(s), subtotal {}",
            group.store_name,
            group.items.len(),
            group.subtotal
        );
    }
    println!("cart    total {}", cart.total);

    // The key a client sends with its checkout (a host reads it from a header).
    let key = IdempotencyKey::parse("example-checkout-1").map_err(marketplace_core::Error::from)?;
    let checkout = market
        .checkout(
            &buyer,
            &key,
            CheckoutRequest {
                address_id: Some(home.id),
            },
        )
        .await?;
    println!(
        "checkout {} became {} orders:",
        checkout.checkout_id,
        checkout.orders.len()
    );
    for o in &checkout.orders {
        println!(
            "  order {} from {}: {} item(s), total {}",
            o.id,
            o.store_name,
            o.items.len(),
            o.total
        );
    }
    let again = market
        .checkout(
            &buyer,
            &key,
            CheckoutRequest {
                address_id: Some(home.id),
            },
        )
        .await?;
    println!(
        "retrying with the same idempotency key returns the same checkout: {}",
        again.checkout_id == checkout.checkout_id
    );

    for order in &checkout.orders {
        let seller = if order.seller_id == books.user_id {
            &books
        } else {
            &teas
        };
        for step in [
            OrderStatus::Accepted,
            OrderStatus::Packed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ] {
            market.set_order_status(seller, order.id, step).await?;
        }
        let done = market.order(&buyer, order.id).await?;
        let path: Vec<_> = done.history.iter().map(|h| h.to.as_str()).collect();
        println!("order {} went {}", done.id, path.join(" -> "));
    }
    println!(
        "stock left: novel {}, tea {}",
        market.product(novel.id).await?.stock,
        market.product(tea.id).await?.stock
    );

    let worker = OutboxWorker::new(market.clone(), Arc::new(DevMailer::log_only()));
    let report = worker.run_once().await?;
    println!("mail worker delivered {} message(s):", report.delivered);
    let sent = market.outbox(&admin, None, None, Some(100)).await?;
    for m in sent.items.iter().rev() {
        println!("  to {:<20} {}", m.recipient, m.subject);
    }
    Ok(())
}
