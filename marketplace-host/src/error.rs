//! Why a host could not start: every message names the setting at fault and
//! what it expects, so an operator can fix it from the message alone.

use std::path::PathBuf;

/// A boxed error from a driver or the file system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why settings could not be read or a host could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable holds a value it cannot hold; the message names it and says
    /// what it expects (`MARKETPLACE_LISTEN=nowhere is not an address like
    /// 127.0.0.1:8080`).
    #[error("{message}")]
    Setting {
        /// The variable at fault.
        variable: &'static str,
        /// What is wrong with it.
        message: String,
        /// The parser's own complaint, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// `DATABASE_URL` names a scheme no store answers to.
    #[error(
        "DATABASE_URL scheme `{0}:` is not supported (use sqlite:, postgres://, mongodb://, or memory:)"
    )]
    UnsupportedStore(String),
    /// The store `DATABASE_URL` names could not be opened (the URL is shown
    /// without its password).
    #[error("cannot open DATABASE_URL={url}")]
    Store {
        /// The URL, redacted.
        url: String,
        /// The backend's reason.
        #[source]
        source: BoxError,
    },
    /// The database `DATABASE_URL` names did not tell its time: several
    /// servers on it decide leases and windows by its clock, so none starts
    /// without it.
    #[error(
        "cannot read the clock of DATABASE_URL={url} (servers sharing a database decide leases and windows by its clock)"
    )]
    DatabaseClock {
        /// The URL, redacted.
        url: String,
        /// The backend's reason.
        #[source]
        source: marketplace_core::StorageError,
    },
    /// No `JWT_SECRET` where one is required: in production, or with a database
    /// several processes share.
    #[error(
        "JWT_SECRET is not set; it is required in production and with a shared database (set it to 32 or more random bytes)"
    )]
    SecretRequired,
    /// A shared database without a public URL: each instance would name images
    /// and mail links by its own address.
    #[error(
        "MARKETPLACE_PUBLIC_URL is not set; it is required with a shared database, where several instances must name images and links alike (set it to the address clients reach the load balancer at, e.g. https://shop.example; or set both MARKETPLACE_STOREFRONT_URL and MARKETPLACE_MEDIA_BASE_URL)"
    )]
    PublicUrlRequired,
    /// The configured `JWT_SECRET` is not usable (too short).
    #[error("JWT_SECRET: {0}")]
    Secret(String),
    /// The generated development secret could not be kept beside the database.
    #[error("cannot keep the JWT secret in {}", .path.display())]
    SecretFile {
        /// The file it should live in.
        path: PathBuf,
        /// Why it could not be written.
        #[source]
        source: std::io::Error,
    },
    /// The `MAIL*` settings do not make a working SMTP mailer.
    #[error("MAIL settings")]
    Mail(#[source] marketplace_smtp::ConfigError),
    /// The media folder (`MARKETPLACE_MEDIA_DIR`) cannot hold images.
    #[error("cannot use the media folder {}", .path.display())]
    Media {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The configured admin (`MARKETPLACE_ADMIN_EMAIL`) could not be created.
    #[error("cannot create the configured admin (MARKETPLACE_ADMIN_EMAIL)")]
    Admin(#[source] marketplace_core::Error),
    /// The marketplace refused to start.
    #[error("cannot start the marketplace")]
    Marketplace(#[source] marketplace_core::Error),
    /// A task of the host (the server, the mail worker) panicked or was
    /// cancelled.
    #[error("the {what} failed")]
    Task {
        /// Which task.
        what: &'static str,
        /// How it ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// A variable holding a value it cannot.
    pub(crate) fn setting(variable: &'static str, message: impl Into<String>) -> Error {
        Error::Setting {
            variable,
            message: message.into(),
            source: None,
        }
    }

    /// A variable holding a value its parser refused.
    pub(crate) fn unparsable(
        variable: &'static str,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Error {
        Error::Setting {
            variable,
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
