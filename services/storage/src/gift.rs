//! `PutGrant` and `RevokeGrant`: the gRPC side of grants (see [`crate::grants`]).

use std::time::Duration;

use cadenza_proto::v1::{PutGrantRequest, PutGrantResponse, RevokeGrantRequest};
use cadenza_runtime::status::{self, Violation};
use tonic::Status;

use crate::grants::{MAX_OBJECTS, Put};
use crate::grpc::{StorageApi, catalog_status, key_status};
use crate::keys;
use crate::signing::safe_download_name;

/// Longest a grant's URL lives: a page asks again when it needs more.
const MAX_URL_SECONDS: u32 = 3600;

/// What a gift URL's signature covers besides its expiry and name: never a
/// key (keys start with `users/`), so a file URL's signature cannot pass for
/// a gift's or the other way round.
pub fn signed_path(token: &str, position: usize) -> String {
    format!("gift:{token}/{position}")
}

impl StorageApi {
    pub(crate) async fn put_grant(
        &self,
        request: PutGrantRequest,
    ) -> Result<PutGrantResponse, Status> {
        let mut violations = Vec::new();
        let id = keys::uuid(&request.grant_id, "grant_id");
        let owner = keys::owner(&request.owner);
        for err in [id.as_ref().err(), owner.as_ref().err()]
            .into_iter()
            .flatten()
        {
            violations.push(Violation::new(err.field, err.reason.clone()));
        }
        if !(1..=MAX_OBJECTS).contains(&request.objects.len()) {
            violations.push(Violation::new(
                "objects",
                format!("name 1 to {MAX_OBJECTS} objects"),
            ));
        }
        if !(1..=MAX_URL_SECONDS).contains(&request.url_seconds) {
            violations.push(Violation::new(
                "url_seconds",
                format!("must be 1 to {MAX_URL_SECONDS}"),
            ));
        }
        let (Ok(id), Ok(owner)) = (id, owner) else {
            return Err(status::invalid_argument(violations));
        };
        if !violations.is_empty() {
            return Err(status::invalid_argument(violations));
        }
        let mut keys = Vec::with_capacity(request.objects.len());
        for object in &request.objects {
            keys::parse_key(&object.key).map_err(key_status)?;
            // Another owner's key is NOT_FOUND, as everywhere in this service.
            if keys::owner_of(&object.key) != owner {
                return Err(status::not_found("OBJECT_NOT_FOUND", "no such object"));
            }
            keys.push(object.key.clone());
        }
        let now = chrono::Utc::now();
        let expires_at = request
            .expire_time
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0));
        let token = match self
            .catalog
            .put_grant(id, owner, &keys, expires_at, now)
            .await
            .map_err(catalog_status)?
        {
            Put::Live { token } => token,
            Put::Revoked => {
                return Err(status::failed_precondition(
                    "GRANT_REVOKED",
                    "this grant was revoked; make a new one",
                ));
            }
            Put::Foreign => return Err(status::not_found("GRANT_NOT_FOUND", "no such grant")),
        };
        let present = self.catalog.present(&keys).await.map_err(catalog_status)?;
        let lifetime = Duration::from_secs(u64::from(request.url_seconds));
        let url_expires = now + chrono::Duration::from_std(lifetime).unwrap_or_default();
        let expires = expires_at.map_or(url_expires, |at| at.min(url_expires));
        let exp = expires.timestamp();
        let urls = request
            .objects
            .iter()
            .enumerate()
            .map(|(position, object)| {
                if !present.contains(&object.key) {
                    return String::new();
                }
                let name = safe_download_name(&object.download_name);
                let sig = self.signer.sign(&signed_path(&token, position), exp, &name);
                format!(
                    "{}/v1/gifts/{token}/{position}?exp={exp}&name={name}&sig={sig}",
                    self.public_url
                )
            })
            .collect();
        Ok(PutGrantResponse {
            urls,
            url_expire_time: Some(cadenza_proto::timestamp(expires)),
        })
    }

    pub(crate) async fn revoke_grant(&self, request: RevokeGrantRequest) -> Result<(), Status> {
        let id = keys::uuid(&request.grant_id, "grant_id").map_err(key_status)?;
        let owner = keys::owner(&request.owner).map_err(key_status)?;
        self.catalog
            .revoke_grant(id, owner, chrono::Utc::now())
            .await
            .map_err(catalog_status)
    }
}
