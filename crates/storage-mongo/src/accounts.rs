//! Accounts, single-use tokens, refresh tokens and login throttling as documents.
//!
//! - `users`: `{_id, email (lower-cased, unique), password_hash, role, name,
//!   phone, store_name, seller_status, email_verified, active, created_at}`;
//!   `seller_status` is `null` for accounts that are not sellers.
//! - `one_time_tokens`: `{_id: hash, user_id, purpose, expires_at, created_at, used}`.
//! - `refresh_tokens`: `{_id: hash, user_id, family, expires_at, created_at,
//!   state: "live" | "spent" | "revoked"}`.
//! - `login_failures`: `{_id: key, count, window_started}`.

use marketplace_core::auth::{OneTimeToken, RefreshToken};
use marketplace_core::fields::Email;
use marketplace_core::{Role, SellerStatus, StorageResult, User, UserId};
use mongodb::bson::{Bson, Document, doc};

use crate::schema::{REFRESH, USERS};
use crate::values::{Reader, date, opt, opt_str, uuid};

/// A refresh token that may be rotated.
pub(crate) const LIVE: &str = "live";
/// A refresh token already exchanged for its successor.
pub(crate) const SPENT: &str = "spent";
/// A refresh token revoked by logout, reuse, reset or deactivation.
pub(crate) const REVOKED: &str = "revoked";

/// Every seller status, for filters that select sellers.
pub(crate) fn seller_statuses() -> Bson {
    Bson::Array(
        [
            SellerStatus::Pending,
            SellerStatus::Verified,
            SellerStatus::Rejected,
        ]
        .iter()
        .map(|s| Bson::String(s.as_str().to_owned()))
        .collect(),
    )
}

pub(crate) fn user_doc(u: &User) -> Document {
    doc! {
        "_id": uuid(u.id.0),
        "email": u.email.as_str(),
        "password_hash": &u.password_hash,
        "role": u.role.as_str(),
        "name": opt_str(u.name.as_deref()),
        "phone": opt_str(u.phone.as_deref()),
        "store_name": opt_str(u.store_name.as_deref()),
        "seller_status": opt(u.seller_status, |s| Bson::String(s.as_str().to_owned())),
        "email_verified": u.email_verified,
        "active": u.active,
        "created_at": date(u.created_at),
    }
}

pub(crate) fn user_from(d: &Document) -> StorageResult<User> {
    let r = Reader::new(USERS, d);
    Ok(User {
        id: UserId(r.uuid("_id")?),
        email: Email::from_trusted(r.str("email")?),
        password_hash: r.str("password_hash")?,
        role: r.parsed("role", Role::parse)?,
        name: r.opt_str("name")?,
        phone: r.opt_str("phone")?,
        store_name: r.opt_str("store_name")?,
        seller_status: r.opt_parsed("seller_status", SellerStatus::parse)?,
        email_verified: r.bool("email_verified")?,
        active: r.bool("active")?,
        created_at: r.date("created_at")?,
    })
}

pub(crate) fn token_doc(t: &OneTimeToken) -> Document {
    doc! {
        "_id": &t.hash,
        "user_id": uuid(t.user_id.0),
        "purpose": t.purpose.as_str(),
        "expires_at": date(t.expires_at),
        "created_at": date(t.created_at),
        "used": false,
    }
}

pub(crate) fn refresh_doc(t: &RefreshToken) -> Document {
    doc! {
        "_id": &t.hash,
        "user_id": uuid(t.user_id.0),
        "family": uuid(t.family.0),
        "expires_at": date(t.expires_at),
        "created_at": date(t.created_at),
        "state": LIVE,
    }
}

/// A stored refresh token and its state.
pub(crate) struct StoredRefresh {
    pub(crate) user_id: UserId,
    pub(crate) family: Bson,
    pub(crate) expires_at: chrono::DateTime<chrono::Utc>,
    pub(crate) state: String,
}

pub(crate) fn refresh_from(d: &Document) -> StorageResult<StoredRefresh> {
    let r = Reader::new(REFRESH, d);
    Ok(StoredRefresh {
        user_id: UserId(r.uuid("user_id")?),
        family: uuid(r.uuid("family")?),
        expires_at: r.date("expires_at")?,
        state: r.str("state")?,
    })
}
