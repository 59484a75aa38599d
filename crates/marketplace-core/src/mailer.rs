//! Where mail goes: the `Mailer` trait and the development mailers.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header};

use crate::outbox::OutboxMessage;

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth retrying later (connection refused, 4xx replies, timeouts).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (invalid address, 5xx rejection).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Sends one outbox message. Implementations must be safe to call concurrently.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends `message`; `Ok` once the receiving side accepted it.
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError>;
}

/// Builds the MIME message of an outbox entry: plain text and HTML alternatives,
/// with the entry's id as `Message-ID`.
pub fn build_message(from: &Mailbox, message: &OutboxMessage) -> Result<Message, MailError> {
    let to: Mailbox = message
        .recipient
        .parse()
        .map_err(|e| MailError::Permanent(format!("bad recipient {}: {e}", message.recipient)))?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(format!("<{}@{}>", message.id, domain)))
        .header(header::Date::new(message.created_at.into()))
        .multipart(MultiPart::alternative_plain_html(
            message.text_body.clone(),
            message.html_body.clone(),
        ))
        .map_err(|e| MailError::Permanent(format!("cannot build message: {e}")))
}

/// The development mailer: writes each message to the log and, when given a
/// folder, as an `.eml` file there, so a newcomer sees every mail the marketplace
/// would send without an SMTP server.
#[derive(Debug, Clone)]
pub struct DevMailer {
    from: Mailbox,
    dir: Option<PathBuf>,
}

impl DevMailer {
    /// Logs messages only.
    pub fn log_only() -> Self {
        DevMailer {
            from: default_from(),
            dir: None,
        }
    }

    /// Logs messages and writes each to `dir/<id>.eml` (the folder is created).
    pub fn to_dir(dir: impl Into<PathBuf>) -> Self {
        DevMailer {
            from: default_from(),
            dir: Some(dir.into()),
        }
    }
}

fn default_from() -> Mailbox {
    Mailbox::new(
        Some("Marketplace".to_owned()),
        lettre::Address::new("no-reply", "marketplace.localhost")
            .unwrap_or_else(|_| unreachable!("static address is valid")),
    )
}

#[async_trait]
impl Mailer for DevMailer {
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError> {
        tracing::info!(to = %message.recipient, subject = %message.subject, kind = %message.kind, "mail (development mailer)");
        if let Some(dir) = &self.dir {
            let mime = build_message(&self.from, message)?.formatted();
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                MailError::Transient(format!("cannot create {}: {e}", dir.display()))
            })?;
            let path = dir.join(format!("{}.eml", message.id));
            tokio::fs::write(&path, mime).await.map_err(|e| {
                MailError::Transient(format!("cannot write {}: {e}", path.display()))
            })?;
        }
        Ok(())
    }
}
