//! Reading a PaymentIntent object: where it stands, and how much.

use marketplace_core::money::{Currency, Money};
use marketplace_core::payment::ProviderState;
use serde_json::Value;

/// The parts of a Stripe PaymentIntent this crate reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Intent {
    pub id: String,
    pub status: String,
    pub currency: Currency,
    /// What it was created for.
    pub amount: i64,
    /// What may still be captured (`requires_capture`).
    pub amount_capturable: Option<i64>,
    /// What was captured (`succeeded`).
    pub amount_received: Option<i64>,
    pub client_secret: Option<String>,
    /// `last_payment_error.message`.
    pub last_error: Option<String>,
}

impl Intent {
    /// Reads a PaymentIntent object; `Err` says what is missing.
    pub(crate) fn parse(v: &Value) -> Result<Intent, String> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let number = |k: &str| v.get(k).and_then(Value::as_i64);
        if let Some(object) = text("object")
            && object != "payment_intent"
        {
            return Err(format!("expected a payment_intent, got a {object}"));
        }
        let id = text("id").ok_or("the payment intent has no id")?;
        let status = text("status").ok_or("the payment intent has no status")?;
        let currency = text("currency")
            .and_then(|c| Currency::parse(&c))
            .ok_or("the payment intent has no known currency")?;
        let amount = number("amount").ok_or("the payment intent has no amount")?;
        Ok(Intent {
            id,
            status,
            currency,
            amount,
            amount_capturable: number("amount_capturable"),
            amount_received: number("amount_received"),
            client_secret: text("client_secret"),
            last_error: v
                .get("last_payment_error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// `minor` units of its currency.
    pub(crate) fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency)
    }

    /// What is held: `amount_capturable`; the intent's amount when the field
    /// is absent (localstripe omits it; Stripe always sends it).
    pub(crate) fn authorized(&self) -> Money {
        self.money(self.amount_capturable.unwrap_or(self.amount))
    }

    /// What was captured: `amount_received`, or `fallback` when the field is
    /// absent (localstripe omits it; Stripe always sends it).
    pub(crate) fn received_or(&self, fallback: i64) -> Money {
        self.money(self.amount_received.unwrap_or(fallback))
    }

    /// Where it stands, or `None` for a status this crate does not know.
    pub(crate) fn state(&self) -> Option<ProviderState> {
        Some(match self.status.as_str() {
            "requires_payment_method"
            | "requires_confirmation"
            | "requires_action"
            | "processing" => ProviderState::AwaitingPayment,
            "requires_capture" => ProviderState::Authorized(self.authorized()),
            "succeeded" => ProviderState::Captured(self.received_or(self.amount)),
            "canceled" => ProviderState::Voided,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(status: &str, extra: Value) -> Intent {
        let mut v = json!({
            "id": "pi_1", "object": "payment_intent", "status": status,
            "currency": "eur", "amount": 1000, "client_secret": "pi_1_secret_x",
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        Intent::parse(&v).expect("an intent")
    }

    #[test]
    fn statuses_map_to_states() {
        let eur = |m| Money::new(m, Currency::parse("EUR").expect("EUR"));
        for s in [
            "requires_payment_method",
            "requires_confirmation",
            "requires_action",
            "processing",
        ] {
            assert_eq!(
                intent(s, json!({})).state(),
                Some(ProviderState::AwaitingPayment)
            );
        }
        assert_eq!(
            intent("requires_capture", json!({"amount_capturable": 900})).state(),
            Some(ProviderState::Authorized(eur(900)))
        );
        assert_eq!(
            intent("succeeded", json!({"amount_received": 600})).state(),
            Some(ProviderState::Captured(eur(600)))
        );
        assert_eq!(
            intent("succeeded", json!({})).state(),
            Some(ProviderState::Captured(eur(1000)))
        );
        assert_eq!(
            intent("canceled", json!({})).state(),
            Some(ProviderState::Voided)
        );
        assert_eq!(intent("something_new", json!({})).state(), None);
    }

    #[test]
    fn other_objects_are_refused() {
        assert!(Intent::parse(&json!({"object": "charge", "id": "ch_1"})).is_err());
        assert!(Intent::parse(&json!({"object": "payment_intent", "id": "pi_1"})).is_err());
    }

    #[test]
    fn reads_the_last_error() {
        let i = intent(
            "requires_payment_method",
            json!({"last_payment_error": {"message": "Your card was declined."}}),
        );
        assert_eq!(i.last_error.as_deref(), Some("Your card was declined."));
        assert_eq!(i.client_secret.as_deref(), Some("pi_1_secret_x"));
    }
}
