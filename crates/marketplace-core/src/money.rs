//! Money as integer minor units, discounts, and the one place effective prices are computed.
//!
//! No floating point appears anywhere: amounts are `i64` minor units (cents for USD),
//! and every arithmetic step is checked so that huge inputs become errors, not wraps.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount, in minor units, a single price may carry (ten billion units).
///
/// Bounding prices keeps every total (price x quantity x lines) far from `i64::MAX`.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "USD"))]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars, the default currency of a new marketplace.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a three-letter code; lower case is accepted and normalised.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b.to_ascii_uppercase();
        }
        Some(Currency(out))
    }

    /// The code as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s).ok_or_else(|| format!("`{s}` is not a three-letter currency code"))
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An amount of money in integer minor units of a currency.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (e.g. cents).
    pub amount: i64,
    /// The currency of `amount`.
    pub currency: Currency,
}

impl Money {
    /// Builds an amount of `currency`.
    pub fn new(amount: i64, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// `self * quantity`, or `None` on overflow.
    pub fn checked_mul(self, quantity: u32) -> Option<Money> {
        self.amount
            .checked_mul(i64::from(quantity))
            .map(|amount| Money::new(amount, self.currency))
    }

    /// `self + other`, or `None` on overflow or mixed currencies.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
    }
}

impl fmt::Display for Money {
    /// Formats as `12.50 USD` (two minor digits, the common case).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

/// How a discount reduces a price.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiscountKind {
    /// A whole percentage off, 1..=100.
    Percentage {
        /// Percent off the listed price.
        value: u8,
    },
    /// A fixed amount off, in the product's currency.
    Fixed {
        /// Amount off the listed price.
        amount: Money,
    },
}

/// A discount on a product, optionally limited to a validity window.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    /// The reduction.
    #[serde(flatten)]
    pub kind: DiscountKind,
    /// First instant the discount applies (inclusive); open if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// Instant the discount stops applying (exclusive); open if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
}

impl Discount {
    /// Whether the discount applies at `now`.
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.ends_at.is_none_or(|e| now < e)
    }
}

/// The price a buyer pays for one unit at `now`: the single definition used by the
/// catalog, the cart and checkout.
///
/// A percentage discount rounds the reduced price half-up to the minor unit
/// (`999` at 15% off is `849.15`, charged `849`); a fixed discount subtracts its
/// amount. The result is never below zero. A discount outside its window, or in
/// another currency, does not apply.
pub fn effective_price(price: Money, discount: Option<&Discount>, now: DateTime<Utc>) -> Money {
    let Some(discount) = discount.filter(|d| d.is_active_at(now)) else {
        return price;
    };
    let amount = match &discount.kind {
        DiscountKind::Percentage { value } => {
            let keep = i128::from(100u8.saturating_sub(*value));
            // price <= MAX_AMOUNT so the i128 product cannot overflow.
            let cents = (i128::from(price.amount) * keep + 50) / 100;
            i64::try_from(cents).unwrap_or(price.amount)
        }
        DiscountKind::Fixed { amount } if amount.currency == price.currency => {
            price.amount.saturating_sub(amount.amount)
        }
        DiscountKind::Fixed { .. } => price.amount,
    };
    Money::new(amount.max(0), price.currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn usd(amount: i64) -> Money {
        Money::new(amount, Currency::USD)
    }

    #[test]
    fn percentage_rounds_half_up() {
        let now = Utc::now();
        let d = |value| Discount {
            kind: DiscountKind::Percentage { value },
            starts_at: None,
            ends_at: None,
        };
        assert_eq!(effective_price(usd(999), Some(&d(15)), now), usd(849));
        assert_eq!(effective_price(usd(1000), Some(&d(10)), now), usd(900));
        assert_eq!(effective_price(usd(5), Some(&d(50)), now), usd(3));
        assert_eq!(effective_price(usd(1), Some(&d(50)), now), usd(1));
        assert_eq!(effective_price(usd(1234), Some(&d(100)), now), usd(0));
    }

    #[test]
    fn fixed_never_below_zero_and_window_respected() {
        let t = |h| {
            Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0)
                .single()
                .expect("valid date")
        };
        let d = Discount {
            kind: DiscountKind::Fixed { amount: usd(500) },
            starts_at: Some(t(10)),
            ends_at: Some(t(12)),
        };
        assert_eq!(effective_price(usd(300), Some(&d), t(11)), usd(0));
        assert_eq!(effective_price(usd(800), Some(&d), t(10)), usd(300));
        assert_eq!(effective_price(usd(800), Some(&d), t(9)), usd(800));
        assert_eq!(effective_price(usd(800), Some(&d), t(12)), usd(800));
    }

    #[test]
    fn currency_parsing_and_display() {
        assert_eq!(
            Currency::parse("eur").map(|c| c.to_string()),
            Some("EUR".into())
        );
        assert!(Currency::parse("EURO").is_none());
        assert!(Currency::parse("U$D").is_none());
        assert_eq!(usd(-1250).to_string(), "-12.50 USD");
        assert_eq!(usd(5).checked_mul(3), Some(usd(15)));
        assert_eq!(usd(i64::MAX).checked_mul(2), None);
    }
}
