//! Sessions: an access token lives only as long as the login it was issued to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marketplace_core::{Error, Role, Storage, TokenPair};
use serde_json::Value;

use crate::{TEST_SECRET, World, assert_err};

/// The claims of an access token (its signature is not checked here).
fn claims(token: &TokenPair) -> Value {
    let payload = token.access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `claims` signed as the marketplace signs them: a valid signature over
/// whatever the claims say.
fn signed(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET),
    )
    .unwrap()
}

fn reset_token(mail: &marketplace_core::OutboxMessage) -> String {
    let line = mail
        .text_body
        .lines()
        .find(|l| l.contains("token="))
        .unwrap();
    line.split("token=").nth(1).unwrap().trim().to_owned()
}

/// Ending a login ends its access tokens at once, not when they expire: logout
/// ends that login's (another login of the user keeps working); a password
/// reset and an admin's deactivation end every login of the user (and
/// reactivating the account does not bring them back); presenting a spent
/// refresh token again (theft) ends the whole family, the access tokens of the
/// thief's and of the victim's rotation alike. A validly signed token that names
/// no login, or another user's login, is refused.
pub async fn ending_a_login_ends_its_access_tokens<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let admin = w.admin().await;
    let email = w.email("buyer");
    let me = w.register(Role::Buyer, &email).await;
    let login = || w.market.login(&email, "correct horse", None);
    let works = |t: &TokenPair| {
        let t = t.access_token.clone();
        let market = w.market.clone();
        async move { market.authenticate(&t).await }
    };

    // Logout ends that login, and only that one.
    let (phone, laptop) = (login().await.unwrap(), login().await.unwrap());
    assert_eq!(works(&phone).await.unwrap(), me);
    assert_eq!(works(&laptop).await.unwrap(), me);
    w.market.logout(&phone.refresh_token).await.unwrap();
    assert_err!(works(&phone).await, Error::Unauthenticated);
    assert_eq!(
        works(&laptop).await.unwrap(),
        me,
        "another login of the same user is untouched by a logout"
    );
    // A refreshed pair belongs to the same login: its logout ends both.
    let refreshed = w.market.refresh(&laptop.refresh_token).await.unwrap();
    assert_eq!(works(&refreshed).await.unwrap(), me);
    assert_eq!(works(&laptop).await.unwrap(), me);
    w.market.logout(&refreshed.refresh_token).await.unwrap();
    assert_err!(works(&refreshed).await, Error::Unauthenticated);
    assert_err!(works(&laptop).await, Error::Unauthenticated);

    // A password reset ends every login.
    let (a, b) = (login().await.unwrap(), login().await.unwrap());
    w.market.request_password_reset(&email).await.unwrap();
    let token = reset_token(&w.mails("password_reset").await[0]);
    w.market
        .reset_password(&token, "new password")
        .await
        .unwrap();
    assert_err!(works(&a).await, Error::Unauthenticated);
    assert_err!(works(&b).await, Error::Unauthenticated);
    let after_reset = w.market.login(&email, "new password", None).await.unwrap();
    assert_eq!(works(&after_reset).await.unwrap(), me);

    // Deactivation ends every login; reactivation does not revive them.
    let other = w.market.login(&email, "new password", None).await.unwrap();
    w.market
        .set_user_active(&admin, me.user_id, false)
        .await
        .unwrap();
    assert_err!(works(&after_reset).await, Error::Unauthenticated);
    assert_err!(works(&other).await, Error::Unauthenticated);
    w.market
        .set_user_active(&admin, me.user_id, true)
        .await
        .unwrap();
    assert_err!(works(&after_reset).await, Error::Unauthenticated);
    assert_err!(works(&other).await, Error::Unauthenticated);

    // Reuse of a spent refresh token ends the family: the thief's access token
    // and the victim's both.
    let victim = w.market.login(&email, "new password", None).await.unwrap();
    let thief = w.market.refresh(&victim.refresh_token).await.unwrap();
    assert_eq!(works(&thief).await.unwrap(), me);
    assert_err!(
        w.market.refresh(&victim.refresh_token).await,
        Error::Unauthenticated
    );
    assert_err!(works(&thief).await, Error::Unauthenticated);
    assert_err!(works(&victim).await, Error::Unauthenticated);

    // Forged sessions: validly signed, but naming no login or another user's.
    let mine = w.market.login(&email, "new password", None).await.unwrap();
    assert_eq!(works(&mine).await.unwrap(), me);
    let mut no_login = claims(&mine);
    let removed = no_login.as_object_mut().unwrap().remove("fam");
    assert!(removed.is_some(), "an access token names its login");
    assert_err!(
        w.market.authenticate(&signed(&no_login)).await,
        Error::Unauthenticated
    );
    let stranger_email = w.email("buyer");
    w.register(Role::Buyer, &stranger_email).await;
    let stranger = w
        .market
        .login(&stranger_email, "correct horse", None)
        .await
        .unwrap();
    let mut borrowed = claims(&mine);
    borrowed["fam"] = claims(&stranger)["fam"].clone();
    assert_err!(
        w.market.authenticate(&signed(&borrowed)).await,
        Error::Unauthenticated
    );
    // The untouched claims, re-signed, still work: the refusals above are the
    // claims', not the signing's.
    assert_eq!(
        w.market
            .authenticate(&signed(&claims(&mine)))
            .await
            .unwrap(),
        me
    );
}
