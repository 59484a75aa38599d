//! Accounts: admins, sellers and the activation of any account.

use anyhow::{Context, Result, bail};
use marketplace_core::{Principal, Role, SellerListQuery, SellerSummary, User};
use marketplace_host::Market;

use crate::cli::{AdminCommand, SellersCommand, UsersCommand};
use crate::output::{Output, rendered, table, time, yes_no};

/// `admin ...`
pub async fn admin(market: &Market, out: Output, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Create { email, password } => {
            let user = market
                .create_admin(&email, &password)
                .await
                .context("cannot create the admin")?;
            out.show(&user, |u| {
                format!("admin {} created (id {})", u.email, u.id)
            })
        }
    }
}

/// `sellers ...`
pub async fn sellers(market: &Market, out: Output, command: SellersCommand) -> Result<()> {
    match command {
        SellersCommand::List { status } => {
            let sellers = all_sellers(market, status.map(Into::into)).await?;
            out.show(&sellers, |list| {
                let mut t = table(["id", "email", "store", "status", "active", "registered"]);
                for s in list {
                    t.add_row([
                        s.id.to_string(),
                        s.email.to_string(),
                        s.store_name.clone(),
                        s.status.as_str().to_owned(),
                        yes_no(s.active).to_owned(),
                        time(s.created_at),
                    ]);
                }
                rendered(&t, "no sellers")
            })
        }
        SellersCommand::Verify { email } => decide(market, out, &email, true).await,
        SellersCommand::Reject { email } => decide(market, out, &email, false).await,
    }
}

/// Every seller, optionally of one status, one page after the other.
pub async fn all_sellers(
    market: &Market,
    status: Option<marketplace_core::SellerStatus>,
) -> Result<Vec<SellerSummary>> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let query = SellerListQuery {
            status,
            cursor,
            limit: Some(100),
        };
        let page = market
            .sellers(&Principal::operator(), query)
            .await
            .context("cannot list the sellers")?;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// The seller account with this email, whatever its status: the money
/// commands name sellers by email, as every other command does.
pub async fn seller_account(market: &Market, email: &str) -> Result<User> {
    let user = market.account_by_email(email).await?;
    if user.role != Role::Seller {
        bail!(
            "{} is a {} account, not a seller",
            user.email,
            user.role.as_str()
        );
    }
    Ok(user)
}

async fn decide(market: &Market, out: Output, email: &str, verified: bool) -> Result<()> {
    let what = if verified { "verify" } else { "reject" };
    let seller = market
        .decide_seller_by_email(email, verified)
        .await
        .with_context(|| format!("cannot {what} the seller {email}"))?;
    out.show(&seller, |s| {
        format!(
            "seller {} ({}) is {}",
            s.email,
            s.store_name,
            s.status.as_str()
        )
    })
}

/// `users ...`
pub async fn users(market: &Market, out: Output, command: UsersCommand) -> Result<()> {
    let (email, active) = match command {
        UsersCommand::Deactivate { email } => (email, false),
        UsersCommand::Activate { email } => (email, true),
    };
    let what = if active { "activate" } else { "deactivate" };
    let user = market
        .set_user_active_by_email(&email, active)
        .await
        .with_context(|| format!("cannot {what} the account {email}"))?;
    out.show(&user, |u: &User| {
        let state = if u.active { "active" } else { "deactivated" };
        format!("{} {} ({}) is {state}", u.role.as_str(), u.email, u.id)
    })
}
