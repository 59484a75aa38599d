//! # marketplace-smtp
//!
//! Delivers the marketplace's mails over SMTP with [lettre]: [`SmtpMailer`]
//! implements [`marketplace_core::Mailer`], so the outbox worker of
//! `marketplace-core` hands it each message it claimed and records the outcome.
//!
//! - [`SmtpConfig`] says where and how: server, port, [`TlsMode`] (STARTTLS by
//!   default, implicit TLS, or none for a local relay), credentials, sender, and
//!   an optional extra trusted CA. Its `Debug` hides the password.
//! - TLS is rustls with the Mozilla roots; certificate verification is never
//!   turned off (an extra CA can be trusted instead).
//! - Every failure is classified for the worker's retry policy: a reply that
//!   condemns *this message* (5yz syntax or mailbox replies, such as `550 no such
//!   user`) is [`MailError::Permanent`]; everything that may heal by itself or by
//!   an operator's fix (connection refused, timeouts, TLS trouble, 4yz replies, a
//!   rejected login) is [`MailError::Transient`], so an outage or a bad password
//!   delays mail instead of killing it.
//!
//! Each message travels with its outbox id as `Message-ID` (see
//! [`marketplace_core::mailer::build_message`]), so a receiver can spot a resend.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Category;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use marketplace_core::mailer::build_message;
use marketplace_core::{MailError, Mailer, OutboxMessage};

pub use config::{ConfigError, SmtpConfig, TlsMode};

/// Sends outbox messages through an SMTP server. One connection per message (no
/// pool): the worker sends at a modest pace, and a fresh connection never
/// inherits a broken session. Safe to share between tasks and workers.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    timeout: Duration,
    from: Mailbox,
    server: String,
    port: u16,
    tls: TlsMode,
}

impl SmtpMailer {
    /// A mailer for `config`. Checks the settings (a password needs TLS, the extra
    /// CA must be a certificate) but does not connect; see
    /// [`SmtpMailer::check_connection`].
    pub fn new(config: &SmtpConfig) -> Result<SmtpMailer, ConfigError> {
        let tls = match config.tls {
            TlsMode::None => {
                if config.password.is_some() {
                    return Err(ConfigError::CredentialsWithoutTls);
                }
                Tls::None
            }
            TlsMode::StartTls => Tls::Required(tls_parameters(config)?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters(config)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.server)
            .port(config.port)
            .timeout(Some(config.timeout))
            .tls(tls);
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            timeout: config.timeout,
            from: config.from.clone(),
            server: config.server.clone(),
            port: config.port,
            tls: config.tls,
        })
    }

    /// The sender of every mail.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Connects, greets, secures and logs in as a delivery would, then quits:
    /// for a start-up check or a readiness probe.
    pub async fn check_connection(&self) -> Result<(), MailError> {
        let check = tokio::time::timeout(self.timeout, self.transport.test_connection());
        match check.await.map_err(|_| self.timed_out())? {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Transient(format!(
                "{}:{} did not answer NOOP",
                self.server, self.port
            ))),
            Err(e) => Err(classify(&e)),
        }
    }

    fn timed_out(&self) -> MailError {
        MailError::Transient(format!(
            "{}:{} did not complete within {:?}",
            self.server, self.port, self.timeout
        ))
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, ConfigError> {
    let mut params = TlsParameters::builder(config.server.clone());
    if let Some(pem) = &config.extra_root_pem {
        // lettre reads an input without any certificate as an empty list; refuse
        // it here so a wrong file is a start-up error, not a handshake mystery.
        if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::Certificate("no certificate found".to_owned()));
        }
        let cert =
            Certificate::from_pem(pem).map_err(|e| ConfigError::Certificate(e.to_string()))?;
        params = params.add_root_certificate(cert);
    }
    params.build_rustls().map_err(|e| ConfigError::Tls {
        server: config.server.clone(),
        reason: e.to_string(),
    })
}

/// Sorts an SMTP failure into what the outbox worker should do with the message.
///
/// Permanent only when the server refused this message for good: a 5yz reply in
/// the syntax (50z) or mail system (55z) class, such as `550 mailbox unavailable`
/// or `553 mailbox name not allowed`. A 5yz about the connection or the account
/// (`521`, `530`/`535` authentication) says nothing about the message and would
/// kill every mail of an outage or a mistyped password, so it is transient, like
/// 4yz replies, refused connections, timeouts and TLS failures: those heal by
/// themselves or by an operator's fix, and the retry limit still ends them.
pub fn classify(e: &lettre::transport::smtp::Error) -> MailError {
    let text = e.to_string();
    match e.status() {
        Some(code)
            if e.is_permanent()
                && matches!(code.category, Category::Syntax | Category::MailSystem) =>
        {
            MailError::Permanent(text)
        }
        Some(_) if e.is_permanent() => MailError::Transient(format!(
            "{text} (the server refused the session or the login, not this message)"
        )),
        _ if e.is_timeout() => MailError::Transient(format!("timed out: {text}")),
        _ => MailError::Transient(text),
    }
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError> {
        let mime = build_message(&self.from, message)?;
        // lettre's own timeout covers connecting only; this bounds the whole
        // conversation. A timeout after the data went out may mean the server did
        // take the message: the retry then resends it with the same Message-ID,
        // which receivers use to drop the copy.
        let sent = tokio::time::timeout(self.timeout, self.transport.send(mime));
        match sent.await.map_err(|_| self.timed_out())? {
            Ok(_) => {
                tracing::debug!(message = %message.id, kind = %message.kind, "mail accepted by the SMTP server");
                Ok(())
            }
            Err(e) => Err(classify(&e)),
        }
    }
}
