//! Moving artifacts between `storage` and the engine.

use cadenza_proto::v1::{self, storage_service_client::StorageServiceClient};
use cadenza_synth::{Artifact, ArtifactKind};
use cadenza_telemetry::grpc::TracedChannel;
use sha2::{Digest, Sha256};

/// Upload chunk size: well under gRPC's 4 MiB message limit.
const CHUNK: usize = 1 << 20;

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

/// Downloads one stored artifact of `owner` and checks it against its recorded checksum.
pub async fn download(
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

/// Uploads one output under the run's prefix and returns its reference.
pub async fn upload(
    storage: &mut StorageServiceClient<TracedChannel>,
    work: &v1::StageWork,
    artifact: Artifact,
) -> Result<v1::ArtifactRef, tonic::Status> {
    let sha256 = hex::encode(Sha256::digest(&artifact.bytes));
    let size = artifact.bytes.len() as i64;
    let kind = to_proto(artifact.kind);
    let header = v1::PutObjectRequest {
        part: Some(v1::put_object_request::Part::Header(v1::PutObjectHeader {
            locator: Some(v1::ObjectLocator {
                owner: work.owner.clone(),
                project_id: work.project_id.clone(),
                run_id: work.run_id.clone(),
                file_name: artifact.name.clone(),
            }),
            content_type: artifact.content_type.clone(),
            size_bytes: size,
            sha256: sha256.clone(),
            kind: kind as i32,
        })),
    };
    // Slices of one buffer: chunking copies nothing.
    let bytes = bytes::Bytes::from(artifact.bytes);
    let chunks: Vec<v1::PutObjectRequest> = (0..bytes.len())
        .step_by(CHUNK)
        .map(|start| v1::PutObjectRequest {
            part: Some(v1::put_object_request::Part::Chunk(
                bytes.slice(start..(start + CHUNK).min(bytes.len())),
            )),
        })
        .collect();
    let messages = futures::stream::iter(std::iter::once(header).chain(chunks));
    let info = storage.put_object(messages).await?.into_inner();
    Ok(v1::ArtifactRef {
        kind: kind as i32,
        file_name: artifact.name,
        object_key: info.key,
        content_type: artifact.content_type,
        size_bytes: size,
        sha256,
    })
}
