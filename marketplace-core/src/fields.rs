//! Field rules shared by every input: trimmed text with length bounds, no control
//! characters, and the validated newtypes built on them.

use crate::error::FieldError;

/// Trims `value` and checks it holds `min..=max` characters and no control
/// characters (newlines allowed only when `multiline`).
pub(crate) fn text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, FieldError> {
    let v = value.trim();
    let len = v.chars().count();
    if len < min {
        let code = if len == 0 { "required" } else { "too_short" };
        return Err(FieldError::new(
            field,
            code,
            format!("must have at least {min} characters"),
        ));
    }
    if len > max {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("must have at most {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t' || c == '\r')))
    {
        return Err(FieldError::new(
            field,
            "invalid",
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Like [`text`] for an optional field: `None` or blank becomes `None`.
pub(crate) fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => text(field, v, 1, max, false).map(Some),
    }
}

/// The most characters a seller's SKU may have.
pub const SKU_MAX: usize = 64;

/// Checks a seller's SKU: trimmed, 1..=[`SKU_MAX`] printable characters (no
/// control characters, and no white space but the plain space inside it). SKUs
/// compare exactly: `AB-1` and `ab-1` are two SKUs.
pub(crate) fn sku(field: &str, value: &str) -> Result<String, FieldError> {
    let v = text(field, value, 1, SKU_MAX, false)?;
    if v.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Err(FieldError::new(
            field,
            "invalid",
            "must hold printable characters only",
        ));
    }
    Ok(v)
}

/// A validated, lower-cased email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "email"))]
pub struct Email(String);

impl Email {
    /// Validates an address: one `@`, a local part of 1..=64 characters, a dotted
    /// domain of letters, digits and hyphens, 254 characters at most. The result is
    /// lower-cased so uniqueness is case-insensitive.
    pub fn parse(raw: &str) -> Result<Email, FieldError> {
        let invalid = || FieldError::new("email", "invalid", "must be a valid email address");
        let v = raw.trim();
        if v.is_empty() {
            return Err(FieldError::new("email", "required", "is required"));
        }
        if v.len() > 254 {
            return Err(FieldError::new(
                "email",
                "too_long",
                "must have at most 254 characters",
            ));
        }
        let (local, domain) = v.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(v.to_ascii_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an address already validated (read back from storage).
    pub fn from_trusted(s: impl Into<String>) -> Email {
        Email(s.into())
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that satisfies the policy (8..=128 characters). Its `Debug` never
/// shows the value.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length policy.
    pub fn parse(raw: &str) -> Result<Password, FieldError> {
        let n = raw.chars().count();
        if n < 8 {
            return Err(FieldError::new(
                "password",
                "too_short",
                "must have at least 8 characters",
            ));
        }
        if n > 128 {
            return Err(FieldError::new(
                "password",
                "too_long",
                "must have at most 128 characters",
            ));
        }
        Ok(Password(raw.to_owned()))
    }

    /// The clear-text value, for hashing only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Validates a phone number: digits with optional leading `+`, spaces, dashes,
/// dots and parentheses; 6..=20 digits.
pub(crate) fn phone(field: &str, raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(v) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let allowed = v
        .char_indices()
        .all(|(i, c)| c.is_ascii_digit() || " -.()".contains(c) || (c == '+' && i == 0));
    if !allowed || !(6..=20).contains(&digits) || v.len() > 32 {
        return Err(FieldError::new(field, "invalid", "must be a phone number"));
    }
    Ok(Some(v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").map(|e| e.0),
            Ok("ann@example.com".into())
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a@.com",
            "a@b..com",
            "a b@c.com",
            "a@b_c.com",
            "é@x.com",
            ".a@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_and_text() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(
            Password::parse("ünïcødé!").is_ok(),
            "length counts characters, not bytes"
        );
        assert_eq!(
            format!("{:?}", Password::parse("secret-pass").ok()),
            "Some(Password(<redacted>))"
        );
        assert_eq!(text("t", "  hi  ", 1, 5, false), Ok("hi".into()));
        assert!(text("t", "a\u{0}b", 1, 5, false).is_err());
        assert!(text("t", "a\nb", 1, 5, true).is_ok());
        assert_eq!(
            text("t", "   ", 1, 5, false).map_err(|e| e.code),
            Err("required")
        );
        assert!(phone("p", Some("+1 (555) 010-9999")).is_ok());
        assert!(phone("p", Some("call me")).is_err());
    }

    #[test]
    fn skus() {
        assert_eq!(sku("sku", "  AB-1 2  "), Ok("AB-1 2".into()));
        assert_eq!(
            sku("sku", &"x".repeat(SKU_MAX)).map(|s| s.len()),
            Ok(SKU_MAX)
        );
        for bad in ["", "   ", "a\u{0}b", "a\tb", "a\u{a0}b", "a\nb"] {
            assert!(sku("sku", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            sku("sku", &"x".repeat(SKU_MAX + 1)).map_err(|e| e.code),
            Err("too_long")
        );
    }
}
