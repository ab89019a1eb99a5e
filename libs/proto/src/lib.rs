#![doc = include_str!("../README.md")]

pub mod names;

/// Everything in the `cadenza.v1` protobuf package: messages, enums, gRPC clients
/// and servers.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("cadenza.v1");
}

/// The encoded `FileDescriptorSet` of every Cadenza proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cadenza_descriptor");

/// The encoded `FileDescriptorSet` of the public API only: every file but the
/// internal ones (`cadenza/v1/internal_*.proto`: storage, the queue envelope,
/// credential checks), and without `dev.proto` unless `with_dev` (the gateway
/// serves `DevService` only in dev mode). What the public gateway's reflection
/// answers from, so it names no internal service or message.
pub fn public_descriptor_set(with_dev: bool) -> Vec<u8> {
    use prost::Message;
    let Ok(mut set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        // The set is compiled in: it decodes, or the build is broken.
        return Vec::new();
    };
    set.file.retain(|file| {
        let name = file.name();
        !name.starts_with("cadenza/v1/internal_") && (with_dev || name != "cadenza/v1/dev.proto")
    });
    set.encode_to_vec()
}

pub use prost;
pub use prost_types;

/// Converts between `chrono` times and protobuf timestamps.
pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Lower-case name of a stage kind as used in resource names and metrics (`mix`).
pub fn stage_slug(kind: v1::StageKind) -> &'static str {
    use v1::StageKind;
    match kind {
        StageKind::Unspecified => "unspecified",
        StageKind::Lyrics => "lyrics",
        StageKind::Composition => "composition",
        StageKind::Arrangement => "arrangement",
        StageKind::Vocals => "vocals",
        StageKind::Mix => "mix",
        StageKind::Master => "master",
    }
}
