//! `marketplace-server`: serves the marketplace, or runs an operator command.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use server_warp::Settings;

/// Every request allocates (JSON, rows, headers) from both runtime threads at
/// once; glibc's allocator was an eighth of the machine's CPU under catalog
/// load (see docs/BENCHMARKS.md), mimalloc's per-thread pages are not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The log, on stdout, written off the request path: each line is formatted
/// where it happens and handed to a writer thread, so a request never waits on
/// stdout (a slow pipe, a full disk, a log collector that stalls).
///
/// Two writer threads, the same stdout. Access lines
/// ([`server_warp::serve::is_access_line`]) go through a lossy one: when its
/// 128,000 lines of buffer are full, the line is dropped and counted, because
/// an access line lost under overload is acceptable and stalling every request
/// behind stdout is not. Everything else (warnings, errors, 5xx requests,
/// startup and shutdown) goes through a blocking one: such a line is never
/// lost, its caller waits instead, and those lines are few. Each thread writes
/// whole lines, batched up to 64 KiB per `write`; between the two streams a
/// request's warning may land a few lines from its access line (both carry the
/// request id and their own time).
///
/// Access lines reach stdout up to ~5 ms late (see [`Stdout`]); a process
/// killed outright loses those. Dropping `Logs` (at the end of `main`) reports
/// the access lines dropped, then flushes both threads.
struct Logs {
    dropped: tracing_appender::non_blocking::ErrorCounter,
    _access: tracing_appender::non_blocking::WorkerGuard,
    _rest: tracing_appender::non_blocking::WorkerGuard,
}

/// Stdout as a log writer thread sees it: the lines of a batch gathered into
/// writes of up to 64 KiB, then a pause of `linger` before the thread waits for
/// the next line. Without the pause the thread goes to sleep after nearly every
/// line, and each line costs a wake-up on the request's thread and a sleep and
/// a wake on the writer's (measured: more than the formatting and the write
/// together); with it, the lines of those 5 ms arrive as one batch, one write.
struct Stdout {
    out: std::io::BufWriter<std::io::Stdout>,
    linger: Duration,
}

impl Stdout {
    fn new(linger: Duration) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            linger,
        }
    }
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    /// Called by the writer thread once it has taken every line waiting.
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if !self.linger.is_zero() {
            std::thread::sleep(self.linger);
        }
        Ok(())
    }
}

impl Logs {
    fn init() -> Self {
        use tracing_appender::non_blocking::NonBlockingBuilder;
        use tracing_subscriber::fmt::writer::MakeWriterExt;
        let (access, access_guard) = NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("log-access")
            .finish(Stdout::new(Duration::from_millis(5)));
        let (rest, rest_guard) = NonBlockingBuilder::default()
            .lossy(false)
            .thread_name("log")
            .finish(Stdout::new(Duration::ZERO));
        let dropped = access.error_counter();
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            // Colours for a terminal only: logs sent to a file or a collector stay plain.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(
                access
                    .with_filter(server_warp::serve::is_access_line)
                    .or_else(rest),
            )
            .init();
        Self {
            dropped,
            _access: access_guard,
            _rest: rest_guard,
        }
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        let dropped = self.dropped.dropped_lines();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "access lines dropped: stdout did not keep up with the requests"
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let _logs = Logs::init();
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
