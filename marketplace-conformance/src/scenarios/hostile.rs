//! What a hostile client sends: text no database can hold, and races on counted
//! limits.

use marketplace_core::{
    AddressInput, CatalogQuery, Error, NewAccount, ProductUpdate, ProfileUpdate, Role, Storage,
};

use crate::{World, address_input, new_product};

/// Whether an error is the caller's fault (a 4xx), not the store's or ours.
fn refused_cleanly(e: &Error) -> bool {
    !matches!(e, Error::Unavailable(_) | Error::Internal(_))
}

/// Asserts that `result` is refused as bad input, not as a failure of the store.
#[track_caller]
fn assert_clean_refusal<T: std::fmt::Debug>(what: &str, result: marketplace_core::Result<T>) {
    match result {
        Err(e) if refused_cleanly(&e) => {}
        Err(e) => panic!("{what}: a store failure instead of a refusal: {e:?}"),
        Ok(v) => panic!("{what}: accepted: {v:?}"),
    }
}

/// Text with a NUL byte (which PostgreSQL cannot store in text) or other control
/// characters is refused as invalid input wherever a client can send text, and
/// nothing is written.
pub async fn client_text_with_nul_bytes_is_refused_everywhere<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let seller = w.seller().await;
    let buyer = w.buyer().await;
    let admin = w.admin().await;
    let product = w.product(&seller, "Lamp", 1000, 5).await;
    let outbox_before = w.outbox().await.len();

    for nul in ["\0", "tea\0", "a\0b", "\u{1}x"] {
        let email = format!("a{nul}b@example.com");
        assert_clean_refusal(
            "register email",
            w.market
                .register(NewAccount {
                    email: email.clone(),
                    password: "correct horse".into(),
                    role: Role::Buyer,
                    name: None,
                    store_name: None,
                })
                .await,
        );
        assert_clean_refusal(
            "register name",
            w.market
                .register(NewAccount {
                    email: w.email("nul"),
                    password: "correct horse".into(),
                    role: Role::Seller,
                    name: Some(nul.into()),
                    store_name: Some(format!("Shop {nul}")),
                })
                .await,
        );
        match w.market.login(&email, "correct horse", None).await {
            Err(Error::InvalidCredentials) => {}
            other => panic!("login with {email:?}: {other:?}"),
        }
        // Says nothing either way, and stores nothing.
        w.market.request_password_reset(&email).await.unwrap();
        assert_clean_refusal("verify token", w.market.verify_email(nul).await);
        assert_clean_refusal(
            "reset token",
            w.market.reset_password(nul, "a new passphrase").await,
        );
        assert_clean_refusal("refresh", w.market.refresh(nul).await);
        assert_clean_refusal("access token", w.market.authenticate(nul).await);
        assert_clean_refusal(
            "search",
            w.market
                .browse(CatalogQuery {
                    q: Some(nul.into()),
                    ..CatalogQuery::default()
                })
                .await,
        );
        assert_clean_refusal(
            "cursor",
            w.market
                .browse(CatalogQuery {
                    cursor: Some(nul.into()),
                    ..CatalogQuery::default()
                })
                .await,
        );
        assert_clean_refusal(
            "profile",
            w.market
                .update_profile(
                    &buyer,
                    ProfileUpdate {
                        name: Some(Some(nul.into())),
                        phone: Some(Some(format!("555{nul}"))),
                    },
                )
                .await,
        );
        assert_clean_refusal(
            "address",
            w.market
                .add_address(
                    &buyer,
                    AddressInput {
                        city: Some(format!("Spring{nul}field")),
                        ..address_input("Ada")
                    },
                )
                .await,
        );
        assert_clean_refusal(
            "category",
            w.market.create_category(&admin, &format!("Tea{nul}")).await,
        );
        let mut input = new_product("Lamp", 1000, 1);
        input.title = format!("Lamp{nul}");
        assert_clean_refusal("product", w.market.create_product(&seller, input).await);
        assert_clean_refusal(
            "product update",
            w.market
                .update_product(
                    &seller,
                    product.id,
                    ProductUpdate {
                        description: Some(format!("bright{nul}")),
                        ..ProductUpdate::default()
                    },
                )
                .await,
        );
    }
    // Nothing was written by any of it.
    assert_eq!(w.outbox().await.len(), outbox_before);
    assert!(w.market.addresses(&buyer).await.unwrap().is_empty());
    assert!(w.market.categories().await.unwrap().is_empty());
    let profile = w.market.profile(&buyer).await.unwrap();
    assert!(profile.phone.is_none());
    let after = w.market.product(product.id).await.unwrap();
    assert_eq!(after.title, "Lamp");
    assert_eq!(after.description, product.description);
}
