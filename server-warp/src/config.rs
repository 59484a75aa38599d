//! Server settings, read from the environment by the binary (documented defaults
//! in the README), and the assembly of a marketplace from them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use marketplace_core::{
    AuthConfig, Config, Currency, DeliveryPolicy, DevMailer, HashCost, JwtSecret, Mailer,
    Marketplace, Storage,
};
use marketplace_smtp::{SmtpConfig, SmtpMailer, TlsMode};

use crate::extract::{App, Market};
use crate::serve::Cors;
use storage_sql::{PostgresStorage, SqlOptions, SqliteStorage};

/// Everything `marketplace-server` can be configured with.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// `MARKETPLACE_LISTEN` (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// `DATABASE_URL`: `sqlite://marketplace.db` (default), `sqlite:<path>`,
    /// `postgres://...`, `mongodb://host/<database>` (a replica set), `memory:`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS` (default 10), `DATABASE_ACQUIRE_TIMEOUT_MS`
    /// (default 30000) and `DATABASE_BUSY_TIMEOUT_MS` (SQLite, default 5000).
    pub sql: SqlOptions,
    /// `JWT_SECRET`: required unless the store is local (memory or SQLite) and
    /// `MARKETPLACE_ENV` is not `production`.
    pub jwt_secret: Option<String>,
    /// `MARKETPLACE_ENV=production` refuses to start without a configured secret.
    pub production: bool,
    /// `MARKETPLACE_PUBLIC_URL`: the base URL clients reach this server at
    /// (default `http://<listen>`); the default of the two below.
    pub public_url: Option<String>,
    /// `MARKETPLACE_STOREFRONT_URL`: the base of the links in mails
    /// (`/verify-email`, `/reset-password`; default the public URL, where this
    /// server answers them with small pages).
    pub storefront_url: Option<String>,
    /// `MARKETPLACE_MEDIA_BASE_URL`: the base of product image URLs (default
    /// `{public URL}/media`, where this server serves them).
    pub media_base_url: Option<String>,
    /// `MARKETPLACE_CURRENCY`: the ISO 4217 currency the marketplace sells in
    /// (default `USD`).
    pub currency: Currency,
    /// `MARKETPLACE_MEDIA_DIR`: where uploaded images are kept (default `./media`).
    pub media_dir: PathBuf,
    /// `MARKETPLACE_CORS_ORIGINS`: `*` or a comma-separated list (default none).
    pub cors: Cors,
    /// `MARKETPLACE_MAX_BODY_BYTES`: largest JSON body (default 64 KiB).
    pub max_body: u64,
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
    /// `MARKETPLACE_ADMIN_EMAIL` and `MARKETPLACE_ADMIN_PASSWORD`: an admin created
    /// at start when no account has that email (the configuration route to the
    /// first admin; the command line is the other).
    pub bootstrap_admin: Option<(String, String)>,
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
            .field("production", &self.production)
            .field("public_url", &self.public_url)
            .field("storefront_url", &self.storefront_url)
            .field("media_base_url", &self.media_base_url)
            .field("currency", &self.currency)
            .field("media_dir", &self.media_dir)
            .field("cors", &self.cors)
            .field("max_body", &self.max_body)
            .field("mail_dir", &self.mail_dir)
            .field("smtp", &self.smtp)
            .field("delivery", &self.delivery)
            .field("outbox_poll", &self.outbox_poll)
            .field(
                "bootstrap_admin",
                &self
                    .bootstrap_admin
                    .as_ref()
                    .map(|(e, _)| (e, "<redacted>")),
            )
            .field("hash_cost", &self.hash_cost)
            .finish()
    }
}

/// Hides the password of a URL (`postgres://user:secret@host` -> `postgres://user:***@host`).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://marketplace.db".to_owned(),
            sql: SqlOptions::default(),
            jwt_secret: None,
            production: false,
            public_url: None,
            storefront_url: None,
            media_base_url: None,
            currency: Currency::USD,
            media_dir: PathBuf::from("media"),
            cors: Cors::Off,
            max_body: 64 * 1024,
            mail_dir: None,
            smtp: None,
            delivery: DeliveryPolicy::default(),
            outbox_poll: Duration::from_secs(1),
            bootstrap_admin: None,
            hash_cost: HashCost::RECOMMENDED,
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let mut s = Settings::default();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("MARKETPLACE_LISTEN") {
            s.listen = v.parse().with_context(|| {
                format!("MARKETPLACE_LISTEN={v} is not an address like 127.0.0.1:8080")
            })?;
        }
        if let Some(v) = get("DATABASE_URL") {
            s.database_url = v;
        }
        let number = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .with_context(|| format!("{k}={v} is not a number"))
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
        s.jwt_secret = get("JWT_SECRET");
        s.production = get("MARKETPLACE_ENV").is_some_and(|v| v.eq_ignore_ascii_case("production"));
        s.public_url = get("MARKETPLACE_PUBLIC_URL");
        s.storefront_url = get("MARKETPLACE_STOREFRONT_URL");
        s.media_base_url = get("MARKETPLACE_MEDIA_BASE_URL");
        if let Some(v) = get("MARKETPLACE_CURRENCY") {
            s.currency = Currency::parse(&v).with_context(|| {
                format!(
                    "MARKETPLACE_CURRENCY={v} is not an ISO 4217 currency code (e.g. USD, EUR, JPY)"
                )
            })?;
        }
        if let Some(v) = get("MARKETPLACE_MEDIA_DIR") {
            s.media_dir = v.into();
        }
        if let Some(v) = get("MARKETPLACE_CORS_ORIGINS") {
            s.cors = Cors::parse(&v);
        }
        if let Some(v) = get("MARKETPLACE_MAX_BODY_BYTES") {
            s.max_body = v
                .parse()
                .with_context(|| format!("MARKETPLACE_MAX_BODY_BYTES={v} is not a number"))?;
        }
        s.mail_dir = get("MAIL_DIR").map(PathBuf::from);
        s.smtp = smtp_settings(&get)?;
        if let Some(v) = get("MARKETPLACE_OUTBOX_POLL_MS") {
            let ms: u64 = v
                .parse()
                .with_context(|| format!("MARKETPLACE_OUTBOX_POLL_MS={v} is not a number"))?;
            s.outbox_poll = Duration::from_millis(ms);
        }
        s.bootstrap_admin = match (
            get("MARKETPLACE_ADMIN_EMAIL"),
            get("MARKETPLACE_ADMIN_PASSWORD"),
        ) {
            (Some(e), Some(p)) => Some((e, p)),
            (None, None) => None,
            _ => {
                bail!("set both MARKETPLACE_ADMIN_EMAIL and MARKETPLACE_ADMIN_PASSWORD, or neither")
            }
        };
        Ok(s)
    }

    /// Whether the store lives on this machine only (memory or SQLite).
    fn local_store(&self) -> bool {
        // PostgreSQL and MongoDB are shared by several processes: they need a
        // configured secret.
        self.database_url.starts_with("memory:") || self.database_url.starts_with("sqlite:")
    }

    /// The signing secret: configured, or (for local development only) generated
    /// once and kept in `secret_file`.
    fn secret(&self, secret_file: Option<&Path>) -> Result<JwtSecret> {
        if let Some(s) = &self.jwt_secret {
            return JwtSecret::new(s.clone().into_bytes())
                .map_err(anyhow::Error::msg)
                .context("JWT_SECRET");
        }
        if self.production || !self.local_store() {
            bail!(
                "JWT_SECRET is not set; it is required in production and with a shared database (set it to 32 or more random bytes)"
            );
        }
        let generated = match secret_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
                _ => {
                    let s = JwtSecret::generate();
                    write_private(path, &s).with_context(|| {
                        format!("cannot keep the JWT secret in {}", path.display())
                    })?;
                    tracing::info!(path = %path.display(), "generated a development JWT secret");
                    s
                }
            },
            None => JwtSecret::generate(),
        };
        JwtSecret::new(generated.into_bytes()).map_err(anyhow::Error::msg)
    }

    /// Where stored images are served from.
    fn media_url(&self) -> String {
        match &self.media_base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}/media", self.public_base()),
        }
    }

    /// The base of the links in mails.
    fn storefront_url(&self) -> String {
        match &self.storefront_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => self.public_base(),
        }
    }

    fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The marketplace configuration these settings describe.
    pub fn marketplace_config(&self, secret_file: Option<&Path>) -> Result<Config> {
        let mut auth = AuthConfig::new(self.secret(secret_file)?);
        auth.hash_cost = self.hash_cost;
        let mut config = Config::new(auth);
        config.public_url = self.storefront_url();
        config.media_url = self.media_url();
        config.currency = self.currency;
        config.delivery = self.delivery.clone();
        Ok(config)
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
}

/// The file of a SQLite URL (`sqlite://marketplace.db`, `sqlite:data/shop.db?mode=rwc`);
/// `None` for an in-memory SQLite database or another scheme.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The SMTP settings of the `MAIL*` variables, when `MAIL` is set.
fn smtp_settings(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SmtpConfig>> {
    let Some(user) = get("MAIL") else {
        return Ok(None);
    };
    let flag = |k: &str, default: bool| -> Result<bool> {
        match get(k).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => bail!("{k}={v} is not true or false"),
        }
    };
    let mut smtp = match get("MAIL_PASSWORD") {
        Some(password) => SmtpConfig::new(user.trim(), password).context("MAIL")?,
        // No password: an unauthenticated relay, sending as MAIL.
        None => SmtpConfig::relay("smtp.gmail.com", 587, user.trim()).context("MAIL")?,
    };
    if let Some(v) = get("MAIL_SERVER") {
        smtp.server = v.trim().to_owned();
    }
    if let Some(v) = get("MAIL_PORT") {
        smtp.port = v
            .trim()
            .parse()
            .with_context(|| format!("MAIL_PORT={v} is not a port number"))?;
    }
    smtp.tls = TlsMode::from_flags(flag("MAIL_STARTTLS", true)?, flag("MAIL_SSL_TLS", false)?);
    if let Some(path) = get("MAIL_CA_CERT") {
        let pem =
            std::fs::read(&path).with_context(|| format!("MAIL_CA_CERT: cannot read {path}"))?;
        smtp.extra_root_pem = Some(pem);
    }
    // Checked here so a bad combination stops the start, not the first mail.
    SmtpMailer::new(&smtp).context("MAIL settings")?;
    Ok(Some(smtp))
}

/// The mailer the settings pick: SMTP when `MAIL` is set, else the development
/// mailer (files in `MAIL_DIR`, or the log).
pub fn mailer(settings: &Settings) -> Result<Arc<dyn Mailer>> {
    Ok(match (&settings.smtp, &settings.mail_dir) {
        (Some(smtp), _) => {
            let mailer = SmtpMailer::new(smtp).context("MAIL settings")?;
            tracing::info!(server = %smtp.server, port = smtp.port, tls = ?smtp.tls, from = %smtp.from, "mail is sent over SMTP");
            Arc::new(mailer)
        }
        (None, Some(dir)) => Arc::new(DevMailer::to_dir(dir)),
        (None, None) => Arc::new(DevMailer::log_only()),
    })
}

/// Opens the store `DATABASE_URL` names; returns it with the file the development
/// JWT secret is kept in, when the store has a home on disk.
pub async fn open_storage(
    url: &str,
    sql: &SqlOptions,
) -> Result<(Arc<dyn Storage>, Option<PathBuf>)> {
    if url.starts_with("memory:") {
        tracing::warn!(
            "DATABASE_URL=memory: data lives in this process only and is lost when it stops"
        );
        return Ok((Arc::new(storage_memory::MemoryStorage::new()), None));
    }
    if url.starts_with("sqlite:") {
        let store = SqliteStorage::connect(url, sql.clone())
            .await
            .with_context(|| format!("cannot open DATABASE_URL={}", redact_url(url)))?;
        // The development secret lives beside the database file it protects.
        let secret = sqlite_file(url).map(|db| {
            let mut name = db.file_name().unwrap_or_default().to_os_string();
            name.push(".jwt-secret");
            db.with_file_name(name)
        });
        return Ok((Arc::new(store), secret));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStorage::connect(url, sql.clone())
            .await
            .with_context(|| format!("cannot open DATABASE_URL={}", redact_url(url)))?;
        return Ok((Arc::new(store), None));
    }
    if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        let store =
            storage_mongo::MongoStorage::connect(url, storage_mongo::MongoOptions::default())
                .await
                .with_context(|| format!("cannot open DATABASE_URL={}", redact_url(url)))?;
        return Ok((Arc::new(store), None));
    }
    let scheme = url.split(':').next().unwrap_or_default();
    bail!(
        "DATABASE_URL scheme `{scheme}:` is not supported (use sqlite:, postgres://, mongodb://, or memory:)"
    )
}

/// Assembles the marketplace and the application the routes serve.
pub async fn build(settings: &Settings) -> Result<(App, Arc<dyn Mailer>)> {
    let (storage, secret_file) = open_storage(&settings.database_url, &settings.sql).await?;
    let config = settings.marketplace_config(secret_file.as_deref())?;
    std::fs::create_dir_all(&settings.media_dir).with_context(|| {
        format!(
            "cannot create the media folder {}",
            settings.media_dir.display()
        )
    })?;
    let images = object_store::local::LocalFileSystem::new_with_prefix(&settings.media_dir)
        .with_context(|| {
            format!(
                "cannot use the media folder {}",
                settings.media_dir.display()
            )
        })?;
    let market: Market = Marketplace::builder(storage, config)
        .images(Arc::new(images))
        .build()
        .await?;
    let mailer = mailer(settings)?;
    if let Some((email, password)) = &settings.bootstrap_admin {
        match market.create_admin(email, password).await {
            Ok(u) => tracing::info!(email = %u.email, "created the configured admin"),
            Err(marketplace_core::Error::Conflict {
                code: "email_taken",
                ..
            }) => {
                tracing::debug!("the configured admin already exists")
            }
            Err(e) => {
                return Err(e)
                    .context("cannot create the configured admin (MARKETPLACE_ADMIN_EMAIL)");
            }
        }
    }
    let app = App {
        market,
        max_body: settings.max_body,
    };
    Ok((app, mailer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite://marketplace.db"),
            Some(PathBuf::from("marketplace.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:data/shop.db?mode=rwc"),
            Some(PathBuf::from("data/shop.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("sqlite://marketplace.db"),
            "sqlite://marketplace.db"
        );
    }

    fn lookup(vars: &[(&str, &str)]) -> Result<Settings> {
        let vars: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| vars.get(k).cloned())
    }

    #[test]
    fn mail_settings_pick_smtp_with_documented_defaults() {
        let none = lookup(&[("MAIL_DIR", "/tmp/mails")]).unwrap();
        assert!(
            none.smtp.is_none(),
            "without MAIL the development mailer stays"
        );
        let s = lookup(&[
            ("MAIL", "shop@example.com"),
            ("MAIL_PASSWORD", "app-pass-123"),
        ])
        .unwrap();
        let smtp = s.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.server.as_str(), smtp.port, smtp.tls),
            ("smtp.gmail.com", 587, TlsMode::StartTls)
        );
        assert_eq!(smtp.user.as_deref(), Some("shop@example.com"));
        assert_eq!(smtp.from.email.to_string(), "shop@example.com");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("app-pass-123"),
            "the mail password is never shown: {shown}"
        );

        let ssl = lookup(&[
            ("MAIL", "shop@example.com"),
            ("MAIL_PASSWORD", "x"),
            ("MAIL_SERVER", "mail.example.com"),
            ("MAIL_PORT", "465"),
            ("MAIL_SSL_TLS", "true"),
        ])
        .unwrap();
        let smtp = ssl.smtp.unwrap();
        assert_eq!(
            (smtp.server.as_str(), smtp.port, smtp.tls),
            ("mail.example.com", 465, TlsMode::Implicit)
        );

        let relay = lookup(&[
            ("MAIL", "shop@example.com"),
            ("MAIL_SERVER", "127.0.0.1"),
            ("MAIL_PORT", "25"),
            ("MAIL_STARTTLS", "false"),
        ])
        .unwrap();
        let smtp = relay.smtp.unwrap();
        assert_eq!((smtp.tls, smtp.password.is_none()), (TlsMode::None, true));

        assert!(
            lookup(&[
                ("MAIL", "shop@example.com"),
                ("MAIL_PASSWORD", "x"),
                ("MAIL_STARTTLS", "false")
            ])
            .is_err(),
            "a password is never sent in clear"
        );
        assert!(lookup(&[("MAIL", "shop@example.com"), ("MAIL_PORT", "smtp")]).is_err());
        assert!(lookup(&[("MAIL", "shop@example.com"), ("MAIL_STARTTLS", "maybe")]).is_err());
        assert!(lookup(&[("MAIL", "not an address")]).is_err());
        assert!(
            lookup(&[
                ("MAIL", "shop@example.com"),
                ("MAIL_CA_CERT", "/nonexistent/ca.pem")
            ])
            .is_err()
        );
    }

    #[test]
    fn secrets_are_required_where_they_matter() {
        let prod =
            Settings::from_lookup(|k| (k == "MARKETPLACE_ENV").then(|| "production".to_owned()))
                .unwrap();
        assert!(
            prod.secret(None).is_err(),
            "production refuses a generated secret"
        );
        let pg = Settings::from_lookup(|k| {
            (k == "DATABASE_URL").then(|| "postgres://x@h/db".to_owned())
        })
        .unwrap();
        assert!(
            pg.secret(None).is_err(),
            "a shared database needs a configured secret"
        );
        let short =
            Settings::from_lookup(|k| (k == "JWT_SECRET").then(|| "short".to_owned())).unwrap();
        assert!(short.secret(None).is_err(), "short secrets are refused");
        let dev = Settings::default();
        assert!(dev.secret(None).is_ok());
        let bad =
            Settings::from_lookup(|k| (k == "MARKETPLACE_LISTEN").then(|| "nowhere".to_owned()));
        assert!(bad.is_err());
        assert!(
            format!(
                "{:?}",
                Settings::from_lookup(|k| (k == "JWT_SECRET").then(|| "x".repeat(40))).unwrap()
            )
            .contains("<redacted>")
        );
    }
}
