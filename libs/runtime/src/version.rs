//! `cadenza.v1.VersionService`: which build this process runs.

use cadenza_proto::v1::{
    self,
    version_service_server::{VersionService, VersionServiceServer},
};
use cadenza_telemetry::build::BUILD;

pub struct Version {
    service: &'static str,
}

#[tonic::async_trait]
impl VersionService for Version {
    async fn get_version(
        &self,
        _: tonic::Request<v1::GetVersionRequest>,
    ) -> Result<tonic::Response<v1::BuildInfo>, tonic::Status> {
        Ok(tonic::Response::new(v1::BuildInfo {
            service: self.service.into(),
            version: BUILD.version.into(),
            git_commit: BUILD.git_commit.into(),
            build_time: BUILD.build_time.into(),
        }))
    }
}

/// Announces the build (log line and gauge) and returns the service to serve.
pub fn version_service(service: &'static str) -> VersionServiceServer<Version> {
    cadenza_telemetry::build::announce(service);
    VersionServiceServer::new(Version { service })
}
