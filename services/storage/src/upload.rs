//! Receiving an upload: checking what the caller declared, then streaming the
//! chunks into a multipart upload that completes only when every byte arrived
//! and matches the declared size and SHA-256. Any failure aborts the multipart
//! upload, so nothing half-written stays behind.

use std::sync::Arc;

use bytes::Bytes;
use cadenza_proto::v1::{
    AssetKind, ObjectLocator, PutObjectHeader, PutObjectRequest, put_object_request::Part,
};
use cadenza_runtime::status::{self, Violation};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};
use tonic::{Status, Streaming};

use crate::grpc::{key_status, store_status};
use crate::keys;

/// Parts of a multipart upload: S3 requires at least 5 MiB for all but the last.
pub const PART_BYTES: usize = 8 << 20;
/// Parts being written while the next one arrives: the network and the store
/// work side by side, and memory stays bounded at a few parts per upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Chunks waiting to be hashed.
const HASH_QUEUE: usize = 16;
const MAX_CONTENT_TYPE: usize = 127;

/// What the header of an upload declared, checked.
#[derive(Debug, Clone)]
pub struct Declared {
    pub key: String,
    pub locator: ObjectLocator,
    pub project_id: uuid::Uuid,
    pub run_id: uuid::Uuid,
    pub size: u64,
    pub sha256: String,
    pub content_type: String,
    pub kind: AssetKind,
}

impl Declared {
    /// Every problem of the header at once, as INVALID_ARGUMENT.
    pub fn check(header: PutObjectHeader, max_bytes: u64) -> Result<Self, Status> {
        let locator = header.locator.unwrap_or_default();
        let key = keys::object_key(&locator).map_err(key_status)?;
        let project_id = keys::uuid(&locator.project_id, "project_id").map_err(key_status)?;
        let run_id = keys::uuid(&locator.run_id, "run_id").map_err(key_status)?;
        let mut violations = Vec::new();
        let size = u64::try_from(header.size_bytes).unwrap_or(0);
        if size == 0 || size > max_bytes {
            violations.push(Violation::new(
                "size_bytes",
                format!("must be 1 to {max_bytes} bytes"),
            ));
        }
        let sha256 = header.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            violations.push(Violation::new("sha256", "must be 64 hex digits"));
        }
        let content_type = if header.content_type.is_empty() {
            keys::content_type_for(&key).to_owned()
        } else {
            header.content_type
        };
        if !valid_content_type(&content_type) {
            violations.push(Violation::new(
                "content_type",
                "must be a media type such as `audio/wav`",
            ));
        }
        let kind = AssetKind::try_from(header.kind).unwrap_or_else(|_| {
            violations.push(Violation::new("kind", "is not a known asset kind"));
            AssetKind::Unspecified
        });
        if !violations.is_empty() {
            return Err(status::invalid_argument(violations));
        }
        Ok(Self {
            key,
            locator,
            project_id,
            run_id,
            size,
            sha256,
            content_type,
            kind,
        })
    }
}

/// `type/subtype` with optional parameters, printable ASCII, no line breaks: it
/// is sent back verbatim as a Content-Type header.
fn valid_content_type(value: &str) -> bool {
    value.len() <= MAX_CONTENT_TYPE
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value
            .split(';')
            .next()
            .and_then(|essence| essence.trim().split_once('/'))
            .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty())
}

fn too_many(declared: u64) -> Status {
    status::invalid_argument(vec![Violation::new(
        "size_bytes",
        format!("more bytes arrived than the declared {declared}"),
    )])
}

/// Streams the chunks of `stream` into `path`. On success the bytes are in the
/// store, verified; on failure the multipart upload was aborted.
pub async fn receive(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    declared: &Declared,
    stream: &mut Streaming<PutObjectRequest>,
) -> Result<(), Status> {
    let mut upload = store.put_multipart(path).await.map_err(store_status)?;
    let outcome = write_parts(upload.as_mut(), declared, stream).await;
    match outcome {
        Ok(()) => match upload.complete().await {
            Ok(_) => Ok(()),
            Err(err) => {
                abort(upload.as_mut(), &declared.key).await;
                Err(store_status(err))
            }
        },
        Err(status) => {
            abort(upload.as_mut(), &declared.key).await;
            Err(status)
        }
    }
}

async fn abort(upload: &mut dyn MultipartUpload, key: &str) {
    if let Err(err) = upload.abort().await {
        // The bytes are unreachable without a catalog row; an S3 lifecycle rule
        // (AbortIncompleteMultipartUpload) reclaims what an abort could not.
        tracing::warn!(%key, error = %err, "aborting an upload failed");
    }
}

async fn write_parts(
    upload: &mut dyn MultipartUpload,
    declared: &Declared,
    stream: &mut Streaming<PutObjectRequest>,
) -> Result<(), Status> {
    let mut writing = PartWriter::default();
    let result = read_parts(upload, declared, stream, &mut writing).await;
    // Even on failure, let started parts finish before the caller aborts.
    let written = writing.drain().await;
    result.and(written)
}

#[derive(Default)]
struct PartWriter {
    pending: std::collections::VecDeque<tokio::task::JoinHandle<object_store::Result<()>>>,
}

impl PartWriter {
    async fn start(
        &mut self,
        upload: &mut dyn MultipartUpload,
        part: Vec<Bytes>,
    ) -> Result<(), Status> {
        if self.pending.len() >= PARTS_IN_FLIGHT
            && let Some(oldest) = self.pending.pop_front()
        {
            finished(oldest.await)?;
        }
        let payload: PutPayload = part.into_iter().collect();
        self.pending
            .push_back(tokio::spawn(upload.put_part(payload)));
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), Status> {
        let mut first_error = Ok(());
        while let Some(part) = self.pending.pop_front() {
            if let Err(status) = finished(part.await) {
                first_error = first_error.and(Err(status));
            }
        }
        first_error
    }
}

fn finished(
    joined: Result<object_store::Result<()>, tokio::task::JoinError>,
) -> Result<(), Status> {
    match joined {
        Ok(result) => result.map_err(store_status),
        Err(err) => Err(status::internal(&err)),
    }
}

async fn read_parts(
    upload: &mut dyn MultipartUpload,
    declared: &Declared,
    stream: &mut Streaming<PutObjectRequest>,
    writing: &mut PartWriter,
) -> Result<(), Status> {
    let hasher = BackgroundHasher::start();
    let mut received: u64 = 0;
    // Chunks are slices of the received frames: a part is a list of them, not a copy.
    let mut part: Vec<Bytes> = Vec::new();
    let mut part_len = 0usize;
    while let Some(message) = stream.message().await? {
        let Some(Part::Chunk(chunk)) = message.part else {
            return Err(status::invalid_argument(vec![Violation::new(
                "header",
                "only the first message may carry a header",
            )]));
        };
        received += chunk.len() as u64;
        if received > declared.size {
            return Err(too_many(declared.size));
        }
        hasher.update(chunk.clone()).await;
        part_len += chunk.len();
        part.push(chunk);
        if part_len >= PART_BYTES {
            part_len = 0;
            writing.start(upload, std::mem::take(&mut part)).await?;
        }
    }
    if received != declared.size {
        return Err(status::invalid_argument(vec![Violation::new(
            "size_bytes",
            format!("declared {} bytes but {received} arrived", declared.size),
        )]));
    }
    if hasher.finish().await? != declared.sha256 {
        return Err(status::invalid_argument(vec![Violation::new(
            "sha256",
            "the bytes do not match the declared checksum",
        )]));
    }
    if part_len > 0 {
        writing.start(upload, part).await?;
    }
    Ok(())
}

/// SHA-256 on a blocking thread, fed the chunks in order as they arrive: hashing
/// runs beside receiving instead of between one chunk and the next. The chunks
/// are shared slices, so feeding copies nothing.
struct BackgroundHasher {
    chunks: tokio::sync::mpsc::Sender<Bytes>,
    digest: tokio::task::JoinHandle<String>,
}

impl BackgroundHasher {
    fn start() -> Self {
        // Bounded: a hasher that falls behind slows the upload down rather than
        // letting chunks pile up in memory.
        let (chunks, mut incoming) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let digest = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = incoming.blocking_recv() {
                hasher.update(&chunk);
            }
            hex::encode(hasher.finalize())
        });
        Self { chunks, digest }
    }

    async fn update(&self, chunk: Bytes) {
        // The thread only stops when `chunks` is dropped, so sending cannot fail
        // while `self` lives.
        let _ = self.chunks.send(chunk).await;
    }

    async fn finish(self) -> Result<String, Status> {
        drop(self.chunks);
        self.digest.await.map_err(|err| status::internal(&err))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_content_type;

    #[test]
    fn content_types_are_media_types_without_line_breaks() {
        assert!(valid_content_type("audio/wav"));
        assert!(valid_content_type("text/plain; charset=utf-8"));
        assert!(!valid_content_type("wav"));
        assert!(!valid_content_type("audio/"));
        assert!(!valid_content_type("audio/wav\r\nSet-Cookie: x=1"));
    }
}
