//! Users and refresh tokens in Postgres.

use cadenza_db::schema::{api_keys, refresh_tokens, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub accepted_terms_version: Option<String>,
    pub terms_accepted_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub plan: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub terms_version: Option<&'a str>,
}

/// Inserts a user; `Ok(None)` when the email is already registered.
pub async fn insert_user(
    conn: &mut AsyncPgConnection,
    user: NewUser<'_>,
    now: DateTime<Utc>,
) -> QueryResult<Option<UserRow>> {
    let inserted = diesel::insert_into(users::table)
        .values((
            users::id.eq(Uuid::now_v7()),
            users::email.eq(user.email),
            users::password_hash.eq(user.password_hash),
            users::created_at.eq(now),
            users::accepted_terms_version.eq(user.terms_version),
            users::terms_accepted_at.eq(user.terms_version.map(|_| now)),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await;
    match inserted {
        Ok(row) => Ok(Some(row)),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(None),
        Err(err) => Err(err),
    }
}

pub async fn find_by_email(
    conn: &mut AsyncPgConnection,
    email: &str,
) -> QueryResult<Option<UserRow>> {
    users::table
        .filter(users::email.eq(email))
        .filter(users::deleted_at.is_null())
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table
        .find(id)
        .filter(users::deleted_at.is_null())
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether `id` is an account that was deleted (dev subjects and unknown ids
/// are not).
pub async fn is_deleted(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        users::table
            .find(id)
            .filter(users::deleted_at.is_not_null()),
    ))
    .get_result(conn)
    .await
}

/// The account a token's subject names; dev-token subjects (not user ids) have none.
pub async fn find_by_subject(
    conn: &mut AsyncPgConnection,
    subject: &str,
) -> QueryResult<Option<UserRow>> {
    match Uuid::parse_str(subject) {
        Ok(id) => find(conn, id).await,
        Err(_) => Ok(None),
    }
}

pub async fn accept_terms(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    version: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<UserRow>> {
    diesel::update(users::table.find(id).filter(users::deleted_at.is_null()))
        .set((
            users::accepted_terms_version.eq(version),
            users::terms_accepted_at.eq(now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

pub async fn insert_refresh_token(
    conn: &mut AsyncPgConnection,
    family_id: Uuid,
    user_id: Uuid,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::id.eq(Uuid::now_v7()),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::user_id.eq(user_id),
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The token with this hash, locked until the transaction ends: two concurrent
/// refreshes with one token are serialised, and the second sees it spent.
pub async fn lock_refresh_token(
    conn: &mut AsyncPgConnection,
    token_hash: &str,
) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn mark_used(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

/// Revokes every live token of a family; returns how many.
pub async fn revoke_family(
    conn: &mut AsyncPgConnection,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)
    .await
}

/// Deletes an account: it can no longer sign in, its sessions and keys stop
/// working, and its email is freed, gone from the audit log and the sign-in
/// throttle too (`crate::purge::forget_email`). The row stays (tombstoned,
/// without the email or password hash) so ledgers and the audit log keep naming
/// a subject, which no longer says who.
pub async fn tombstone(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let email: Option<String> = users::table
        .find(id)
        .filter(users::deleted_at.is_null())
        .select(users::email)
        .first(conn)
        .await
        .optional()?;
    if let Some(email) = email {
        crate::purge::forget_email(conn, id, &email).await?;
    }
    diesel::update(users::table.find(id))
        .set((
            users::deleted_at.eq(now),
            users::email.eq(format!("deleted-{id}")),
            users::password_hash.eq("!"),
        ))
        .execute(conn)
        .await?;
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)
    .await?;
    diesel::update(
        api_keys::table
            .filter(api_keys::user_id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(now))
    .execute(conn)
    .await?;
    Ok(())
}
