#![doc = include_str!("../README.md")]

pub mod balance;
pub mod listeners;
pub mod status;
pub mod tls;
pub mod version;

pub use listeners::{Listeners, bind, spawn_admin, spawn_health};
pub use tls::MeshTls;
pub use version::version_service;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A dependency check: resolves to whether the dependency answers.
pub type Probe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Builds a probe from an async closure.
pub fn probe<F, Fut>(check: F) -> Probe
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}

/// The health service of one process.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

/// How often readiness is re-checked.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

impl Health {
    /// `services` are the fully qualified gRPC service names this process serves;
    /// the overall status (`""`) is reported too. Everything starts NOT_SERVING,
    /// registered before the server accepts a call, so no check ever sees an
    /// unknown service.
    pub async fn new(
        services: Vec<&'static str>,
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let health = Self { reporter, services };
        health.set(ServingStatus::NotServing).await;
        (health, server)
    }

    async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(*service, status).await;
        }
    }

    /// Starts NOT_SERVING, then follows the probes every two seconds until
    /// `shutdown`, when it turns NOT_SERVING for good.
    pub async fn track(self, probes: Vec<(&'static str, Probe)>, shutdown: CancellationToken) {
        self.set(ServingStatus::NotServing).await;
        let mut serving = None;
        loop {
            let mut failing = Vec::new();
            for (name, check) in &probes {
                let ok = tokio::time::timeout(Duration::from_secs(3), check())
                    .await
                    .unwrap_or(false);
                if !ok {
                    failing.push(*name);
                }
            }
            let now_serving = failing.is_empty();
            if serving != Some(now_serving) {
                if now_serving {
                    tracing::info!("ready: every dependency answers");
                } else {
                    tracing::warn!(failing = ?failing, "not ready: dependencies unreachable");
                }
                self.set(if now_serving {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                })
                .await;
                serving = Some(now_serving);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
        }
        self.set(ServingStatus::NotServing).await;
    }
}

/// Server reflection, v1 and v1alpha (clients differ in which they ask for).
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cadenza_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cadenza_proto::FILE_DESCRIPTOR_SET)
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
