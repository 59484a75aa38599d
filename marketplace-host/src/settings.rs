//! The settings every host reads: one typed struct, filled from the
//! environment variables of the README's configuration table, with a `Debug`
//! that never shows a secret.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use marketplace_core::{Currency, DeliveryPolicy, HashCost};
use marketplace_smtp::SmtpConfig;
use storage_sql::SqlOptions;

use crate::error::{Error, Result};
use crate::store::redact_url;

/// Everything a marketplace host can be configured with.
///
/// The HTTP settings (listen address, CORS, body limit) are here too: every
/// HTTP host reads the same variables from the same table, and the public URL
/// defaults to the listen address. They are plain data (an address, a list of
/// origins, a byte count); each host applies them with its own framework.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// `MARKETPLACE_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `DATABASE_URL`: `sqlite://marketplace.db` (default), `sqlite:<path>`,
    /// `postgres://...`, `mongodb://host/<database>` (a replica set), `memory:`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 10), `DATABASE_ACQUIRE_TIMEOUT_MS`
    /// (default 30000), `DATABASE_BUSY_TIMEOUT_MS` (SQLite, default 5000) and
    /// `DATABASE_RUN_MIGRATIONS` (`on`, the default, or `off`: see
    /// [`SqlOptions::run_migrations`]; on MongoDB it creates the indexes).
    pub sql: SqlOptions,
    /// `JWT_SECRET`: required unless the store is local (memory or SQLite) and
    /// `MARKETPLACE_ENV` is not `production`.
    pub jwt_secret: Option<String>,
    /// `JWT_PREVIOUS_SECRETS`: secrets that signed tokens before `JWT_SECRET`
    /// replaced them, comma-separated; still accepted, never used to sign, so
    /// a rotation across many instances logs nobody out.
    pub jwt_previous_secrets: Vec<String>,
    /// `MARKETPLACE_ENV=production` refuses to start without a configured secret.
    pub production: bool,
    /// `MARKETPLACE_PUBLIC_URL`: the base URL clients reach this server at
    /// (default `http://<listen>`); the default of the two below.
    pub public_url: Option<String>,
    /// `MARKETPLACE_STOREFRONT_URL`: the base of the links in mails
    /// (`/verify-email`, `/reset-password`; default the public URL, where the
    /// HTTP server answers them with small pages).
    pub storefront_url: Option<String>,
    /// `MARKETPLACE_MEDIA_BASE_URL`: the base of product image URLs (default
    /// `{public URL}/media`, where the HTTP server serves them).
    pub media_base_url: Option<String>,
    /// `MARKETPLACE_CURRENCY`: the ISO 4217 currency the marketplace sells in
    /// (default `USD`).
    pub currency: Currency,
    /// `MARKETPLACE_MEDIA_DIR`: where uploaded images are kept (default `./media`).
    pub media_dir: PathBuf,
    /// `MARKETPLACE_MEDIA_STORE`: an S3-compatible bucket to keep uploaded images
    /// in instead, `s3://bucket[/prefix]`, reached with the usual `AWS_*`
    /// variables (`AWS_ENDPOINT_URL` for a store other than AWS). Several
    /// instances behind one load balancer need a store they share.
    pub media_store: Option<String>,
    /// `MARKETPLACE_CORS_ORIGINS`: `*` or a comma-separated list (default none).
    pub cors: Cors,
    /// `MARKETPLACE_MAX_BODY_BYTES`: largest JSON body (default 64 KiB).
    pub max_body: u64,
    /// `MARKETPLACE_REQUEST_TIMEOUT`: how long one request may take, from its
    /// arrival (its body included) to its answer (default `15s`; `0` or `off`:
    /// no limit). Past it the answer is 503 `deadline_exceeded` with
    /// `Retry-After`; the storage retry loops stop there too (see
    /// [`marketplace_core::deadline`]).
    pub request_timeout: Option<Duration>,
    /// `MAIL_DIR`: the development mailer writes each message here as `.eml`
    /// (used when `MAIL` is unset).
    pub mail_dir: Option<PathBuf>,
    /// SMTP delivery, set when `MAIL` is: `MAIL` (login and sender),
    /// `MAIL_PASSWORD`, `MAIL_SERVER` (default `smtp.gmail.com`), `MAIL_PORT`
    /// (587), `MAIL_STARTTLS` (true), `MAIL_SSL_TLS` (false), `MAIL_CA_CERT` (an
    /// extra trusted CA, PEM file). Without it the development mailer is used.
    pub smtp: Option<SmtpConfig>,
    /// Mail retry policy (not read from the environment: embedders and tests set
    /// it; the default retries 8 times from 30 s up to an hour apart).
    pub delivery: DeliveryPolicy,
    /// `MARKETPLACE_OUTBOX_POLL_MS`: how often the mail worker looks for work when
    /// idle (default 1000 ms); `0` disables the worker in this process.
    pub outbox_poll: Duration,
    /// `MARKETPLACE_RETURN_WINDOW`: how long after delivery a buyer may ask for a
    /// return, during which the seller's earning is held (default `14days`;
    /// `36h`, `10s` and the like are read too).
    pub return_window: Duration,
    /// `MARKETPLACE_MINIMUM_PAYOUT`: the least available balance paid out, in
    /// the currency's units (`25.00`; default 10.00 USD, i.e. 1 000 minor units).
    pub minimum_payout: Option<String>,
    /// `MARKETPLACE_PAYOUT_INTERVAL`: how often the worker pays out every seller
    /// due a payout (`24h`, `7days`); unset, only admins start payouts.
    pub payout_interval: Option<Duration>,
    /// `MARKETPLACE_LEDGER_POLL_MS`: how often the money worker settles the
    /// payments that are due (expiries, captures, refunds) and releases the
    /// earnings whose return window closed (default 10 000 ms); `0` leaves
    /// that, and scheduled payouts, to other processes.
    pub ledger_poll: Duration,
    /// `MARKETPLACE_TRUSTED_PROXIES`: the load balancers (addresses or CIDR
    /// blocks, comma-separated) whose `Forwarded` / `X-Forwarded-For` name the
    /// client; unset, the connection's peer is the client.
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// `MARKETPLACE_PAYMENTS`: how buyers pay: `manual` (pay on delivery or by
    /// bank transfer, an admin marks checkouts paid; the default) or `stripe`
    /// (the default when `STRIPE_SECRET_KEY` is set).
    pub payments: Payments,
    /// `MARKETPLACE_PAYMENT_HOLD`: how long an unpaid checkout holds its stock
    /// before it expires (default `30min`; Stripe only).
    pub payment_hold: Duration,
    /// `MARKETPLACE_CAPTURE`: `when_accepted` (the default: capture once every
    /// seller accepted or cancelled) or `at_checkout` (charge at once).
    pub capture_at_checkout: bool,
    /// `MARKETPLACE_CAPTURE_WITHIN`: the latest a payment is captured after the
    /// buyer paid (default `6days`, inside the 7 days a card authorization
    /// lasts).
    pub capture_within: Duration,
    /// `MARKETPLACE_ADMIN_EMAIL` and `MARKETPLACE_ADMIN_PASSWORD`: an admin created
    /// at start when no account has that email (the configuration route to the
    /// first admin; the command line is the other).
    pub bootstrap_admin: Option<(String, String)>,
    /// `MARKETPLACE_HASH_CONCURRENCY` (default: the number of CPUs) and
    /// `MARKETPLACE_HASH_QUEUE` (default 64): password hashes computed at once,
    /// and requests that may wait for one; beyond, 503 with `Retry-After`.
    pub hash_slots: Option<(usize, usize)>,
    /// Password hashing cost (not read from the environment: embedders and tests
    /// set it; the default is the recommended cost).
    pub hash_cost: HashCost,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("sql", &self.sql)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "jwt_previous_secrets",
                &format!("<{} redacted>", self.jwt_previous_secrets.len()),
            )
            .field("production", &self.production)
            .field("public_url", &self.public_url)
            .field("storefront_url", &self.storefront_url)
            .field("media_base_url", &self.media_base_url)
            .field("currency", &self.currency)
            .field("media_dir", &self.media_dir)
            .field("media_store", &self.media_store)
            .field("cors", &self.cors)
            .field("max_body", &self.max_body)
            .field("request_timeout", &self.request_timeout)
            .field("mail_dir", &self.mail_dir)
            .field("smtp", &self.smtp)
            .field("delivery", &self.delivery)
            .field("outbox_poll", &self.outbox_poll)
            .field("return_window", &self.return_window)
            .field("minimum_payout", &self.minimum_payout)
            .field("payout_interval", &self.payout_interval)
            .field("ledger_poll", &self.ledger_poll)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("payments", &self.payments)
            .field("payment_hold", &self.payment_hold)
            .field("capture_at_checkout", &self.capture_at_checkout)
            .field("capture_within", &self.capture_within)
            .field(
                "bootstrap_admin",
                &self
                    .bootstrap_admin
                    .as_ref()
                    .map(|(e, _)| (e, "<redacted>")),
            )
            .field("hash_slots", &self.hash_slots)
            .field("hash_cost", &self.hash_cost)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://marketplace.db".to_owned(),
            sql: SqlOptions::default(),
            jwt_secret: None,
            jwt_previous_secrets: Vec::new(),
            production: false,
            public_url: None,
            storefront_url: None,
            media_base_url: None,
            currency: Currency::USD,
            media_dir: PathBuf::from("media"),
            media_store: None,
            cors: Cors::Off,
            max_body: 64 * 1024,
            request_timeout: Some(Duration::from_secs(15)),
            mail_dir: None,
            smtp: None,
            delivery: DeliveryPolicy::default(),
            outbox_poll: Duration::from_secs(1),
            return_window: Duration::from_secs(14 * 24 * 3600),
            minimum_payout: None,
            payout_interval: None,
            ledger_poll: Duration::from_secs(10),
            trusted_proxies: crate::proxy::TrustedProxies::default(),
            payments: Payments::Manual,
            payment_hold: Duration::from_secs(30 * 60),
            capture_at_checkout: false,
            capture_within: Duration::from_secs(6 * 24 * 3600),
            bootstrap_admin: None,
            hash_slots: None,
            hash_cost: HashCost::RECOMMENDED,
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests). A
    /// variable set to white space only counts as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let mut s = Settings::default();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("MARKETPLACE_LISTEN") {
            s.listen = v.parse().map_err(|e| {
                Error::unparsable(
                    "MARKETPLACE_LISTEN",
                    format!("MARKETPLACE_LISTEN={v} is not an address like 127.0.0.1:8080"),
                    e,
                )
            })?;
        }
        if let Some(v) = get("DATABASE_URL") {
            s.database_url = v;
        }
        let number = |k: &'static str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|e| Error::unparsable(k, format!("{k}={v} is not a number"), e))
                })
                .transpose()
        };
        if let Some(n) = number("DATABASE_MAX_CONNECTIONS")? {
            s.sql = s.sql.max_connections(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(ms) = number("DATABASE_ACQUIRE_TIMEOUT_MS")? {
            s.sql = s.sql.acquire_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = number("DATABASE_BUSY_TIMEOUT_MS")? {
            s.sql = s.sql.busy_timeout(Duration::from_millis(ms));
        }
        // On by default, shared databases included: one server on PostgreSQL
        // works with no step before it, the migrator's advisory lock applies
        // each migration once when several servers start together, and an
        // older server serves a newer schema while the schema says it can.
        // Deploys that migrate as a step of their own turn it off and run
        // `marketplace-server migrate`; a server then refuses an outdated
        // schema instead of migrating it.
        if let Some(v) = get("DATABASE_RUN_MIGRATIONS") {
            let run = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" | "yes" => true,
                "off" | "false" | "0" | "no" => false,
                _ => {
                    return Err(Error::setting(
                        "DATABASE_RUN_MIGRATIONS",
                        format!("DATABASE_RUN_MIGRATIONS={v} is neither on nor off"),
                    ));
                }
            };
            s.sql = s.sql.run_migrations(run);
        }
        s.jwt_secret = get("JWT_SECRET");
        s.jwt_previous_secrets = get("JWT_PREVIOUS_SECRETS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        s.production = get("MARKETPLACE_ENV").is_some_and(|v| v.eq_ignore_ascii_case("production"));
        s.public_url = get("MARKETPLACE_PUBLIC_URL");
        s.storefront_url = get("MARKETPLACE_STOREFRONT_URL");
        s.media_base_url = get("MARKETPLACE_MEDIA_BASE_URL");
        if let Some(v) = get("MARKETPLACE_CURRENCY") {
            s.currency = Currency::parse(&v).ok_or_else(|| {
                Error::setting(
                    "MARKETPLACE_CURRENCY",
                    format!(
                        "MARKETPLACE_CURRENCY={v} is not an ISO 4217 currency code (e.g. USD, EUR, JPY)"
                    ),
                )
            })?;
        }
        if let Some(v) = get("MARKETPLACE_MEDIA_DIR") {
            s.media_dir = v.into();
        }
        if let Some(v) = get("MARKETPLACE_MEDIA_STORE") {
            if crate::media::s3_location(&v).is_none() {
                return Err(Error::setting(
                    "MARKETPLACE_MEDIA_STORE",
                    format!(
                        "MARKETPLACE_MEDIA_STORE={v} is not s3://bucket or s3://bucket/prefix \
                         (unset it to keep images in MARKETPLACE_MEDIA_DIR)"
                    ),
                ));
            }
            s.media_store = Some(v);
        }
        if let Some(v) = get("MARKETPLACE_CORS_ORIGINS") {
            s.cors = Cors::parse(&v);
        }
        if let Some(n) = number("MARKETPLACE_MAX_BODY_BYTES")? {
            s.max_body = n;
        }
        s.mail_dir = get("MAIL_DIR").map(PathBuf::from);
        s.smtp = crate::mail::smtp_settings(&get)?;
        if let Some(ms) = number("MARKETPLACE_OUTBOX_POLL_MS")? {
            s.outbox_poll = Duration::from_millis(ms);
        }
        if let Some(ms) = number("MARKETPLACE_LEDGER_POLL_MS")? {
            s.ledger_poll = Duration::from_millis(ms);
        }
        let span = |k: &'static str| -> Result<Option<Duration>> {
            get(k)
                .map(|v| {
                    humantime::parse_duration(v.trim()).map_err(|e| {
                        Error::unparsable(
                            k,
                            format!("{k}={v} is not a duration like 14days, 36h or 90s"),
                            e,
                        )
                    })
                })
                .transpose()
        };
        if let Some(v) = get("MARKETPLACE_REQUEST_TIMEOUT") {
            s.request_timeout = if v.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                span("MARKETPLACE_REQUEST_TIMEOUT")?.filter(|d| !d.is_zero())
            };
        }
        if let Some(d) = span("MARKETPLACE_RETURN_WINDOW")? {
            s.return_window = d;
        }
        s.payout_interval = span("MARKETPLACE_PAYOUT_INTERVAL")?.filter(|d| !d.is_zero());
        if let Some(v) = get("MARKETPLACE_MINIMUM_PAYOUT") {
            if marketplace_core::Money::from_decimal(v.trim(), s.currency)
                .is_none_or(|m| m.amount < 1)
            {
                return Err(Error::setting(
                    "MARKETPLACE_MINIMUM_PAYOUT",
                    format!(
                        "MARKETPLACE_MINIMUM_PAYOUT={v} is not a positive amount of {} like 25.00",
                        s.currency
                    ),
                ));
            }
            s.minimum_payout = Some(v.trim().to_owned());
        }
        let concurrency = number("MARKETPLACE_HASH_CONCURRENCY")?;
        let queue = number("MARKETPLACE_HASH_QUEUE")?;
        if concurrency.is_some() || queue.is_some() {
            let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
            s.hash_slots = Some((
                concurrency.map_or(cpus, |n| n as usize).max(1),
                queue.map_or(64, |n| n as usize),
            ));
        }
        if let Some(list) = get("MARKETPLACE_TRUSTED_PROXIES") {
            s.trusted_proxies = crate::proxy::TrustedProxies::parse(&list)?;
        }
        s.payments = payments(&get)?;
        if let Some(d) = span("MARKETPLACE_PAYMENT_HOLD")? {
            s.payment_hold = d;
        }
        if let Some(d) = span("MARKETPLACE_CAPTURE_WITHIN")? {
            s.capture_within = d;
        }
        if let Some(v) = get("MARKETPLACE_CAPTURE") {
            s.capture_at_checkout = match v.trim() {
                "at_checkout" => true,
                "when_accepted" => false,
                _ => {
                    return Err(Error::setting(
                        "MARKETPLACE_CAPTURE",
                        format!("MARKETPLACE_CAPTURE={v} is neither when_accepted nor at_checkout"),
                    ));
                }
            };
        }
        s.bootstrap_admin = match (
            get("MARKETPLACE_ADMIN_EMAIL"),
            get("MARKETPLACE_ADMIN_PASSWORD"),
        ) {
            (Some(e), Some(p)) => Some((e, p)),
            (None, None) => None,
            _ => {
                return Err(Error::setting(
                    "MARKETPLACE_ADMIN_EMAIL",
                    "set both MARKETPLACE_ADMIN_EMAIL and MARKETPLACE_ADMIN_PASSWORD, or neither",
                ));
            }
        };
        Ok(s)
    }

    /// Whether the store lives on this machine only (memory or SQLite), where a
    /// development secret may be generated; PostgreSQL and MongoDB are shared by
    /// several processes, which must all sign with one configured secret.
    pub fn local_store(&self) -> bool {
        self.database_url.starts_with("memory:") || self.database_url.starts_with("sqlite:")
    }

    /// The base URL clients reach this host at, without a trailing slash:
    /// `MARKETPLACE_PUBLIC_URL`, or `http://<listen>`.
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The base of the links in mails: `MARKETPLACE_STOREFRONT_URL`, or the
    /// public URL.
    pub fn storefront_base(&self) -> String {
        match &self.storefront_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => self.public_base(),
        }
    }

    /// Where stored images are served from: `MARKETPLACE_MEDIA_BASE_URL`, or
    /// `{public URL}/media`.
    pub fn media_base(&self) -> String {
        match &self.media_base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}/media", self.public_base()),
        }
    }
}

/// Which browser origins may call an HTTP host (`MARKETPLACE_CORS_ORIGINS`).
/// Plain data: each host writes the headers with its own framework.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cors {
    /// No cross-origin access (the default).
    #[default]
    Off,
    /// Any origin (`*`), without credentials.
    Any,
    /// These exact origins.
    Origins(Vec<String>),
}

impl Cors {
    /// Parses `MARKETPLACE_CORS_ORIGINS`: empty for none, `*`, or a comma-separated
    /// list (trailing slashes dropped).
    pub fn parse(value: &str) -> Cors {
        let v = value.trim();
        if v.is_empty() {
            Cors::Off
        } else if v == "*" {
            Cors::Any
        } else {
            Cors::Origins(
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            )
        }
    }

    /// Whether a request from `origin` may read the answer.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Cors::Off => false,
            Cors::Any => true,
            Cors::Origins(list) => list.iter().any(|a| a == origin),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lookup(vars: &[(&str, &str)]) -> Result<Settings> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn money_settings_are_read_and_checked() {
        let s = lookup(&[]).unwrap();
        assert_eq!(s.return_window, Duration::from_secs(14 * 24 * 3600));
        assert_eq!((s.payout_interval, s.minimum_payout.clone()), (None, None));
        let s = lookup(&[
            ("MARKETPLACE_RETURN_WINDOW", "36h"),
            ("MARKETPLACE_PAYOUT_INTERVAL", "7days"),
            ("MARKETPLACE_MINIMUM_PAYOUT", "25.50"),
            ("MARKETPLACE_LEDGER_POLL_MS", "250"),
        ])
        .unwrap();
        assert_eq!(s.return_window, Duration::from_secs(36 * 3600));
        assert_eq!(s.payout_interval, Some(Duration::from_secs(7 * 24 * 3600)));
        assert_eq!(s.ledger_poll, Duration::from_millis(250));
        let config = s.marketplace_config(None).unwrap();
        assert_eq!(config.money.minimum_payout, 2550);
        assert_eq!(config.money.return_window, chrono::Duration::hours(36));
        for (var, value) in [
            ("MARKETPLACE_RETURN_WINDOW", "two weeks"),
            ("MARKETPLACE_PAYOUT_INTERVAL", "-1h"),
            ("MARKETPLACE_MINIMUM_PAYOUT", "-5"),
            ("MARKETPLACE_MINIMUM_PAYOUT", "0.00"),
            ("MARKETPLACE_MINIMUM_PAYOUT", "1.234"),
        ] {
            let e = lookup(&[(var, value)]).unwrap_err();
            assert!(e.to_string().contains(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn the_request_timeout_is_a_duration_or_off() {
        assert_eq!(
            lookup(&[]).unwrap().request_timeout,
            Some(Duration::from_secs(15))
        );
        for (value, expected) in [
            ("10s", Some(Duration::from_secs(10))),
            ("1500ms", Some(Duration::from_millis(1500))),
            ("2min", Some(Duration::from_secs(120))),
            ("0", None),
            ("off", None),
            (" OFF ", None),
        ] {
            let s = lookup(&[("MARKETPLACE_REQUEST_TIMEOUT", value)]).unwrap();
            assert_eq!(s.request_timeout, expected, "{value}");
        }
        for value in ["soon", "-1s", "10"] {
            let e = lookup(&[("MARKETPLACE_REQUEST_TIMEOUT", value)]).unwrap_err();
            assert!(
                e.to_string().contains("MARKETPLACE_REQUEST_TIMEOUT"),
                "{value}: {e}"
            );
        }
    }

    #[test]
    fn nothing_configured_is_the_documented_defaults() {
        let s = lookup(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://marketplace.db");
        assert_eq!(s.media_dir, PathBuf::from("media"));
        assert_eq!((s.cors.clone(), s.max_body), (Cors::Off, 65536));
        assert_eq!(s.outbox_poll, Duration::from_secs(1));
        assert_eq!(s.public_base(), "http://127.0.0.1:8080");
        assert_eq!(s.storefront_base(), "http://127.0.0.1:8080");
        assert_eq!(s.media_base(), "http://127.0.0.1:8080/media");
        assert!(s.smtp.is_none() && s.bootstrap_admin.is_none() && !s.production);
        assert!(s.sql.run_migrations);
        for (v, run) in [("off", false), ("OFF", false), ("0", false), ("on", true)] {
            let s = lookup(&[("DATABASE_RUN_MIGRATIONS", v)]).unwrap();
            assert_eq!(s.sql.run_migrations, run, "{v}");
        }
    }

    #[test]
    fn urls_default_from_the_public_one() {
        let s = lookup(&[("MARKETPLACE_PUBLIC_URL", "https://shop.example/")]).unwrap();
        assert_eq!(s.storefront_base(), "https://shop.example");
        assert_eq!(s.media_base(), "https://shop.example/media");
        let s = lookup(&[
            ("MARKETPLACE_STOREFRONT_URL", "https://www.example/"),
            ("MARKETPLACE_MEDIA_BASE_URL", "https://cdn.example/m/"),
        ])
        .unwrap();
        assert_eq!(s.storefront_base(), "https://www.example");
        assert_eq!(s.media_base(), "https://cdn.example/m");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (k, v) in [
            ("MARKETPLACE_LISTEN", "nowhere"),
            ("DATABASE_MAX_CONNECTIONS", "many"),
            ("MARKETPLACE_MAX_BODY_BYTES", "-1"),
            ("MARKETPLACE_OUTBOX_POLL_MS", "soon"),
            ("MARKETPLACE_CURRENCY", "DOLLARS"),
            ("DATABASE_RUN_MIGRATIONS", "sometimes"),
        ] {
            match lookup(&[(k, v)]) {
                Err(Error::Setting {
                    variable, message, ..
                }) => {
                    assert_eq!(variable, k);
                    assert!(message.contains(v), "{message}");
                }
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        assert!(lookup(&[("MARKETPLACE_ADMIN_EMAIL", "a@example.com")]).is_err());
        assert!(
            lookup(&[("MARKETPLACE_LISTEN", "  ")]).is_ok(),
            "blank is unset"
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let s = lookup(&[
            ("JWT_SECRET", &"j".repeat(40)),
            (
                "JWT_PREVIOUS_SECRETS",
                &format!("{}, {}", "p".repeat(40), "q".repeat(40)),
            ),
            ("DATABASE_URL", "postgres://app:db-pass@db/shop"),
            ("MARKETPLACE_ADMIN_EMAIL", "root@example.com"),
            ("MARKETPLACE_ADMIN_PASSWORD", "admin-pass"),
        ])
        .unwrap();
        assert_eq!(s.jwt_previous_secrets.len(), 2, "comma-separated, trimmed");
        let shown = format!("{s:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        for secret in ["jjjjjjjj", "pppppppp", "qqqqqqqq", "db-pass", "admin-pass"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }

    #[test]
    fn cors_origins() {
        assert_eq!(Cors::parse(" "), Cors::Off);
        assert_eq!(Cors::parse("*"), Cors::Any);
        let list = Cors::parse("https://a.example/, https://b.example");
        assert!(list.allows("https://a.example") && list.allows("https://b.example"));
        assert!(!list.allows("https://c.example") && !Cors::Off.allows("https://a.example"));
        assert!(Cors::Any.allows("https://anything.example"));
    }
}

/// How buyers pay.
#[derive(Clone, Default)]
pub enum Payments {
    /// On delivery or by bank transfer; an admin marks checkouts paid.
    #[default]
    Manual,
    /// Through Stripe: `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`,
    /// `STRIPE_API_BASE` for a Stripe-compatible server (tests), and
    /// `STRIPE_RECEIPT_EMAIL=false` to leave Stripe's receipts off.
    Stripe(marketplace_stripe::StripeConfig),
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payments::Manual => f.write_str("Manual"),
            Payments::Stripe(c) => write!(f, "Stripe({})", c.api_base),
        }
    }
}

/// Reads the payment provider settings.
fn payments(get: &impl Fn(&str) -> Option<String>) -> Result<Payments> {
    let key = get("STRIPE_SECRET_KEY");
    let chosen = get("MARKETPLACE_PAYMENTS")
        .unwrap_or_else(|| if key.is_some() { "stripe" } else { "manual" }.to_owned());
    match chosen.trim() {
        "manual" => Ok(Payments::Manual),
        "stripe" => {
            let key = key.ok_or_else(|| {
                Error::setting(
                    "STRIPE_SECRET_KEY",
                    "MARKETPLACE_PAYMENTS=stripe needs STRIPE_SECRET_KEY (sk_test_... or sk_live_...)",
                )
            })?;
            let webhook = get("STRIPE_WEBHOOK_SECRET").ok_or_else(|| {
                Error::setting(
                    "STRIPE_WEBHOOK_SECRET",
                    "Stripe payments need STRIPE_WEBHOOK_SECRET (whsec_...), the signing secret of the webhook endpoint /api/v1/payments/webhooks/stripe",
                )
            })?;
            let mut config =
                marketplace_stripe::StripeConfig::new(key).with_webhook_secret(webhook);
            if let Some(base) = get("STRIPE_API_BASE") {
                config = config.with_api_base(base.trim_end_matches('/'));
            }
            // Stripe mails its own receipt to the buyer; off for servers that
            // take no `receipt_email` (localstripe) or operators who mail their own.
            if get("STRIPE_RECEIPT_EMAIL").is_some_and(|v| v.trim() == "false") {
                config = config.with_receipt_email(false);
            }
            Ok(Payments::Stripe(config))
        }
        other => Err(Error::setting(
            "MARKETPLACE_PAYMENTS",
            format!("MARKETPLACE_PAYMENTS={other} is neither manual nor stripe"),
        )),
    }
}
