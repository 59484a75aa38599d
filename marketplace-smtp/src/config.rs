//! How to reach the mail server: [`SmtpConfig`] and its TLS mode.

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;

/// How the connection to the mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsMode {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer
    /// (submission on port 587; `MAIL_STARTTLS=true`, the default). Never falls
    /// back to plain text.
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465; `MAIL_SSL_TLS=true`).
    Implicit,
    /// No TLS at all: only for a relay on this machine or a trusted network.
    /// Credentials are refused in this mode.
    None,
}

impl TlsMode {
    /// The mode the `MAIL_STARTTLS` / `MAIL_SSL_TLS` switches describe: implicit
    /// TLS wins when both are on (it is the stronger of the two and needs its own
    /// port, so someone who set it meant it); neither means no TLS.
    pub fn from_flags(starttls: bool, ssl_tls: bool) -> TlsMode {
        match (starttls, ssl_tls) {
            (_, true) => TlsMode::Implicit,
            (true, false) => TlsMode::StartTls,
            (false, false) => TlsMode::None,
        }
    }
}

/// Why an [`SmtpConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The sender is not an email address (`MAIL` or the configured sender).
    #[error("{what} is not a valid email address: {reason}")]
    InvalidAddress {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A password without TLS would cross the network in clear.
    #[error(
        "refusing to send SMTP credentials without TLS: enable MAIL_STARTTLS or MAIL_SSL_TLS, or drop MAIL_PASSWORD for an unauthenticated local relay"
    )]
    CredentialsWithoutTls,
    /// The extra trusted certificate is not a PEM certificate.
    #[error("the extra trusted CA certificate is not a PEM certificate: {0}")]
    Certificate(String),
    /// The TLS settings were refused.
    #[error("cannot set up TLS for {server}: {reason}")]
    Tls {
        /// The mail server.
        server: String,
        /// Why.
        reason: String,
    },
}

/// Where and how the marketplace hands its mail to an SMTP server.
///
/// The server reads it from `MAIL` (user and sender), `MAIL_PASSWORD`,
/// `MAIL_SERVER` (default `smtp.gmail.com`), `MAIL_PORT` (default 587),
/// `MAIL_STARTTLS` (default true) and `MAIL_SSL_TLS` (default false). `Debug`
/// never shows the password.
#[derive(Clone)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// Host name (or IP address) of the mail server; also the name its TLS
    /// certificate must carry.
    pub server: String,
    /// Port: 587 for submission with STARTTLS, 465 for implicit TLS, 25 for a relay.
    pub port: u16,
    /// How the connection is secured.
    pub tls: TlsMode,
    /// Login name for `AUTH`; `None` for an unauthenticated relay.
    pub user: Option<String>,
    /// Password for `AUTH` (an app password for Gmail). Never logged.
    pub password: Option<String>,
    /// The `From` of every mail and the envelope sender.
    pub from: Mailbox,
    /// An extra CA certificate (PEM) to trust besides the Mozilla roots: a
    /// company CA, or a throw-away one in tests. Verification stays on.
    pub extra_root_pem: Option<Vec<u8>>,
    /// How long the delivery of one message may take in all (connect, TLS,
    /// login, transfer) before the attempt fails as transient (default 30 s): a
    /// server that stalls must not hold the worker or its claims. Keep it below
    /// half the outbox lease (`DeliveryPolicy::lease`, 2 minutes by default): the
    /// worker starts a send only while that much of its claim is left, so a
    /// claim never lapses while its message is on the wire.
    pub timeout: Duration,
}

impl SmtpConfig {
    /// Authenticated submission as `user` (also the sender) with `password`, to
    /// `smtp.gmail.com:587` with STARTTLS: the defaults of the `MAIL_*` settings.
    pub fn new(
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Result<SmtpConfig, ConfigError> {
        let user = user.into();
        let from = parse_mailbox("MAIL", &user)?;
        Ok(SmtpConfig {
            server: "smtp.gmail.com".to_owned(),
            port: 587,
            tls: TlsMode::StartTls,
            user: Some(user),
            password: Some(password.into()),
            from,
            extra_root_pem: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// An unauthenticated relay without TLS (a local Postfix, a test server),
    /// sending as `from`.
    pub fn relay(
        server: impl Into<String>,
        port: u16,
        from: impl AsRef<str>,
    ) -> Result<SmtpConfig, ConfigError> {
        Ok(SmtpConfig {
            server: server.into(),
            port,
            tls: TlsMode::None,
            user: None,
            password: None,
            from: parse_mailbox("sender", from.as_ref())?,
            extra_root_pem: None,
            timeout: Duration::from_secs(30),
        })
    }

    /// The same, on `server:port`.
    pub fn with_server(mut self, server: impl Into<String>, port: u16) -> SmtpConfig {
        self.server = server.into();
        self.port = port;
        self
    }

    /// The same, secured by `tls`.
    pub fn with_tls(mut self, tls: TlsMode) -> SmtpConfig {
        self.tls = tls;
        self
    }

    /// The same, sending as `from` (`"Shop <orders@shop.example>"` or a bare address).
    pub fn with_from(mut self, from: impl AsRef<str>) -> Result<SmtpConfig, ConfigError> {
        self.from = parse_mailbox("sender", from.as_ref())?;
        Ok(self)
    }

    /// The same, also trusting the CA certificate(s) in `pem`.
    pub fn trusting_pem(mut self, pem: impl Into<Vec<u8>>) -> SmtpConfig {
        self.extra_root_pem = Some(pem.into());
        self
    }

    /// The same, with another step timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> SmtpConfig {
        self.timeout = timeout;
        self
    }
}

fn parse_mailbox(what: &'static str, s: &str) -> Result<Mailbox, ConfigError> {
    s.trim().parse().map_err(
        |e: lettre::address::AddressError| ConfigError::InvalidAddress {
            what,
            reason: e.to_string(),
        },
    )
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field(
                "extra_root_pem",
                &self.extra_root_pem.as_ref().map(Vec::len),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_gmail_submission_with_starttls() {
        let c = SmtpConfig::new("shop@example.com", "app-password").unwrap();
        assert_eq!((c.server.as_str(), c.port), ("smtp.gmail.com", 587));
        assert_eq!(c.tls, TlsMode::StartTls);
        assert_eq!(c.from.email.to_string(), "shop@example.com");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = SmtpConfig::new("shop@example.com", "hunter2-very-secret").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>") && shown.contains("shop@example.com"));
    }

    #[test]
    fn flags_pick_the_tls_mode() {
        assert_eq!(TlsMode::from_flags(true, false), TlsMode::StartTls);
        assert_eq!(TlsMode::from_flags(false, true), TlsMode::Implicit);
        assert_eq!(TlsMode::from_flags(true, true), TlsMode::Implicit);
        assert_eq!(TlsMode::from_flags(false, false), TlsMode::None);
    }

    #[test]
    fn a_sender_must_be_an_address() {
        assert!(matches!(
            SmtpConfig::new("not an address", "x"),
            Err(ConfigError::InvalidAddress { what: "MAIL", .. })
        ));
        let named = SmtpConfig::relay("127.0.0.1", 25, "Shop <orders@shop.example>").unwrap();
        assert_eq!(named.from.name.as_deref(), Some("Shop"));
    }
}
