//! The sockets a service serves on. Callers bind them (tests on port 0) and hand
//! them over, so a service never races another for an address.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_server::HealthServer;

/// A gRPC listener, an optional admin (`/metrics`) listener and an optional
/// plain-text health listener (`CADENZA_HEALTH_ADDR`).
pub struct Listeners {
    pub grpc: TcpListener,
    pub admin: Option<TcpListener>,
    pub health: Option<TcpListener>,
}

impl Listeners {
    /// The gRPC and admin listeners; no health listener.
    pub async fn bind(grpc: SocketAddr, admin: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            grpc: bind(grpc).await?,
            admin: Some(bind(admin).await?),
            health: None,
        })
    }

    /// Also binds the plain-text health listener, when an address is given.
    pub async fn with_health(mut self, health: Option<SocketAddr>) -> anyhow::Result<Self> {
        if let Some(addr) = health {
            self.health = Some(bind(addr).await?);
        }
        Ok(self)
    }
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// Serves `grpc.health.v1` alone, in plain text, on `health`, if given, until
/// `shutdown`: for kubelet's gRPC probes, which cannot present a client
/// certificate to a mutual-TLS gRPC port. `service` is a clone of the one the gRPC
/// port serves, so both answer from the same state.
pub fn spawn_health<S>(
    health: Option<TcpListener>,
    service: HealthServer<S>,
    shutdown: CancellationToken,
) where
    S: tonic_health::pb::health_server::Health,
{
    if let Some(listener) = health {
        tracing::info!(addr = ?listener.local_addr().ok(), "plain-text health serving");
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    shutdown.cancelled_owned(),
                )
                .await;
            if let Err(err) = served {
                tracing::warn!(error = %err, "plain-text health endpoint stopped");
            }
        });
    }
}

/// Serves `/metrics` on `admin`, if given, until `shutdown`.
pub fn spawn_admin(admin: Option<TcpListener>, shutdown: CancellationToken) {
    if let Some(admin) = admin {
        tokio::spawn(async move {
            let handle = cadenza_telemetry::prometheus();
            if let Err(err) = cadenza_telemetry::admin::serve(admin, handle, shutdown).await {
                tracing::warn!(error = %err, "admin endpoint stopped");
            }
        });
    }
}
