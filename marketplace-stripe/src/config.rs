//! How to reach Stripe: [`StripeConfig`].

use std::fmt;
use std::time::Duration;

/// Stripe's API, where requests go unless told otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How long one request may take before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How far a webhook's signed timestamp may lie from the clock (either way)
/// before it is refused as a replay: Stripe's own libraries use 300 seconds.
pub const DEFAULT_WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a [`StripeConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The secret key is empty.
    #[error("the Stripe secret key (STRIPE_SECRET_KEY) is empty")]
    NoSecretKey,
    /// The API base is not an `http(s)://` URL.
    #[error("the Stripe API base `{0}` is not an http:// or https:// URL")]
    ApiBase(String),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Where and how [`StripePayments`](crate::StripePayments) talks to Stripe.
///
/// [`StripeConfig::from_env`] reads it from `STRIPE_SECRET_KEY`,
/// `STRIPE_WEBHOOK_SECRET` and `STRIPE_API_BASE`. `Debug` never shows the
/// secrets.
#[derive(Clone)]
#[non_exhaustive]
pub struct StripeConfig {
    /// The secret API key (`sk_live_...`, `sk_test_...`; a restricted `rk_...`
    /// key with write access to PaymentIntents and Refunds does too).
    pub secret_key: String,
    /// The signing secret of the webhook endpoint (`whsec_...`). Without it
    /// every webhook is refused.
    pub webhook_secret: Option<String>,
    /// Where the API lives: [`DEFAULT_API_BASE`], or a fake such as
    /// localstripe (`http://127.0.0.1:8420`) in tests. No trailing `/v1`.
    pub api_base: String,
    /// The limit for one request, connection included. A request that runs
    /// out of it answers [`PaymentError::Unknown`](marketplace_core::payment::PaymentError::Unknown).
    pub timeout: Duration,
    /// How old (or how far in the future) a webhook's signed timestamp may be.
    pub webhook_tolerance: Duration,
    /// Whether `receipt_email` is sent with each new PaymentIntent, so that
    /// Stripe mails the buyer a receipt (in live mode, when the account's
    /// receipt settings allow). On by default; localstripe rejects the
    /// parameter, so its tests turn it off.
    pub send_receipt_email: bool,
}

impl StripeConfig {
    /// A configuration with `secret_key` and the defaults: no webhook secret,
    /// [`DEFAULT_API_BASE`], [`DEFAULT_TIMEOUT`], [`DEFAULT_WEBHOOK_TOLERANCE`],
    /// receipts on.
    pub fn new(secret_key: impl Into<String>) -> StripeConfig {
        StripeConfig {
            secret_key: secret_key.into(),
            webhook_secret: None,
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            webhook_tolerance: DEFAULT_WEBHOOK_TOLERANCE,
            send_receipt_email: true,
        }
    }

    /// Sets the webhook signing secret.
    pub fn with_webhook_secret(mut self, secret: impl Into<String>) -> StripeConfig {
        self.webhook_secret = Some(secret.into());
        self
    }

    /// Sets the API base.
    pub fn with_api_base(mut self, base: impl Into<String>) -> StripeConfig {
        self.api_base = base.into();
        self
    }

    /// Sets the request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> StripeConfig {
        self.timeout = timeout;
        self
    }

    /// Sets the webhook timestamp tolerance.
    pub fn with_webhook_tolerance(mut self, tolerance: Duration) -> StripeConfig {
        self.webhook_tolerance = tolerance;
        self
    }

    /// Turns the `receipt_email` parameter on or off.
    pub fn with_receipt_email(mut self, send: bool) -> StripeConfig {
        self.send_receipt_email = send;
        self
    }

    /// Reads `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` (optional) and
    /// `STRIPE_API_BASE` (optional, default [`DEFAULT_API_BASE`]); empty
    /// values count as unset. `None` when `STRIPE_SECRET_KEY` is unset: Stripe
    /// is then not configured.
    pub fn from_env() -> Option<StripeConfig> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<StripeConfig> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut config = StripeConfig::new(get("STRIPE_SECRET_KEY")?.trim());
        config.webhook_secret = get("STRIPE_WEBHOOK_SECRET").map(|s| s.trim().to_owned());
        if let Some(base) = get("STRIPE_API_BASE") {
            config.api_base = base.trim().to_owned();
        }
        Some(config)
    }

    /// The API base without trailing slashes, checked.
    pub(crate) fn checked_base(&self) -> Result<String, ConfigError> {
        let base = self.api_base.trim().trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                Ok(base.to_owned())
            }
            _ => Err(ConfigError::ApiBase(self.api_base.clone())),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &redact(&self.secret_key))
            .field(
                "webhook_secret",
                &self.webhook_secret.as_deref().map(redact),
            )
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("webhook_tolerance", &self.webhook_tolerance)
            .field("send_receipt_email", &self.send_receipt_email)
            .finish()
    }
}

/// A key's kind prefix (`sk_test_`, `whsec_`), never the secret part.
fn redact(secret: &str) -> String {
    let prefix: String = secret
        .split_inclusive('_')
        .take_while(|part| part.ends_with('_'))
        .take(2)
        .collect();
    format!("{prefix}***")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn from_env_needs_the_secret_key() {
        assert!(StripeConfig::from_lookup(lookup(&[])).is_none());
        assert!(StripeConfig::from_lookup(lookup(&[("STRIPE_SECRET_KEY", " ")])).is_none());
        let c = StripeConfig::from_lookup(lookup(&[("STRIPE_SECRET_KEY", "sk_test_abc")]))
            .expect("configured");
        assert_eq!(c.secret_key, "sk_test_abc");
        assert_eq!(c.webhook_secret, None);
        assert_eq!(c.api_base, DEFAULT_API_BASE);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.send_receipt_email);
    }

    #[test]
    fn from_env_reads_the_webhook_secret_and_base() {
        let c = StripeConfig::from_lookup(lookup(&[
            ("STRIPE_SECRET_KEY", "sk_test_abc"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_xyz"),
            ("STRIPE_API_BASE", "http://127.0.0.1:8420/"),
        ]))
        .expect("configured");
        assert_eq!(c.webhook_secret.as_deref(), Some("whsec_xyz"));
        assert_eq!(c.checked_base().expect("valid"), "http://127.0.0.1:8420");
    }

    #[test]
    fn bad_bases_are_refused() {
        for base in ["", "api.stripe.com", "ftp://x", "https://", "https://a b"] {
            assert!(
                StripeConfig::new("sk_test_x")
                    .with_api_base(base)
                    .checked_base()
                    .is_err(),
                "{base}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secrets() {
        let c = StripeConfig::new("sk_test_supersecret").with_webhook_secret("whsec_hidden");
        let shown = format!("{c:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(!shown.contains("hidden"), "{shown}");
        assert!(shown.contains("sk_test_***"), "{shown}");
        assert!(shown.contains("whsec_***"), "{shown}");
    }
}
