//! Stripe's webhook signatures (`Stripe-Signature: t=...,v1=...`) and the events
//! they carry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use marketplace_core::payment::{PaymentEvent, PaymentEventKind, WebhookError};
use serde_json::Value;
use sha2::Sha256;

use crate::intent::Intent;

/// The header carrying a Stripe webhook's signature.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

type HmacSha256 = Hmac<Sha256>;

/// The `Stripe-Signature` value Stripe would send for `body` signed with
/// `secret` at `timestamp` (Unix seconds): `t={timestamp},v1={hex hmac}`. For
/// tests that deliver webhooks of their own.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = signed_payload_mac(secret, timestamp, body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// HMAC-SHA256 over `"{t}.{body}"`, keyed with the whole secret (`whsec_`
/// included, as Stripe does).
fn signed_payload_mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a `Stripe-Signature` header against `body`: some `v1` signature
/// must be the HMAC of `"{t}.{body}"` (several are sent while a secret is
/// being rolled; `v0` and unknown schemes are ignored), compared in constant
/// time, and `t` must lie within `tolerance` of `now` in either direction (an
/// older one is a replay; a later one was not signed by a clock we trust).
pub(crate) fn verify_signature(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), WebhookError> {
    let header =
        header.ok_or_else(|| WebhookError::Signature("no Stripe-Signature header".into()))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" if timestamp.is_none() => {
                timestamp = Some(value.trim().parse::<i64>().map_err(|_| {
                    WebhookError::Signature("the timestamp is not a number".into())
                })?);
            }
            "v1" => signatures.push(value.trim()),
            _ => {}
        }
    }
    let timestamp = timestamp
        .ok_or_else(|| WebhookError::Signature("the signature has no timestamp".into()))?;
    if signatures.is_empty() {
        return Err(WebhookError::Signature(
            "the signature has no v1 scheme".into(),
        ));
    }
    let matches = signatures.iter().filter_map(|s| decode_hex(s)).any(|s| {
        signed_payload_mac(secret, timestamp, body)
            .verify_slice(&s)
            .is_ok()
    });
    if !matches {
        return Err(WebhookError::Signature(
            "no signature matches the body".into(),
        ));
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    let age = now.timestamp().saturating_sub(timestamp);
    if age > tolerance {
        return Err(WebhookError::Signature(format!(
            "signed {age} s ago, more than the {tolerance} s tolerated (a replay?)"
        )));
    }
    if age < -tolerance {
        return Err(WebhookError::Signature(format!(
            "signed {} s in the future, more than the {tolerance} s tolerated",
            -age
        )));
    }
    Ok(())
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads a (verified) event: `id`, `type`, `data.object`.
pub(crate) fn parse_event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| WebhookError::Malformed(format!("the event has no {k}")))
    };
    let id = text("id")?.to_owned();
    let kind = text("type")?;
    let object = v
        .get("data")
        .and_then(|d| d.get("object"))
        .filter(|o| o.is_object())
        .ok_or_else(|| WebhookError::Malformed("the event has no data.object".into()))?;
    if object.get("object").and_then(Value::as_str) != Some("payment_intent") {
        return Ok(PaymentEvent {
            id,
            reference: None,
            kind: PaymentEventKind::Other,
        });
    }
    let intent = Intent::parse(object).map_err(WebhookError::Malformed)?;
    let kind = match kind {
        "payment_intent.amount_capturable_updated" => {
            PaymentEventKind::Authorized(intent.authorized())
        }
        "payment_intent.succeeded" => PaymentEventKind::Captured(intent.received_or(intent.amount)),
        "payment_intent.payment_failed" => PaymentEventKind::Failed(
            intent
                .last_error
                .clone()
                .unwrap_or_else(|| "payment failed".into()),
        ),
        "payment_intent.canceled" => PaymentEventKind::Voided,
        _ => PaymentEventKind::Other,
    };
    Ok(PaymentEvent {
        id,
        reference: Some(intent.id),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_core::money::{Currency, Money};
    use serde_json::json;

    const SECRET: &str = "whsec_test_secret";
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).expect("a time")
    }

    fn check(header: &str, body: &[u8], now: i64) -> Result<(), WebhookError> {
        verify_signature(SECRET, Some(header), body, at(now), TOLERANCE)
    }

    #[test]
    fn matches_stripes_scheme() {
        // Computed independently: Python's hmac.new(secret, b"1700000000.{body}", sha256).
        let body = br#"{"id":"evt_1"}"#;
        assert_eq!(
            signature_header(SECRET, 1_700_000_000, body),
            "t=1700000000,v1=248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
        );
        assert_eq!(
            check(
                &signature_header(SECRET, 1_700_000_000, body),
                body,
                1_700_000_000
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_a_tampered_body_or_another_secret() {
        let body = br#"{"id":"evt_1","amount":100}"#;
        let header = signature_header(SECRET, 1_700_000_000, body);
        let tampered = br#"{"id":"evt_1","amount":999}"#;
        assert!(matches!(
            check(&header, tampered, 1_700_000_000),
            Err(WebhookError::Signature(_))
        ));
        let other = signature_header("whsec_other", 1_700_000_000, body);
        assert!(matches!(
            check(&other, body, 1_700_000_000),
            Err(WebhookError::Signature(_))
        ));
        // The timestamp is signed too: changing it breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000100");
        assert!(matches!(
            check(&moved, body, 1_700_000_100),
            Err(WebhookError::Signature(_))
        ));
    }

    #[test]
    fn refuses_old_and_future_timestamps() {
        let body = b"{}";
        let header = signature_header(SECRET, 1_700_000_000, body);
        assert_eq!(check(&header, body, 1_700_000_300), Ok(()));
        assert_eq!(check(&header, body, 1_699_999_700), Ok(()));
        let old = check(&header, body, 1_700_000_301);
        assert!(
            matches!(&old, Err(WebhookError::Signature(m)) if m.contains("ago")),
            "{old:?}"
        );
        let future = check(&header, body, 1_699_999_699);
        assert!(
            matches!(&future, Err(WebhookError::Signature(m)) if m.contains("future")),
            "{future:?}"
        );
    }

    #[test]
    fn accepts_any_matching_v1_and_ignores_other_schemes() {
        let body = b"{}";
        let good = signature_header(SECRET, 1_700_000_000, body);
        let v1 = good.split_once(",v1=").expect("v1").1;
        let header = format!("t=1700000000, v0=abcd, v1={}, v1={v1}", "00".repeat(32));
        assert_eq!(check(&header, body, 1_700_000_000), Ok(()));
    }

    #[test]
    fn refuses_malformed_headers() {
        let body = b"{}";
        let good = signature_header(SECRET, 1_700_000_000, body);
        let v1 = good.split_once(",v1=").expect("v1").1.to_owned();
        for header in [
            String::new(),
            "garbage".into(),
            format!("v1={v1}"),
            "t=1700000000".into(),
            format!("t=soon,v1={v1}"),
            "t=1700000000,v1=zz".into(),
            format!("t=1700000000,v0={v1}"),
            format!("t=1700000000,v1={}", &v1[..10]),
        ] {
            assert!(
                matches!(
                    check(&header, body, 1_700_000_000),
                    Err(WebhookError::Signature(_))
                ),
                "{header}"
            );
        }
        assert!(matches!(
            verify_signature(SECRET, None, body, at(0), TOLERANCE),
            Err(WebhookError::Signature(_))
        ));
    }

    fn event(kind: &str, object: Value) -> Vec<u8> {
        json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": object}})
            .to_string()
            .into_bytes()
    }

    fn pi(status: &str) -> Value {
        json!({
            "id": "pi_123", "object": "payment_intent", "status": status,
            "amount": 1000, "amount_capturable": 0, "amount_received": 0,
            "currency": "usd",
        })
    }

    #[test]
    fn reads_payment_intent_events() {
        let usd = |m| Money::new(m, Currency::USD);
        let mut authorized = pi("requires_capture");
        authorized["amount_capturable"] = json!(1000);
        let e = parse_event(&event(
            "payment_intent.amount_capturable_updated",
            authorized,
        ))
        .expect("an event");
        assert_eq!(e.id, "evt_1");
        assert_eq!(e.reference.as_deref(), Some("pi_123"));
        assert_eq!(e.kind, PaymentEventKind::Authorized(usd(1000)));

        let mut captured = pi("succeeded");
        captured["amount_received"] = json!(700);
        let e = parse_event(&event("payment_intent.succeeded", captured)).expect("an event");
        assert_eq!(e.kind, PaymentEventKind::Captured(usd(700)));

        let mut failed = pi("requires_payment_method");
        failed["last_payment_error"] = json!({"message": "Your card has insufficient funds."});
        let e = parse_event(&event("payment_intent.payment_failed", failed)).expect("an event");
        assert_eq!(
            e.kind,
            PaymentEventKind::Failed("Your card has insufficient funds.".into())
        );
        let e = parse_event(&event(
            "payment_intent.payment_failed",
            pi("requires_payment_method"),
        ))
        .expect("an event");
        assert_eq!(e.kind, PaymentEventKind::Failed("payment failed".into()));

        let e = parse_event(&event("payment_intent.canceled", pi("canceled"))).expect("an event");
        assert_eq!(e.kind, PaymentEventKind::Voided);

        let e = parse_event(&event(
            "payment_intent.created",
            pi("requires_payment_method"),
        ))
        .expect("an event");
        assert_eq!(e.kind, PaymentEventKind::Other);
        assert_eq!(e.reference.as_deref(), Some("pi_123"));
    }

    #[test]
    fn other_objects_are_other_without_reference() {
        let e = parse_event(&event(
            "charge.refunded",
            json!({"id": "ch_1", "object": "charge"}),
        ))
        .expect("an event");
        assert_eq!(e.kind, PaymentEventKind::Other);
        assert_eq!(e.reference, None);
    }

    #[test]
    fn malformed_events_are_refused() {
        for body in [
            b"not json".to_vec(),
            br#"{"type":"payment_intent.succeeded","data":{"object":{}}}"#.to_vec(),
            br#"{"id":"evt_1","data":{"object":{}}}"#.to_vec(),
            br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#.to_vec(),
            event(
                "payment_intent.succeeded",
                json!({"id": "pi_1", "object": "payment_intent"}),
            ),
        ] {
            assert!(
                matches!(parse_event(&body), Err(WebhookError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
