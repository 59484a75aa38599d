//! The catalog: an admin's block on a product, and categories.

use anyhow::{Context, Result};
use marketplace_core::{CategoryId, Principal, ProductId, ProductView};
use marketplace_host::Market;
use serde::Serialize;

use crate::cli::{CategoriesCommand, ProductsCommand};
use crate::output::{Output, rendered, table};

/// A product after an admin's block was set or lifted.
#[derive(Serialize)]
struct Moderated {
    #[serde(flatten)]
    product: ProductView,
    /// Whether an admin keeps it out of the catalog.
    blocked: bool,
}

/// `products ...`
pub async fn products(market: &Market, out: Output, command: ProductsCommand) -> Result<()> {
    let (id, blocked) = match command {
        ProductsCommand::Deactivate { id } => (id, true),
        ProductsCommand::Activate { id } => (id, false),
    };
    let what = if blocked { "deactivate" } else { "activate" };
    let product = moderate(market, id, blocked)
        .await
        .with_context(|| format!("cannot {what} the product {id}"))?;
    out.show(&product, |m| {
        let state = if m.blocked {
            "deactivated: out of the catalog"
        } else {
            "no longer blocked"
        };
        format!("product {} ({}) is {state}", m.product.id, m.product.title)
    })
}

async fn moderate(
    market: &Market,
    id: ProductId,
    blocked: bool,
) -> marketplace_core::Result<Moderated> {
    let operator = Principal::operator();
    market.set_product_blocked(&operator, id, blocked).await?;
    let product = market.my_product(&operator, id).await?;
    Ok(Moderated { product, blocked })
}

/// The answer to `categories delete`.
#[derive(Serialize)]
struct Deleted {
    deleted: CategoryId,
}

/// `categories ...`
pub async fn categories(market: &Market, out: Output, command: CategoriesCommand) -> Result<()> {
    let operator = Principal::operator();
    match command {
        CategoriesCommand::List => {
            let all = market
                .categories()
                .await
                .context("cannot list the categories")?;
            out.show(&all, |all| {
                let mut t = table(["id", "name"]);
                for c in all {
                    t.add_row([c.id.to_string(), c.name.clone()]);
                }
                rendered(&t, "no categories")
            })
        }
        CategoriesCommand::Create { name } => {
            let c = market
                .create_category(&operator, &name)
                .await
                .context("cannot create the category")?;
            out.show(&c, |c| format!("category {} created (id {})", c.name, c.id))
        }
        CategoriesCommand::Rename { id, name } => {
            let c = market
                .rename_category(&operator, id, &name)
                .await
                .with_context(|| format!("cannot rename the category {id}"))?;
            out.show(&c, |c| format!("category {} is now named {}", c.id, c.name))
        }
        CategoriesCommand::Delete { id } => {
            market
                .delete_category(&operator, id)
                .await
                .with_context(|| format!("cannot delete the category {id}"))?;
            out.show(&Deleted { deleted: id }, |d| {
                format!("category {} deleted", d.deleted)
            })
        }
    }
}
