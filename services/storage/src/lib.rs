#![doc = include_str!("../README.md")]

pub mod backend;
pub mod catalog;
pub mod config;
mod download;
mod gift;
pub mod grants;
pub mod grpc;
pub mod http;
pub mod keys;
pub mod lifecycle;
mod observe;
mod page_token;
pub mod signing;
mod upload;

use anyhow::Context;
use cadenza_auth::mesh::Service;
use cadenza_proto::v1::storage_service_server::StorageServiceServer;
use cadenza_runtime::mesh_auth::{self, Access, Rule};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// The sockets the service serves on, bound by the caller (tests bind port 0).
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    pub admin: Option<TcpListener>,
    /// Plain-text `grpc.health.v1` for probes, when the gRPC port needs mTLS.
    pub health: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            grpc: cadenza_runtime::bind(config.grpc_addr).await?,
            http: cadenza_runtime::bind(config.http_addr).await?,
            admin: Some(cadenza_runtime::bind(config.admin_addr).await?),
            health: match config.health_addr {
                Some(addr) => Some(cadenza_runtime::bind(addr).await?),
                None => None,
            },
        })
    }
}

/// HTTP/2 flow-control windows for bulk transfers.
pub const STREAM_WINDOW_BYTES: u32 = 8 << 20;
pub const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Frames up to 1 MiB: a 16 KiB frame per chunk slice costs more than the bytes.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// Who may call what: project and generation store and read objects for any
/// owner (they act for the users the gateway verified); only project deletes a
/// project's objects or lists an owner's.
const CALLERS: &[Rule] = &[
    mesh_auth::HEALTH,
    mesh_auth::VERSION,
    Rule::new(
        "/cadenza.v1.StorageService/",
        Access::From(&[Service::Project, Service::Generation]),
    ),
    Rule::new(
        "/cadenza.v1.StorageService/DeleteProjectObjects",
        Access::From(&[Service::Project]),
    ),
    Rule::new(
        "/cadenza.v1.StorageService/ListOwnerObjects",
        Access::From(&[Service::Project]),
    ),
    Rule::new(
        "/cadenza.v1.StorageService/PutGrant",
        Access::From(&[Service::Project]),
    ),
    Rule::new(
        "/cadenza.v1.StorageService/RevokeGrant",
        Access::From(&[Service::Project]),
    ),
];

/// Incoming gRPC messages may be larger than tonic's 4 MiB default only by a chunk.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// Runs the storage service until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let backend = match config.backend {
        backend::BackendKind::Local => backend::Backend::local(&config.data_dir)?,
        backend::BackendKind::Memory => backend::Backend::memory(),
        backend::BackendKind::S3 => backend::Backend::s3(
            config
                .s3
                .as_ref()
                .context("the S3 backend needs CADENZA_S3_* settings")?,
        )?,
    };
    tracing::info!(backend = ?backend.kind, "object store ready");
    let store = backend.store.clone();
    let mut db_config = cadenza_db::DbConfig::new(&config.database_url, "cadenza-storage");
    db_config.max_connections = config.db_pool_size;
    let pool = cadenza_db::build_pool(&db_config)?;
    let catalog = catalog::Catalog::new(pool.clone());
    let signer = signing::UrlSigner::new(config.signing_key.clone());
    let api = grpc::StorageApi {
        backend: backend.clone(),
        catalog: catalog.clone(),
        signer: signer.clone(),
        public_url: config.public_url.clone(),
        max_object_bytes: config.max_object_bytes,
        preview_ttl: config.lifecycle.preview_ttl,
    };

    let (health, health_service) =
        cadenza_runtime::Health::new(vec!["cadenza.v1.StorageService"]).await;
    let probe_backend = backend.clone();
    tokio::spawn(health.track(
        vec![
            cadenza_runtime::Dependency::required(
                "object_store",
                cadenza_runtime::probe(move || {
                    let backend = probe_backend.clone();
                    async move { backend.reachable().await }
                }),
            ),
            cadenza_runtime::Dependency::required(
                "postgres",
                cadenza_runtime::probe(move || {
                    let pool = pool.clone();
                    async move { cadenza_db::pool::ping(&pool).await }
                }),
            ),
        ],
        shutdown.clone(),
    ));
    tokio::spawn(lifecycle::run(
        catalog.clone(),
        store.clone(),
        config.lifecycle,
        shutdown.clone(),
    ));
    let (reflection_v1, reflection_v1alpha) = cadenza_runtime::reflection()?;
    let guard = config.mesh.guard(CALLERS, &config.tls)?;

    cadenza_runtime::spawn_admin(listeners.admin, shutdown.clone());
    cadenza_runtime::spawn_health(listeners.health, health_service.clone(), shutdown.clone());
    let http_app = http::router(http::FileServer {
        store,
        catalog,
        signer,
    });
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(listeners.http, http_app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });

    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), tls = config.tls.enabled(), "storage serving");
    cadenza_runtime::grpc_server(config.max_connection_age, &config.tls)?
        // Artifacts are megabytes: the 64 KiB HTTP/2 default window would cap a
        // stream at one window per round trip.
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .max_frame_size(MAX_FRAME_BYTES)
        .layer(cadenza_telemetry::grpc::GrpcTelemetryLayer::new("storage"))
        .layer(guard)
        .add_service(health_service)
        .add_service(cadenza_runtime::version_service("storage"))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            StorageServiceServer::new(api).max_decoding_message_size(MAX_MESSAGE_BYTES + 64 * 1024),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listeners.grpc),
            shutdown.cancelled_owned(),
        )
        .await
        .context("storage gRPC server")?;
    http_task
        .await
        .context("storage HTTP task")?
        .context("storage HTTP server")?;
    Ok(())
}
