//! The operator's commands: what a bootstrap tool (a command line with the
//! store's settings) does by email, and with [`Principal::operator`], under the
//! same rules an admin's requests keep.

use marketplace_core::{Error, Principal, Role, SellerStatus, Storage};

use crate::{World, assert_err};

/// The operator verifies and rejects sellers by email (each decision mailed,
/// as an admin's), deactivates and reactivates any account by email, and
/// holds an admin's authority without an account of its own; unknown,
/// malformed or wrong-role emails are refused and change nothing.
pub async fn operator_commands_keep_the_admin_rules<S: Storage>(storage: S) {
    let w = World::new(storage).await;
    let operator = Principal::operator();
    let (email_a, email_b) = (w.email("seller"), w.email("seller"));
    let a = w.register(Role::Seller, &email_a).await;
    let b = w.register(Role::Seller, &email_b).await;
    let buyer_email = w.email("buyer");
    let buyer = w.register(Role::Buyer, &buyer_email).await;

    let rejected = w
        .market
        .decide_seller_by_email(&email_a.to_uppercase(), false)
        .await
        .unwrap();
    assert_eq!(
        (rejected.id, rejected.status),
        (a.user_id, SellerStatus::Rejected)
    );
    let verified = w
        .market
        .decide_seller_by_email(&email_b, true)
        .await
        .unwrap();
    assert_eq!(
        (verified.id, verified.status),
        (b.user_id, SellerStatus::Verified)
    );
    let mails = w.mails("seller_decision").await;
    assert_eq!(mails.len(), 2, "each decision is mailed");
    let listed = w
        .market
        .list_sellers(&operator, Some(SellerStatus::Rejected), None, None)
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        [a.user_id]
    );
    // A rejected seller verified later sells.
    w.market.verify_seller_by_email(&email_a).await.unwrap();
    let stored = w.market.storage().user(a.user_id).await.unwrap().unwrap();
    assert!(stored.is_selling());

    assert_err!(
        w.market.decide_seller_by_email(&buyer_email, true).await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market
            .decide_seller_by_email("nobody@example.com", true)
            .await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market.decide_seller_by_email("not an email", true).await,
        Error::Validation(_)
    );
    assert_eq!(
        w.mails("seller_decision").await.len(),
        3,
        "refusals mail nothing"
    );

    let off = w
        .market
        .set_user_active_by_email(&buyer_email, false)
        .await
        .unwrap();
    assert_eq!((off.id, off.active), (buyer.user_id, false));
    assert_err!(
        w.market.login(&buyer_email, "correct horse", None).await,
        Error::InvalidCredentials
    );
    let on = w
        .market
        .set_user_active_by_email(&buyer_email, true)
        .await
        .unwrap();
    assert!(on.active);
    w.market
        .login(&buyer_email, "correct horse", None)
        .await
        .unwrap();
    // The operator is no account: even an admin can be deactivated by it.
    let admin = w.admin().await;
    let admin_email = w
        .market
        .storage()
        .user(admin.user_id)
        .await
        .unwrap()
        .unwrap()
        .email;
    w.market
        .set_user_active_by_email(admin_email.as_str(), false)
        .await
        .unwrap();
    assert_err!(
        w.market
            .set_user_active_by_email("nobody@example.com", false)
            .await,
        Error::NotFound(_)
    );
    assert_err!(
        w.market.set_user_active_by_email("@", false).await,
        Error::Validation(_)
    );

    // An admin's authority for the rest (categories, products), and no account.
    let tea = w.market.create_category(&operator, "Tea").await.unwrap();
    let seller = w.seller().await;
    let p = w.product(&seller, "Sencha", 900, 3).await;
    w.market
        .set_product_blocked(&operator, p.id, true)
        .await
        .unwrap();
    assert_err!(w.market.product(p.id).await, Error::NotFound(_));
    w.market.delete_category(&operator, tea.id).await.unwrap();
    assert_err!(w.market.profile(&operator).await, Error::Unauthenticated);
}
