//! `marketplace-server`: serves the marketplace, or runs an operator command.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use server_warp::Settings;

/// The marketplace HTTP server. Configured by environment variables (see the README).
#[derive(Parser)]
#[command(name = "marketplace-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Bring the database's schema up to this build, then exit: the deploy
    /// step when servers run with DATABASE_RUN_MIGRATIONS=off.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage sellers.
    Seller {
        #[command(subcommand)]
        command: SellerCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account (the only way to get one).
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The password (8..=128 characters); read from MARKETPLACE_ADMIN_PASSWORD when absent.
        #[arg(long, env = "MARKETPLACE_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand)]
enum SellerCommand {
    /// Verify a seller by email: its products become visible and sellable.
    Verify {
        /// The seller's email.
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours for a terminal only: logs sent to a file or a collector stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => server_warp::run(settings, marketplace_host::shutdown_signal()).await,
        Command::Migrate => {
            let report = marketplace_host::migrate(&settings.database_url, &settings.sql).await?;
            println!("{report}");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { email, password },
        } => {
            let host = marketplace_host::build(&settings).await?;
            let user = host
                .market
                .create_admin(&email, &password)
                .await
                .context("cannot create the admin")?;
            println!("admin {} created (id {})", user.email, user.id);
            Ok(())
        }
        Command::Seller {
            command: SellerCommand::Verify { email },
        } => {
            let host = marketplace_host::build(&settings).await?;
            let seller = host
                .market
                .verify_seller_by_email(&email)
                .await
                .context("cannot verify the seller")?;
            println!(
                "seller {} ({}) is {}",
                seller.email,
                seller.store_name,
                seller.status.as_str()
            );
            Ok(())
        }
    }
}
