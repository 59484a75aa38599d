//! Accounts, authentication and profiles.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::Duration;
use marketplace_core::{Error, NewAccount, ProfileUpdate, Role, Storage};

use crate::{World, assert_err};

fn account(email: &str, password: &str, role: Role) -> NewAccount {
    NewAccount {
        email: email.to_owned(),
        password: password.to_owned(),
        role,
        name: None,
        store_name: (role == Role::Seller).then(|| "A Store".to_owned()),
    }
}

/// Registration validates every field at once, lower-cases emails and refuses a
/// duplicate whatever its case; no admin can sign up.
pub async fn register_validates_and_rejects_duplicates<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let u = w
        .market
        .register(account("Ann@Example.COM", "long enough", Role::Buyer))
        .await
        .unwrap();
    assert_eq!(u.email.as_str(), "ann@example.com");
    assert!(!u.email_verified);
    assert_ne!(
        u.password_hash, "long enough",
        "the password is stored hashed"
    );
    assert!(u.password_hash.starts_with("$argon2id$"));
    assert_err!(
        w.market
            .register(account("ANN@example.com", "long enough", Role::Buyer))
            .await,
        Error::Conflict {
            code: "email_taken",
            ..
        }
    );
    match w
        .market
        .register(account("not-an-email", "short", Role::Buyer))
        .await
    {
        Err(Error::Validation(fields)) => {
            let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["email", "password"], "every bad field is reported");
        }
        other => panic!("expected validation error, got {other:?}"),
    }
    assert_err!(
        w.market
            .register(account("admin@example.com", "long enough", Role::Admin))
            .await,
        Error::Validation(_)
    );
    let mut seller = account("s@example.com", "long enough", Role::Seller);
    seller.store_name = None;
    assert_err!(w.market.register(seller).await, Error::Validation(f) if f[0].field == "store_name");
    let s = w
        .market
        .register(account("s@example.com", "long enough", Role::Seller))
        .await
        .unwrap();
    assert_eq!(
        s.seller_status,
        Some(marketplace_core::SellerStatus::Pending)
    );
    // Registration mails a verification token, in the same step.
    assert_eq!(w.mails("verify_email").await.len(), 2);
    assert!(
        w.market
            .storage()
            .user_by_email("ann@example.com")
            .await
            .unwrap()
            .is_some()
    );
}

/// Login returns working tokens; a wrong password and an unknown email get the
/// same error.
pub async fn login_authenticates_and_hides_which_part_failed<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    let me = w.register(Role::Buyer, &email).await;
    let tokens = w
        .market
        .login(&email.to_uppercase(), "correct horse", None)
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 15 * 60);
    let who = w.market.authenticate(&tokens.access_token).await.unwrap();
    assert_eq!(who, me);
    let wrong = w
        .market
        .login(&email, "wrong password", None)
        .await
        .unwrap_err();
    let unknown = w
        .market
        .login("nobody@example.com", "correct horse", None)
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, Error::InvalidCredentials) && matches!(unknown, Error::InvalidCredentials)
    );
    assert_eq!(wrong.to_string(), unknown.to_string());
}

/// Five failures lock an account for the window, even against the right password;
/// many failures from one client address lock that address.
pub async fn login_is_throttled_per_account_and_client<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    for _ in 0..5 {
        assert_err!(
            w.market.login(&email, "wrong password", None).await,
            Error::InvalidCredentials
        );
    }
    match w.market.login(&email, "correct horse", None).await {
        Err(Error::RateLimited { retry_after }) => {
            assert!(retry_after.as_secs() > 0 && retry_after.as_secs() <= 15 * 60)
        }
        other => panic!("expected rate limit, got {other:?}"),
    }
    w.clock.advance(Duration::minutes(16));
    w.market.login(&email, "correct horse", None).await.unwrap();

    // One client address trying many accounts.
    let ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    for i in 0..20 {
        let _ = w
            .market
            .login(&format!("guess{i}@example.com"), "whatever1", ip)
            .await;
    }
    assert_err!(
        w.market.login(&email, "correct horse", ip).await,
        Error::RateLimited { .. }
    );
    w.market.login(&email, "correct horse", None).await.unwrap();
}

/// A refresh token works once; presenting it again revokes the whole family.
pub async fn refresh_rotates_and_reuse_revokes_the_family<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    let me = w.register(Role::Buyer, &email).await;
    let first = w.market.login(&email, "correct horse", None).await.unwrap();
    let second = w.market.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(
        w.market.authenticate(&second.access_token).await.unwrap(),
        me
    );
    // Reuse of the spent token: refused, and the live successor dies with it.
    assert_err!(
        w.market.refresh(&first.refresh_token).await,
        Error::Unauthenticated
    );
    assert_err!(
        w.market.refresh(&second.refresh_token).await,
        Error::Unauthenticated
    );
    assert_err!(
        w.market.refresh("made-up-token").await,
        Error::Unauthenticated
    );
    // Another login is a separate family and unaffected.
    let other = w.market.login(&email, "correct horse", None).await.unwrap();
    w.market.refresh(&other.refresh_token).await.unwrap();
    // Concurrent rotations of one token, each on a task of its own (the suite
    // runs on a multi-thread runtime) released together: exactly one wins, round
    // after round, and every other one is refused.
    const ROUNDS: usize = 10;
    const CONTENDERS: usize = 4;
    for round in 0..ROUNDS {
        let login = w.market.login(&email, "correct horse", None).await.unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(CONTENDERS));
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|_| {
                let (market, token) = (w.market.clone(), login.refresh_token.clone());
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    market.refresh(&token).await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(Error::Unauthenticated) => {}
                Err(other) => panic!("round {round}: a losing rotation failed with {other:?}"),
            }
        }
        assert_eq!(
            won, 1,
            "round {round}: exactly one of {CONTENDERS} concurrent rotations succeeds"
        );
    }
    // Expiry.
    let late = w.market.login(&email, "correct horse", None).await.unwrap();
    w.clock.advance(Duration::days(31));
    assert_err!(
        w.market.refresh(&late.refresh_token).await,
        Error::Unauthenticated
    );
}

/// Logout revokes the refresh token's login and is harmless to repeat.
pub async fn logout_revokes_the_login<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    let t = w.market.login(&email, "correct horse", None).await.unwrap();
    w.market.logout(&t.refresh_token).await.unwrap();
    w.market.logout(&t.refresh_token).await.unwrap();
    assert_err!(
        w.market.refresh(&t.refresh_token).await,
        Error::Unauthenticated
    );
}

/// Access tokens: forged, `alg: none`, expired and garbage tokens are refused.
pub async fn access_tokens_are_checked<S: Storage>(storage: S) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let w = World::new(storage).await;
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    let t = w.market.login(&email, "correct horse", None).await.unwrap();
    let parts: Vec<&str> = t.access_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    // alg none with the same claims.
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert_err!(w.market.authenticate(&none).await, Error::Unauthenticated);
    // Claims changed to admin, signature kept.
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    let mut forged = claims.clone();
    forged["role"] = "admin".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(forged.to_string()),
        parts[2]
    );
    assert_err!(w.market.authenticate(&forged).await, Error::Unauthenticated);
    for garbage in ["", "abc", "a.b.c", "....", "\u{0}"] {
        assert_err!(w.market.authenticate(garbage).await, Error::Unauthenticated);
    }
    // Expiry follows the marketplace's clock.
    w.clock.advance(Duration::minutes(16));
    assert_err!(
        w.market.authenticate(&t.access_token).await,
        Error::Unauthenticated
    );
}

fn token_from(mail: &marketplace_core::OutboxMessage) -> String {
    let line = mail
        .text_body
        .lines()
        .find(|l| l.contains("token="))
        .expect("a link with a token");
    line.split("token=").nth(1).unwrap().trim().to_owned()
}

/// The mailed verification token marks the email verified, works once and
/// expires.
pub async fn email_verification_is_single_use_and_expires<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    let me = w.register(Role::Buyer, &email).await;
    let mail = w.mails("verify_email").await.pop().unwrap();
    assert_eq!(mail.recipient, email);
    let token = token_from(&mail);
    assert!(!w.market.profile(&me).await.unwrap().email_verified);
    w.market.verify_email(&token).await.unwrap();
    assert!(w.market.profile(&me).await.unwrap().email_verified);
    assert_err!(w.market.verify_email(&token).await, Error::InvalidToken);
    assert_err!(
        w.market.resend_verification(&me).await,
        Error::Conflict { .. }
    );

    let email2 = w.email("buyer");
    let other = w.register(Role::Buyer, &email2).await;
    let token2 = token_from(
        w.mails("verify_email")
            .await
            .iter()
            .find(|m| m.recipient == email2)
            .unwrap(),
    );
    w.clock.advance(Duration::hours(49));
    assert_err!(w.market.verify_email(&token2).await, Error::InvalidToken);
    assert!(!w.market.profile(&other).await.unwrap().email_verified);
    // A fresh token can be asked for.
    w.market.resend_verification(&other).await.unwrap();
    assert_eq!(
        w.mails("verify_email")
            .await
            .iter()
            .filter(|m| m.recipient == email2)
            .count(),
        2
    );
}

/// A reset token sets a new password once, and revokes every login.
pub async fn password_reset_replaces_password_and_revokes_logins<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let email = w.email("buyer");
    w.register(Role::Buyer, &email).await;
    let session = w.market.login(&email, "correct horse", None).await.unwrap();
    // Unknown emails are accepted silently and send nothing.
    w.market
        .request_password_reset("nobody@example.com")
        .await
        .unwrap();
    w.market
        .request_password_reset("not an email")
        .await
        .unwrap();
    assert!(w.mails("password_reset").await.is_empty());
    w.market.request_password_reset(&email).await.unwrap();
    let token = token_from(&w.mails("password_reset").await[0]);
    assert_err!(
        w.market.reset_password(&token, "short").await,
        Error::Validation(_)
    );
    w.market
        .reset_password(&token, "battery staple")
        .await
        .unwrap();
    assert_err!(
        w.market.reset_password(&token, "another one").await,
        Error::InvalidToken
    );
    assert_err!(
        w.market.login(&email, "correct horse", None).await,
        Error::InvalidCredentials
    );
    w.market
        .login(&email, "battery staple", None)
        .await
        .unwrap();
    assert_err!(
        w.market.refresh(&session.refresh_token).await,
        Error::Unauthenticated
    );
    // Reset tokens expire after an hour.
    w.market.request_password_reset(&email).await.unwrap();
    let mails = w.mails("password_reset").await;
    let late = token_from(mails.iter().find(|m| token_from(m) != token).unwrap());
    w.clock.advance(Duration::minutes(61));
    assert_err!(
        w.market.reset_password(&late, "third password").await,
        Error::InvalidToken
    );
}

/// A user reads and changes their own name and phone; absent fields stay.
pub async fn profile_updates<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let me = w.buyer().await;
    let update = |name: Option<Option<&str>>, phone: Option<Option<&str>>| ProfileUpdate {
        name: name.map(|n| n.map(str::to_owned)),
        phone: phone.map(|p| p.map(str::to_owned)),
    };
    let u = w
        .market
        .update_profile(
            &me,
            update(Some(Some("  Ada  ")), Some(Some("+1 555 0100"))),
        )
        .await
        .unwrap();
    assert_eq!(
        (u.name.as_deref(), u.phone.as_deref()),
        (Some("Ada"), Some("+1 555 0100"))
    );
    let u = w
        .market
        .update_profile(&me, update(None, Some(None)))
        .await
        .unwrap();
    assert_eq!((u.name.as_deref(), u.phone), (Some("Ada"), None));
    assert_err!(
        w.market
            .update_profile(&me, update(Some(Some(&"x".repeat(101))), None))
            .await,
        Error::Validation(_)
    );
    assert_err!(
        w.market
            .update_profile(&me, update(None, Some(Some("call me"))))
            .await,
        Error::Validation(_)
    );
    assert_eq!(
        w.market.profile(&me).await.unwrap().name.as_deref(),
        Some("Ada")
    );
}

/// A deactivated user cannot sign in, refresh, or use a live access token.
pub async fn deactivated_users_are_locked_out<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let email = w.email("buyer");
    let me = w.register(Role::Buyer, &email).await;
    let t = w.market.login(&email, "correct horse", None).await.unwrap();
    assert_err!(
        w.market.set_user_active(&me, me.user_id, false).await,
        Error::Forbidden(_)
    );
    w.market
        .set_user_active(&admin, me.user_id, false)
        .await
        .unwrap();
    assert_err!(
        w.market.authenticate(&t.access_token).await,
        Error::Unauthenticated
    );
    assert_err!(
        w.market.refresh(&t.refresh_token).await,
        Error::Unauthenticated
    );
    assert_err!(
        w.market.login(&email, "correct horse", None).await,
        Error::InvalidCredentials
    );
    assert_err!(
        w.market.set_user_active(&admin, admin.user_id, false).await,
        Error::Conflict { .. }
    );
    w.market
        .set_user_active(&admin, me.user_id, true)
        .await
        .unwrap();
    w.market.login(&email, "correct horse", None).await.unwrap();
    let nobody = marketplace_core::UserId(uuid::Uuid::new_v4());
    assert_err!(
        w.market.set_user_active(&admin, nobody, false).await,
        Error::NotFound(_)
    );
}
