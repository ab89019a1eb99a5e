//! The sockets a service serves on. Callers bind them (tests on port 0) and hand
//! them over, so a service never races another for an address.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A gRPC listener and an optional admin (`/metrics`) listener.
pub struct Listeners {
    pub grpc: TcpListener,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(grpc: SocketAddr, admin: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self {
            grpc: bind(grpc).await?,
            admin: Some(bind(admin).await?),
        })
    }
}

/// Binds `addr`, naming it in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
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
