//! Grants: what the holder of a gift link may read, without learning whose it
//! is.
//!
//! A grant lists some of one owner's objects. Its URLs (`/v1/gifts/{token}/{n}`)
//! carry only a random token and a position, signed with an expiry, and are
//! served by this service whatever the backend, so the catalog is asked on
//! every request: a revoked or expired grant, or a deleted object, answers at
//! once. A live grant keeps its objects from expiring (the lifecycle sweep
//! passes them by), so a gift page outlives the previews it plays.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_db::schema::{storage_grants, storage_objects};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::catalog::{Catalog, CatalogError, ObjectRecord};

/// Objects one grant may name.
pub const MAX_OBJECTS: usize = 16;
/// Revoked or expired grants are forgotten this long after they ended (their
/// rows name an owner and their keys).
pub const FORGET_AFTER: chrono::Duration = chrono::Duration::days(1);

/// What `put` made of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// The grant is live; its URLs carry this token.
    Live { token: String },
    /// The grant was revoked earlier: nothing changed.
    Revoked,
    /// The id belongs to another owner's grant.
    Foreign,
}

#[derive(QueryableByName)]
struct Token {
    #[diesel(sql_type = Text)]
    token: String,
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` could be one this service made (anything else is not looked up).
pub fn plausible_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Catalog {
    /// Creates the grant `id` of `owner` on `keys`, or updates its keys and
    /// expiry.
    pub async fn put_grant(
        &self,
        id: Uuid,
        owner: &str,
        keys: &[String],
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Put, CatalogError> {
        let mut conn = self.conn().await?;
        // One statement: a new grant, or the same owner's live grant updated;
        // another owner's, or a revoked one, is left as it is (no row back).
        let written: Option<Token> = diesel::sql_query(
            "INSERT INTO storage_grants (id, token, owner, keys, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET keys = excluded.keys, expires_at = excluded.expires_at \
             WHERE storage_grants.owner = excluded.owner AND storage_grants.revoked_at IS NULL \
             RETURNING token",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<Text, _>(new_token())
        .bind::<Text, _>(owner)
        .bind::<Array<Text>, _>(keys)
        .bind::<Timestamptz, _>(now)
        .bind::<Nullable<Timestamptz>, _>(expires_at)
        .get_result(&mut conn)
        .await
        .optional()?;
        if let Some(Token { token }) = written {
            return Ok(Put::Live { token });
        }
        let existing: Option<String> = storage_grants::table
            .find(id)
            .select(storage_grants::owner)
            .first(&mut conn)
            .await
            .optional()?;
        Ok(match existing {
            Some(other) if other != owner => Put::Foreign,
            _ => Put::Revoked,
        })
    }

    /// Revokes `owner`'s grant `id` (idempotent; another owner's is untouched).
    pub async fn revoke_grant(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CatalogError> {
        let mut conn = self.conn().await?;
        diesel::update(
            storage_grants::table
                .find(id)
                .filter(storage_grants::owner.eq(owner))
                .filter(storage_grants::revoked_at.is_null()),
        )
        .set(storage_grants::revoked_at.eq(now))
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// The object at `position` of the live grant `token`, if it is still
    /// there (expired objects included: the grant keeps them).
    pub async fn granted(
        &self,
        token: &str,
        position: usize,
        now: DateTime<Utc>,
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let mut conn = self.conn().await?;
        let keys: Option<Vec<String>> = storage_grants::table
            .filter(storage_grants::token.eq(token))
            .filter(storage_grants::revoked_at.is_null())
            .filter(
                storage_grants::expires_at
                    .is_null()
                    .or(storage_grants::expires_at.gt(now)),
            )
            .select(storage_grants::keys)
            .first(&mut conn)
            .await
            .optional()?;
        let Some(key) = keys.and_then(|keys| keys.into_iter().nth(position)) else {
            return Ok(None);
        };
        let record = storage_objects::table
            .find(&key)
            .filter(storage_objects::deleted_at.is_null())
            .select(ObjectRecord::as_select())
            .first(&mut conn)
            .await
            .optional()?;
        Ok(record)
    }

    /// The objects among `keys` still there to be granted (not deleted,
    /// bytes not purged), by key.
    pub async fn present(&self, keys: &[String]) -> Result<Vec<String>, CatalogError> {
        let mut conn = self.conn().await?;
        Ok(storage_objects::table
            .filter(storage_objects::key.eq_any(keys))
            .filter(storage_objects::deleted_at.is_null())
            .select(storage_objects::key)
            .load(&mut conn)
            .await?)
    }

    /// Forgets grants that ended (revoked or expired) before `before`.
    pub async fn forget_ended_grants(&self, before: DateTime<Utc>) -> Result<u64, CatalogError> {
        let mut conn = self.conn().await?;
        let forgotten = diesel::delete(
            storage_grants::table.filter(
                storage_grants::revoked_at
                    .lt(before)
                    .or(storage_grants::expires_at.lt(before)),
            ),
        )
        .execute(&mut conn)
        .await?;
        Ok(forgotten as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_recognised() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(plausible_token(&a));
        assert!(!plausible_token("users/alice/projects"));
    }
}
