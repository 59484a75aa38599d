//! PATCH semantics for optional fields: absent, `null`, or a value.

use serde::{Deserialize, Deserializer};

/// Deserializes a present field (even `null`) as `Some(_)`; with `#[serde(default)]`
/// an absent one stays `None`.
pub(crate) fn some<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
