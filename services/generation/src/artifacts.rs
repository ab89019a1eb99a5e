//! Moving artifacts between `storage` and the engine.

use cadenza_proto::v1::{self, storage_service_client::StorageServiceClient};
use cadenza_synth::{Artifact, ArtifactKind};
use cadenza_telemetry::grpc::TracedChannel;
use sha2::{Digest, Sha256};

/// Upload chunk size: well under gRPC's 4 MiB message limit.
const CHUNK: usize = 1 << 20;

/// How long a storage call is tried again while storage (or its database) does
/// not answer, before the stage fails. A failed stage spends one of its
/// attempts and is retried at once, so without this a blip of a few seconds
/// could spend them all and fail a paid song.
const STORAGE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a storage status says "not now" rather than "not this".
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted
    )
}

/// Runs a storage call until it succeeds, fails for a reason of its own, or
/// storage has been away for `STORAGE_PATIENCE`, pausing longer each time.
pub async fn patiently<T, F, Fut>(what: &str, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        match call().await {
            Err(status) if transient(&status) && started.elapsed() + pause < STORAGE_PATIENCE => {
                tracing::warn!(what, code = ?status.code(), message = status.message(), "storage is not answering; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            outcome => return outcome,
        }
    }
}

pub fn to_proto(kind: ArtifactKind) -> v1::AssetKind {
    match kind {
        ArtifactKind::Lyrics => v1::AssetKind::Lyrics,
        ArtifactKind::Composition => v1::AssetKind::Composition,
        ArtifactKind::Arrangement => v1::AssetKind::Arrangement,
        ArtifactKind::Midi => v1::AssetKind::Midi,
        ArtifactKind::Vocals => v1::AssetKind::Vocals,
        ArtifactKind::Stem => v1::AssetKind::Stem,
        ArtifactKind::Mix => v1::AssetKind::Mix,
        ArtifactKind::Master => v1::AssetKind::Master,
        ArtifactKind::MasterFlac => v1::AssetKind::MasterFlac,
        ArtifactKind::Preview => v1::AssetKind::Preview,
        ArtifactKind::Peaks => v1::AssetKind::Peaks,
    }
}

pub fn from_proto(kind: v1::AssetKind) -> Option<ArtifactKind> {
    Some(match kind {
        v1::AssetKind::Lyrics => ArtifactKind::Lyrics,
        v1::AssetKind::Composition => ArtifactKind::Composition,
        v1::AssetKind::Arrangement => ArtifactKind::Arrangement,
        v1::AssetKind::Midi => ArtifactKind::Midi,
        v1::AssetKind::Vocals => ArtifactKind::Vocals,
        v1::AssetKind::Stem => ArtifactKind::Stem,
        v1::AssetKind::Mix => ArtifactKind::Mix,
        v1::AssetKind::Master => ArtifactKind::Master,
        v1::AssetKind::MasterFlac => ArtifactKind::MasterFlac,
        v1::AssetKind::Preview => ArtifactKind::Preview,
        v1::AssetKind::Peaks => ArtifactKind::Peaks,
        v1::AssetKind::Unspecified => return None,
    })
}

/// Downloads one stored artifact of `owner` and checks it against its recorded
/// checksum, trying again while storage is briefly away.
pub async fn download(
    storage: &mut StorageServiceClient<TracedChannel>,
    owner: &str,
    reference: &v1::ArtifactRef,
    kind: ArtifactKind,
) -> Result<Artifact, tonic::Status> {
    patiently("download", || {
        let mut storage = storage.clone();
        async move { download_once(&mut storage, owner, reference, kind).await }
    })
    .await
}

async fn download_once(
    storage: &mut StorageServiceClient<TracedChannel>,
    owner: &str,
    reference: &v1::ArtifactRef,
    kind: ArtifactKind,
) -> Result<Artifact, tonic::Status> {
    let mut stream = storage
        .get_object(v1::GetObjectRequest {
            key: reference.object_key.clone(),
            owner: owner.to_owned(),
            offset: 0,
            length: 0,
        })
        .await?
        .into_inner();
    let mut bytes = Vec::with_capacity(usize::try_from(reference.size_bytes).unwrap_or(0));
    while let Some(part) = stream.message().await? {
        bytes.extend_from_slice(&part.chunk);
    }
    if !reference.sha256.is_empty() && hex::encode(Sha256::digest(&bytes)) != reference.sha256 {
        return Err(tonic::Status::data_loss(format!(
            "{} does not match its checksum",
            reference.file_name
        )));
    }
    Ok(Artifact {
        kind,
        name: reference.file_name.clone(),
        content_type: reference.content_type.clone(),
        bytes,
    })
}

/// Uploads one output under the run's prefix and returns its reference, trying
/// again while storage is briefly away (an upload is all or nothing, so a retry
/// never leaves half an object).
pub async fn upload(
    storage: &mut StorageServiceClient<TracedChannel>,
    work: &v1::StageWork,
    artifact: Artifact,
) -> Result<v1::ArtifactRef, tonic::Status> {
    let sha256 = hex::encode(Sha256::digest(&artifact.bytes));
    let size = artifact.bytes.len() as i64;
    let kind = to_proto(artifact.kind);
    // Slices of one buffer: chunking (and each retry) copies nothing.
    let bytes = bytes::Bytes::from(artifact.bytes);
    let info = patiently("upload", || {
        let mut storage = storage.clone();
        let messages = put_messages(
            work,
            &artifact.name,
            &artifact.content_type,
            kind,
            size,
            &sha256,
            &bytes,
        );
        async move { storage.put_object(messages).await }
    })
    .await?
    .into_inner();
    Ok(v1::ArtifactRef {
        kind: kind as i32,
        file_name: artifact.name,
        object_key: info.key,
        content_type: artifact.content_type,
        size_bytes: size,
        sha256,
    })
}

/// The header and chunks of one upload.
fn put_messages(
    work: &v1::StageWork,
    name: &str,
    content_type: &str,
    kind: v1::AssetKind,
    size: i64,
    sha256: &str,
    bytes: &bytes::Bytes,
) -> impl futures::Stream<Item = v1::PutObjectRequest> + use<> {
    let header = v1::PutObjectRequest {
        part: Some(v1::put_object_request::Part::Header(v1::PutObjectHeader {
            locator: Some(v1::ObjectLocator {
                owner: work.owner.clone(),
                project_id: work.project_id.clone(),
                run_id: work.run_id.clone(),
                file_name: name.to_owned(),
            }),
            content_type: content_type.to_owned(),
            size_bytes: size,
            sha256: sha256.to_owned(),
            kind: kind as i32,
        })),
    };
    let chunks: Vec<v1::PutObjectRequest> = (0..bytes.len())
        .step_by(CHUNK)
        .map(|start| v1::PutObjectRequest {
            part: Some(v1::put_object_request::Part::Chunk(
                bytes.slice(start..(start + CHUNK).min(bytes.len())),
            )),
        })
        .collect();
    futures::stream::iter(std::iter::once(header).chain(chunks))
}
