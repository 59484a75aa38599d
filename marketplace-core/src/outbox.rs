//! The notification outbox: mails recorded with the change that causes them, and
//! the worker that delivers them with retries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::ids::MessageId;
use crate::mailer::{MailError, Mailer};
use crate::marketplace::{DeliveryPolicy, Marketplace};
use crate::page::Page;
use crate::storage::Storage;
use crate::user::{Principal, Role};

/// Where a message stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Waiting to be sent (or retried).
    Pending,
    /// Accepted by the mail server.
    Delivered,
    /// Given up after the retry limit; an admin may retry it.
    Dead,
}

impl OutboxStatus {
    /// The status name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<OutboxStatus> {
        match s {
            "pending" => Some(OutboxStatus::Pending),
            "delivered" => Some(OutboxStatus::Delivered),
            "dead" => Some(OutboxStatus::Dead),
            _ => None,
        }
    }
}

/// A mail waiting in (or delivered from) the outbox.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxMessage {
    /// Identifier; also the mail's `Message-ID`, so a receiver can spot a resend.
    pub id: MessageId,
    /// Which event caused it (`order_confirmation`, `new_order`...).
    pub kind: String,
    /// Recipient address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// Delivery state.
    pub status: OutboxStatus,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it is next due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The worker holding it, if any.
    #[serde(skip)]
    pub claimed_by: Option<Uuid>,
    /// Until when that worker holds it.
    #[serde(skip)]
    pub claimed_until: Option<DateTime<Utc>>,
}

/// The result of one delivery attempt, as storage records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryUpdate {
    /// Sent: the message becomes `delivered`.
    Delivered {
        /// When.
        at: DateTime<Utc>,
    },
    /// Failed; try again later (stays `pending`).
    Retry {
        /// When the next attempt is due.
        next_attempt_at: DateTime<Utc>,
        /// Why it failed.
        error: String,
    },
    /// Failed for good: the message becomes `dead`.
    Dead {
        /// Why it failed.
        error: String,
    },
}

/// An outbox listing as storage executes it: newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxQuery {
    /// Only messages in this state.
    pub status: Option<OutboxStatus>,
    /// Start after this (created_at, id), descending.
    pub after: Option<(DateTime<Utc>, MessageId)>,
    /// Maximum number of results.
    pub limit: u32,
}

impl OutboxQuery {
    /// Whether `m` matches the filter and comes after the cursor.
    pub fn matches(&self, m: &OutboxMessage) -> bool {
        self.status.is_none_or(|s| m.status == s)
            && self.after.is_none_or(|k| (m.created_at, m.id) < k)
    }
}

/// What one delivery round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages claimed.
    pub claimed: usize,
    /// Delivered.
    pub delivered: usize,
    /// Failed and scheduled again.
    pub retried: usize,
    /// Failed for good.
    pub dead: usize,
}

/// The delay before attempt `attempts + 1`: exponential from the base, capped, with
/// jitter in the upper half so workers that failed together retry apart.
pub fn backoff(policy: &DeliveryPolicy, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base_ms = policy.base_backoff.num_milliseconds().max(1);
    let max_ms = policy.max_backoff.num_milliseconds().max(base_ms);
    let delay = base_ms.saturating_mul(1i64 << exp).min(max_ms);
    let jittered = rand::thread_rng().gen_range(delay / 2..=delay);
    Duration::milliseconds(jittered)
}

impl<S: Storage> Marketplace<S> {
    /// Outbox messages for an admin, newest first, optionally of one state.
    pub async fn outbox(
        &self,
        who: &Principal,
        status: Option<OutboxStatus>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<OutboxMessage>> {
        self.require(who, Role::Admin)?;
        let bad = || Error::invalid("cursor", "invalid", "is not a cursor of this list");
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
                let raw = String::from_utf8(raw).map_err(|_| bad())?;
                let (t, id) = raw.split_once('|').ok_or_else(bad)?;
                let t = t
                    .parse()
                    .ok()
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(bad)?;
                Some((t, id.parse().map_err(|_| bad())?))
            }
        };
        let limit = self.page_size(limit);
        let q = OutboxQuery {
            status,
            after,
            limit: limit + 1,
        };
        let rows = self.storage().list_outbox(&q).await?;
        Ok(Page::from_overfetch(rows, limit, |m| {
            URL_SAFE_NO_PAD.encode(format!("{}|{}", m.created_at.timestamp_millis(), m.id))
        }))
    }

    /// An admin sends a dead message again.
    pub async fn retry_message(&self, who: &Principal, id: MessageId) -> Result<OutboxMessage> {
        self.require(who, Role::Admin)?;
        let m = self
            .storage()
            .outbox_message(id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        if !self.storage().requeue_dead(id, self.now()).await? {
            return Err(Error::conflict(
                "not_dead",
                format!(
                    "only dead messages can be retried; this one is {}",
                    m.status.as_str()
                ),
            ));
        }
        self.storage()
            .outbox_message(id)
            .await?
            .ok_or(Error::NotFound("message"))
    }
}

/// Delivers outbox messages through a [`Mailer`]: claims due messages (safe with
/// many workers on one database), sends them, and records the outcome with
/// exponential backoff on failure.
pub struct OutboxWorker<S> {
    marketplace: Marketplace<S>,
    mailer: Arc<dyn Mailer>,
    id: Uuid,
}

impl<S: Storage> OutboxWorker<S> {
    /// A worker with a fresh identity.
    pub fn new(marketplace: Marketplace<S>, mailer: Arc<dyn Mailer>) -> Self {
        OutboxWorker {
            marketplace,
            mailer,
            id: Uuid::new_v4(),
        }
    }

    /// The identity this worker claims messages under.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Claims one batch of due messages and tries each once.
    pub async fn run_once(&self) -> Result<DeliveryReport> {
        let m = &self.marketplace;
        let policy = &m.inner.config.delivery;
        let now = m.now();
        let lease_until = now + policy.lease;
        let batch = m
            .storage()
            .claim_outbox(self.id, now, lease_until, policy.batch)
            .await?;
        let mut report = DeliveryReport {
            claimed: batch.len(),
            ..DeliveryReport::default()
        };
        let mut handed_back = 0;
        for msg in batch {
            // A send must end before the claim does: once it lapses another
            // worker may take the message and send it too. So a send starts only
            // while at least half the lease is left (mailers bound a send well
            // below that); the rest of the batch goes back at once.
            if lease_until - m.now() < policy.lease / 2 {
                handed_back += 1;
                continue;
            }
            let update = match self.mailer.send(&msg).await {
                Ok(()) => {
                    report.delivered += 1;
                    DeliveryUpdate::Delivered { at: m.now() }
                }
                Err(e) => {
                    let attempts = msg.attempts + 1;
                    let (permanent, error) = match e {
                        MailError::Permanent(e) => (true, e),
                        MailError::Transient(e) => (false, e),
                    };
                    tracing::warn!(message = %msg.id, attempts, permanent, error = %error, "mail delivery failed");
                    if permanent || attempts >= policy.max_attempts {
                        report.dead += 1;
                        DeliveryUpdate::Dead { error }
                    } else {
                        report.retried += 1;
                        DeliveryUpdate::Retry {
                            next_attempt_at: m.now() + backoff(policy, attempts),
                            error,
                        }
                    }
                }
            };
            if !m
                .storage()
                .finish_delivery(msg.id, self.id, &update)
                .await?
            {
                tracing::warn!(message = %msg.id, "claim on message lost before its result was recorded");
            }
        }
        if handed_back > 0 {
            let released = m.storage().release_claims(self.id).await?;
            tracing::debug!(
                released,
                "lease running short: handed the rest of the batch back"
            );
        }
        Ok(report)
    }

    /// Delivers until `shutdown` completes, polling every `idle` when there is
    /// nothing to send; on shutdown, releases any claim it still holds.
    pub async fn run(self, idle: StdDuration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.run_once().await {
                Ok(r) => r.claimed > 0,
                Err(e) => {
                    tracing::error!(error = %e, "outbox round failed");
                    false
                }
            };
            if busy {
                // Yield to shutdown between batches without waiting.
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::task::yield_now() => continue,
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(idle) => {}
            }
        }
        match self.marketplace.storage().release_claims(self.id).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released outbox claims on shutdown"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not release outbox claims"),
        }
    }
}
