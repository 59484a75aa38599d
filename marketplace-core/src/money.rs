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

/// An ISO 4217 currency: one of the codes the standard lists (`USD`, `EUR`,
/// `JPY`...), which also says how many minor units (decimals) it has.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "USD"))]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars, the default currency of a new marketplace.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses an ISO 4217 code; lower case is accepted and normalised. `None` for
    /// anything the standard does not list.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut out = [0u8; 3];
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b.to_ascii_uppercase();
        }
        let upper = std::str::from_utf8(&out).ok()?;
        iso_currency::Currency::from_code(upper)?;
        Some(Currency(out))
    }

    /// How many decimal digits its minor unit has: 2 for USD (cents), 0 for JPY,
    /// 3 for BHD; 0 for codes without a minor unit (precious metals, `XXX`).
    pub fn minor_units(&self) -> u32 {
        iso_currency::Currency::from_code(self.as_str())
            .and_then(|c| c.exponent())
            .map_or(0, u32::from)
    }

    /// Splits an amount of minor units into whole units and the minor remainder,
    /// as the currency writes them (`1250` USD is `(12, 50)`; JPY has no remainder).
    pub(crate) fn split(&self, minor: u64) -> (u64, u64) {
        let scale = 10u64.pow(self.minor_units());
        (minor / scale, minor % scale)
    }

    /// The minor remainder as the currency writes it after the whole units:
    /// `.50` for USD, `.050` for BHD, nothing for JPY.
    pub(crate) fn fraction(&self, remainder: u64) -> String {
        match self.minor_units() {
            0 => String::new(),
            d => format!(".{remainder:0width$}", width = d as usize),
        }
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
        Currency::parse(s).ok_or_else(|| format!("`{s}` is not an ISO 4217 currency code"))
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
#[serde(deny_unknown_fields)]
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

    /// Reads an amount a person typed in `currency`'s major units (`12.50`,
    /// `12.5`, `12`; `1250` for JPY): digits, then at most the currency's number
    /// of decimals after a point. `None` for anything else: a sign, a
    /// thousands separator, more decimals than the currency has, or an amount
    /// too large to hold.
    pub fn from_decimal(text: &str, currency: Currency) -> Option<Money> {
        let (units, fraction) = match text.split_once('.') {
            Some((u, f)) => (u, f),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let decimals = currency.minor_units();
        if !digits(units) || (text.contains('.') && !digits(fraction)) {
            return None;
        }
        if fraction.len() > decimals as usize {
            return None;
        }
        let scale = 10_i64.checked_pow(decimals)?;
        let mut minor: i64 = fraction.parse().unwrap_or(0);
        minor = minor.checked_mul(10_i64.checked_pow(decimals - fraction.len() as u32)?)?;
        let amount = units
            .parse::<i64>()
            .ok()?
            .checked_mul(scale)?
            .checked_add(minor)?;
        Some(Money::new(amount, currency))
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

impl Money {
    /// The amount as a decimal in the currency's units, without the code:
    /// `12.50`, `-0.05`, `1250` (JPY).
    pub fn decimal(&self) -> String {
        let sign = if self.amount < 0 { "-" } else { "" };
        let (units, minor) = self.currency.split(self.amount.unsigned_abs());
        format!("{sign}{units}{}", self.currency.fraction(minor))
    }
}

impl fmt::Display for Money {
    /// Formats with the currency's own decimals: `12.50 USD`, `1250 JPY`,
    /// `1.250 BHD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount < 0 { "-" } else { "" };
        let (units, minor) = self.currency.split(self.amount.unsigned_abs());
        let fraction = self.currency.fraction(minor);
        write!(f, "{sign}{units}{fraction} {}", self.currency)
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

/// The OpenAPI schema of a discount, written out: the derived one would be an
/// `allOf` of the kind's `oneOf` and the window (serde's `flatten`), which client
/// generators cannot turn into a type. Written as it is sent: one object per
/// kind, told apart by `type`, each with the optional window.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Discount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        use utoipa::openapi::{Ref, RefOr};
        let kind = |name: &str, title: &str, doc: &str, field: &str, schema: RefOr<_>| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .title(Some(title.to_owned()))
                .description(Some(doc.to_owned()))
                .property(
                    "type",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name.to_owned()])),
                )
                .required("type")
                .property(field, schema)
                .required(field)
                .property(
                    "starts_at",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                        .description(Some(
                            "First instant the discount applies (inclusive); open if absent.",
                        )),
                )
                .property(
                    "ends_at",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                        .description(Some(
                            "Instant the discount stops applying (exclusive); open if absent.",
                        )),
                )
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
        };
        let percentage = kind(
            "percentage",
            "PercentageDiscount",
            "A whole percentage off the listed price.",
            "value",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100))
                .into(),
        );
        let fixed = kind(
            "fixed",
            "FixedDiscount",
            "A fixed amount off the listed price, in its currency.",
            "amount",
            RefOr::Ref(Ref::from_schema_name("Money")),
        );
        OneOfBuilder::new()
            .item(percentage)
            .item(fixed)
            .description(Some(
                "A discount on a product, optionally limited to a validity window.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Discount {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::{PartialSchema, ToSchema};
        schemas.push((Money::name().into_owned(), Money::schema()));
        <Money as ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn usd(amount: i64) -> Money {
        Money::new(amount, Currency::USD)
    }

    #[test]
    fn typed_amounts_read_in_the_currencys_decimals() {
        let jpy = Currency::parse("JPY").unwrap();
        let bhd = Currency::parse("BHD").unwrap();
        assert_eq!(Money::from_decimal("12.50", Currency::USD), Some(usd(1250)));
        assert_eq!(Money::from_decimal("12.5", Currency::USD), Some(usd(1250)));
        assert_eq!(Money::from_decimal("12", Currency::USD), Some(usd(1200)));
        assert_eq!(Money::from_decimal("0.07", Currency::USD), Some(usd(7)));
        assert_eq!(
            Money::from_decimal("1250", jpy),
            Some(Money::new(1250, jpy))
        );
        assert_eq!(
            Money::from_decimal("1.250", bhd),
            Some(Money::new(1250, bhd))
        );
        for bad in [
            "", ".", "1.", ".5", "-1", "+1", "1,000", "1.234", "1e3", " 1", "١٢",
        ] {
            assert_eq!(Money::from_decimal(bad, Currency::USD), None, "{bad:?}");
        }
        assert_eq!(Money::from_decimal("12.5", jpy), None);
        assert_eq!(
            Money::from_decimal("99999999999999999999", Currency::USD),
            None
        );
        assert_eq!(
            Money::from_decimal("92233720368547758.07", Currency::USD),
            Some(usd(i64::MAX))
        );
        assert_eq!(
            Money::from_decimal("92233720368547758.08", Currency::USD),
            None
        );
    }

    #[test]
    fn currencies_are_iso_4217_with_their_own_decimals() {
        let c = |code| Currency::parse(code).expect(code);
        assert_eq!(c("usd"), Currency::USD);
        assert_eq!((c("USD").minor_units(), c("JPY").minor_units()), (2, 0));
        assert_eq!((c("BHD").minor_units(), c("CLF").minor_units()), (3, 4));
        for bad in ["XYZ", "US", "USDX", "U$D", ""] {
            assert!(Currency::parse(bad).is_none(), "{bad} accepted");
        }
        assert_eq!(Money::new(1250, c("USD")).to_string(), "12.50 USD");
        assert_eq!(Money::new(1250, c("JPY")).to_string(), "1250 JPY");
        assert_eq!(Money::new(-1250, c("BHD")).to_string(), "-1.250 BHD");
        assert_eq!(Money::new(7, c("EUR")).to_string(), "0.07 EUR");
    }

    #[test]
    fn money_refuses_unknown_fields() {
        let ok: Money = serde_json::from_str(r#"{"amount": 5, "currency": "EUR"}"#).unwrap();
        assert_eq!(ok.amount, 5);
        let refused =
            serde_json::from_str::<Money>(r#"{"amount": 5, "currency": "EUR", "cents": 1}"#);
        assert!(refused.is_err());
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
