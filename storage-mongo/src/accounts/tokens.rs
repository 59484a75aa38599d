//! Single-use tokens (email verification, password reset) and refresh tokens as
//! documents, and the transaction bodies that redeem, rotate and revoke them
//! (run by the [`AccountStore`](marketplace_core::AccountStore) implementation
//! in [`accounts`](super)).
//!
//! - `one_time_tokens`: `{_id: hash, user_id, purpose, expires_at, created_at, used}`.
//! - `refresh_tokens`: `{_id: hash, user_id, family, expires_at, created_at,
//!   state: "live" | "spent" | "revoked"}`; indexed by `{family, state}`, which
//!   finds a login's live token for every authenticated request.

use chrono::{DateTime, Utc};
use marketplace_core::auth::{OneTimeToken, RefreshToken, TokenPurpose};
use marketplace_core::outbox::OutboxMessage;
use marketplace_core::storage::{RotateOutcome, TokenEffect};
use marketplace_core::{StorageResult, TokenFamilyId, UserId};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as DriverError;

use crate::MongoStorage;
use crate::schema::{self, REFRESH};
use crate::transaction::{Body, Fail, Step};
use crate::values::{Reader, date, uuid};

/// A refresh token that may be rotated.
pub(crate) const LIVE: &str = "live";
/// A refresh token already exchanged for its successor.
pub(crate) const SPENT: &str = "spent";
/// A refresh token revoked by logout, reuse, reset or deactivation.
pub(crate) const REVOKED: &str = "revoked";

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
    pub(crate) family_id: TokenFamilyId,
    /// `family_id` as stored, for filters.
    pub(crate) family: Bson,
    pub(crate) expires_at: chrono::DateTime<chrono::Utc>,
    pub(crate) state: String,
}

pub(crate) fn refresh_from(d: &Document) -> StorageResult<StoredRefresh> {
    let r = Reader::new(REFRESH, d);
    let family = r.uuid("family")?;
    Ok(StoredRefresh {
        user_id: UserId(r.uuid("user_id")?),
        family_id: TokenFamilyId(family),
        family: uuid(family),
        expires_at: r.date("expires_at")?,
        state: r.str("state")?,
    })
}

/// What authenticating an access token reads, as one `aggregate` on
/// `refresh_tokens`: a live token of `family` belonging to `user` (by the
/// `{family, state}` index), joined with its user (by `_id`) when that user is
/// active. One document with the user in `user.0`, or none.
pub(crate) fn live_session(user: UserId, family: TokenFamilyId) -> Vec<Document> {
    vec![
        doc! { "$match": {
            "family": uuid(family.0),
            "state": LIVE,
            "user_id": uuid(user.0),
        } },
        doc! { "$limit": 1 },
        doc! { "$lookup": {
            "from": schema::USERS,
            "localField": "user_id",
            "foreignField": "_id",
            "as": "user",
        } },
        doc! { "$match": { "user.active": true } },
        doc! { "$project": { "_id": 0, "user": 1 } },
    ]
}

/// The transaction bodies of the token steps (see [`crate::transaction`]).
impl MongoStorage {
    pub(crate) async fn revoke_user_tokens(
        &self,
        s: &mut ClientSession,
        user: UserId,
    ) -> Result<(), DriverError> {
        self.refresh
            .update_many(
                doc! { "user_id": uuid(user.0) },
                doc! { "$set": { "state": REVOKED } },
            )
            .session(s)
            .await?;
        Ok(())
    }

    pub(crate) async fn insert_token_tx(
        &self,
        s: &mut ClientSession,
        token: &OneTimeToken,
        outbox: &[OutboxMessage],
    ) -> Body<()> {
        self.tokens
            .insert_one(token_doc(token))
            .session(&mut *s)
            .await?;
        self.push_outbox(s, outbox).await?;
        Ok(Step::Commit(()))
    }

    pub(crate) async fn redeem_token_tx(
        &self,
        s: &mut ClientSession,
        hash: &str,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
        effect: &TokenEffect,
    ) -> Body<Option<UserId>> {
        let Some(t) = self
            .tokens
            .find_one_and_update(
                doc! {
                    "_id": hash,
                    "purpose": purpose.as_str(),
                    "used": false,
                    "expires_at": { "$gt": date(now) },
                },
                doc! { "$set": { "used": true } },
            )
            .session(&mut *s)
            .await?
        else {
            return Ok(Step::Abort(None));
        };
        let user_id = UserId(Reader::new(schema::TOKENS, &t).uuid("user_id")?);
        let set = match effect {
            TokenEffect::VerifyEmail => doc! { "email_verified": true },
            TokenEffect::ResetPassword { password_hash } => doc! { "password_hash": password_hash },
        };
        let r = self
            .users
            .update_one(doc! { "_id": uuid(user_id.0) }, doc! { "$set": set })
            .session(&mut *s)
            .await?;
        if r.matched_count == 0 {
            // The account is gone: the token stays unused, nothing changes.
            return Ok(Step::Abort(None));
        }
        if matches!(effect, TokenEffect::ResetPassword { .. }) {
            self.revoke_user_tokens(s, user_id).await?;
        }
        Ok(Step::Commit(Some(user_id)))
    }

    pub(crate) async fn rotate_refresh_tx(
        &self,
        s: &mut ClientSession,
        presented: &str,
        next_hash: &str,
        next_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Body<RotateOutcome> {
        let Some(d) = self
            .refresh
            .find_one(doc! { "_id": presented })
            .session(&mut *s)
            .await?
        else {
            return Ok(Step::Abort(RotateOutcome::Invalid));
        };
        let t = refresh_from(&d)?;
        let user_id = t.user_id;
        let rotated = RotateOutcome::Rotated {
            user_id,
            family: t.family_id,
        };
        match t.state.as_str() {
            LIVE if t.expires_at > now => {
                let r = self
                    .refresh
                    .update_one(
                        doc! { "_id": presented, "state": LIVE },
                        doc! { "$set": { "state": SPENT } },
                    )
                    .session(&mut *s)
                    .await?;
                if r.matched_count == 0 {
                    return Err(Fail::Retry("refresh token changed under the snapshot"));
                }
                let next = refresh_doc(&RefreshToken {
                    hash: next_hash.to_owned(),
                    user_id,
                    family: t.family_id,
                    expires_at: next_expires_at,
                    created_at: now,
                });
                self.refresh.insert_one(next).session(&mut *s).await?;
                Ok(Step::Commit(rotated))
            }
            LIVE => Ok(Step::Abort(RotateOutcome::Invalid)),
            SPENT
                if self
                    .refresh
                    .find_one(doc! { "_id": next_hash, "family": t.family.clone() })
                    .projection(doc! { "_id": 1 })
                    .session(&mut *s)
                    .await?
                    .is_some() =>
            {
                // This very rotation already committed (a commit whose result was
                // unknown, then retried): its successor exists. Not a reuse.
                Ok(Step::Abort(rotated))
            }
            _ => {
                self.refresh
                    .update_many(
                        doc! { "family": t.family },
                        doc! { "$set": { "state": REVOKED } },
                    )
                    .session(&mut *s)
                    .await?;
                Ok(Step::Commit(RotateOutcome::Reused { user_id }))
            }
        }
    }

    pub(crate) async fn revoke_family_tx(&self, s: &mut ClientSession, hash: &str) -> Body<bool> {
        let Some(d) = self
            .refresh
            .find_one(doc! { "_id": hash })
            .session(&mut *s)
            .await?
        else {
            return Ok(Step::Abort(false));
        };
        let t = refresh_from(&d)?;
        self.refresh
            .update_many(
                doc! { "family": t.family },
                doc! { "$set": { "state": REVOKED } },
            )
            .session(&mut *s)
            .await?;
        Ok(Step::Commit(true))
    }
}
