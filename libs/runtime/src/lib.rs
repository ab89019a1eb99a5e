#![doc = include_str!("../README.md")]

pub mod balance;
pub mod health;
pub mod listeners;
pub mod mesh_auth;
pub mod status;
pub mod tls;
pub mod version;

pub use health::{Dependency, Health, Probe, probe};
pub use listeners::{Listeners, bind, spawn_admin, spawn_health};
pub use mesh_auth::MeshAuth;
pub use tls::MeshTls;
pub use version::version_service;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// Server reflection, v1 and v1alpha (clients differ in which they ask for),
/// over every Cadenza proto: for the internal services.
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    reflection_of(cadenza_proto::FILE_DESCRIPTOR_SET)
}

/// Server reflection over the files in `descriptors` (an encoded
/// `FileDescriptorSet`) and `grpc.health.v1`: the public gateway passes
/// [`cadenza_proto::public_descriptor_set`], so it describes no internal service.
pub fn reflection_of(
    descriptors: &[u8],
) -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(descriptors)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(descriptors)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}

/// A token cancelled when the process receives SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => futures::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = futures::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("interrupted: shutting down"),
            () = terminate => tracing::info!("SIGTERM: shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// Streams still open when a connection reaches its maximum age get this long to
/// finish before it closes (watchers resume from their last event id).
const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(60);

/// A gRPC server builder for an internal service. With `max_connection_age`
/// (`CADENZA_GRPC_MAX_CONNECTION_AGE_SECONDS`), each client connection is closed
/// (GOAWAY, then a grace period) once it is that old, so clients reconnect and
/// calls spread over replicas that started later: a Kubernetes Service balances
/// connections, not calls. With `tls` on (`CADENZA_TLS_*`), the port speaks only
/// TLS and every client must present a certificate the CA signed.
pub fn grpc_server(
    max_connection_age: Option<Duration>,
    tls: &MeshTls,
) -> anyhow::Result<tonic::transport::Server> {
    let mut server = tonic::transport::Server::builder();
    if let Some(config) = tls.server_config() {
        server = server
            .tls_config(config)
            .context("setting up TLS on the gRPC port")?;
    }
    Ok(match max_connection_age {
        Some(age) => server
            .max_connection_age(age)
            .max_connection_age_grace(CONNECTION_AGE_GRACE),
        None => server,
    })
}
