//! Typed identifiers: a `ProductId` can never be passed where an `OrderId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        pub struct $name(pub Uuid);

        impl $name {
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a user account (buyer, seller or admin).
    UserId
);
id_type!(
    /// Identifies a product listed by a seller.
    ProductId
);
id_type!(
    /// Identifies a product category.
    CategoryId
);
id_type!(
    /// Identifies a buyer's delivery address.
    AddressId
);
id_type!(
    /// Identifies one seller's order within a checkout.
    OrderId
);
id_type!(
    /// Identifies a checkout: the set of orders one cart turned into.
    CheckoutId
);
id_type!(
    /// Identifies a message in the notification outbox.
    MessageId
);
id_type!(
    /// Identifies a family of refresh tokens descending from one login.
    TokenFamilyId
);
id_type!(
    /// Identifies one entry of a seller's ledger.
    LedgerEntryId
);
id_type!(
    /// Identifies a payout to a seller.
    PayoutId
);
id_type!(
    /// Identifies a checkout's payment.
    PaymentId
);
id_type!(
    /// Identifies a refund of one order (or of a whole payment).
    RefundId
);
