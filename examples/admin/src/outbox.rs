//! The mail outbox: listing its messages and retrying a dead one.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use marketplace_core::{MessageId, OutboxMessage, OutboxStatus, Principal};
use marketplace_host::Market;
use serde::Serialize;

use crate::cli::OutboxCommand;
use crate::output::{Output, rendered, table, time};

/// A message as the listing shows it: its delivery state, without its bodies.
#[derive(Serialize)]
struct Entry {
    id: MessageId,
    kind: String,
    recipient: String,
    subject: String,
    status: OutboxStatus,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<OutboxMessage> for Entry {
    fn from(m: OutboxMessage) -> Self {
        Entry {
            id: m.id,
            kind: m.kind,
            recipient: m.recipient,
            subject: m.subject,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
        }
    }
}

/// The state a message is in, as the command line names it.
fn state(s: OutboxStatus) -> &'static str {
    match s {
        OutboxStatus::Delivered => "sent",
        other => other.as_str(),
    }
}

/// `outbox ...`
pub async fn outbox(market: &Market, out: Output, command: OutboxCommand) -> Result<()> {
    let operator = Principal::operator();
    match command {
        OutboxCommand::List { status, limit } => {
            let status = status.map(Into::into);
            let mut entries = Vec::new();
            let mut cursor: Option<String> = None;
            while entries.len() < limit as usize {
                let want = (limit as usize - entries.len()).min(100);
                let page = market
                    .outbox(
                        &operator,
                        status,
                        cursor.as_deref(),
                        Some(u32::try_from(want).unwrap_or(100)),
                    )
                    .await
                    .context("cannot list the outbox")?;
                entries.extend(page.items.into_iter().map(Entry::from));
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            out.show(&entries, |list| {
                let mut t = table([
                    "id",
                    "kind",
                    "recipient",
                    "status",
                    "attempts",
                    "next attempt",
                    "last error",
                ]);
                for m in list {
                    t.add_row([
                        m.id.to_string(),
                        m.kind.clone(),
                        m.recipient.clone(),
                        state(m.status).to_owned(),
                        m.attempts.to_string(),
                        time(m.next_attempt_at),
                        m.last_error.clone().unwrap_or_default(),
                    ]);
                }
                rendered(&t, "no messages")
            })
        }
        OutboxCommand::Retry { id } => {
            let m = market
                .retry_message(&operator, id)
                .await
                .with_context(|| format!("cannot retry the message {id}"))?;
            out.show(&Entry::from(m), |m| {
                format!(
                    "message {} to {} is {} again, due {}",
                    m.id,
                    m.recipient,
                    state(m.status),
                    time(m.next_attempt_at)
                )
            })
        }
    }
}
