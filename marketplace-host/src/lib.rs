//! # marketplace-host
//!
//! What every host of the marketplace shares and no web framework owns. A host
//! (`server-warp`'s REST API, a server-rendered storefront, an operator command
//! line) adds only its own routes and its mapping of
//! [`ErrorKind`](marketplace_core::ErrorKind)s to answers; everything else it
//! needs to stand up a marketplace is here, written once:
//!
//! - [`settings`]: the typed [`Settings`] of the README's configuration table,
//!   read from the environment ([`Settings::from_env`]) or any lookup
//!   ([`Settings::from_lookup`]), with a `Debug` that never shows a secret;
//! - [`store`]: [`open_storage`], the one place that turns a `DATABASE_URL` into
//!   a backend (`memory:`, `sqlite:`, `postgres://`, `mongodb://`);
//! - [`secret`]: the JWT secret policy ([`jwt_secret`]): configured, required
//!   in production and with a shared database, otherwise generated once and
//!   kept beside the SQLite file;
//! - [`mail`]: the [`mailer`] the settings pick (SMTP or the development
//!   mailer) and a start-up [`check_smtp`];
//! - [`media`]: the [`image_store`], a local folder;
//! - [`market`]: [`build`], the marketplace assembled from all of the above,
//!   with the configured first admin ([`bootstrap_admin`]);
//! - [`status`]: [`status_of`], the HTTP status of each kind of refusal, for
//!   every host that speaks HTTP;
//! - [`worker`]: the mail [`Worker`] and [`Host::run`], which runs a host's
//!   server beside it until a shutdown future completes, then lets the server
//!   drain and the worker release its claims.
//!
//! It knows no web framework (only the `http` crate's status codes): the listen address, CORS origins and body limit are
//! settings like the others (plain data every HTTP host reads from the same
//! variables), applied by each host with its own framework.
//!
//! ```no_run
//! # async fn demo() -> Result<(), marketplace_host::Error> {
//! use marketplace_host::{Settings, build};
//! let settings = Settings::from_env()?;
//! let host = build(&settings).await?;
//! host.run(&settings, std::future::pending(), |stop| async move {
//!     // A framework's server, stopping when `stop.signal()` completes.
//!     stop.signal().await;
//! })
//! .await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod mail;
pub mod market;
pub mod media;
pub mod proxy;
pub mod secret;
pub mod settings;
pub mod status;
pub mod store;
pub mod worker;

pub use error::{Error, Result};
pub use mail::{check_smtp, mailer};
pub use market::{Host, Market, bootstrap_admin, build, database_clock};
pub use media::image_store;
pub use secret::jwt_secret;
pub use settings::{Cors, Settings};
pub use status::status_of;
pub use store::{migrate, open_storage, redact_url, sqlite_file};
pub use worker::{Shutdown, Worker, shutdown_signal};
