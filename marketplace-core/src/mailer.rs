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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::Utc;
    use mailparse::MailHeaderMap;

    use super::*;
    use crate::ids::MessageId;
    use crate::outbox::OutboxStatus;

    fn message(recipient: &str) -> OutboxMessage {
        OutboxMessage {
            id: MessageId(uuid::Uuid::now_v7()),
            kind: "order_confirmation".to_owned(),
            recipient: recipient.to_owned(),
            subject: "Your order: 2 × Crème brûlée".to_owned(),
            text_body: "Thank you, Zoë.\n2 x Crème brûlée = 9.00 EUR\n".to_owned(),
            html_body: "<p>Thank you, Zoë.</p><p>2 &times; Cr&egrave;me br&ucirc;l&eacute;e</p>"
                .to_owned(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: Utc::now(),
            last_error: None,
            created_at: Utc::now(),
            delivered_at: None,
            claimed_by: None,
            claimed_until: None,
        }
    }

    /// A log writer whose output the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The development mailer writes `<id>.eml` into a folder it creates, logs
    /// the mail, and the file reads back as the message: sender, recipient,
    /// subject (non-ASCII), the outbox id as `Message-ID`, and a text and an
    /// HTML alternative with the bodies as given. A message it cannot build is
    /// a permanent failure and leaves no file.
    #[tokio::test]
    async fn dev_mailer_writes_each_message_as_an_eml_file_and_logs_it() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mail").join("outbox");
        let mailer = DevMailer::to_dir(&dir);
        let m = message("zoe@example.com");
        mailer.send(&m).await.unwrap();

        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, [format!("{}.eml", m.id)]);
        let raw = std::fs::read(dir.join(&files[0])).unwrap();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        assert_eq!(header("To"), "zoe@example.com");
        assert_eq!(
            header("From"),
            "Marketplace <no-reply@marketplace.localhost>"
        );
        assert_eq!(
            header("Subject"),
            m.subject,
            "decoded from its encoded form"
        );
        assert!(
            !String::from_utf8_lossy(&raw).contains("Crème"),
            "headers travel ASCII-encoded"
        );
        assert_eq!(
            header("Message-ID"),
            format!("<{}@marketplace.localhost>", m.id)
        );
        assert!(!header("Date").is_empty());
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        let parts: Vec<(String, String)> = parsed
            .subparts
            .iter()
            .map(|p| (p.ctype.mimetype.clone(), p.get_body().unwrap()))
            .collect();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0].0, "text/plain");
        assert_eq!(parts[0].1.replace("\r\n", "\n"), m.text_body);
        assert_eq!(parts[1].0, "text/html");
        assert_eq!(parts[1].1.replace("\r\n", "\n"), m.html_body);

        let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("mail (development mailer)")
                && logged.contains("zoe@example.com")
                && logged.contains(&m.subject)
                && logged.contains("order_confirmation"),
            "the mail is logged: {logged}"
        );

        // A recipient that is no address: permanent, and no file.
        let bad = message("not an address");
        match mailer.send(&bad).await {
            Err(MailError::Permanent(e)) => assert!(e.contains("bad recipient"), "{e}"),
            other => panic!("a bad recipient is permanent: {other:?}"),
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

        // Without a folder it only logs.
        DevMailer::log_only()
            .send(&message("ada@example.com"))
            .await
            .unwrap();
        assert!(
            String::from_utf8(log.0.lock().unwrap().clone())
                .unwrap()
                .contains("ada@example.com")
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
