//! The gRPC services `project` serves to the gateway.
//!
//! The caller's identity arrives in the call's mesh assertion: the gateway
//! verified the user's token or key and signed who they are; the mesh guard
//! (`cadenza_runtime::mesh_auth`) checked that signature, and that the caller is
//! the gateway, before any handler runs. `project` never verifies access tokens
//! itself, and believes no header that names a user.

pub mod assets;
pub mod convert;
pub mod gift;
pub mod projects;
pub mod provenance;
pub mod shares;
pub mod tracks;
pub mod usage;
pub mod validate;

use std::sync::Arc;

use cadenza_auth::mesh::{Assertion, User};
use cadenza_db::{Pool, PooledConnection};
use cadenza_proto::v1::storage_service_client::StorageServiceClient;
use cadenza_telemetry::grpc::TracedChannel;
use tokio::sync::Notify;
use tonic::Request;

use crate::error::{ApiError, ApiResult};
use crate::orchestrator::Orchestrator;
use crate::watch::WatchHub;

/// What every handler shares.
#[derive(Clone)]
pub struct Shared {
    pub pool: Pool,
    pub orchestrator: Orchestrator,
    pub relay_wake: Arc<Notify>,
    pub hub: WatchHub,
    pub storage: StorageServiceClient<TracedChannel>,
    pub max_duration_seconds: u32,
    /// Bounds the open `WatchProject` streams.
    pub streams: Arc<crate::watch_limits::StreamLimits>,
}

impl Shared {
    pub async fn conn(&self) -> ApiResult<PooledConnection> {
        Ok(self.pool.get().await?)
    }

    /// The subject the gateway authenticated, unless it names a deleted account.
    ///
    /// The gateway verifies access tokens without asking anyone, so a token issued
    /// before its user deleted the account stays valid for its last few minutes:
    /// this refusal, on every call, is what ends it at once.
    pub async fn caller<T>(&self, request: &Request<T>) -> ApiResult<String> {
        let user = user(request)?;
        // Accounts are named by their UUID; a dev token never acts for one,
        // whatever the gateway let through.
        if matches!(user.credential, cadenza_auth::mesh::Credential::DevToken)
            && uuid::Uuid::parse_str(&user.subject).is_ok()
        {
            return Err(ApiError::Unauthenticated(
                "a dev token cannot act for a registered account".into(),
            ));
        }
        let subject = user.subject.clone();
        if let Ok(id) = uuid::Uuid::parse_str(&subject) {
            let mut conn = self.conn().await?;
            if crate::accounts::store::is_deleted(&mut conn, id).await? {
                return Err(ApiError::Unauthenticated(
                    "this account has been deleted".into(),
                ));
            }
        }
        Ok(subject)
    }
}

/// The user the gateway authenticated, as its verified assertion names them.
pub fn user<T>(request: &Request<T>) -> ApiResult<&User> {
    request
        .extensions()
        .get::<Assertion>()
        .and_then(|assertion| assertion.user.as_ref())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the request carries no authenticated caller".into())
        })
}

/// The subject the gateway authenticated.
pub fn caller<T>(request: &Request<T>) -> ApiResult<String> {
    user(request).map(|user| user.subject.clone())
}

/// Runs `f` with the idempotency key `(owner, method, request_id)` claimed for
/// `resource` in the caller's transaction. Returns the resource of an earlier
/// request with the same key instead when there is one.
pub async fn claim_request(
    conn: &mut cadenza_db::AsyncPgConnection,
    owner: &str,
    method: &str,
    request_id: &str,
    request_hash: &str,
    resource: uuid::Uuid,
) -> ApiResult<Option<uuid::Uuid>> {
    use cadenza_db::schema::idempotency_keys as keys;
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    // A concurrent claim of the same key waits here until the other transaction
    // ends, then sees its row: so 50 identical requests make exactly one resource.
    let inserted = diesel::insert_into(keys::table)
        .values((
            keys::owner.eq(owner),
            keys::method.eq(method),
            keys::request_id.eq(request_id),
            keys::request_hash.eq(request_hash),
            keys::resource_id.eq(resource),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    let (hash, existing): (String, uuid::Uuid) = keys::table
        .find((owner, method, request_id))
        .select((keys::request_hash, keys::resource_id))
        .first(conn)
        .await?;
    if hash != request_hash {
        return Err(ApiError::AlreadyExists(
            "REQUEST_ID_REUSED",
            "this request_id was already used for a different request".into(),
        ));
    }
    Ok(Some(existing))
}

/// Hex SHA-256 of a request's encoding, to tell a retry from a different request.
pub fn request_hash(message: &impl prost::Message) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(message.encode_to_vec()))
}
