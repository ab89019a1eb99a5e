//! `cadenza.v1.StorageService`.

use std::pin::Pin;
use std::time::Duration;

use cadenza_proto::v1::storage_service_server::StorageService;
use cadenza_proto::v1::{
    AssetKind, DeleteProjectObjectsRequest, DeleteProjectObjectsResponse, GetObjectRequest,
    GetObjectResponse, ListOwnerObjectsRequest, ListOwnerObjectsResponse, ObjectInfo,
    PutObjectRequest, SignDownloadUrlRequest, SignDownloadUrlResponse, StatObjectRequest,
    put_object_request::Part,
};
use cadenza_runtime::status::{self, Violation};
use futures::Stream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt};
use tonic::{Request, Response, Status, Streaming};

use crate::backend::Backend;
use crate::catalog::{Catalog, CatalogError, ObjectRecord};
use crate::keys::{self, KeyError};
use crate::signing::{UrlSigner, safe_download_name};
use crate::{download, observe, page_token, upload};

const MAX_URL_SECONDS: u32 = 7 * 24 * 3600;
const DEFAULT_PAGE_SIZE: i32 = 100;
const MAX_PAGE_SIZE: i32 = 1000;

pub struct StorageApi {
    pub backend: Backend,
    pub catalog: Catalog,
    pub signer: UrlSigner,
    pub public_url: String,
    pub max_object_bytes: u64,
    /// How long previews stay readable; `None` keeps them.
    pub preview_ttl: Option<chrono::Duration>,
}

pub(crate) fn key_status(err: KeyError) -> Status {
    status::invalid_argument(vec![Violation::new(err.field, err.reason)])
}

fn no_such_object() -> Status {
    status::not_found("OBJECT_NOT_FOUND", "no such object")
}

pub(crate) fn catalog_status(err: CatalogError) -> Status {
    match err {
        CatalogError::ProjectDeleted => status::failed_precondition(
            "PROJECT_DELETED",
            "the project was deleted; nothing more can be stored in it",
        ),
        CatalogError::Pool(_) | CatalogError::Query(_) => {
            tracing::warn!(error = %err, "catalog unavailable");
            status::with_reason(
                tonic::Code::Unavailable,
                "CATALOG_UNAVAILABLE",
                "the storage catalog could not be reached; try again",
            )
        }
    }
}

/// Failures of the object store. Anything but a missing object or a
/// misconfiguration is taken as the store being unreachable: retrying may help.
pub(crate) fn store_status(err: object_store::Error) -> Status {
    match err {
        object_store::Error::NotFound { .. } => no_such_object(),
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::UnknownConfigurationKey { .. } => status::internal(&err),
        other => {
            tracing::warn!(error = %other, "object store unavailable");
            status::with_reason(
                tonic::Code::Unavailable,
                "STORE_UNAVAILABLE",
                "the object store could not be reached; try again",
            )
        }
    }
}

fn info(record: &ObjectRecord) -> ObjectInfo {
    ObjectInfo {
        key: record.key.clone(),
        size_bytes: record.size_bytes,
        sha256: record.sha256.clone(),
        content_type: record.content_type.clone(),
        create_time: Some(cadenza_proto::timestamp(record.created_at)),
        owner: record.owner.clone(),
        expire_time: record.expires_at.map(cadenza_proto::timestamp),
        delete_time: record.deleted_at.map(cadenza_proto::timestamp),
    }
}

/// A key handed back by a caller, checked to be well-formed and `owner`'s. Another
/// owner's key gets the same NOT_FOUND as a missing object: it reveals nothing.
fn owned_key(key: &str, owner: &str) -> Result<Path, Status> {
    keys::parse_key(key).map_err(key_status)?;
    keys::owner(owner).map_err(key_status)?;
    if keys::owner_of(key) != owner {
        return Err(no_such_object());
    }
    Ok(Path::from(key))
}

impl StorageApi {
    /// The catalog's record of `key` if it is `owner`'s and readable now.
    async fn readable(&self, key: &str, owner: &str) -> Result<(Path, ObjectRecord), Status> {
        let path = owned_key(key, owner)?;
        let record = self
            .catalog
            .live(key, chrono::Utc::now())
            .await
            .map_err(catalog_status)?
            .ok_or_else(no_such_object)?;
        Ok((path, record))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for StorageApi {
    async fn put_object(
        &self,
        request: Request<Streaming<PutObjectRequest>>,
    ) -> Result<Response<ObjectInfo>, Status> {
        observe::outcome("put", self.put(request.into_inner()).await).map(Response::new)
    }

    type GetObjectStream = BoxStream<GetObjectResponse>;

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<Self::GetObjectStream>, Status> {
        observe::outcome("get", self.get(request.into_inner()).await).map(Response::new)
    }

    async fn stat_object(
        &self,
        request: Request<StatObjectRequest>,
    ) -> Result<Response<ObjectInfo>, Status> {
        let request = request.into_inner();
        let result = self
            .readable(&request.key, &request.owner)
            .await
            .map(|(_, record)| info(&record));
        observe::outcome("stat", result).map(Response::new)
    }

    async fn delete_project_objects(
        &self,
        request: Request<DeleteProjectObjectsRequest>,
    ) -> Result<Response<DeleteProjectObjectsResponse>, Status> {
        let request = request.into_inner();
        let result = async {
            let owner = keys::owner(&request.owner).map_err(key_status)?;
            let project = keys::uuid(&request.project_id, "project_id").map_err(key_status)?;
            let marked = self
                .catalog
                .delete_project(owner, project, chrono::Utc::now())
                .await
                .map_err(catalog_status)?;
            tracing::info!(owner, %project, objects = marked, "project objects deleted; bytes kept until the purge");
            Ok(DeleteProjectObjectsResponse {
                deleted_count: marked,
            })
        }
        .await;
        observe::outcome("delete", result).map(Response::new)
    }

    async fn sign_download_url(
        &self,
        request: Request<SignDownloadUrlRequest>,
    ) -> Result<Response<SignDownloadUrlResponse>, Status> {
        observe::outcome("sign", self.sign(request.into_inner()).await).map(Response::new)
    }

    async fn list_owner_objects(
        &self,
        request: Request<ListOwnerObjectsRequest>,
    ) -> Result<Response<ListOwnerObjectsResponse>, Status> {
        observe::outcome("list_owner", self.list_owner(request.into_inner()).await)
            .map(Response::new)
    }

    async fn put_grant(
        &self,
        request: Request<cadenza_proto::v1::PutGrantRequest>,
    ) -> Result<Response<cadenza_proto::v1::PutGrantResponse>, Status> {
        observe::outcome(
            "put_grant",
            StorageApi::put_grant(self, request.into_inner()).await,
        )
        .map(Response::new)
    }

    async fn revoke_grant(
        &self,
        request: Request<cadenza_proto::v1::RevokeGrantRequest>,
    ) -> Result<Response<cadenza_proto::v1::RevokeGrantResponse>, Status> {
        observe::outcome(
            "revoke_grant",
            StorageApi::revoke_grant(self, request.into_inner()).await,
        )
        .map(|()| Response::new(cadenza_proto::v1::RevokeGrantResponse {}))
    }
}

impl StorageApi {
    async fn put(&self, mut stream: Streaming<PutObjectRequest>) -> Result<ObjectInfo, Status> {
        let header = match stream.message().await? {
            Some(PutObjectRequest {
                part: Some(Part::Header(header)),
            }) => header,
            _ => {
                return Err(status::invalid_argument(vec![Violation::new(
                    "header",
                    "the first message must carry the header",
                )]));
            }
        };
        let upload = upload::Declared::check(header, self.max_object_bytes)?;
        if self
            .catalog
            .project_deleted(&upload.locator.owner, upload.project_id)
            .await
            .map_err(catalog_status)?
        {
            return Err(catalog_status(CatalogError::ProjectDeleted));
        }
        let path = Path::from(upload.key.as_str());
        upload::receive(&self.backend.store, &path, &upload, &mut stream).await?;

        let now = chrono::Utc::now();
        let record = ObjectRecord {
            key: upload.key.clone(),
            owner: upload.locator.owner.clone(),
            project_id: upload.project_id,
            run_id: upload.run_id,
            size_bytes: upload.size as i64,
            sha256: upload.sha256.clone(),
            content_type: upload.content_type.clone(),
            created_at: now,
            expires_at: (upload.kind == AssetKind::Preview)
                .then_some(self.preview_ttl)
                .flatten()
                .map(|ttl| now + ttl),
            deleted_at: None,
        };
        if let Err(err) = self.catalog.record(&record).await {
            // Unrecorded bytes are never served; remove them rather than leave
            // them for no one.
            if let Err(delete) = self.backend.store.delete(&path).await {
                tracing::warn!(key = %upload.key, error = %delete, "removing unrecorded bytes failed");
            }
            return Err(catalog_status(err));
        }
        metrics::counter!("cadenza_storage_bytes_in_total").increment(upload.size);
        tracing::debug!(key = %upload.key, bytes = upload.size, "object stored");
        Ok(info(&record))
    }

    async fn get(&self, request: GetObjectRequest) -> Result<BoxStream<GetObjectResponse>, Status> {
        let (path, record) = self.readable(&request.key, &request.owner).await?;
        let size = record.size_bytes as u64;
        if request.offset >= size && !(request.offset == 0 && size == 0) {
            return Err(status::with_reason(
                tonic::Code::OutOfRange,
                "RANGE_NOT_SATISFIABLE",
                format!(
                    "offset {} is past the end of the object ({size} bytes)",
                    request.offset
                ),
            ));
        }
        let end = match request.length {
            0 => size,
            length => request.offset.saturating_add(length).min(size),
        };
        let options = GetOptions {
            range: Some(GetRange::Bounded(request.offset..end)),
            ..GetOptions::default()
        };
        let result = match self.backend.store.get_opts(&path, options).await {
            Err(object_store::Error::NotFound { .. }) => {
                tracing::error!(key = %record.key, "catalogued object has no bytes in the store");
                return Err(status::with_reason(
                    tonic::Code::DataLoss,
                    "OBJECT_BYTES_MISSING",
                    "the object's bytes are missing from the store",
                ));
            }
            other => other.map_err(store_status)?,
        };
        let first = GetObjectResponse {
            info: Some(info(&record)),
            chunk: bytes::Bytes::new(),
        };
        Ok(Box::pin(download::chunked(
            first,
            download::payload_stream(result),
        )))
    }

    async fn sign(
        &self,
        request: SignDownloadUrlRequest,
    ) -> Result<SignDownloadUrlResponse, Status> {
        if !(1..=MAX_URL_SECONDS).contains(&request.expire_seconds) {
            return Err(status::invalid_argument(vec![Violation::new(
                "expire_seconds",
                format!("must be 1 to {MAX_URL_SECONDS}"),
            )]));
        }
        // Signing a missing object would hand out a URL that can only 404.
        let (_, record) = self.readable(&request.key, &request.owner).await?;
        let now = chrono::Utc::now();
        let requested = now + chrono::Duration::seconds(i64::from(request.expire_seconds));
        // A URL never outlives the object: a presigned S3 URL bypasses the catalog.
        let expires = record.expires_at.map_or(requested, |at| at.min(requested));
        let name = safe_download_name(if request.download_name.is_empty() {
            request.key.rsplit('/').next().unwrap_or("download")
        } else {
            &request.download_name
        });
        let lifetime = (expires - now).to_std().unwrap_or(Duration::from_secs(1));
        if let Some(presigned) = self
            .backend
            .presigned_url(&request.key, lifetime, &name)
            .await
        {
            return Ok(SignDownloadUrlResponse {
                url: presigned.map_err(store_status)?,
                expire_time: Some(cadenza_proto::timestamp(expires)),
            });
        }
        let exp = expires.timestamp();
        let sig = self.signer.sign(&request.key, exp, &name);
        Ok(SignDownloadUrlResponse {
            url: format!(
                "{}/v1/files/{}?exp={exp}&name={name}&sig={sig}",
                self.public_url, request.key
            ),
            expire_time: Some(cadenza_proto::timestamp(expires)),
        })
    }

    async fn list_owner(
        &self,
        request: ListOwnerObjectsRequest,
    ) -> Result<ListOwnerObjectsResponse, Status> {
        let owner = keys::owner(&request.owner).map_err(key_status)?;
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(status::invalid_argument(vec![Violation::new(
                    "page_size",
                    format!("must be 0 (for {DEFAULT_PAGE_SIZE}) to {MAX_PAGE_SIZE}"),
                )]));
            }
        };
        let after = page_token::decode(&request.page_token, owner)?;
        let page = self
            .catalog
            .owner_objects(
                owner,
                after.as_deref(),
                i64::from(page_size),
                chrono::Utc::now(),
            )
            .await
            .map_err(catalog_status)?;
        Ok(ListOwnerObjectsResponse {
            objects: page.objects.iter().map(info).collect(),
            next_page_token: page
                .next_after
                .as_deref()
                .map(page_token::encode)
                .unwrap_or_default(),
            object_count: page.object_count,
            total_bytes: page.total_bytes,
            pending_purge_bytes: page.pending_purge_bytes,
        })
    }
}
