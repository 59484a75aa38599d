//! Money as people type it on the dashboards and read it back: amounts in the
//! marketplace's currency (`12.50`), commission rates as percentages (`12.5`,
//! which is 1 250 basis points), and the days a statement or a report covers.
//!
//! What cannot be read is a problem on its field, worded for the person who
//! typed it; what can be read but is out of bounds (a minimum above the
//! maximum, a payout reference too long) is the library's to judge.

use chrono::{DateTime, NaiveDate, Utc};
use marketplace_core::ledger::Period;
use marketplace_core::{Currency, Error, FieldError, Money};
use serde::{Deserialize, Serialize};

/// Basis points in 100 %.
const WHOLE_BPS: u32 = 10_000;

/// The problem of an amount that cannot be read: "write an amount in USD
/// with digits and at most 2 decimals, like 12.50".
pub fn amount_hint(currency: Currency) -> String {
    let example = Money::new(
        1250 * 10_i64.pow(currency.minor_units().saturating_sub(2)),
        currency,
    )
    .decimal();
    format!(
        "write an amount in {currency} with digits and at most {} decimals, like {example}",
        currency.minor_units()
    )
}

/// The amount a form's `field` holds, which it may leave blank (`Ok(None)`);
/// one that cannot be read as an amount of `currency` is a problem on
/// `field`.
pub fn optional_amount(
    field: &str,
    text: &str,
    currency: Currency,
) -> Result<Option<Money>, FieldError> {
    match text.trim() {
        "" => Ok(None),
        t => Money::from_decimal(t, currency)
            .map(Some)
            .ok_or_else(|| FieldError::new(field, "invalid", amount_hint(currency))),
    }
}

/// A percentage with at most two decimals as basis points: `12.5` (or
/// `12.5 %`) is 1 250, `0` is 0, `100` is 10 000. `None` for anything else,
/// a percentage above 100 included.
pub fn percent_bps(text: &str) -> Option<u32> {
    let text = text.trim().trim_end_matches('%').trim_end();
    let (units, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if units.is_empty()
        || !digits(units)
        || !digits(fraction)
        || fraction.len() > 2
        || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let hundredths: u32 = format!("{fraction:0<2}").parse().ok()?;
    let bps = units
        .parse::<u32>()
        .ok()?
        .checked_mul(100)?
        .checked_add(hundredths)?;
    (bps <= WHOLE_BPS).then_some(bps)
}

/// Basis points as a percentage, as [`percent_bps`] reads it back: 1 250 is
/// `12.5`, 1 000 is `10`, 1 234 is `12.34`.
pub fn percent(bps: u32) -> String {
    let (whole, part) = (bps / 100, bps % 100);
    match part {
        0 => whole.to_string(),
        p if p % 10 == 0 => format!("{whole}.{}", p / 10),
        p => format!("{whole}.{p:02}"),
    }
}

/// The days a statement or a report covers, as a form names them: the first
/// day and the last day, both included (`2026-11-01` to `2026-11-30` is
/// November), either left blank for "from the start" or "up to now".
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Days {
    /// The first day, `2026-11-01`.
    pub from: String,
    /// The last day, `2026-11-30`.
    pub to: String,
}

impl Days {
    /// The library's period `[from, to)`: midnight UTC of the first day to
    /// midnight after the last. A day that cannot be read, or a last day
    /// before the first, is a problem on its field.
    pub fn period(&self) -> Result<Period, Error> {
        let mut problems = Vec::new();
        let mut day = |field: &'static str, text: &str, after: bool| match text.trim() {
            "" => None,
            t => {
                let at = NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| if after { d.succ_opt() } else { Some(d) })
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc());
                if at.is_none() {
                    problems.push(FieldError::new(
                        field,
                        "invalid",
                        "write a date like 2026-11-01",
                    ));
                }
                at
            }
        };
        let from: Option<DateTime<Utc>> = day("from", &self.from, false);
        let to = day("to", &self.to, true);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            problems.push(FieldError::new(
                "to",
                "before_from",
                "the last day must not be before the first",
            ));
        }
        if problems.is_empty() {
            Ok(Period { from, to })
        } else {
            Err(Error::Validation(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_basis_points() {
        for (text, bps) in [
            ("12.5", 1250),
            ("12.50", 1250),
            ("12.34", 1234),
            ("0", 0),
            ("100", 10_000),
            (" 7 % ", 700),
            ("0.01", 1),
        ] {
            assert_eq!(percent_bps(text), Some(bps), "{text}");
            assert_eq!(percent_bps(&percent(bps)), Some(bps), "{text} back");
        }
        for bad in [
            "",
            "12.",
            ".5",
            "12.345",
            "12,5",
            "-1",
            "100.01",
            "1e3",
            "99999999999",
        ] {
            assert_eq!(percent_bps(bad), None, "{bad}");
        }
        assert_eq!(percent(1250), "12.5");
        assert_eq!(percent(1000), "10");
        assert_eq!(percent(5), "0.05");
    }

    #[test]
    fn days_include_the_last_one() {
        let p = Days {
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
        }
        .period()
        .ok();
        let day = |s: &str| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        };
        assert_eq!(p.and_then(|p| p.from), day("2026-11-01"));
        let p = Days {
            from: String::new(),
            to: "2026-11-30".into(),
        }
        .period()
        .ok();
        assert_eq!(p.and_then(|p| p.to), day("2026-12-01"));
        assert!(Days::default().period().is_ok());
    }

    #[test]
    fn unreadable_or_reversed_days_are_field_problems() {
        let fields = |d: Days| match d.period() {
            Err(Error::Validation(f)) => f.into_iter().map(|f| f.field).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let bad = Days {
            from: "yesterday".into(),
            to: "2026-13-01".into(),
        };
        assert_eq!(fields(bad), ["from", "to"]);
        let reversed = Days {
            from: "2026-11-02".into(),
            to: "2026-11-01".into(),
        };
        assert_eq!(fields(reversed), ["to"]);
        // One day is a period: its first and last day are the same.
        let one = Days {
            from: "2026-11-02".into(),
            to: "2026-11-02".into(),
        };
        assert!(one.period().is_ok());
    }

    #[test]
    fn amounts_may_be_blank() {
        assert_eq!(optional_amount("fee", " ", Currency::USD), Ok(None));
        assert_eq!(
            optional_amount("fee", "0.30", Currency::USD),
            Ok(Some(Money::new(30, Currency::USD)))
        );
        let bad = optional_amount("fee", "0,30", Currency::USD).err();
        assert_eq!(bad.map(|f| f.field).as_deref(), Some("fee"));
        assert!(amount_hint(Currency::USD).contains("like 12.50"));
    }
}
