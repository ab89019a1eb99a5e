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
