//! Accounts: users and sellers, single-use and refresh tokens, login
//! throttling and addresses. The token documents and the transaction bodies
//! that redeem, rotate and revoke tokens are in [`tokens`].
//!
//! - `users`: `{_id, email (lower-cased, unique), password_hash, role, name,
//!   phone, store_name, seller_status, email_verified, active, created_at,
//!   address_saves}`; `seller_status` is `null` for accounts that are not
//!   sellers. `address_saves` counts the saves of the user's addresses: every
//!   save increments it, so that concurrent saves write one common document and
//!   conflict (see `save_address_tx` below); absent until the first.
//! - `login_failures`: `{_id: key, count, window_started}`: the login attempts
//!   counted under a throttle key in its current window.
//! - `addresses`: `{_id, user_id, seq, name, line1, line2, city, region,
//!   postal_code, country, phone, is_default}`; `seq` is an ObjectId set when the
//!   address is first stored, so "oldest first" survives later edits. An order
//!   embeds the same fields (without `seq`) as its address snapshot.

use std::future::IntoFuture;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use futures::{FutureExt, TryStreamExt};
use marketplace_core::address::Address;
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::fields::Email;
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::storage::{LoginAttempt, RotateOutcome, TokenEffect};
use marketplace_core::{
    AccountStore, AddressId, Role, SellerStatus, StorageError, StorageResult, TokenFamilyId, User,
    UserId,
};
use mongodb::ClientSession;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as DriverError;
use mongodb::options::ReturnDocument;

use crate::MongoStorage;
use crate::error::{duplicate_key, storage_error};
use crate::schema::{self, ADDRESSES, USERS};
use crate::transaction::{Body, Step};
use crate::values::{self, Reader, date, opt, opt_str, uuid};

#[cfg(test)]
mod tests;
pub mod tokens;

/// How often a take that raced other takes of its key is repeated before the
/// call reports `Transient`.
const TAKE_ATTEMPTS: u32 = 8;

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

/// An address as embedded anywhere (its own document, or an order's snapshot).
pub(crate) fn address_fields(a: &Address) -> Document {
    doc! {
        "_id": uuid(a.id.0),
        "user_id": uuid(a.user_id.0),
        "name": &a.name,
        "line1": &a.line1,
        "line2": opt_str(a.line2.as_deref()),
        "city": &a.city,
        "region": opt_str(a.region.as_deref()),
        "postal_code": &a.postal_code,
        "country": &a.country,
        "phone": opt_str(a.phone.as_deref()),
        "is_default": a.is_default,
    }
}

pub(crate) fn address_from_reader(r: Reader<'_>) -> StorageResult<Address> {
    Ok(Address {
        id: AddressId(r.uuid("_id")?),
        user_id: UserId(r.uuid("user_id")?),
        name: r.str("name")?,
        line1: r.str("line1")?,
        line2: r.opt_str("line2")?,
        city: r.str("city")?,
        region: r.opt_str("region")?,
        postal_code: r.str("postal_code")?,
        country: r.str("country")?,
        phone: r.opt_str("phone")?,
        is_default: r.bool("is_default")?,
    })
}

pub(crate) fn address_from(d: &Document) -> StorageResult<Address> {
    address_from_reader(Reader::new(ADDRESSES, d))
}

/// The transaction bodies of this concept's atomic steps (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn create_user_tx(
        &self,
        s: &mut ClientSession,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> Body<()> {
        self.users
            .insert_one(user_doc(user))
            .session(&mut *s)
            .await?;
        if let Some(t) = token {
            self.tokens
                .insert_one(tokens::token_doc(t))
                .session(&mut *s)
                .await?;
        }
        self.push_outbox(s, outbox).await?;
        Ok(Step::Commit(()))
    }

    /// Sets `seller_selling` on every product of `user` from its current state.
    pub(crate) async fn sync_selling_flag(
        &self,
        s: &mut ClientSession,
        user: &User,
    ) -> Result<(), DriverError> {
        self.products
            .update_many(
                doc! { "seller_id": uuid(user.id.0) },
                doc! { "$set": { "seller_selling": user.is_selling() } },
            )
            .session(s)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_seller_status_tx(
        &self,
        s: &mut ClientSession,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> Body<StorageResult<()>> {
        let Some(d) = self
            .users
            .find_one_and_update(
                doc! { "_id": uuid(id.0), "seller_status": { "$in": seller_statuses() } },
                doc! { "$set": { "seller_status": status.as_str() } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
        else {
            return Ok(Step::Abort(Err(StorageError::NotFound)));
        };
        let user = user_from(&d)?;
        self.sync_selling_flag(s, &user).await?;
        self.push_outbox(s, outbox).await?;
        Ok(Step::Commit(Ok(())))
    }

    pub(crate) async fn set_user_active_tx(
        &self,
        s: &mut ClientSession,
        id: UserId,
        active: bool,
    ) -> Body<StorageResult<()>> {
        let Some(d) = self
            .users
            .find_one_and_update(
                doc! { "_id": uuid(id.0) },
                doc! { "$set": { "active": active } },
            )
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
        else {
            return Ok(Step::Abort(Err(StorageError::NotFound)));
        };
        let user = user_from(&d)?;
        if !active {
            self.revoke_user_tokens(s, id).await?;
        }
        if user.seller_status.is_some() {
            self.sync_selling_flag(s, &user).await?;
        }
        Ok(Step::Commit(Ok(())))
    }

    /// Stores an address under the limit of `max_addresses`, keeping one default.
    ///
    /// A snapshot-isolated transaction does not conflict with another over two
    /// inserts of different documents: two concurrent creates would both count
    /// the same addresses and both take the last place. So every save first
    /// increments `address_saves` on the owner's document: of two concurrent
    /// saves of one user, the later writer gets a write conflict (a
    /// `TransientTransactionError`) and is retried on a fresh snapshot, which
    /// counts the address the first one stored and sees its default flag.
    pub(crate) async fn save_address_tx(
        &self,
        s: &mut ClientSession,
        a: &Address,
        max_addresses: u32,
    ) -> Body<()> {
        let owner = self
            .users
            .update_one(
                doc! { "_id": uuid(a.user_id.0) },
                doc! { "$inc": { "address_saves": 1_i64 } },
            )
            .session(&mut *s)
            .await?;
        if owner.matched_count == 0 {
            return Err(StorageError::NotFound.into());
        }
        let mut kept = self
            .addresses
            .find(doc! { "user_id": uuid(a.user_id.0) })
            .projection(doc! { "_id": 1 })
            .session(&mut *s)
            .await?;
        let kept: Vec<Document> = kept.stream(&mut *s).try_collect().await?;
        let id = uuid(a.id.0);
        let present = kept.iter().any(|d| d.get("_id") == Some(&id));
        if !present && kept.len() >= max_addresses as usize {
            return Err(StorageError::Precondition(format!(
                "the user keeps {} addresses already",
                kept.len()
            ))
            .into());
        }
        if a.is_default {
            self.addresses
                .update_many(
                    doc! { "user_id": uuid(a.user_id.0), "_id": { "$ne": uuid(a.id.0) }, "is_default": true },
                    doc! { "$set": { "is_default": false } },
                )
                .session(&mut *s)
                .await?;
        }
        let mut fields = address_fields(a);
        fields.remove("_id");
        fields.remove("user_id");
        self.addresses
            .update_one(
                doc! { "_id": uuid(a.id.0), "user_id": uuid(a.user_id.0) },
                doc! { "$set": fields, "$setOnInsert": { "seq": ObjectId::new() } },
            )
            .upsert(true)
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(()))
    }
}

#[async_trait]
impl AccountStore for MongoStorage {
    // ----- users ----------------------------------------------------------------

    async fn create_user(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(
            &(self, user, token, outbox),
            |s, (store, user, token, outbox)| store.create_user_tx(s, user, *token, outbox).boxed(),
        )
        .await
    }

    async fn user(&self, id: UserId) -> StorageResult<Option<User>> {
        self.users
            .find_one(doc! { "_id": uuid(id.0) })
            .await
            .map_err(storage_error)?
            .map(|d| user_from(&d))
            .transpose()
    }

    async fn session_user(
        &self,
        user: UserId,
        family: TokenFamilyId,
    ) -> StorageResult<Option<User>> {
        // One round trip: the whole answer fits the aggregate's first batch.
        let found: Vec<Document> = self
            .refresh
            .aggregate(tokens::live_session(user, family))
            .await
            .map_err(storage_error)?
            .try_collect()
            .await
            .map_err(storage_error)?;
        let Some(session) = found.first() else {
            return Ok(None);
        };
        match session.get_array("user").ok().and_then(|u| u.first()) {
            Some(Bson::Document(d)) => user_from(d).map(Some),
            _ => Ok(None),
        }
    }

    async fn users(&self, ids: &[UserId]) -> StorageResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Bson> = ids.iter().map(|id| uuid(id.0)).collect();
        Self::find_all(&self.users, doc! { "_id": { "$in": ids } }, None, None)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn user_by_email(&self, email: &str) -> StorageResult<Option<User>> {
        self.users
            .find_one(doc! { "email": email })
            .await
            .map_err(storage_error)?
            .map(|d| user_from(&d))
            .transpose()
    }

    async fn update_profile(
        &self,
        id: UserId,
        name: Option<&str>,
        phone: Option<&str>,
    ) -> StorageResult<Option<User>> {
        let update = doc! { "$set": {
            "name": values::opt_str(name),
            "phone": values::opt_str(phone),
        } };
        self.single(|| {
            self.users
                .find_one_and_update(doc! { "_id": uuid(id.0) }, update.clone())
                .return_document(ReturnDocument::After)
                .into_future()
        })
        .await
        .map_err(storage_error)?
        .map(|d| user_from(&d))
        .transpose()
    }

    async fn set_seller_status(
        &self,
        id: UserId,
        status: SellerStatus,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(
            &(self, id, status, outbox),
            |s, (store, id, status, outbox)| {
                store.set_seller_status_tx(s, *id, *status, outbox).boxed()
            },
        )
        .await?
    }

    async fn set_user_active(&self, id: UserId, active: bool) -> StorageResult<()> {
        self.transaction(&(self, id, active), |s, (store, id, active)| {
            store.set_user_active_tx(s, *id, *active).boxed()
        })
        .await?
    }

    async fn list_sellers(
        &self,
        status: Option<SellerStatus>,
        after: Option<UserId>,
        limit: u32,
    ) -> StorageResult<Vec<User>> {
        let mut filter = match status {
            Some(s) => doc! { "seller_status": s.as_str() },
            None => doc! { "seller_status": { "$in": seller_statuses() } },
        };
        if let Some(a) = after {
            filter.insert("_id", doc! { "$gt": uuid(a.0) });
        }
        Self::find_all(&self.users, filter, Some(doc! { "_id": 1 }), Some(limit))
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    // ----- single-use tokens ----------------------------------------------------

    async fn insert_token(
        &self,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> StorageResult<()> {
        self.transaction(&(self, token, outbox), |s, (store, token, outbox)| {
            store.insert_token_tx(s, token, outbox).boxed()
        })
        .await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> StorageResult<Option<UserId>> {
        self.transaction(
            &(self, hash, purpose, now, effect),
            |s, (store, hash, purpose, now, effect)| {
                store
                    .redeem_token_tx(s, hash, *purpose, *now, effect)
                    .boxed()
            },
        )
        .await
    }

    // ----- refresh tokens -------------------------------------------------------

    async fn insert_refresh_token(&self, token: &RefreshToken) -> StorageResult<()> {
        self.refresh
            .insert_one(tokens::refresh_doc(token))
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StorageResult<RotateOutcome> {
        self.transaction(
            &(self, presented, next_hash, next_expires_at, now),
            |s, (store, presented, next_hash, next_expires_at, now)| {
                store
                    .rotate_refresh_tx(s, presented, next_hash, *next_expires_at, *now)
                    .boxed()
            },
        )
        .await
    }

    async fn revoke_refresh_family(&self, hash: &str) -> StorageResult<bool> {
        self.transaction(&(self, hash), |s, (store, hash)| {
            store.revoke_family_tx(s, hash).boxed()
        })
        .await
    }

    // ----- login throttling -----------------------------------------------------

    async fn take_login_attempt(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window: Duration,
        max: u32,
    ) -> StorageResult<LoginAttempt> {
        let cutoff = date(now - window);
        let decode = |d: &Document| -> StorageResult<(u32, DateTime<Utc>)> {
            let r = Reader::new(schema::LOGIN_FAILURES, d);
            Ok((r.u32("count")?, r.date("window_started")?))
        };
        // Each take is one conditional single-document write: the update
        // matches only while the key's window has room or is over (then it
        // starts a new one), and the insert of a first window only while the key
        // has none (the unique `_id`). Not one upsert: a server may answer an
        // upsert that raced another with no document although it wrote, and a
        // take must know whether it counted.
        let filter = doc! {
            "_id": key,
            "$or": [
                { "count": { "$lt": values::count(max) } },
                { "window_started": { "$lte": cutoff.clone() } },
            ],
        };
        let ended = doc! { "$lte": ["$window_started", cutoff.clone()] };
        let update = vec![doc! { "$set": {
            "count": { "$cond": [ended.clone(), 1_i64, { "$add": ["$count", 1_i64] }] },
            "window_started": { "$cond": [ended, date(now), "$window_started"] },
        } }];
        for _ in 0..TAKE_ATTEMPTS {
            let counted = self
                .single(|| {
                    self.login_failures
                        .find_one_and_update(filter.clone(), update.clone())
                        .return_document(ReturnDocument::After)
                        .into_future()
                })
                .await
                .map_err(storage_error)?;
            if let Some(d) = counted {
                let (count, window_started) = decode(&d)?;
                return Ok(LoginAttempt::Taken {
                    count,
                    window_started,
                });
            }
            let first = doc! { "_id": key, "count": 1_i64, "window_started": date(now) };
            match self
                .single(|| self.login_failures.insert_one(first.clone()).into_future())
                .await
            {
                Ok(_) => {
                    return Ok(LoginAttempt::Taken {
                        count: 1,
                        window_started: now,
                    });
                }
                // The key has a window the update did not match: a full one, or
                // one a racing take has just opened or changed (then again).
                Err(err) if duplicate_key(&err).is_some() => {
                    let current = self
                        .login_failures
                        .find_one(doc! { "_id": key })
                        .await
                        .map_err(storage_error)?;
                    if let Some(d) = current {
                        let (count, window_started) = decode(&d)?;
                        if count >= max && window_started + window > now {
                            return Ok(LoginAttempt::Refused { window_started });
                        }
                    }
                }
                Err(err) => return Err(storage_error(err)),
            }
        }
        Err(StorageError::Transient(
            "login attempt counter kept changing".into(),
        ))
    }

    async fn give_back_login_attempt(
        &self,
        key: &str,
        window_started: DateTime<Utc>,
    ) -> StorageResult<()> {
        // One conditional write on the window the attempt was taken in; giving
        // back its last attempt ends the window, as its absence would.
        let more = doc! { "$gt": ["$count", 1_i64] };
        let update = vec![doc! { "$set": {
            "count": { "$cond": [more.clone(), { "$subtract": ["$count", 1_i64] }, 0_i64] },
            "window_started": { "$cond": [more, "$window_started", date(DateTime::<Utc>::UNIX_EPOCH)] },
        } }];
        self.single(|| {
            self.login_failures
                .update_one(
                    doc! { "_id": key, "window_started": date(window_started) },
                    update.clone(),
                )
                .into_future()
        })
        .await
        .map(|_| ())
        .map_err(storage_error)
    }

    async fn clear_login_attempts(&self, key: &str) -> StorageResult<()> {
        self.login_failures
            .delete_one(doc! { "_id": key })
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    // ----- addresses ------------------------------------------------------------

    async fn addresses(&self, user: UserId) -> StorageResult<Vec<Address>> {
        Self::find_all(
            &self.addresses,
            doc! { "user_id": uuid(user.0) },
            Some(doc! { "seq": 1, "_id": 1 }),
            None,
        )
        .await?
        .iter()
        .map(address_from)
        .collect()
    }

    async fn save_address(&self, address: &Address, max_addresses: u32) -> StorageResult<()> {
        self.transaction(
            &(self, address, max_addresses),
            |s, (store, address, max_addresses)| {
                store.save_address_tx(s, address, *max_addresses).boxed()
            },
        )
        .await
    }

    async fn delete_address(&self, user: UserId, id: AddressId) -> StorageResult<bool> {
        self.addresses
            .delete_one(doc! { "_id": uuid(id.0), "user_id": uuid(user.0) })
            .await
            .map(|r| r.deleted_count > 0)
            .map_err(storage_error)
    }
}
