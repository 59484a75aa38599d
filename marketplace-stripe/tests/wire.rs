//! What goes over the wire and how answers are read, against a scripted fake
//! API on a loopback port: no Stripe and no localstripe needed. Covers what
//! localstripe cannot show (it ignores `Idempotency-Key`, refuses
//! `receipt_email`, never answers 409 or 5xx on purpose).

mod common;

use std::time::Duration;

use common::{Reply, fake_stripe};
use marketplace_core::money::{Currency, Money};
use marketplace_core::payment::{
    CaptureMode, PaymentError, PaymentIntent, PaymentProvider, ProviderState,
};
use marketplace_core::{CheckoutId, PaymentId};
use marketplace_stripe::{StripeConfig, StripePayments};
use serde_json::json;
use uuid::Uuid;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").expect("EUR"))
}

fn provider(base: &str) -> StripePayments {
    StripePayments::new(
        StripeConfig::new("sk_test_wire")
            .with_api_base(base)
            .with_timeout(Duration::from_millis(800)),
    )
    .expect("a provider")
}

fn pi(status: &str, extra: serde_json::Value) -> Reply {
    let mut v = json!({
        "id": "pi_wire1", "object": "payment_intent", "status": status,
        "amount": 1999, "currency": "eur", "client_secret": "pi_wire1_secret_abc",
        "amount_capturable": 0, "amount_received": 0,
    });
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Reply::Json(200, v.to_string())
}

fn refused(status: u16, kind: &str, code: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        json!({"error": {"type": kind, "code": code, "message": message}}).to_string(),
    )
}

fn intent(capture: CaptureMode) -> PaymentIntent {
    PaymentIntent {
        payment_id: PaymentId(Uuid::new_v4()),
        checkout_id: CheckoutId(Uuid::new_v4()),
        amount: eur(1999),
        buyer_email: "buyer@example.com".into(),
        capture,
        idempotency_key: format!("pay-{}", Uuid::new_v4()),
    }
}

#[tokio::test]
async fn create_sends_stripes_parameters_and_the_key() {
    let (base, mut seen) = fake_stripe(vec![pi("requires_payment_method", json!({}))]).await;
    let i = intent(CaptureMode::Manual);
    let p = provider(&base).create(&i).await.expect("created");
    assert_eq!(p.reference, "pi_wire1");
    assert_eq!(p.state, ProviderState::AwaitingPayment);
    assert_eq!(p.client_secret.as_deref(), Some("pi_wire1_secret_abc"));
    assert_eq!(p.instructions, None);

    let r = seen.recv().await.expect("a request");
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/payment_intents")
    );
    assert_eq!(r.header("authorization"), Some("Bearer sk_test_wire"));
    assert_eq!(
        r.header("idempotency-key"),
        Some(i.idempotency_key.as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("amount").as_deref(), Some("1999"));
    assert_eq!(r.field("currency").as_deref(), Some("eur"));
    assert_eq!(r.field("capture_method").as_deref(), Some("manual"));
    assert_eq!(
        r.field("receipt_email").as_deref(),
        Some("buyer@example.com")
    );
    assert_eq!(
        r.field("metadata[checkout_id]"),
        Some(i.checkout_id.to_string())
    );
    assert_eq!(
        r.field("metadata[payment_id]"),
        Some(i.payment_id.to_string())
    );
}

#[tokio::test]
async fn immediate_capture_is_automatic_and_receipts_can_be_off() {
    let (base, mut seen) = fake_stripe(vec![pi("requires_payment_method", json!({}))]).await;
    let p = StripePayments::new(
        StripeConfig::new("sk_test_wire")
            .with_api_base(&base)
            .with_receipt_email(false),
    )
    .expect("a provider");
    p.create(&intent(CaptureMode::Immediate))
        .await
        .expect("created");
    let r = seen.recv().await.expect("a request");
    assert_eq!(r.field("capture_method").as_deref(), Some("automatic"));
    assert_eq!(r.field("receipt_email"), None);
}

#[tokio::test]
async fn states_follow_the_intents_status() {
    let (base, mut seen) = fake_stripe(vec![
        pi("requires_capture", json!({"amount_capturable": 1999})),
        pi("succeeded", json!({"amount_received": 1500})),
        pi("requires_action", json!({})),
        pi("canceled", json!({})),
    ])
    .await;
    let p = provider(&base);
    assert_eq!(
        p.state("pi_wire1").await,
        Ok(ProviderState::Authorized(eur(1999)))
    );
    let r = seen.recv().await.expect("a request");
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("GET", "/v1/payment_intents/pi_wire1")
    );
    assert_eq!(
        p.state("pi_wire1").await,
        Ok(ProviderState::Captured(eur(1500)))
    );
    assert_eq!(
        p.state("pi_wire1").await,
        Ok(ProviderState::AwaitingPayment)
    );
    assert_eq!(p.state("pi_wire1").await, Ok(ProviderState::Voided));
}

#[tokio::test]
async fn capture_sends_the_amount_and_reads_back_an_earlier_capture() {
    let (base, mut seen) = fake_stripe(vec![
        pi("succeeded", json!({"amount_received": 1500})),
        // A repeat under another key: Stripe refuses, the intent says succeeded.
        refused(
            400,
            "invalid_request_error",
            "payment_intent_unexpected_state",
            "This PaymentIntent could not be captured because it has a status of succeeded.",
        ),
        pi("succeeded", json!({"amount_received": 1500})),
        // More than authorized: refused, and the intent is still authorized.
        refused(
            400,
            "invalid_request_error",
            "amount_too_large",
            "Too much.",
        ),
        pi("requires_capture", json!({"amount_capturable": 1999})),
    ])
    .await;
    let p = provider(&base);
    assert_eq!(
        p.capture("pi_wire1", eur(1500), "cap-1").await,
        Ok(eur(1500))
    );
    let r = seen.recv().await.expect("a request");
    assert_eq!(r.path, "/v1/payment_intents/pi_wire1/capture");
    assert_eq!(r.header("idempotency-key"), Some("cap-1"));
    assert_eq!(r.field("amount_to_capture").as_deref(), Some("1500"));

    assert_eq!(
        p.capture("pi_wire1", eur(1500), "cap-2").await,
        Ok(eur(1500))
    );
    assert_eq!(
        p.capture("pi_wire1", eur(5000), "cap-3").await,
        Err(PaymentError::Declined("Too much.".into()))
    );
}

#[tokio::test]
async fn void_reads_back_cancelled_and_captured_intents() {
    let unexpected = || {
        refused(
            400,
            "invalid_request_error",
            "payment_intent_unexpected_state",
            "You cannot cancel this PaymentIntent because it has a status of ...",
        )
    };
    let (base, mut seen) = fake_stripe(vec![
        pi("canceled", json!({})),
        unexpected(),
        pi("canceled", json!({})),
        unexpected(),
        pi("succeeded", json!({"amount_received": 1999})),
    ])
    .await;
    let p = provider(&base);
    assert_eq!(
        p.void("pi_wire1", "void-1").await,
        Ok(ProviderState::Voided)
    );
    let r = seen.recv().await.expect("a request");
    assert_eq!(r.path, "/v1/payment_intents/pi_wire1/cancel");
    assert_eq!(r.header("idempotency-key"), Some("void-1"));
    assert_eq!(
        p.void("pi_wire1", "void-2").await,
        Ok(ProviderState::Voided)
    );
    assert_eq!(
        p.void("pi_wire1", "void-3").await,
        Ok(ProviderState::Captured(eur(1999)))
    );
}

#[tokio::test]
async fn refund_finds_an_earlier_refund_by_its_key() {
    let (base, mut seen) = fake_stripe(vec![
        // First call: no refund with this key yet.
        Reply::Json(
            200,
            json!({"object": "list", "has_more": false, "data": [
                {"id": "re_other", "object": "refund", "metadata": {"idempotency_key": "ref-0"}}
            ]})
            .to_string(),
        ),
        Reply::Json(
            200,
            json!({"id": "re_new", "object": "refund", "amount": 500}).to_string(),
        ),
        // The repeat: found on the second page, nothing posted.
        Reply::Json(
            200,
            json!({"object": "list", "has_more": true, "data": [
                {"id": "re_other", "object": "refund", "metadata": {}}
            ]})
            .to_string(),
        ),
        Reply::Json(
            200,
            json!({"object": "list", "has_more": false, "data": [
                {"id": "re_new", "object": "refund", "metadata": {"idempotency_key": "ref-1"}}
            ]})
            .to_string(),
        ),
    ])
    .await;
    let p = provider(&base);
    assert_eq!(
        p.refund("pi_wire1", eur(500), "ref-1").await,
        Ok("re_new".into())
    );
    let list = seen.recv().await.expect("a request");
    assert_eq!(list.method, "GET");
    assert!(
        list.path.starts_with("/v1/refunds?") && list.path.contains("payment_intent=pi_wire1"),
        "{}",
        list.path
    );
    let post = seen.recv().await.expect("a request");
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/v1/refunds")
    );
    assert_eq!(post.header("idempotency-key"), Some("ref-1"));
    assert_eq!(post.field("payment_intent").as_deref(), Some("pi_wire1"));
    assert_eq!(post.field("amount").as_deref(), Some("500"));
    assert_eq!(
        post.field("metadata[idempotency_key]").as_deref(),
        Some("ref-1")
    );

    assert_eq!(
        p.refund("pi_wire1", eur(500), "ref-1").await,
        Ok("re_new".into())
    );
    let _first_page = seen.recv().await.expect("a request");
    let second = seen.recv().await.expect("a request");
    assert!(
        second.path.contains("starting_after=re_other"),
        "{}",
        second.path
    );
    assert!(seen.try_recv().is_err(), "nothing was posted");
}

#[tokio::test]
async fn failures_are_declined_or_unknown() {
    let (base, _seen) = fake_stripe(vec![
        refused(
            402,
            "card_error",
            "card_declined",
            "Your card was declined.",
        ),
        refused(
            404,
            "invalid_request_error",
            "resource_missing",
            "No such payment_intent: 'pi_x'",
        ),
        Reply::Json(
            500,
            r#"{"error":{"type":"api_error","message":"boom"}}"#.into(),
        ),
        refused(409, "idempotency_error", "idempotency_key_in_use", "in use"),
        refused(429, "invalid_request_error", "rate_limit", "slow down"),
        Reply::Json(200, "<html>not json</html>".into()),
        Reply::Hang,
    ])
    .await;
    let p = provider(&base);
    let i = intent(CaptureMode::Manual);
    assert_eq!(
        p.create(&i).await,
        Err(PaymentError::Declined("Your card was declined.".into()))
    );
    assert_eq!(
        p.state("pi_x").await,
        Err(PaymentError::Declined(
            "No such payment_intent: 'pi_x'".into()
        ))
    );
    for _ in 0..5 {
        let outcome = p.create(&i).await;
        assert!(
            matches!(outcome, Err(PaymentError::Unknown(_))),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn references_that_are_not_intent_ids_are_refused_without_a_call() {
    let (base, mut seen) = fake_stripe(Vec::new()).await;
    let p = provider(&base);
    assert!(matches!(
        p.capture("../v1/refunds", eur(1), "k").await,
        Err(PaymentError::Declined(_))
    ));
    assert!(matches!(
        p.refund("manual-123", eur(1), "k").await,
        Err(PaymentError::Declined(_))
    ));
    assert!(seen.try_recv().is_err());
}
