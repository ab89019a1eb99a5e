#![doc = include_str!("../README.md")]

pub mod access;
pub mod auth;
pub mod client_address;
pub mod config;
pub mod key_cache;
pub mod limits;
pub mod overload;
pub mod providers;
pub mod proxy;
pub mod web;

use std::time::Duration;

use anyhow::Context;
use cadenza_auth::TokenKeys;
use cadenza_auth::mesh::Service;
use cadenza_proto::v1::{
    admin_service_client::AdminServiceClient, admin_service_server::AdminServiceServer,
    api_key_service_client::ApiKeyServiceClient, api_key_service_server::ApiKeyServiceServer,
    asset_service_client::AssetServiceClient, asset_service_server::AssetServiceServer,
    auth_service_client::AuthServiceClient, auth_service_server::AuthServiceServer,
    credential_service_client::CredentialServiceClient, dev_service_server::DevServiceServer,
    project_service_client::ProjectServiceClient, project_service_server::ProjectServiceServer,
    provider_service_server::ProviderServiceServer, share_service_client::ShareServiceClient,
    share_service_server::ShareServiceServer, track_service_client::TrackServiceClient,
    track_service_server::TrackServiceServer, usage_service_client::UsageServiceClient,
    usage_service_server::UsageServiceServer,
};
use http::HeaderName;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::Config;

/// Streams one client connection may have open at once (HTTP/2).
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Largest request message accepted from the public (prompts and lyrics are small).
const MAX_REQUEST_BYTES: usize = 256 * 1024;

pub use cadenza_runtime::Listeners;

/// CORS for gRPC-web: the request headers it sends, and the response headers a
/// browser must be allowed to read to see real status codes and details.
fn cors(config: &Config) -> CorsLayer {
    let origins = if config.dev_mode && config.cors_origins.is_empty() {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(config.cors_origins.iter().filter_map(|o| o.parse().ok()))
    };
    let header = HeaderName::from_static;
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("authorization"),
            header("x-request-id"),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
            header("x-request-id"),
        ])
        .max_age(Duration::from_secs(3600))
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.jwt.active.is_none() {
        tracing::warn!("dev mode: using a random token key; tokens die with this process");
    }
    let keys = TokenKeys::from_secrets(config.jwt.active.as_ref(), &config.jwt.previous)
        .context("CADENZA_JWT_SECRET / CADENZA_JWT_PREVIOUS_SECRETS")?;
    let mesh = config
        .mesh
        .signer
        .clone()
        .context("the gateway signs every call it forwards: set its CADENZA_MESH_*_SECRET")?;
    let channel = config.tls.balanced_channel(
        &config.project_url,
        config.balance_refresh,
        &shutdown,
        config.mesh.credentials(Service::Project),
    )?;
    let limits = limits::Limits::new(config.limits);
    {
        let (limits, shutdown) = (limits.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => limits.forget_idle(),
                }
            }
        });
    }
    let gate = access::Gate {
        authentication: access::Authentication::Verify,
        keys: keys.clone(),
        dev_mode: config.dev_mode,
        limits,
        key_cache: std::sync::Arc::new(key_cache::KeyCache::new(Duration::from_secs(
            config.api_key_cache_seconds,
        ))),
        credentials: CredentialServiceClient::new(channel.clone()),
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let proxy = proxy::Proxy {
        mesh,
        auth: AuthServiceClient::new(channel.clone()),
        api_keys: ApiKeyServiceClient::new(channel.clone()),
        admin: AdminServiceClient::new(channel.clone()),
        usage: UsageServiceClient::new(channel.clone()),
        shares: ShareServiceClient::new(channel.clone()),
        projects: ProjectServiceClient::new(channel.clone()),
        tracks: TrackServiceClient::new(channel.clone()),
        assets: AssetServiceClient::new(channel.clone()).max_decoding_message_size(8 << 20),
    };

    let (health, health_service) = cadenza_runtime::Health::new(vec![
        "cadenza.v1.ProjectService",
        "cadenza.v1.TrackService",
        "cadenza.v1.AssetService",
        "cadenza.v1.AuthService",
        "cadenza.v1.ApiKeyService",
        "cadenza.v1.AdminService",
        "cadenza.v1.UsageService",
        "cadenza.v1.ShareService",
        "cadenza.v1.ProviderService",
    ])
    .await;
    let upstream = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    tokio::spawn(health.track(
        vec![cadenza_runtime::Dependency::required(
            "project",
            cadenza_runtime::probe(move || {
                let mut client = upstream.clone();
                async move {
                    client
                        .check(tonic_health::pb::HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .is_ok_and(|r| {
                            r.into_inner().status
                                == tonic_health::pb::health_check_response::ServingStatus::Serving
                                    as i32
                        })
                }
            }),
        )],
        shutdown.clone(),
    ));
    cadenza_runtime::spawn_admin(listeners.admin, shutdown.clone());
    // The public port describes the public API only: no internal service or
    // message is named to the internet.
    let public = cadenza_proto::public_descriptor_set(config.dev_mode);
    let (reflection_v1, reflection_v1alpha) = cadenza_runtime::reflection_of(&public)?;
    let dev = config
        .dev_mode
        .then(|| DevServiceServer::new(proxy::DevTokens { keys }));
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), dev_mode = config.dev_mode, internal_tls = config.tls.enabled(), "gateway serving");
    let mut services = tonic::service::Routes::builder();
    services
        .add_service(health_service)
        .add_service(cadenza_runtime::version_service("gateway"))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            ProjectServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            TrackServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            AuthServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            ApiKeyServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            AdminServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            UsageServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            ShareServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(
            AssetServiceServer::new(proxy.clone()).max_decoding_message_size(MAX_REQUEST_BYTES),
        )
        .add_service(ProviderServiceServer::new(providers::ProviderHealthProxy {
            proxy,
            administrators: CredentialServiceClient::new(channel.clone()),
            generation_url: config.generation_url.clone(),
            tls: config.tls.clone(),
            credentials: config.mesh.credentials(Service::Generation),
        }));
    if let Some(dev) = dev {
        services.add_service(dev);
    }
    let files = match &config.web_dir {
        Some(dir) if dir.join("index.html").is_file() => {
            tracing::info!(dir = %dir.display(), "serving the web studio");
            Some(web::router(dir, &config.web_media_sources))
        }
        Some(dir) => {
            tracing::warn!(
                dir = %dir.display(),
                "no built web studio here (run `make web`); serving the API only"
            );
            None
        }
        None => None,
    };
    tonic::transport::Server::builder()
        .accept_http1(true)
        // A call that takes longer is answered CANCELLED (streams count until
        // they start); a connection opens at most this many streams at once.
        .timeout(config.request_timeout)
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .layer(cadenza_telemetry::grpc::GrpcTelemetryLayer::new("gateway"))
        .layer(overload::OverloadLayer::new(config.max_in_flight))
        .layer(cors(&config))
        .layer(web::StudioLayer::new(files))
        // Inside the studio layer: gRPC-web calls arrive translated to gRPC.
        .layer(access::AccessLayer::new(gate))
        .add_routes(services.routes())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listeners.grpc),
            shutdown.cancelled_owned(),
        )
        .await
        .context("gateway server")?;
    Ok(())
}
