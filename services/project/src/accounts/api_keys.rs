//! API keys: `ApiKeyService` for their owners, `CredentialService` for the gateway.
//!
//! A key is `cdz_ak_{8 hex}_{43 base64url}`: the first part (the prefix) is stored
//! and shown, so owners recognise their keys and lookups use an index; the whole
//! key is stored only as a SHA-256 (256 random bits need no slow hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_db::schema::api_keys;
use cadenza_proto::v1::{
    self, api_key_service_server::ApiKeyService, credential_service_server::CredentialService,
};
use cadenza_runtime::status::Violation;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::store;
use crate::api::Shared;
use crate::error::{ApiError, ApiResult};
use cadenza_auth::mesh::Credential;

const PREFIX: &str = "cdz_ak_";
const MAX_KEYS_PER_USER: i64 = 50;
/// `last_used_at` is written at most this often per key.
const LAST_USE_RESOLUTION_SECONDS: i64 = 60;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn scope_name(scope: v1::ApiKeyScope) -> Option<&'static str> {
    match scope {
        v1::ApiKeyScope::Read => Some("read"),
        v1::ApiKeyScope::Generate => Some("generate"),
        v1::ApiKeyScope::Admin => Some("admin"),
        v1::ApiKeyScope::Unspecified => None,
    }
}

fn scope_value(name: &str) -> v1::ApiKeyScope {
    match name {
        "read" => v1::ApiKeyScope::Read,
        "generate" => v1::ApiKeyScope::Generate,
        "admin" => v1::ApiKeyScope::Admin,
        _ => v1::ApiKeyScope::Unspecified,
    }
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key and its stored prefix.
fn new_key() -> (String, String) {
    let id: [u8; 4] = rand::random();
    let secret: [u8; 32] = rand::random();
    let prefix = format!("{PREFIX}{}", hex::encode(id));
    let key = format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(secret));
    (key, prefix)
}

fn to_proto(row: &ApiKeyRow) -> v1::ApiKey {
    v1::ApiKey {
        name: format!("apiKeys/{}", row.id),
        display_name: row.display_name.clone(),
        prefix: row.prefix.clone(),
        scopes: row.scopes.iter().map(|s| scope_value(s) as i32).collect(),
        create_time: Some(cadenza_proto::timestamp(row.created_at)),
        last_use_time: row.last_used_at.map(cadenza_proto::timestamp),
        revoke_time: row.revoked_at.map(cadenza_proto::timestamp),
    }
}

pub struct ApiKeyApi {
    pub shared: Shared,
}

impl ApiKeyApi {
    /// The caller's account: API keys belong to registered users only.
    async fn owner<T>(&self, request: &Request<T>) -> ApiResult<Uuid> {
        Ok(self.account(request).await?.id)
    }

    async fn account<T>(&self, request: &Request<T>) -> ApiResult<store::UserRow> {
        let subject = self.shared.caller(request).await?;
        let no_account = || {
            ApiError::NotFound(
                "USER_NOT_FOUND",
                "API keys belong to accounts; dev tokens have none".into(),
            )
        };
        let mut conn = self.shared.conn().await?;
        store::find_by_subject(&mut conn, &subject)
            .await?
            .ok_or_else(no_account)
    }
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        let account = self.account(&request).await?;
        let owner = account.id;
        let address = super::audit::client_address(&request);
        // A key never acts beyond its owner's role at its creation; an
        // administrator's key administers only with the scope asked for here,
        // in a signed-in session (the gateway lets no key manage keys).
        let signed_in = crate::api::user(&request)
            .is_ok_and(|user| matches!(user.credential, Credential::Session));
        let request = request.into_inner();
        let mut violations = Vec::new();
        let display_name = request.display_name.trim().to_owned();
        if !(1..=100).contains(&display_name.chars().count()) {
            violations.push(Violation::new(
                "display_name",
                "must be 1 to 100 characters",
            ));
        }
        let mut scopes: Vec<&str> = Vec::new();
        for value in &request.scopes {
            match v1::ApiKeyScope::try_from(*value).ok().and_then(scope_name) {
                Some(name) if !scopes.contains(&name) => scopes.push(name),
                Some(_) => {}
                None => {
                    violations.push(Violation::new("scopes", "must be READ, GENERATE or ADMIN"))
                }
            }
        }
        if scopes.is_empty() && !violations.iter().any(|v| v.field == "scopes") {
            violations.push(Violation::new("scopes", "name at least one scope"));
        }
        if !violations.is_empty() {
            return Err(ApiError::Invalid(violations).into());
        }
        if scopes.contains(&"admin") && !(account.role == "admin" && signed_in) {
            return Err(ApiError::PermissionDenied(
                "ADMIN_SCOPE_REFUSED",
                "only an administrator, signed in, can create a key with the ADMIN scope".into(),
            )
            .into());
        }
        let mut conn = self.shared.conn().await?;
        let live: i64 = api_keys::table
            .filter(api_keys::user_id.eq(owner))
            .filter(api_keys::revoked_at.is_null())
            .count()
            .get_result(&mut conn)
            .await
            .map_err(ApiError::from)?;
        if live >= MAX_KEYS_PER_USER {
            return Err(ApiError::FailedPrecondition(
                "TOO_MANY_API_KEYS",
                format!("an account can hold {MAX_KEYS_PER_USER} active keys; revoke one first"),
            )
            .into());
        }
        let (key, prefix) = new_key();
        let row: ApiKeyRow = diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(Uuid::now_v7()),
                api_keys::user_id.eq(owner),
                api_keys::display_name.eq(&display_name),
                api_keys::prefix.eq(&prefix),
                api_keys::key_hash.eq(key_hash(&key)),
                api_keys::scopes.eq(scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                api_keys::created_at.eq(Utc::now()),
            ))
            .returning(ApiKeyRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(ApiError::from)?;
        super::audit::record(
            &mut conn,
            super::audit::Event {
                actor: &owner.to_string(),
                action: "api_key.create",
                target: &format!("apiKeys/{}", row.id),
                client_address: address.as_deref(),
                detail: Some(&format!("{} ({})", row.prefix, row.scopes.join(", "))),
            },
        )
        .await;
        tracing::info!(user_id = %owner, key = %row.prefix, "API key created");
        Ok(Response::new(v1::CreateApiKeyResponse {
            api_key: Some(to_proto(&row)),
            secret: key,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        let owner = self.owner(&request).await?;
        let mut conn = self.shared.conn().await?;
        let rows: Vec<ApiKeyRow> = api_keys::table
            .filter(api_keys::user_id.eq(owner))
            .order(api_keys::created_at.desc())
            .select(ApiKeyRow::as_select())
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(v1::ListApiKeysResponse {
            api_keys: rows.iter().map(to_proto).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::ApiKey>, Status> {
        let owner = self.owner(&request).await?;
        let address = super::audit::client_address(&request);
        let name = &request.get_ref().name;
        let not_found = || {
            ApiError::NotFound(
                "API_KEY_NOT_FOUND",
                format!("API key `{name}` does not exist"),
            )
        };
        let id = name
            .strip_prefix("apiKeys/")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| ApiError::invalid("name", "must be `apiKeys/{id}`"))?;
        let mut conn = self.shared.conn().await?;
        // Another owner's key is NOT_FOUND, exactly like a missing one.
        let row: ApiKeyRow =
            diesel::update(api_keys::table.find(id).filter(api_keys::user_id.eq(owner)))
                .set(api_keys::revoked_at.eq(diesel::dsl::sql::<
                    diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                >("coalesce(revoked_at, now())")))
                .returning(ApiKeyRow::as_returning())
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(ApiError::from)?
                .ok_or_else(not_found)?;
        super::audit::record(
            &mut conn,
            super::audit::Event {
                actor: &owner.to_string(),
                action: "api_key.revoke",
                target: name,
                client_address: address.as_deref(),
                detail: Some(&row.prefix),
            },
        )
        .await;
        tracing::info!(user_id = %owner, key = %row.prefix, "API key revoked");
        Ok(Response::new(to_proto(&row)))
    }
}

pub struct CredentialApi {
    pub shared: Shared,
}

async fn verify(shared: &Shared, key: &str) -> ApiResult<v1::VerifyApiKeyResponse> {
    let refused = || ApiError::Unauthenticated("the API key is not valid".into());
    let prefix = key
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| format!("{PREFIX}{id}"))
        .ok_or_else(refused)?;
    let mut conn = shared.conn().await?;
    let row: ApiKeyRow = api_keys::table
        .filter(api_keys::prefix.eq(&prefix))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .filter(|row| row.key_hash == key_hash(key))
        .ok_or_else(refused)?;
    let user = store::find(&mut conn, row.user_id)
        .await?
        .ok_or_else(refused)?;
    let now = Utc::now();
    if row
        .last_used_at
        .is_none_or(|at| now - at > chrono::Duration::seconds(LAST_USE_RESOLUTION_SECONDS))
    {
        diesel::update(api_keys::table.find(row.id))
            .set(api_keys::last_used_at.eq(now))
            .execute(&mut conn)
            .await?;
    }
    Ok(v1::VerifyApiKeyResponse {
        subject: user.id.to_string(),
        role: super::api::role(&user.role) as i32,
        scopes: row.scopes.iter().map(|s| scope_value(s) as i32).collect(),
    })
}

#[tonic::async_trait]
impl CredentialService for CredentialApi {
    async fn verify_api_key(
        &self,
        request: Request<v1::VerifyApiKeyRequest>,
    ) -> Result<Response<v1::VerifyApiKeyResponse>, Status> {
        Ok(Response::new(
            verify(&self.shared, &request.into_inner().key).await?,
        ))
    }

    async fn confirm_administrator(
        &self,
        request: Request<v1::ConfirmAdministratorRequest>,
    ) -> Result<Response<v1::ConfirmAdministratorResponse>, Status> {
        super::admin::current_admin(&self.shared, &request).await?;
        Ok(Response::new(v1::ConfirmAdministratorResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_prefix_and_are_random() {
        let (key, prefix) = new_key();
        assert!(key.starts_with(&format!("{prefix}_")));
        assert_eq!(prefix.len(), PREFIX.len() + 8);
        assert_ne!(new_key().0, key);
        assert_eq!(key_hash(&key).len(), 64);
    }
}
