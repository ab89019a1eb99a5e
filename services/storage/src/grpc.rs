//! `cadenza.v1.StorageService`.

use std::pin::Pin;
use std::time::Duration;

use cadenza_proto::v1::storage_service_server::StorageService;
use cadenza_proto::v1::{
    DeleteProjectObjectsRequest, DeleteProjectObjectsResponse, GetObjectRequest, GetObjectResponse,
    ObjectInfo, PutObjectRequest, SignDownloadUrlRequest, SignDownloadUrlResponse,
    StatObjectRequest, put_object_request::Part,
};
use cadenza_runtime::status::{self, Violation};
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};

use crate::backend::Backend;
use crate::keys::{self, KeyError};
use crate::signing::{UrlSigner, safe_download_name};

/// Parts of a multipart upload: S3 requires at least 5 MiB for all but the last.
const PART_BYTES: usize = 8 << 20;
/// Chunks sent back by GetObject.
const READ_CHUNK: usize = 256 << 10;
const MAX_URL_SECONDS: u32 = 7 * 24 * 3600;

pub struct StorageApi {
    pub backend: Backend,
    pub signer: UrlSigner,
    pub public_url: String,
    pub max_object_bytes: u64,
}

fn key_status(err: KeyError) -> Status {
    status::invalid_argument(vec![Violation::new(err.field, err.reason)])
}

fn store_status(err: object_store::Error) -> Status {
    match err {
        object_store::Error::NotFound { .. } => {
            status::not_found("OBJECT_NOT_FOUND", "no such object")
        }
        other => status::internal(&other),
    }
}

fn info(
    key: &str,
    size: u64,
    sha256: String,
    created: chrono::DateTime<chrono::Utc>,
) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        sha256,
        content_type: keys::content_type_for(key).to_owned(),
        create_time: Some(cadenza_proto::timestamp(created)),
    }
}

/// A key handed back by a caller, checked to be well-formed and `owner`'s. Another
/// owner's key gets the same NOT_FOUND as a missing object: it reveals nothing.
fn owned_key(key: &str, owner: &str) -> Result<Path, Status> {
    keys::parse_key(key).map_err(key_status)?;
    keys::owner(owner).map_err(key_status)?;
    if keys::owner_of(key) != owner {
        return Err(status::not_found("OBJECT_NOT_FOUND", "no such object"));
    }
    Ok(Path::from(key))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl StorageService for StorageApi {
    async fn put_object(
        &self,
        request: Request<Streaming<PutObjectRequest>>,
    ) -> Result<Response<ObjectInfo>, Status> {
        let mut stream = request.into_inner();
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
        let locator = header.locator.unwrap_or_default();
        let key = keys::object_key(&locator).map_err(key_status)?;
        let mut violations = Vec::new();
        let expected_size = u64::try_from(header.size_bytes).unwrap_or(0);
        if expected_size == 0 || expected_size > self.max_object_bytes {
            violations.push(Violation::new(
                "size_bytes",
                format!("must be 1 to {} bytes", self.max_object_bytes),
            ));
        }
        let expected_sha = header.sha256.to_ascii_lowercase();
        if expected_sha.len() != 64 || !expected_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            violations.push(Violation::new("sha256", "must be 64 hex digits"));
        }
        if !violations.is_empty() {
            return Err(status::invalid_argument(violations));
        }

        let path = Path::from(key.as_str());
        let mut upload = self
            .backend
            .store
            .put_multipart(&path)
            .await
            .map_err(store_status)?;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut buffer: Vec<u8> = Vec::with_capacity(PART_BYTES.min(expected_size as usize));
        let outcome: Result<(), Status> = async {
            while let Some(message) = stream.message().await? {
                let Some(Part::Chunk(chunk)) = message.part else {
                    return Err(status::invalid_argument(vec![Violation::new(
                        "header",
                        "only the first message may carry a header",
                    )]));
                };
                received += chunk.len() as u64;
                if received > expected_size {
                    return Err(status::invalid_argument(vec![Violation::new(
                        "size_bytes",
                        format!("more bytes arrived than the declared {expected_size}"),
                    )]));
                }
                hasher.update(&chunk);
                buffer.extend_from_slice(&chunk);
                if buffer.len() >= PART_BYTES {
                    let part = std::mem::take(&mut buffer);
                    upload
                        .put_part(PutPayload::from(part))
                        .await
                        .map_err(store_status)?;
                }
            }
            if received != expected_size {
                return Err(status::invalid_argument(vec![Violation::new(
                    "size_bytes",
                    format!("declared {expected_size} bytes but {received} arrived"),
                )]));
            }
            let actual = hex::encode(hasher.finalize_reset());
            if actual != expected_sha {
                return Err(status::invalid_argument(vec![Violation::new(
                    "sha256",
                    "the bytes do not match the declared checksum",
                )]));
            }
            if !buffer.is_empty() {
                let part = std::mem::take(&mut buffer);
                upload
                    .put_part(PutPayload::from(part))
                    .await
                    .map_err(store_status)?;
            }
            Ok(())
        }
        .await;
        if let Err(status) = outcome {
            // Nothing half-written stays behind.
            if let Err(err) = upload.abort().await {
                tracing::warn!(%key, error = %err, "aborting an upload failed");
            }
            metrics::counter!("cadenza_storage_errors_total", "operation" => "put", "kind" => "rejected").increment(1);
            return Err(status);
        }
        upload.complete().await.map_err(store_status)?;
        metrics::counter!("cadenza_storage_bytes_in_total").increment(received);
        tracing::debug!(%key, bytes = received, "object stored");
        Ok(Response::new(info(
            &key,
            received,
            expected_sha,
            chrono::Utc::now(),
        )))
    }

    type GetObjectStream = BoxStream<GetObjectResponse>;

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<Self::GetObjectStream>, Status> {
        let request = request.into_inner();
        let path = owned_key(&request.key, &request.owner)?;
        let key = request.key;
        let range = match (request.offset, request.length) {
            (0, 0) => None,
            (offset, 0) => Some(GetRange::Offset(offset)),
            (offset, length) => Some(GetRange::Bounded(offset..offset.saturating_add(length))),
        };
        let options = GetOptions {
            range,
            ..GetOptions::default()
        };
        let result = match self.backend.store.get_opts(&path, options).await {
            Err(object_store::Error::NotFound { .. }) => {
                return Err(status::not_found("OBJECT_NOT_FOUND", "no such object"));
            }
            // A range starting past the end of the object.
            Err(err)
                if request.offset > 0 && matches!(err, object_store::Error::Generic { .. }) =>
            {
                return Err(status::with_reason(
                    tonic::Code::OutOfRange,
                    "RANGE_NOT_SATISFIABLE",
                    format!("offset {} is past the end of the object", request.offset),
                ));
            }
            other => other.map_err(store_status)?,
        };
        let first = GetObjectResponse {
            info: Some(info(
                &key,
                result.meta.size,
                String::new(),
                result.meta.last_modified,
            )),
            chunk: Vec::new(),
        };
        let mut upstream = result.into_stream();
        // Stores hand out small buffers (8 KiB from the local filesystem); sending
        // each as a message would cost a frame and a wake-up per 8 KiB.
        let stream = async_stream::try_stream! {
            yield first;
            let mut buffer = Vec::with_capacity(READ_CHUNK);
            while let Some(bytes) = upstream.next().await {
                let bytes = bytes.map_err(store_status)?;
                metrics::counter!("cadenza_storage_bytes_out_total").increment(bytes.len() as u64);
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let take = (READ_CHUNK - buffer.len()).min(rest.len());
                    buffer.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buffer.len() == READ_CHUNK {
                        let full = std::mem::replace(&mut buffer, Vec::with_capacity(READ_CHUNK));
                        yield GetObjectResponse { info: None, chunk: full };
                    }
                }
            }
            if !buffer.is_empty() {
                yield GetObjectResponse { info: None, chunk: buffer };
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stat_object(
        &self,
        request: Request<StatObjectRequest>,
    ) -> Result<Response<ObjectInfo>, Status> {
        let request = request.into_inner();
        let path = owned_key(&request.key, &request.owner)?;
        let key = request.key;
        let meta = self.backend.store.head(&path).await.map_err(store_status)?;
        Ok(Response::new(info(
            &key,
            meta.size,
            String::new(),
            meta.last_modified,
        )))
    }

    async fn delete_project_objects(
        &self,
        request: Request<DeleteProjectObjectsRequest>,
    ) -> Result<Response<DeleteProjectObjectsResponse>, Status> {
        let request = request.into_inner();
        let owner = keys::owner(&request.owner).map_err(key_status)?;
        let project = keys::uuid(&request.project_id, "project_id").map_err(key_status)?;
        let prefix = Path::from(keys::project_prefix(owner, project));
        let objects: Vec<_> = self
            .backend
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(store_status)?;
        let mut deleted = 0u64;
        for location in objects {
            match self.backend.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(err) => return Err(store_status(err)),
            }
        }
        Ok(Response::new(DeleteProjectObjectsResponse {
            deleted_count: deleted,
        }))
    }

    async fn sign_download_url(
        &self,
        request: Request<SignDownloadUrlRequest>,
    ) -> Result<Response<SignDownloadUrlResponse>, Status> {
        let request = request.into_inner();
        let path = owned_key(&request.key, &request.owner)?;
        if !(1..=MAX_URL_SECONDS).contains(&request.expire_seconds) {
            return Err(status::invalid_argument(vec![Violation::new(
                "expire_seconds",
                format!("must be 1 to {MAX_URL_SECONDS}"),
            )]));
        }
        // Signing a missing object would hand out a URL that can only 404.
        self.backend.store.head(&path).await.map_err(store_status)?;
        let expires =
            chrono::Utc::now() + chrono::Duration::seconds(i64::from(request.expire_seconds));
        let name = safe_download_name(if request.download_name.is_empty() {
            request.key.rsplit('/').next().unwrap_or("download")
        } else {
            &request.download_name
        });
        let lifetime = Duration::from_secs(u64::from(request.expire_seconds));
        if let Some(presigned) = self
            .backend
            .presigned_url(&request.key, lifetime, &name)
            .await
        {
            return Ok(Response::new(SignDownloadUrlResponse {
                url: presigned.map_err(store_status)?,
                expire_time: Some(cadenza_proto::timestamp(expires)),
            }));
        }
        let exp = expires.timestamp();
        let sig = self.signer.sign(&request.key, exp, &name);
        let url = format!(
            "{}/v1/files/{}?exp={exp}&name={name}&sig={sig}",
            self.public_url, request.key
        );
        Ok(Response::new(SignDownloadUrlResponse {
            url,
            expire_time: Some(cadenza_proto::timestamp(expires)),
        }))
    }
}
