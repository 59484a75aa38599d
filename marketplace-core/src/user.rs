//! Accounts: roles, seller verification and the user record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::Email;
use crate::ids::UserId;

/// What an account may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Browses, keeps a cart and addresses, checks out.
    Buyer,
    /// Runs a store once verified.
    Seller,
    /// Moderates sellers, users, products and categories.
    Admin,
}

impl Role {
    /// The role's name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "buyer" => Some(Role::Buyer),
            "seller" => Some(Role::Seller),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Where a seller stands with the marketplace.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SellerStatus {
    /// Registered, awaiting an admin's decision; products are not visible.
    Pending,
    /// May list and sell.
    Verified,
    /// Refused by an admin.
    Rejected,
}

impl SellerStatus {
    /// The status name as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            SellerStatus::Pending => "pending",
            SellerStatus::Verified => "verified",
            SellerStatus::Rejected => "rejected",
        }
    }

    /// Parses a stored status name.
    pub fn parse(s: &str) -> Option<SellerStatus> {
        match s {
            "pending" => Some(SellerStatus::Pending),
            "verified" => Some(SellerStatus::Verified),
            "rejected" => Some(SellerStatus::Rejected),
            _ => None,
        }
    }
}

/// An account as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Lower-cased, unique email.
    pub email: Email,
    /// argon2id PHC string; never serialized.
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// Display name.
    pub name: Option<String>,
    /// Contact phone.
    pub phone: Option<String>,
    /// Store name (sellers only).
    pub store_name: Option<String>,
    /// Verification status (sellers only).
    pub seller_status: Option<SellerStatus>,
    /// Whether the email address was confirmed.
    pub email_verified: bool,
    /// `false` once an admin deactivated the account.
    pub active: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl User {
    /// Whether this is a verified, active seller whose products may be shown and sold.
    pub fn is_selling(&self) -> bool {
        self.active
            && self.role == Role::Seller
            && self.seller_status == Some(SellerStatus::Verified)
    }
}

/// The authenticated caller of an operation, as established by
/// [`Marketplace::authenticate`](crate::Marketplace::authenticate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Who is calling.
    pub user_id: UserId,
    /// With which role.
    pub role: Role,
}

impl Principal {
    /// Refuses anyone but an account of `role` ([`Forbidden`](crate::Error::Forbidden), in the
    /// words every refusal of a role uses). The library checks it on every
    /// call; a host checks it too only to refuse a whole page or screen early.
    pub fn require(&self, role: Role) -> crate::Result<()> {
        if self.role == role {
            Ok(())
        } else {
            Err(crate::Error::Forbidden(match role {
                Role::Buyer => "only buyers may do this",
                Role::Seller => "only sellers may do this",
                Role::Admin => "only admins may do this",
            }))
        }
    }

    /// The marketplace's operator: whoever runs a bootstrap tool with the
    /// store's own settings in hand (a command line such as
    /// `marketplace-admin`), acting with an admin's authority and no account
    /// behind it. Its id is the nil UUID, which no account has, so it owns
    /// nothing and is never "itself" to a rule about one's own account.
    ///
    /// Hosts never derive it from a request: a caller of the API is who
    /// [`Marketplace::authenticate`](crate::Marketplace::authenticate) says.
    pub const fn operator() -> Principal {
        Principal {
            user_id: UserId(uuid::Uuid::nil()),
            role: Role::Admin,
        }
    }
}

/// A seller as an admin sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SellerSummary {
    /// The seller's user id.
    pub id: UserId,
    /// Login email.
    pub email: Email,
    /// Store name.
    pub store_name: String,
    /// Verification status.
    pub status: SellerStatus,
    /// Whether the account is active.
    pub active: bool,
    /// When the seller registered.
    pub created_at: DateTime<Utc>,
}

impl SellerSummary {
    /// The admin view of a seller account.
    pub fn of(user: &User) -> SellerSummary {
        SellerSummary {
            id: user.id,
            email: user.email.clone(),
            store_name: user.store_name.clone().unwrap_or_default(),
            status: user.seller_status.unwrap_or(SellerStatus::Pending),
            active: user.active,
            created_at: user.created_at,
        }
    }
}
