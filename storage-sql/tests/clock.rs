//! The database's clock against real PostgreSQL: a [`DatabaseClock`] over a
//! badly skewed base clock reads the server's time, and two servers whose own
//! clocks disagree by more than an outbox lease send each mail once when they
//! decide by it, where their own clocks alone send a mail twice. SQLite has no
//! clock of its own to offer.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use marketplace_core::fields::Email;
use marketplace_core::{
    AccountStore, AuthConfig, Clock, Config, DatabaseClock, HashCost, JwtSecret, MailError, Mailer,
    Marketplace, MessageId, OutboxMessage, OutboxStatus, OutboxStore, OutboxWorker, Role, Storage,
    User, UserId,
};
use storage_sql::PostgresStorage;
use uuid::Uuid;

/// This machine's clock, `skew` off: a server whose clock is wrong.
struct Skewed(Duration);

impl Clock for Skewed {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }
}

/// The outbox lease of both servers: their clocks are further apart than half
/// of it, so each sees the other's claims lapse too early or too late.
const LEASE: Duration = Duration::seconds(60);
const SKEW: Duration = Duration::seconds(40);

/// A database clock over `base`, synced against `storage`.
async fn synced<C: Clock>(storage: &PostgresStorage, base: C) -> Arc<DatabaseClock<C>> {
    let clock = Arc::new(DatabaseClock::new(base));
    let sync = clock.sync(storage).await.unwrap().unwrap();
    eprintln!(
        "PostgreSQL clock: offset {} us, round trip {} us",
        sync.offset.num_microseconds().unwrap_or(i64::MAX),
        sync.round_trip.num_microseconds().unwrap_or(i64::MAX)
    );
    clock
}

#[tokio::test]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn a_database_clock_reads_postgres_time_not_its_skewed_base() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let storage = &db.storage;
    // The real offset of this machine against the server (same host: ~0).
    let honest = synced(storage, marketplace_core::SystemClock).await;
    let sync = honest.last_sync().unwrap();
    assert!(sync.round_trip < Duration::seconds(1), "{sync:?}");

    let skew = Duration::minutes(10);
    let clock = synced(storage, Skewed(skew)).await;
    let offset = clock.offset();
    assert!(
        (offset + skew).abs() < Duration::seconds(1),
        "the offset undoes the skew: {offset}"
    );
    let before = storage.database_time().await.unwrap().unwrap();
    let ours = clock.now();
    let after = storage.database_time().await.unwrap().unwrap();
    assert!(
        ours > before - Duration::seconds(1) && ours < after + Duration::seconds(1),
        "{before} <= {ours} <= {after}"
    );
    assert!(
        (clock.base().now() - ours - skew).abs() < Duration::seconds(1),
        "and not the skewed base"
    );
}

#[tokio::test]
async fn sqlite_has_no_clock_of_its_own() {
    let db = common::sqlite().await;
    assert_eq!(db.storage.database_time().await.unwrap(), None);
    let clock = DatabaseClock::new(Skewed(Duration::minutes(10)));
    assert_eq!(clock.sync(&db.storage).await.unwrap(), None);
    assert_eq!(clock.offset(), Duration::zero());
}

/// Counts the sends of every message, shared by every server's mailer. With a
/// gate, the first send waits, having said so, until the gate opens: the
/// moment a server is in the middle of its batch.
struct CountingMailer {
    sends: Arc<Mutex<HashMap<MessageId, u32>>>,
    /// The sends of this server alone.
    mine: Arc<AtomicUsize>,
    gate: Option<Arc<Gate>>,
}

struct Gate {
    closed_once: AtomicBool,
    sending: tokio::sync::Notify,
    open: tokio::sync::Semaphore,
}

impl Gate {
    fn closed() -> Gate {
        Gate {
            closed_once: AtomicBool::new(false),
            sending: tokio::sync::Notify::new(),
            open: tokio::sync::Semaphore::new(0),
        }
    }
}

#[async_trait]
impl Mailer for CountingMailer {
    async fn send(&self, message: &OutboxMessage) -> Result<(), MailError> {
        if let Some(gate) = &self.gate
            && !gate.closed_once.swap(true, Ordering::SeqCst)
        {
            gate.sending.notify_one();
            let _ = gate.open.acquire().await;
        }
        tokio::time::sleep(StdDuration::from_millis(1)).await;
        *self.sends.lock().unwrap().entry(message.id).or_default() += 1;
        self.mine.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A server of the marketplace on `storage`, deciding by `clock`.
async fn server(storage: &PostgresStorage, clock: Arc<dyn Clock>) -> Marketplace<PostgresStorage> {
    let mut auth = AuthConfig::new(JwtSecret::new(vec![7u8; 32]).unwrap());
    auth.hash_cost = HashCost::FAST_INSECURE;
    let mut config = Config::new(auth);
    config.delivery.lease = LEASE;
    config.delivery.batch = 10;
    Marketplace::builder(storage.clone(), config)
        .clock(clock)
        .build()
        .await
        .unwrap()
}

/// `n` mails waiting in the outbox, due for a while by every clock involved.
async fn mails(storage: &PostgresStorage, n: usize) -> Vec<MessageId> {
    let now = Utc::now();
    let user = User {
        id: UserId(Uuid::now_v7()),
        email: Email::parse(&format!("{}@example.com", Uuid::new_v4().simple())).unwrap(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        role: Role::Buyer,
        name: None,
        phone: None,
        store_name: None,
        seller_status: None,
        email_verified: false,
        active: true,
        created_at: now,
    };
    let due = marketplace_core::clock::storage_precision(now - Duration::minutes(5));
    let messages: Vec<OutboxMessage> = (0..n)
        .map(|i| OutboxMessage {
            id: MessageId(Uuid::now_v7()),
            kind: "welcome".into(),
            recipient: user.email.to_string(),
            subject: format!("Mail {i}"),
            text_body: "Hello".into(),
            html_body: "<p>Hello</p>".into(),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: due,
            last_error: None,
            created_at: due,
            delivered_at: None,
            claimed_by: None,
            claimed_until: None,
        })
        .collect();
    storage.create_user(&user, None, &messages).await.unwrap();
    messages.iter().map(|m| m.id).collect()
}

/// Server `slow` (whose clock is `SKEW` behind) claims the whole outbox and
/// is held in its first send; meanwhile server `fast` (`SKEW` ahead) runs a
/// round; then `slow` finishes its batch. Returns how often each mail was sent
/// and how many `fast` claimed.
async fn interleave(
    storage: &PostgresStorage,
    slow: Arc<dyn Clock>,
    fast: Arc<dyn Clock>,
) -> (HashMap<MessageId, u32>, Vec<MessageId>, usize) {
    let ids = mails(storage, 10).await;
    let sends = Arc::new(Mutex::new(HashMap::new()));
    let gate = Arc::new(Gate::closed());
    let slow = OutboxWorker::new(
        server(storage, slow).await,
        Arc::new(CountingMailer {
            sends: Arc::clone(&sends),
            mine: Arc::default(),
            gate: Some(Arc::clone(&gate)),
        }),
    );
    let fast = OutboxWorker::new(
        server(storage, fast).await,
        Arc::new(CountingMailer {
            sends: Arc::clone(&sends),
            mine: Arc::default(),
            gate: None,
        }),
    );
    let slow_round = tokio::spawn(async move { slow.run_once().await.unwrap() });
    tokio::time::timeout(StdDuration::from_secs(10), gate.sending.notified())
        .await
        .expect("the slow server claimed and started sending");
    let fast_round = fast.run_once().await.unwrap();
    gate.open.add_permits(1);
    let slow_round = slow_round.await.unwrap();
    assert_eq!(slow_round.claimed, ids.len(), "the slow server claimed all");
    for id in &ids {
        let m = storage.outbox_message(*id).await.unwrap().unwrap();
        assert_eq!(m.status, OutboxStatus::Delivered, "{id:?}");
    }
    let sends = sends.lock().unwrap().clone();
    (sends, ids, fast_round.claimed)
}

fn sent_twice(sends: &HashMap<MessageId, u32>, ids: &[MessageId]) -> usize {
    ids.iter()
        .filter(|id| sends.get(id).copied().unwrap_or(0) > 1)
        .count()
}

/// The control: decided by their own clocks, the server ahead sees the claims
/// of the server behind as lapsed (their lease ends at real time +20 s, its
/// clock reads +40 s) while that one is still sending, takes them and sends
/// the same mails again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn skewed_servers_by_their_own_clocks_send_mails_twice() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let (sends, ids, taken) =
        interleave(&db.storage, Arc::new(Skewed(-SKEW)), Arc::new(Skewed(SKEW))).await;
    let twice = sent_twice(&sends, &ids);
    eprintln!(
        "own clocks: the server ahead claimed {taken} held mails; {twice} of {} sent twice",
        ids.len()
    );
    assert_eq!(taken, ids.len(), "the server ahead took every claim");
    assert!(twice > 0, "expected a mail sent twice: {sends:?}");
}

/// The same servers deciding by the database's clock: the claims hold until
/// the server behind has sent everything, so each mail goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    no_postgres,
    ignore = "needs TEST_POSTGRES_URL (a PostgreSQL server), see README"
)]
async fn skewed_servers_by_the_database_clock_send_each_mail_once() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let slow = synced(&db.storage, Skewed(-SKEW)).await;
    let fast = synced(&db.storage, Skewed(SKEW)).await;
    let (sends, ids, taken) = interleave(&db.storage, slow.clone(), fast.clone()).await;
    let twice = sent_twice(&sends, &ids);
    eprintln!(
        "database clock: the server ahead claimed {taken} held mails; {twice} of {} sent twice",
        ids.len()
    );
    assert_eq!(taken, 0, "the claims held");
    for id in &ids {
        assert_eq!(sends.get(id), Some(&1), "{id:?}");
    }

    // And both delivering side by side, as servers do, keeping their clocks
    // synced: every mail once.
    let ids = mails(&db.storage, 60).await;
    let sends = Arc::new(Mutex::new(HashMap::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut each = Vec::new();
    for clock in [slow, fast] {
        let market = server(&db.storage, clock.clone()).await;
        let mine = Arc::new(AtomicUsize::new(0));
        each.push(Arc::clone(&mine));
        let mailer = Arc::new(CountingMailer {
            sends: Arc::clone(&sends),
            mine,
            gate: None,
        });
        let worker = OutboxWorker::new(market, mailer);
        let (mut stop_worker, mut stop_sync) = (stopped.clone(), stopped.clone());
        let storage = db.storage.clone();
        tasks.push(tokio::spawn(async move {
            worker
                .run(StdDuration::from_millis(5), async move {
                    let _ = stop_worker.wait_for(|s| *s).await;
                })
                .await;
        }));
        tasks.push(tokio::spawn(async move {
            clock
                .keep_synced(&storage, StdDuration::from_millis(20), async move {
                    let _ = stop_sync.wait_for(|s| *s).await;
                })
                .await;
        }));
    }
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(30);
    loop {
        let delivered = sends.lock().unwrap().len();
        if delivered == ids.len() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    // Let a late duplicate show up, were there one.
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    stop.send_replace(true);
    for t in tasks {
        t.await.unwrap();
    }
    let sends = sends.lock().unwrap().clone();
    let each: Vec<usize> = each.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    eprintln!(
        "side by side: the server behind sent {}, the one ahead {}, of {}",
        each[0],
        each[1],
        ids.len()
    );
    for id in &ids {
        assert_eq!(sends.get(id), Some(&1), "{id:?}");
    }
}
