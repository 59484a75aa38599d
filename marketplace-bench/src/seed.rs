//! The catalog and the shoppers, created through the library (`app.market`), not
//! over HTTP: verified sellers with their products, buyers with an address and an
//! access token, and a few "hot" products for the contention phase.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use futures::future::try_join_all;
use marketplace_core::{AddressInput, NewAccount, NewProduct, Principal, ProductId, Role, UserId};
use serde_json::json;
use server_warp::extract::Market;

/// Words product titles are made of, so a text search finds 1 in 20.
pub const WORDS: [&str; 20] = [
    "lamp", "chair", "table", "mug", "kettle", "scarf", "boots", "clock", "radio", "vase",
    "pillow", "knife", "bowl", "jacket", "camera", "teapot", "blanket", "basket", "mirror", "rug",
];

/// The password of every seeded account (hashed at the cheapest cost).
const PASSWORD: &str = "benchmark password";

/// A seller and its products (ids in creation order).
#[derive(Clone, Debug)]
pub struct Seller {
    /// Its products.
    pub products: Vec<ProductId>,
}

/// A buyer ready to shop over HTTP.
#[derive(Clone, Debug)]
pub struct Buyer {
    /// Who it is, for calls through the library.
    pub user_id: UserId,
    /// `Authorization: Bearer` token.
    pub token: String,
    /// Its (default) address.
    pub address: String,
}

/// Everything seeded.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// Sellers of the ordinary catalog.
    pub sellers: Vec<Seller>,
    /// Buyers.
    pub buyers: Vec<Buyer>,
    /// The hot products of the contention phase (of one extra seller), with their
    /// starting stock.
    pub hot: Vec<(ProductId, u32)>,
    /// Tells this run's accounts apart from earlier runs on the same database.
    pub run: String,
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    Ok(serde_json::from_value(v)?)
}

async fn seller(market: &Market, n: usize, run: &str) -> Result<UserId> {
    let email = format!("seller{n}-{run}@bench.example");
    let user = market
        .register(parse::<NewAccount>(json!({
            "email": email, "password": PASSWORD, "role": "seller",
            "store_name": format!("Store {n}"),
        }))?)
        .await?;
    market.verify_seller_by_email(&email).await?;
    Ok(user.id)
}

async fn products(
    market: &Market,
    seller: UserId,
    first: usize,
    count: usize,
    stock: u32,
) -> Result<Vec<ProductId>> {
    let who = Principal {
        user_id: seller,
        role: Role::Seller,
    };
    let mut ids = Vec::with_capacity(count);
    for i in first..first + count {
        let word = WORDS[i % WORDS.len()];
        let p = market
            .create_product(
                &who,
                parse::<NewProduct>(json!({
                    "title": format!("Product {i} {word}"),
                    "description": format!("A fine {word}, number {i} of the catalog."),
                    "price": {"amount": 500 + (i as i64 * 37) % 9500, "currency": "USD"},
                    "stock": stock,
                }))?,
            )
            .await
            .with_context(|| format!("product {i}"))?;
        ids.push(p.id);
    }
    Ok(ids)
}

async fn buyer(market: &Market, n: usize, run: &str) -> Result<Buyer> {
    let email = format!("buyer{n}-{run}@bench.example");
    let user = market
        .register(parse::<NewAccount>(json!({
            "email": email, "password": PASSWORD, "role": "buyer", "name": "Ada",
        }))?)
        .await?;
    let who = Principal {
        user_id: user.id,
        role: Role::Buyer,
    };
    let address = market
        .add_address(
            &who,
            parse::<AddressInput>(json!({
                "name": "Ada Buyer", "line1": "1 Main St", "city": "Springfield",
                "postal_code": "12345", "country": "US", "is_default": true,
            }))?,
        )
        .await?;
    // Each buyer signs in from an address of its own, as real buyers do: the
    // login throttle counts attempts per client before checking the password,
    // so hundreds of logins at once from one address would be refused.
    let client = Ipv4Addr::from(0x0a00_0000_u32 + u32::try_from(n).unwrap_or(u32::MAX >> 8));
    let tokens = market
        .login(&email, PASSWORD, Some(IpAddr::V4(client)))
        .await?;
    Ok(Buyer {
        user_id: user.id,
        token: tokens.access_token,
        address: address.id.to_string(),
    })
}

/// Seeds `products` products across `sellers` verified sellers (stock large
/// enough never to run out), `buyers` buyers, and `hot` products of `hot_stock`
/// units each of one more seller.
pub async fn seed(
    market: &Market,
    sellers: usize,
    products_total: usize,
    buyers: usize,
    hot: usize,
    hot_stock: u32,
) -> Result<Seeded> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let per = products_total / sellers;
    let seller_tasks = (0..sellers).map(|n| {
        let market = market.clone();
        let run = run.clone();
        async move {
            let id = seller(&market, n, &run).await?;
            let products = products(&market, id, n * per, per, 1_000_000).await?;
            anyhow::Ok(Seller { products })
        }
    });
    let sellers = try_join_all(seller_tasks).await?;

    let hot_seller = seller(market, sellers.len(), &run).await?;
    let hot_ids = products(market, hot_seller, products_total, hot, hot_stock).await?;

    let all = buyers_numbered(market, 0..buyers, &run).await?;
    Ok(Seeded {
        sellers,
        buyers: all,
        hot: hot_ids.into_iter().map(|id| (id, hot_stock)).collect(),
        run,
    })
}

/// Buyers numbered `numbers`, created 32 at a time.
async fn buyers_numbered(
    market: &Market,
    numbers: std::ops::Range<usize>,
    run: &str,
) -> Result<Vec<Buyer>> {
    let mut all = Vec::with_capacity(numbers.len());
    for chunk in numbers.collect::<Vec<_>>().chunks(32) {
        let batch = chunk.iter().map(|&n| buyer(market, n, run));
        all.extend(try_join_all(batch).await?);
    }
    Ok(all)
}

/// `count` more buyers, each with a cart already holding the buyer step's three
/// items (two products of one seller, one of another), for a phase that times the
/// checkout call alone.
pub async fn buyers_with_carts(
    market: &Market,
    seeded: &Seeded,
    count: usize,
) -> Result<Vec<Buyer>> {
    let first = 1_000_000 + seeded.buyers.len();
    let buyers = buyers_numbered(market, first..first + count, &seeded.run).await?;
    for (chunk_no, chunk) in buyers.chunks(32).enumerate() {
        let fills = chunk.iter().enumerate().map(|(k, b)| {
            let n = chunk_no * 32 + k;
            let who = Principal {
                user_id: b.user_id,
                role: Role::Buyer,
            };
            let a = &seeded.sellers[n % seeded.sellers.len()];
            let other = &seeded.sellers[(n + 1) % seeded.sellers.len()];
            let x = (n / seeded.sellers.len()) % a.products.len();
            let items = [
                a.products[x],
                a.products[(x + 1) % a.products.len()],
                other.products[x % other.products.len()],
            ];
            async move {
                for p in items {
                    market.add_to_cart(&who, p, 1).await?;
                }
                anyhow::Ok(())
            }
        });
        try_join_all(fills).await?;
    }
    Ok(buyers)
}
