//! Outbox delivery: retries with backoff, exclusive claims, dead messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Duration;
use marketplace_core::mailer::{MailError, Mailer};
use marketplace_core::{MessageId, OutboxMessage, OutboxStatus, OutboxWorker, Role, Storage};

use crate::{World, assert_err};

/// A mailer that records what it is given and fails on demand: the worker's side
/// of the `Mailer` contract. (Real SMTP delivery is tested against a real server.)
#[derive(Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<OutboxMessage>>,
    /// Recipients that always fail permanently.
    reject: Mutex<Vec<String>>,
    /// Remaining transient failures before the mailer works.
    outage: Mutex<u32>,
}

impl RecordingMailer {
    /// Every message accepted, in order.
    pub fn sent(&self) -> Vec<OutboxMessage> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError> {
        if self.reject.lock().unwrap().contains(&message.recipient) {
            return Err(MailError::Permanent("550 no such mailbox".into()));
        }
        {
            let mut outage = self.outage.lock().unwrap();
            if *outage > 0 {
                *outage -= 1;
                return Err(MailError::Transient("connection refused".into()));
            }
        }
        // A little latency lets concurrent workers overlap.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        self.sent.lock().unwrap().push(message.clone());
        Ok(())
    }
}

/// Failed deliveries are retried with growing delays until they succeed; a message
/// that fails on every attempt (or permanently) ends dead without blocking the
/// others.
pub async fn outbox_worker_delivers_retries_and_gives_up<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let mailer = Arc::new(RecordingMailer::default());
    let worker = OutboxWorker::new(w.market.clone(), mailer.clone());
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    *mailer.outage.lock().unwrap() = 3;
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let r = worker.run_once().await.unwrap();
        assert_eq!((r.claimed, r.retried), (1, 1), "attempt {attempt}");
        let m = w.outbox().await.pop().unwrap();
        assert_eq!((m.status, m.attempts), (OutboxStatus::Pending, attempt));
        assert_eq!(m.last_error.as_deref(), Some("connection refused"));
        let delay = m.next_attempt_at - w.now();
        delays.push(delay);
        // Not due yet: nothing is claimed.
        assert_eq!(worker.run_once().await.unwrap().claimed, 0);
        w.clock.advance(delay);
    }
    assert!(
        delays[0] >= Duration::seconds(15) && delays[2] > delays[0],
        "exponential backoff: {delays:?}"
    );
    let r = worker.run_once().await.unwrap();
    assert_eq!(r.delivered, 1);
    let m = w.outbox().await.pop().unwrap();
    assert_eq!((m.status, m.attempts), (OutboxStatus::Delivered, 4));
    assert_eq!(m.delivered_at, Some(w.now()));
    assert_eq!(
        worker.run_once().await.unwrap().claimed,
        0,
        "delivered messages are never sent again"
    );
    assert_eq!(mailer.sent().len(), 1);

    // A permanently rejected recipient dies at once; others still flow.
    let bad = w.email("bounce");
    mailer.reject.lock().unwrap().push(bad.clone());
    w.register(Role::Buyer, &bad).await;
    let good = w.email("fine");
    w.register(Role::Buyer, &good).await;
    let r = worker.run_once().await.unwrap();
    assert_eq!((r.dead, r.delivered), (1, 1));
    let dead = w
        .outbox()
        .await
        .into_iter()
        .find(|m| m.recipient == bad)
        .unwrap();
    assert_eq!(dead.status, OutboxStatus::Dead);
    assert!(dead.last_error.unwrap().contains("550"));

    // A message failing transiently on every attempt dies after the limit.
    *mailer.outage.lock().unwrap() = u32::MAX;
    let flaky = w.email("flaky");
    w.register(Role::Buyer, &flaky).await;
    let max = w.market.config().delivery.max_attempts;
    for _ in 0..max {
        worker.run_once().await.unwrap();
        w.clock.advance(Duration::hours(2));
    }
    let m = w
        .outbox()
        .await
        .into_iter()
        .find(|m| m.recipient == flaky)
        .unwrap();
    assert_eq!((m.status, m.attempts), (OutboxStatus::Dead, max));
}

/// A mailer whose first send waits until a second one has begun. A worker sends
/// its batch one message at a time, so that second send is another worker's:
/// at least two workers certainly deliver, however the tasks are scheduled.
struct OverlappingMailer {
    inner: Arc<RecordingMailer>,
    first_two: tokio::sync::Barrier,
    begun: AtomicUsize,
}

#[async_trait]
impl Mailer for OverlappingMailer {
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError> {
        if self.begun.fetch_add(1, Ordering::SeqCst) < 2 {
            let wait =
                tokio::time::timeout(std::time::Duration::from_secs(30), self.first_two.wait());
            assert!(
                wait.await.is_ok(),
                "no other worker sent while the first one was sending"
            );
        }
        self.inner.send(message).await
    }
}

/// Many workers claiming at once never get the same message: each is delivered
/// exactly once, and more than one worker delivered. A crashed worker's claim
/// expires and another takes over.
pub async fn outbox_claims_are_exclusive<S: Storage>(storage: S) {
    // Small claims (5 of the 60 messages each), so the work is spread.
    let mut config = crate::test_config();
    config.delivery.batch = 5;
    let w = World::with_config(storage, config).await;
    for _ in 0..60 {
        w.buyer().await;
    }
    let mailer = Arc::new(RecordingMailer::default());
    let overlapping: Arc<dyn Mailer> = Arc::new(OverlappingMailer {
        inner: Arc::clone(&mailer),
        first_two: tokio::sync::Barrier::new(2),
        begun: AtomicUsize::new(0),
    });
    let workers: Vec<_> = (0..6)
        .map(|_| {
            Arc::new(OutboxWorker::new(
                w.market.clone(),
                Arc::clone(&overlapping),
            ))
        })
        .collect();
    let tasks: Vec<_> = workers
        .iter()
        .map(|worker| {
            let worker = Arc::clone(worker);
            tokio::spawn(async move {
                let mut total = 0;
                loop {
                    let r = worker.run_once().await.unwrap();
                    if r.claimed == 0 {
                        break total;
                    }
                    total += r.delivered;
                }
            })
        })
        .collect();
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap());
    }
    assert_eq!(per_worker.iter().sum::<usize>(), 60, "{per_worker:?}");
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "at least two workers delivered: {per_worker:?}"
    );
    let mut count: HashMap<MessageId, usize> = HashMap::new();
    for m in mailer.sent() {
        *count.entry(m.id).or_default() += 1;
    }
    assert_eq!(count.len(), 60);
    assert!(count.values().all(|&n| n == 1), "no message sent twice");
    assert!(
        w.outbox()
            .await
            .iter()
            .all(|m| m.status == OutboxStatus::Delivered)
    );

    // A worker that claims and vanishes: its lease ends and another worker sends.
    w.buyer().await;
    let now = w.now();
    let lease = w.market.config().delivery.lease;
    let claimed = w
        .market
        .storage()
        .claim_outbox(uuid::Uuid::new_v4(), now, now + lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let other = OutboxWorker::new(w.market.clone(), mailer.clone());
    assert_eq!(
        other.run_once().await.unwrap().claimed,
        0,
        "held by a live claim"
    );
    w.clock.advance(lease + Duration::seconds(1));
    assert_eq!(other.run_once().await.unwrap().delivered, 1);
    // Released claims are immediately available.
    w.buyer().await;
    let ghost = uuid::Uuid::new_v4();
    let now = w.now();
    assert_eq!(
        w.market
            .storage()
            .claim_outbox(ghost, now, now + lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(w.market.storage().release_claims(ghost).await.unwrap(), 1);
    assert_eq!(other.run_once().await.unwrap().delivered, 1);
}

/// An admin sees dead messages and sends them again; only dead ones.
pub async fn dead_messages_can_be_retried<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let mailer = Arc::new(RecordingMailer::default());
    let worker = OutboxWorker::new(w.market.clone(), mailer.clone());
    let bad = w.email("bounce");
    mailer.reject.lock().unwrap().push(bad.clone());
    let buyer = w.register(Role::Buyer, &bad).await;
    worker.run_once().await.unwrap();
    let dead = w
        .market
        .outbox(&admin, Some(OutboxStatus::Dead), None, None)
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
    let id = dead.items[0].id;
    assert_err!(
        w.market.outbox(&buyer, None, None, None).await,
        marketplace_core::Error::Forbidden(_)
    );
    assert_err!(
        w.market.retry_message(&buyer, id).await,
        marketplace_core::Error::Forbidden(_)
    );
    mailer.reject.lock().unwrap().clear();
    let m = w.market.retry_message(&admin, id).await.unwrap();
    assert_eq!((m.status, m.attempts), (OutboxStatus::Pending, 0));
    assert_err!(
        w.market.retry_message(&admin, id).await,
        marketplace_core::Error::Conflict { .. }
    );
    assert_eq!(worker.run_once().await.unwrap().delivered, 1);
    assert!(
        w.market
            .outbox(&admin, Some(OutboxStatus::Dead), None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_err!(
        w.market
            .retry_message(&admin, MessageId(uuid::Uuid::new_v4()))
            .await,
        marketplace_core::Error::NotFound(_)
    );
    // Paging through every message.
    for _ in 0..5 {
        w.buyer().await;
    }
    let mut seen = 0;
    let mut cursor = None;
    loop {
        let page = w
            .market
            .outbox(&admin, None, cursor.as_deref(), Some(2))
            .await
            .unwrap();
        seen += page.items.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, w.outbox().await.len());
}

/// An admin verifies or rejects sellers (each decision mailed) and lists them by
/// status.
pub async fn seller_decisions_are_mailed_and_listed<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let (a, b, c) = (
        w.pending_seller().await,
        w.pending_seller().await,
        w.pending_seller().await,
    );
    let buyer = w.buyer().await;
    assert_err!(
        w.market.decide_seller(&buyer, a.user_id, true).await,
        marketplace_core::Error::Forbidden(_)
    );
    assert_err!(
        w.market.decide_seller(&admin, buyer.user_id, true).await,
        marketplace_core::Error::NotFound(_)
    );
    let v = w
        .market
        .decide_seller(&admin, a.user_id, true)
        .await
        .unwrap();
    assert_eq!(v.status, marketplace_core::SellerStatus::Verified);
    w.market
        .decide_seller(&admin, b.user_id, false)
        .await
        .unwrap();
    let mails = w.mails("seller_decision").await;
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().any(|m| m.subject.contains("is verified")));
    assert!(mails.iter().any(|m| m.subject.contains("not approved")));
    let pending = w
        .market
        .list_sellers(
            &admin,
            Some(marketplace_core::SellerStatus::Pending),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        pending.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![c.user_id]
    );
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = w
            .market
            .list_sellers(&admin, None, after, Some(1))
            .await
            .unwrap();
        all.extend(page.items.iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => after = Some(c.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(all.len(), 3);
    assert_err!(
        w.market.list_sellers(&buyer, None, None, None).await,
        marketplace_core::Error::Forbidden(_)
    );
}
