//! Accounts, once for both dialects: users, addresses, single-use and refresh
//! tokens, login attempts.

use chrono::{DateTime, Utc};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken};
use marketplace_core::fields::Email;
use marketplace_core::storage::LoginAttempt;
use marketplace_core::{Role, SellerStatus, StorageError, StorageResult, User, UserId};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Binds, Columns, corrupt};
use crate::dialect::Dialect;

/// The columns of `users`, in the order [`insert_user`] binds them.
const USER_COLUMNS: &str = "id, email, password_hash, role, name, phone, store_name, \
     seller_status, email_verified, active, created_at";

/// The columns of `addresses` but its insertion order (`seq`).
const ADDRESS_COLUMNS: &str =
    "id, user_id, name, line1, line2, city, region, postal_code, country, phone, is_default";

/// Stores a new user.
pub(crate) fn insert_user<D: Dialect>(u: &User) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("INSERT INTO users ({USER_COLUMNS}) "));
    qb.push_values([u], |mut b, u| {
        (&mut b)
            .uuid(u.id.0)
            .text(u.email.as_str())
            .text(&u.password_hash)
            .text(u.role.as_str())
            .opt_text(u.name.as_deref())
            .opt_text(u.phone.as_deref())
            .opt_text(u.store_name.as_deref())
            .opt_text(u.seller_status.map(|s| s.as_str()))
            .flag(u.email_verified)
            .flag(u.active)
            .time(u.created_at);
    });
    qb
}

pub(crate) fn user<R: Columns>(r: &R) -> StorageResult<User> {
    let email = r.text("email")?;
    let role = r.text("role")?;
    Ok(User {
        id: r.uuid("id")?.into(),
        email: Email::parse(&email).map_err(|e| corrupt("email", e.message))?,
        password_hash: r.text("password_hash")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        name: r.opt_text("name")?,
        phone: r.opt_text("phone")?,
        store_name: r.opt_text("store_name")?,
        seller_status: r
            .opt_text("seller_status")?
            .map(|s| SellerStatus::parse(&s).ok_or_else(|| corrupt("seller status", &s)))
            .transpose()?,
        email_verified: r.flag("email_verified")?,
        active: r.flag("active")?,
        created_at: r.time("created_at")?,
    })
}

/// Inserts an address, or replaces the one with its id when it belongs to the
/// same user (another user's address is left alone).
pub(crate) fn upsert_address<D: Dialect>(a: &Address) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(format!("INSERT INTO addresses ({ADDRESS_COLUMNS}) "));
    qb.push_values([a], |mut b, a| {
        (&mut b)
            .uuid(a.id.0)
            .uuid(a.user_id.0)
            .text(&a.name)
            .text(&a.line1)
            .opt_text(a.line2.as_deref())
            .text(&a.city)
            .opt_text(a.region.as_deref())
            .text(&a.postal_code)
            .text(&a.country)
            .opt_text(a.phone.as_deref())
            .flag(a.is_default);
    });
    qb.push(
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, line1 = excluded.line1, \
         line2 = excluded.line2, city = excluded.city, region = excluded.region, \
         postal_code = excluded.postal_code, country = excluded.country, \
         phone = excluded.phone, is_default = excluded.is_default \
         WHERE addresses.user_id = excluded.user_id",
    );
    qb
}

/// Whether an address may be stored, from the user's addresses as counted inside
/// the saving transaction (after it serialised against every other save of the
/// user): columns `kept` (how many the user has) and `present` (how many of them
/// have the saved address's id, 0 or 1). Only a new address can break the limit.
pub(crate) fn address_limit<R: Columns>(r: &R, max_addresses: u32) -> StorageResult<()> {
    let (kept, present) = (r.int("kept")?, r.int("present")?);
    if present == 0 && kept >= i64::from(max_addresses) {
        return Err(StorageError::Precondition(format!(
            "the user keeps {kept} addresses already"
        )));
    }
    Ok(())
}

pub(crate) fn address<R: Columns>(r: &R) -> StorageResult<Address> {
    Ok(Address {
        id: r.uuid("id")?.into(),
        user_id: r.uuid("user_id")?.into(),
        name: r.text("name")?,
        line1: r.text("line1")?,
        line2: r.opt_text("line2")?,
        city: r.text("city")?,
        region: r.opt_text("region")?,
        postal_code: r.text("postal_code")?,
        country: r.text("country")?,
        phone: r.opt_text("phone")?,
        is_default: r.flag("is_default")?,
    })
}

/// Stores a single-use token, unused, replacing one with the same hash.
pub(crate) fn upsert_token<D: Dialect>(t: &OneTimeToken) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO one_time_tokens (hash, user_id, purpose, expires_at, created_at, used) ",
    );
    qb.push_values([t], |mut b, t| {
        (&mut b)
            .text(&t.hash)
            .uuid(t.user_id.0)
            .text(t.purpose.as_str())
            .time(t.expires_at)
            .time(t.created_at)
            .flag(false);
    });
    qb.push(
        " ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
         purpose = excluded.purpose, expires_at = excluded.expires_at, \
         created_at = excluded.created_at, used = excluded.used",
    );
    qb
}

/// A live refresh token of `family`, replacing one with the same hash.
pub(crate) struct LiveRefresh<'a> {
    pub(crate) hash: &'a str,
    pub(crate) user_id: UserId,
    pub(crate) family: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
}

impl<'a> LiveRefresh<'a> {
    /// A token as a login stores it.
    pub(crate) fn new(token: &'a RefreshToken) -> LiveRefresh<'a> {
        LiveRefresh {
            hash: &token.hash,
            user_id: token.user_id,
            family: token.family.0,
            expires_at: token.expires_at,
            created_at: token.created_at,
        }
    }
}

/// Stores a live refresh token, replacing one with the same hash.
pub(crate) fn upsert_refresh<D: Dialect>(t: &LiveRefresh<'_>) -> QueryBuilder<D> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO refresh_tokens (hash, user_id, family, state, expires_at, created_at) ",
    );
    qb.push_values([t], |mut b, t| {
        (&mut b)
            .text(t.hash)
            .uuid(t.user_id.0)
            .uuid(t.family)
            .text("live")
            .time(t.expires_at)
            .time(t.created_at);
    });
    qb.push(
        " ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, \
         family = excluded.family, state = excluded.state, expires_at = excluded.expires_at, \
         created_at = excluded.created_at",
    );
    qb
}

/// The columns a refresh rotation reads of the presented token.
pub(crate) struct PresentedRefresh {
    pub(crate) user_id: UserId,
    pub(crate) family: Uuid,
    pub(crate) state: String,
    pub(crate) expires_at: DateTime<Utc>,
}

pub(crate) fn presented_refresh<R: Columns>(r: &R) -> StorageResult<PresentedRefresh> {
    Ok(PresentedRefresh {
        user_id: UserId(r.uuid("user_id")?),
        family: r.uuid("family")?,
        state: r.text("state")?,
        expires_at: r.time("expires_at")?,
    })
}

/// What rotating a presented refresh token does.
pub(crate) enum Rotation {
    /// Live and unexpired: spend it and store its successor.
    Rotate,
    /// Live but expired: nothing changes.
    Expired,
    /// Already spent or revoked: revoke the whole family.
    RevokeFamily,
}

impl PresentedRefresh {
    /// The live token that replaces this one in its family.
    pub(crate) fn successor<'a>(
        &self,
        hash: &'a str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> LiveRefresh<'a> {
        LiveRefresh {
            hash,
            user_id: self.user_id,
            family: self.family,
            expires_at,
            created_at: now,
        }
    }

    pub(crate) fn rotation(&self, now: DateTime<Utc>) -> Rotation {
        match self.state.as_str() {
            "live" if self.expires_at > now => Rotation::Rotate,
            "live" => Rotation::Expired,
            _ => Rotation::RevokeFamily,
        }
    }
}

/// The window start a key's row gets when the attempts in its window are all
/// given back. The table keeps `count > 0`, so an emptied window is stored as
/// one attempt in a window that ended long ago: the next attempt starts a new
/// window, exactly as if the row were gone, and no give-back of a real window
/// can match it.
pub(crate) const EMPTIED_WINDOW: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

/// A row of `login_failures` answering a take: `count`, `window_started` and
/// `taken`, whether the attempt was counted.
pub(crate) fn login_attempt<R: Columns>(r: &R) -> StorageResult<LoginAttempt> {
    let window_started = r.time("window_started")?;
    Ok(if r.flag("taken")? {
        LoginAttempt::Taken {
            count: r.count("count")?,
            window_started,
        }
    } else {
        LoginAttempt::Refused { window_started }
    })
}
