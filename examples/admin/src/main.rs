//! # marketplace-admin
//!
//! The marketplace operator's command line. It embeds the library directly on
//! the store `DATABASE_URL` names, with the settings `marketplace-server`
//! reads (see the README), and acts with the operator's authority
//! ([`Principal::operator`](marketplace_core::Principal::operator)): no HTTP,
//! no login. Every rule it applies is the library's own, the same an admin's
//! request to the API meets.
//!
//! People get tables; `--json` prints one JSON document per command for
//! scripts, and the reports print CSV with `--csv`. A refusal is one line on
//! standard error (`error: ...`) and exit status 1; a command line clap cannot
//! read is exit status 2.
//!
//! The operator acts for a seller in two places only, where the library
//! offers the work to a seller alone: `import products` lists the seller's
//! products, and `report statement` reads the seller's statement.
//!
//! ## Layout
//! One module per concept, like the library: [`accounts`] (admins, sellers,
//! any account's activation), [`catalog`] (an admin's block on a product,
//! categories), [`outbox`], [`orders`] (the CSV export), [`import`] (the CSV
//! import of a seller's products), [`migrate`], and the money:
//! [`payments`] (the buyers' payments and their refunds), [`commission`]
//! (the rules), [`ledger`] (balances, the commission report, a seller's
//! statement) and [`payouts`]; [`cli`] is the command line and [`output`]
//! how answers are printed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accounts;
mod catalog;
mod cli;
mod commission;
mod import;
mod ledger;
mod migrate;
mod orders;
mod outbox;
mod output;
mod payments;
mod payouts;

use std::process::ExitCode;

use anyhow::{Context, Result};
use marketplace_host::Settings;

use crate::cli::{Cli, Command};
use crate::output::Output;

/// The settings of the environment, as `marketplace-server` reads them, but
/// for the configured first admin: `MARKETPLACE_ADMIN_EMAIL` and
/// `MARKETPLACE_ADMIN_PASSWORD` are the server's start-up route to one, while
/// here admins are made by `admin create` (which reads the password from
/// `MARKETPLACE_ADMIN_PASSWORD`), and no other command creates an account.
fn settings() -> Result<Settings> {
    Settings::from_lookup(|name| match name {
        "MARKETPLACE_ADMIN_EMAIL" | "MARKETPLACE_ADMIN_PASSWORD" => None,
        _ => std::env::var(name).ok(),
    })
    .context("cannot read the settings")
}

async fn run(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    let settings = settings()?;
    if let Command::Migrate = cli.command {
        return migrate::migrate(&settings, out).await;
    }
    let host = marketplace_host::build(&settings)
        .await
        .context("cannot open the marketplace")?;
    let market = &host.market;
    match cli.command {
        Command::Admin { command } => accounts::admin(market, out, command).await,
        Command::Sellers { command } => accounts::sellers(market, out, command).await,
        Command::Users { command } => accounts::users(market, out, command).await,
        Command::Products { command } => catalog::products(market, out, command).await,
        Command::Categories { command } => catalog::categories(market, out, command).await,
        Command::Outbox { command } => outbox::outbox(market, out, command).await,
        Command::Import { command } => import::import(market, out, command).await,
        Command::Export { command } => orders::export(market, out, command).await,
        Command::Payments { command } => payments::payments(market, out, command).await,
        Command::Commission { command } => commission::commission(market, out, command).await,
        Command::Balances => ledger::balances(market, out).await,
        Command::Payouts { command } => payouts::payouts(market, out, command).await,
        Command::Report { command } => ledger::report(market, out, command).await,
        Command::Migrate => migrate::migrate(&settings, out).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::read();
    // Warnings of the library (a memory store, a generated secret) on standard
    // error; RUST_LOG shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context, then each cause.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
