//! `users` reads all the users it is asked for in one `find`, as the contract
//! asks of a backend that can (a cart or checkout reads all its sellers at
//! once), and `session_user` (every authenticated request) is one `aggregate`.
//! Watched with the driver's command monitoring; needs `TEST_MONGODB_URL`
//! (a replica set) like the integration tests, and is skipped without it.

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use marketplace_core::auth::RefreshToken;
use marketplace_core::fields::Email;
use marketplace_core::{AccountStore, Role, SellerStatus, TokenFamilyId, User, UserId};
use mongodb::bson::{Bson, Document};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::ClientOptions;
use uuid::Uuid;

use crate::{MongoOptions, MongoStorage};

fn seller(n: u32) -> User {
    User {
        id: UserId(Uuid::new_v4()),
        email: Email::from_trusted(format!("seller{n}@example.com")),
        password_hash: "$argon2id$not-checked-here".to_owned(),
        role: Role::Seller,
        name: None,
        phone: None,
        store_name: Some(format!("Store {n}")),
        seller_status: Some(SellerStatus::Verified),
        email_verified: true,
        active: true,
        created_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_else(|| panic!("a valid instant")),
    }
}

#[tokio::test]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn users_reads_every_user_in_one_find() {
    let Ok(url) = std::env::var("TEST_MONGODB_URL") else {
        eprintln!("storage-mongo test SKIPPED: TEST_MONGODB_URL is not set");
        return;
    };
    // Every command the client starts: (name, command document).
    let started: Arc<Mutex<Vec<(String, Document)>>> = Arc::default();
    let mut client_options = ClientOptions::parse(&url)
        .await
        .unwrap_or_else(|e| panic!("TEST_MONGODB_URL: {e}"));
    let record = started.clone();
    client_options.command_event_handler = Some(EventHandler::callback(move |e| {
        if let CommandEvent::Started(s) = e {
            record
                .lock()
                .unwrap_or_else(|e| panic!("{e}"))
                .push((s.command_name, s.command));
        }
    }));
    // The conformance tests' prefix: a run that fails here leaves a database
    // the next run drops.
    let name = format!("mkt_conformance_{}", Uuid::new_v4().simple());
    let store = MongoStorage::open(client_options, MongoOptions::default().with_database(name))
        .await
        .unwrap_or_else(|e| panic!("connecting to TEST_MONGODB_URL: {e}"));
    let sellers = [seller(1), seller(2), seller(3)];
    for u in &sellers {
        store
            .create_user(u, None, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    started.lock().unwrap_or_else(|e| panic!("{e}")).clear();
    let mut ids: Vec<UserId> = sellers.iter().map(|u| u.id).collect();
    let found = store.users(&ids).await.unwrap_or_else(|e| panic!("{e}"));
    let commands = std::mem::take(&mut *started.lock().unwrap_or_else(|e| panic!("{e}")));
    store
        .database()
        .drop()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut got: Vec<UserId> = found.iter().map(|u| u.id).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every requested user is found");
    let names: Vec<&str> = commands.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["find"],
        "one command, a find (no getMore): {commands:?}"
    );
    let find = &commands[0].1;
    assert_eq!(find.get_str("find"), Ok("users"), "{find:?}");
    let asked = find
        .get_document("filter")
        .and_then(|f| f.get_document("_id"))
        .and_then(|id| id.get_array("$in"))
        .unwrap_or_else(|e| panic!("the find selects `_id: {{$in: [...]}}`: {e}; {find:?}"));
    assert_eq!(asked.len(), 3, "all three ids in the one find: {find:?}");
    assert!(
        asked.iter().all(|id| matches!(id, Bson::Binary(_))),
        "{find:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    no_mongodb,
    ignore = "needs TEST_MONGODB_URL (a MongoDB replica set), see README"
)]
async fn session_user_is_one_aggregate() {
    let Ok(url) = std::env::var("TEST_MONGODB_URL") else {
        eprintln!("storage-mongo test SKIPPED: TEST_MONGODB_URL is not set");
        return;
    };
    let started: Arc<Mutex<Vec<(String, Document)>>> = Arc::default();
    let mut client_options = ClientOptions::parse(&url)
        .await
        .unwrap_or_else(|e| panic!("TEST_MONGODB_URL: {e}"));
    let record = started.clone();
    client_options.command_event_handler = Some(EventHandler::callback(move |e| {
        if let CommandEvent::Started(s) = e {
            record
                .lock()
                .unwrap_or_else(|e| panic!("{e}"))
                .push((s.command_name, s.command));
        }
    }));
    let name = format!("mkt_conformance_{}", Uuid::new_v4().simple());
    let store = MongoStorage::open(client_options, MongoOptions::default().with_database(name))
        .await
        .unwrap_or_else(|e| panic!("connecting to TEST_MONGODB_URL: {e}"));
    let user = seller(1);
    store
        .create_user(&user, None, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let family = TokenFamilyId(Uuid::new_v4());
    store
        .insert_refresh_token(&RefreshToken {
            hash: "a-live-token".to_owned(),
            user_id: user.id,
            family,
            expires_at: user.created_at + chrono::Duration::days(30),
            created_at: user.created_at,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    started.lock().unwrap_or_else(|e| panic!("{e}")).clear();
    let found = store
        .session_user(user.id, family)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let commands = std::mem::take(&mut *started.lock().unwrap_or_else(|e| panic!("{e}")));
    let other_family = store
        .session_user(user.id, TokenFamilyId(Uuid::new_v4()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .database()
        .drop()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(found, Some(user), "a live login finds its user");
    assert_eq!(
        other_family, None,
        "a login with no live token finds nobody"
    );
    let names: Vec<&str> = commands.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["aggregate"],
        "one command, an aggregate (no getMore): {commands:?}"
    );
}
