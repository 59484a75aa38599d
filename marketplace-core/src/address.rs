//! A buyer's delivery addresses.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Violations};
use crate::fields::{optional_text, phone, text};
use crate::ids::{AddressId, UserId};
use crate::marketplace::Marketplace;
use crate::storage::{Storage, StorageError};
use crate::user::{Principal, Role};

/// A delivery address as stored and shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Identifier.
    pub id: AddressId,
    /// Owner.
    pub user_id: UserId,
    /// Recipient's name.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Apartment, floor...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// State, province or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Recipient's phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Whether checkout uses it when none is named.
    pub is_default: bool,
}

/// An address as a client sends it (create), or changes to one (update: absent
/// fields stay).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Recipient's name (1..=100).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    /// Street and number (1..=200).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub line1: Option<String>,
    /// Second line (..=200); `null` clears.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub line2: Option<Option<String>>,
    /// City (1..=100).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub city: Option<String>,
    /// Region (..=100); `null` clears.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub region: Option<Option<String>>,
    /// Postal code (1..=20: letters, digits, spaces, dashes).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 20))]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 2, max_length = 2, pattern = "^[A-Za-z]{2}$")
    )]
    pub country: Option<String>,
    /// Phone; `null` clears.
    #[serde(default, deserialize_with = "crate::patch::some")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 32, pattern = "^\\+?[0-9 .()-]+$")
    )]
    pub phone: Option<Option<String>>,
    /// Make it the default address.
    pub is_default: Option<bool>,
}

/// ISO 3166-1 alpha-2 codes currently assigned.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Whether `code` is an assigned ISO 3166-1 alpha-2 code (upper case).
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code)
}

impl AddressInput {
    /// Applies this input over `base` (all fields empty for a new address) and
    /// validates the result, reporting every bad field.
    fn apply(self, mut a: Address) -> Result<Address> {
        let mut v = Violations::default();
        if let Some(x) = self
            .name
            .as_deref()
            .or(Some(&a.name))
            .map(|x| text("name", x, 1, 100, false))
        {
            a.name = v.check(x).unwrap_or_default();
        }
        if let Some(x) = self
            .line1
            .as_deref()
            .or(Some(&a.line1))
            .map(|x| text("line1", x, 1, 200, false))
        {
            a.line1 = v.check(x).unwrap_or_default();
        }
        if let Some(x) = self.line2 {
            a.line2 = v.check(optional_text("line2", x.as_deref(), 200)).flatten();
        }
        if let Some(x) = self
            .city
            .as_deref()
            .or(Some(&a.city))
            .map(|x| text("city", x, 1, 100, false))
        {
            a.city = v.check(x).unwrap_or_default();
        }
        if let Some(x) = self.region {
            a.region = v
                .check(optional_text("region", x.as_deref(), 100))
                .flatten();
        }
        let postal = self.postal_code.unwrap_or_else(|| a.postal_code.clone());
        match text("postal_code", &postal, 1, 20, false) {
            Ok(p)
                if p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-') =>
            {
                a.postal_code = p
            }
            Ok(_) => v.add(
                "postal_code",
                "invalid",
                "may hold only letters, digits, spaces and dashes",
            ),
            Err(e) => v.add("postal_code", e.code, e.message),
        }
        let country = self
            .country
            .unwrap_or_else(|| a.country.clone())
            .trim()
            .to_ascii_uppercase();
        if country.is_empty() {
            v.add("country", "required", "is required");
        } else if !is_country_code(&country) {
            v.add(
                "country",
                "invalid",
                "must be an ISO 3166-1 alpha-2 country code",
            );
        } else {
            a.country = country;
        }
        if let Some(p) = self.phone {
            a.phone = v.check(phone("phone", p.as_deref())).flatten();
        }
        if let Some(d) = self.is_default {
            a.is_default = d;
        }
        v.finish()?;
        Ok(a)
    }
}

impl<S: Storage> Marketplace<S> {
    /// The buyer's addresses, oldest first.
    pub async fn addresses(&self, who: &Principal) -> Result<Vec<Address>> {
        self.require(who, Role::Buyer)?;
        Ok(self.storage().addresses(who.user_id).await?)
    }

    /// Adds an address. The first one becomes the default. At most
    /// [`Limits::max_addresses`](crate::Limits) are kept, however many adds race:
    /// storage stores a new address only below the limit, in the same atomic step.
    pub async fn add_address(&self, who: &Principal, input: AddressInput) -> Result<Address> {
        self.require(who, Role::Buyer)?;
        let existing = self.storage().addresses(who.user_id).await?;
        // The quick answer for a book already full; the limit itself is kept by
        // the conditional save below.
        if existing.len() >= self.inner.config.limits.max_addresses {
            return Err(self.too_many_addresses());
        }
        let blank = Address {
            id: AddressId(self.new_id()),
            user_id: who.user_id,
            name: String::new(),
            line1: String::new(),
            line2: None,
            city: String::new(),
            region: None,
            postal_code: String::new(),
            country: String::new(),
            phone: None,
            is_default: existing.is_empty(),
        };
        let address = input.apply(blank)?;
        self.save_address(&address).await?;
        Ok(address)
    }

    /// Changes an address; absent fields stay. Making it the default takes the
    /// flag from the previous default.
    pub async fn update_address(
        &self,
        who: &Principal,
        id: AddressId,
        input: AddressInput,
    ) -> Result<Address> {
        self.require(who, Role::Buyer)?;
        let current = self.own_address(who, id).await?;
        let was_default = current.is_default;
        let mut address = input.apply(current)?;
        // The default can move to another address, not simply vanish.
        if was_default && !address.is_default {
            address.is_default = true;
        }
        self.save_address(&address).await?;
        Ok(address)
    }

    /// Deletes an address. When it was the default, the oldest remaining address
    /// becomes the default. Past orders keep their own copy.
    pub async fn delete_address(&self, who: &Principal, id: AddressId) -> Result<()> {
        self.require(who, Role::Buyer)?;
        let current = self.own_address(who, id).await?;
        if !self.storage().delete_address(who.user_id, id).await? {
            return Err(Error::NotFound("address"));
        }
        if current.is_default
            && let Some(mut next) = self
                .storage()
                .addresses(who.user_id)
                .await?
                .into_iter()
                .next()
        {
            next.is_default = true;
            self.save_address(&next).await?;
        }
        Ok(())
    }

    /// Stores an address with the limit on how many a buyer keeps, which only a
    /// new address can break.
    async fn save_address(&self, address: &Address) -> Result<()> {
        let max = self.inner.config.limits.max_addresses;
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        match self
            .retry(|| self.storage().save_address(address, max))
            .await
        {
            Ok(()) => Ok(()),
            Err(StorageError::Precondition(_)) => Err(self.too_many_addresses()),
            Err(e) => Err(e.into()),
        }
    }

    fn too_many_addresses(&self) -> Error {
        Error::conflict(
            "too_many_addresses",
            format!(
                "at most {} addresses may be kept",
                self.inner.config.limits.max_addresses
            ),
        )
    }

    pub(crate) async fn own_address(&self, who: &Principal, id: AddressId) -> Result<Address> {
        self.storage()
            .addresses(who.user_id)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or(Error::NotFound("address"))
    }
}
