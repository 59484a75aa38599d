//! The mailer the settings pick: SMTP when `MAIL` is set, else the development
//! mailer (the log, and `.eml` files in `MAIL_DIR`).

use std::sync::Arc;

use marketplace_core::{DevMailer, MailError, Mailer};
use marketplace_smtp::{SmtpConfig, SmtpMailer, TlsMode};

use crate::error::{Error, Result};
use crate::settings::Settings;

/// The SMTP settings of the `MAIL*` variables, when `MAIL` is set; checked here
/// so a bad combination stops the start, not the first mail.
pub(crate) fn smtp_settings(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SmtpConfig>> {
    let Some(user) = get("MAIL") else {
        return Ok(None);
    };
    let flag = |k: &'static str, default: bool| -> Result<bool> {
        match get(k).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(Error::setting(k, format!("{k}={v} is not true or false"))),
        }
    };
    let mut smtp = match get("MAIL_PASSWORD") {
        Some(password) => SmtpConfig::new(user.trim(), password).map_err(Error::Mail)?,
        // No password: an unauthenticated relay, sending as MAIL.
        None => SmtpConfig::relay("smtp.gmail.com", 587, user.trim()).map_err(Error::Mail)?,
    };
    if let Some(v) = get("MAIL_SERVER") {
        smtp.server = v.trim().to_owned();
    }
    if let Some(v) = get("MAIL_PORT") {
        smtp.port = v.trim().parse().map_err(|e| {
            Error::unparsable(
                "MAIL_PORT",
                format!("MAIL_PORT={v} is not a port number"),
                e,
            )
        })?;
    }
    smtp.tls = TlsMode::from_flags(flag("MAIL_STARTTLS", true)?, flag("MAIL_SSL_TLS", false)?);
    if let Some(path) = get("MAIL_CA_CERT") {
        let pem = std::fs::read(&path).map_err(|e| {
            Error::unparsable(
                "MAIL_CA_CERT",
                format!("MAIL_CA_CERT: cannot read {path}"),
                e,
            )
        })?;
        smtp.extra_root_pem = Some(pem);
    }
    SmtpMailer::new(&smtp).map_err(Error::Mail)?;
    Ok(Some(smtp))
}

/// The mailer the settings pick: SMTP when `MAIL` is set, else the development
/// mailer (files in `MAIL_DIR`, or the log).
pub fn mailer(settings: &Settings) -> Result<Arc<dyn Mailer>> {
    Ok(match (&settings.smtp, &settings.mail_dir) {
        (Some(smtp), _) => {
            let mailer = SmtpMailer::new(smtp).map_err(Error::Mail)?;
            tracing::info!(server = %smtp.server, port = smtp.port, tls = ?smtp.tls, from = %smtp.from, "mail is sent over SMTP");
            Arc::new(mailer)
        }
        (None, Some(dir)) => Arc::new(DevMailer::to_dir(dir)),
        (None, None) => Arc::new(DevMailer::log_only()),
    })
}

/// Connects to the SMTP server and logs in once, to tell the operator at start,
/// not at the first order, when the server cannot be reached or refuses the
/// login. Only logs: mail waits in the outbox and is retried either way.
pub async fn check_smtp(smtp: &SmtpConfig) {
    let checked = match SmtpMailer::new(smtp) {
        Ok(mailer) => mailer.check_connection().await,
        Err(e) => Err(MailError::Permanent(e.to_string())),
    };
    match checked {
        Ok(()) => {
            tracing::info!(server = %smtp.server, port = smtp.port, "SMTP server reachable, login accepted")
        }
        Err(e) => {
            tracing::warn!(server = %smtp.server, port = smtp.port, error = %e, "SMTP check failed; mail stays in the outbox and is retried")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::settings::tests::lookup;

    use super::*;

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
}
