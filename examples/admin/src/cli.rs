//! The command line: every command, its arguments and its help, as clap reads
//! them. The money commands' arguments are in [`money`].

mod money;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use marketplace_core::{CategoryId, MessageId, OrderStatus, OutboxStatus, ProductId, SellerStatus};

pub use self::money::{
    By, CommissionCommand, PaymentsCommand, PayoutsCommand, PeriodArgs, ReportCommand, ScopeArgs,
};

/// The marketplace operator's command line. It opens the store `DATABASE_URL`
/// names, with the same settings as `marketplace-server` (see the README), and
/// acts on it through the library directly, with the operator's authority.
#[derive(Debug, Parser)]
#[command(name = "marketplace-admin", version)]
pub struct Cli {
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Reads the command line, exiting as clap does (status 2) on one it
    /// cannot read, or that asks for two outputs at once.
    pub fn read() -> Cli {
        let cli = Cli::parse();
        if cli.json && cli.command.csv() {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--csv and --json cannot be used together",
                )
                .exit();
        }
        cli
    }
}

/// The commands, by concept.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Admin accounts.
    Admin {
        /// What to do with admins.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Sellers: list them, verify or reject them.
    Sellers {
        /// What to do with sellers.
        #[command(subcommand)]
        command: SellersCommand,
    },
    /// Any account: deactivate or reactivate it.
    Users {
        /// What to do with the account.
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Products: take one out of the catalog or put it back.
    Products {
        /// What to do with products.
        #[command(subcommand)]
        command: ProductsCommand,
    },
    /// Categories.
    Categories {
        /// What to do with categories.
        #[command(subcommand)]
        command: CategoriesCommand,
    },
    /// The mail outbox: what was sent, what waits, what gave up.
    Outbox {
        /// What to do with the outbox.
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Buyers' payments, one per checkout: list them, show one with its
    /// refunds, record a manual one paid, settle those that are due.
    Payments {
        /// What to do with payments.
        #[command(subcommand)]
        command: PaymentsCommand,
    },
    /// Commission rules: the marketplace's fee on each order, by default, by
    /// category or by seller.
    Commission {
        /// What to do with commission rules.
        #[command(subcommand)]
        command: CommissionCommand,
    },
    /// Every seller's balance: pending (inside the return window), available
    /// (what a payout takes) and total.
    Balances,
    /// Payouts of the sellers' available balances.
    Payouts {
        /// What to do with payouts.
        #[command(subcommand)]
        command: PayoutsCommand,
    },
    /// Reports from the sellers' ledgers.
    Report {
        /// Which report.
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Open the store, which applies any migration it lacks, and report it.
    Migrate,
    /// Bulk imports from CSV.
    Import {
        /// What to import.
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Exports to CSV.
    Export {
        /// What to export.
        #[command(subcommand)]
        command: ExportCommand,
    },
}

impl Command {
    /// Whether the command is asked for CSV.
    fn csv(&self) -> bool {
        matches!(
            self,
            Command::Report {
                command: ReportCommand::Commission { csv: true, .. }
                    | ReportCommand::Statement { csv: true, .. }
            }
        )
    }
}

/// `admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account (open sign-up never makes one).
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The password (8..=128 characters); read from MARKETPLACE_ADMIN_PASSWORD
        /// when absent.
        #[arg(long, env = "MARKETPLACE_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

/// `sellers ...`
#[derive(Debug, Subcommand)]
pub enum SellersCommand {
    /// List sellers, optionally of one status.
    List {
        /// Only sellers in this status.
        #[arg(long, value_enum)]
        status: Option<SellerStatusArg>,
    },
    /// Verify a seller by email: its products become visible and sellable. The
    /// seller is told by mail.
    Verify {
        /// The seller's email.
        email: String,
    },
    /// Reject a seller by email: its products leave the catalog. The seller is
    /// told by mail.
    Reject {
        /// The seller's email.
        email: String,
    },
}

/// A seller status as the command line names it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SellerStatusArg {
    /// Awaiting a decision.
    Pending,
    /// May sell.
    Verified,
    /// Refused.
    Rejected,
}

impl From<SellerStatusArg> for SellerStatus {
    fn from(s: SellerStatusArg) -> Self {
        match s {
            SellerStatusArg::Pending => SellerStatus::Pending,
            SellerStatusArg::Verified => SellerStatus::Verified,
            SellerStatusArg::Rejected => SellerStatus::Rejected,
        }
    }
}

/// `users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Deactivate an account: it cannot sign in, its logins end, and a seller's
    /// products leave the catalog.
    Deactivate {
        /// The account's email.
        email: String,
    },
    /// Reactivate an account.
    Activate {
        /// The account's email.
        email: String,
    },
}

/// `products ...`
#[derive(Debug, Subcommand)]
pub enum ProductsCommand {
    /// Take a product out of the catalog (an admin's block; its seller cannot
    /// undo it).
    Deactivate {
        /// The product's id.
        id: ProductId,
    },
    /// Put a blocked product back.
    Activate {
        /// The product's id.
        id: ProductId,
    },
}

/// `categories ...`
#[derive(Debug, Subcommand)]
pub enum CategoriesCommand {
    /// List every category.
    List,
    /// Create a category.
    Create {
        /// Its name (unique, case-insensitively).
        name: String,
    },
    /// Rename a category.
    Rename {
        /// The category's id.
        id: CategoryId,
        /// The new name.
        name: String,
    },
    /// Delete a category no product uses.
    Delete {
        /// The category's id.
        id: CategoryId,
    },
}

/// `outbox ...`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List messages, newest first.
    List {
        /// Only messages in this state.
        #[arg(long, value_enum)]
        status: Option<OutboxStatusArg>,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send a dead message again.
    Retry {
        /// The message's id.
        id: MessageId,
    },
}

/// An outbox state as the command line names it.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutboxStatusArg {
    /// Gave up after its retries.
    Dead,
    /// Waiting to be sent, or retried.
    Pending,
    /// Accepted by the mail server.
    #[value(alias = "delivered")]
    Sent,
}

impl From<OutboxStatusArg> for OutboxStatus {
    fn from(s: OutboxStatusArg) -> Self {
        match s {
            OutboxStatusArg::Dead => OutboxStatus::Dead,
            OutboxStatusArg::Pending => OutboxStatus::Pending,
            OutboxStatusArg::Sent => OutboxStatus::Delivered,
        }
    }
}

/// `import ...`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a seller's products from CSV.
    Products(ImportProducts),
}

/// What `import products` reads.
#[derive(Debug, Args)]
#[command(after_help = "\
The file has a header row naming its columns, in any order:
  sku          the seller's own SKU, required: the key of the import
  title        required
  description  optional
  price        required, a decimal in the marketplace currency (12.50)
  stock        required, a whole number of units
  category     optional, a category's name
  active       optional: true/false, yes/no or 1/0 (default true)

A row whose SKU the seller has no product with creates one; a row whose SKU
it has updates that product where the row differs, and leaves it alone where
nothing does, so running the same file again changes nothing. Each row is
imported whole or refused whole; refused rows are reported with their line,
and the command then exits with status 1.")]
pub struct ImportProducts {
    /// The email of the (verified) seller the products belong to.
    #[arg(long)]
    pub seller: String,
    /// The CSV file.
    pub file: PathBuf,
}

/// `export ...`
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every order, newest first, as CSV: order id, checkout id, created at,
    /// status, buyer id, seller id, item count (units), total, currency.
    Orders {
        /// Only orders in this status.
        #[arg(long, value_parser = parse_order_status)]
        status: Option<OrderStatus>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_order_status(s: &str) -> Result<OrderStatus, String> {
    OrderStatus::parse(s).ok_or_else(|| {
        let all: Vec<_> = OrderStatus::ALL.iter().map(OrderStatus::as_str).collect();
        format!("not an order status (one of {})", all.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
