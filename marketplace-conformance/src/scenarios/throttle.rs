//! The login throttle under concurrency: an attempt is counted before the
//! password is checked, so guesses sent at once get exactly as many tries as
//! guesses sent one after another.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::Duration;
use marketplace_core::{Error, Marketplace, Role, Storage, TokenPair};

use crate::{World, assert_err, test_config};

/// How many logins race in each burst.
const BURST: usize = 40;

/// A client address of the documentation range.
fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)))
}

/// Runs every `(email, password, client)` login at once, each on a task of its
/// own (the suite runs on a multi-thread runtime) released together; the
/// results in the order given.
async fn all_at_once<S: Storage>(
    market: &Marketplace<S>,
    logins: Vec<(String, &'static str, Option<IpAddr>)>,
) -> Vec<Result<TokenPair, Error>> {
    let start = Arc::new(tokio::sync::Barrier::new(logins.len()));
    let tasks: Vec<_> = logins
        .into_iter()
        .map(|(email, password, client)| {
            let market = market.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                market.login(&email, password, client).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap());
    }
    results
}

/// Which wrong-password logins got to try the password (`InvalidCredentials`)
/// and which were refused before it (`RateLimited`, with a wait inside the
/// window); panics on anything else.
fn tried_and_refused(results: &[Result<TokenPair, Error>]) -> (Vec<usize>, Vec<usize>) {
    let (mut tried, mut refused) = (Vec::new(), Vec::new());
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(Error::InvalidCredentials) => tried.push(i),
            Err(Error::RateLimited { retry_after }) => {
                assert!(
                    retry_after.as_secs() > 0 && retry_after.as_secs() <= 15 * 60,
                    "login {i}: retry after {retry_after:?}, beyond the window"
                );
                refused.push(i);
            }
            other => panic!("login {i}: expected a wrong guess or a refusal, got {other:?}"),
        }
    }
    (tried, refused)
}

/// Forty wrong passwords for one account at once, against its limit of five:
/// exactly five get to try the password, the rest are refused, and so is the
/// right password until the window ends. A success then clears the account's
/// count: five more tries, not what is left of the old ones.
pub async fn concurrent_guesses_at_one_account_try_exactly_its_limit<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    let guesses = (0..BURST)
        .map(|_| (email.clone(), "wrong password", None))
        .collect();
    let (tried, refused) = tried_and_refused(&all_at_once(&w.market, guesses).await);
    println!(
        "{BURST} concurrent guesses at one account, limit 5: {} tried, {} refused",
        tried.len(),
        refused.len()
    );
    assert_eq!(
        (tried.len(), refused.len()),
        (5, BURST - 5),
        "exactly the account's limit got to try the password"
    );
    assert_err!(
        w.market.login(&email, "correct horse", None).await,
        Error::RateLimited { .. }
    );

    w.clock.advance(Duration::minutes(16));
    w.market.login(&email, "correct horse", None).await.unwrap();
    // Four wrong, then right: the success clears the count...
    for _ in 0..4 {
        assert_err!(
            w.market.login(&email, "wrong password", None).await,
            Error::InvalidCredentials
        );
    }
    w.market.login(&email, "correct horse", None).await.unwrap();
    // ...so the next window of guesses has all five tries again.
    for _ in 0..5 {
        assert_err!(
            w.market.login(&email, "wrong password", None).await,
            Error::InvalidCredentials
        );
    }
    assert_err!(
        w.market.login(&email, "wrong password", None).await,
        Error::RateLimited { .. }
    );
}

/// Forty wrong guesses at as many accounts at once from one client address,
/// against its limit of seven: exactly seven get to try a password. A guess the
/// client limit refused does not count against its account either; one that
/// tried does.
pub async fn concurrent_guesses_from_one_client_try_exactly_its_limit<S: Storage>(storage: S) {
    const LIMIT: usize = 7;
    let mut config = test_config();
    config.auth.max_failures_per_client = LIMIT as u32;
    let w = World::with_config(storage, config).await;
    let owner = w.email("owner");
    w.register(Role::Buyer, &owner).await;
    // Known and unknown accounts alike: the throttle cannot tell them apart.
    let mut emails = Vec::with_capacity(BURST);
    for i in 0..BURST {
        let email = w.email("guess");
        if i % 2 == 0 {
            w.register(Role::Buyer, &email).await;
        }
        emails.push(email);
    }
    let guesses = emails
        .iter()
        .map(|e| (e.clone(), "wrong password", ip(7)))
        .collect();
    let (tried, refused) = tried_and_refused(&all_at_once(&w.market, guesses).await);
    println!(
        "{BURST} concurrent guesses from one client, limit {LIMIT}: {} tried, {} refused",
        tried.len(),
        refused.len()
    );
    assert_eq!(
        (tried.len(), refused.len()),
        (LIMIT, BURST - LIMIT),
        "exactly the client's limit got to try a password"
    );
    // The client is locked out, even with a right password; others are not.
    assert_err!(
        w.market.login(&owner, "correct horse", ip(7)).await,
        Error::RateLimited { .. }
    );
    w.market
        .login(&owner, "correct horse", ip(8))
        .await
        .unwrap();

    // A refused guess left its account untouched: all five tries remain.
    let untouched = &emails[refused[0]];
    for _ in 0..5 {
        assert_err!(
            w.market.login(untouched, "wrong password", None).await,
            Error::InvalidCredentials
        );
    }
    assert_err!(
        w.market.login(untouched, "wrong password", None).await,
        Error::RateLimited { .. }
    );
    // A guess that tried spent one of its account's five.
    let spent = &emails[tried[0]];
    for _ in 0..4 {
        assert_err!(
            w.market.login(spent, "wrong password", None).await,
            Error::InvalidCredentials
        );
    }
    assert_err!(
        w.market.login(spent, "wrong password", None).await,
        Error::RateLimited { .. }
    );

    w.clock.advance(Duration::minutes(16));
    w.market
        .login(&owner, "correct horse", ip(7))
        .await
        .unwrap();
}

/// Successful logins from one client address (an office behind one NAT) never
/// use up its budget, however many and however concurrent; but each gives back
/// only its own attempt, so signing in to an account of one's own does not
/// erase wrong guesses. An address that is not an email counts against the
/// client only.
pub async fn successful_logins_give_back_only_their_own_attempt<S: Storage>(storage: S) {
    const LIMIT: usize = 3;
    let mut config = test_config();
    config.auth.max_failures_per_client = LIMIT as u32;
    let w = World::with_config(storage, config).await;
    let mut staff = Vec::new();
    for _ in 0..LIMIT {
        let email = w.email("staff");
        w.register(Role::Buyer, &email).await;
        staff.push(email);
    }
    // Rounds of as many concurrent right logins as the limit: all succeed.
    for round in 0..5 {
        let logins = staff
            .iter()
            .map(|e| (e.clone(), "correct horse", ip(1)))
            .collect();
        for (i, r) in all_at_once(&w.market, logins).await.into_iter().enumerate() {
            assert!(r.is_ok(), "round {round}, login {i}: {r:?}");
        }
    }
    let me = &staff[0];
    // Two wrong guesses, one with text that is not an email at all.
    let unknown = w.email("nobody");
    assert_err!(
        w.market.login(&unknown, "wrong password", ip(1)).await,
        Error::InvalidCredentials
    );
    assert_err!(
        w.market
            .login("not an email", "wrong password", ip(1))
            .await,
        Error::InvalidCredentials
    );
    // A success between guesses gives back its own attempt, not theirs...
    w.market.login(me, "correct horse", ip(1)).await.unwrap();
    assert_err!(
        w.market.login(&unknown, "wrong password", ip(1)).await,
        Error::InvalidCredentials
    );
    // ...so the three guesses fill the window.
    assert_err!(
        w.market.login(me, "correct horse", ip(1)).await,
        Error::RateLimited { .. }
    );
    assert_err!(
        w.market
            .login("still not an email", "whatever", ip(1))
            .await,
        Error::RateLimited { .. }
    );
    w.market.login(me, "correct horse", ip(2)).await.unwrap();
    w.clock.advance(Duration::minutes(16));
    w.market.login(me, "correct horse", ip(1)).await.unwrap();
}
