#![doc = include_str!("../README.md")]

pub mod accounts;
pub mod api;
pub mod config;
pub mod credits;
pub mod dead_letters;
pub mod domain;
pub mod error;
pub mod gauges;
pub mod object_release;
pub mod orchestrator;
pub mod patience;
pub mod plans;
pub mod purge;
pub mod relay;
pub mod status;
pub mod store;
pub mod updates;
pub mod watch;
pub mod watch_limits;

use std::sync::Arc;

use anyhow::Context;
use cadenza_auth::mesh::Service;
use cadenza_proto::v1::{
    admin_service_server::AdminServiceServer, api_key_service_server::ApiKeyServiceServer,
    asset_service_server::AssetServiceServer, auth_service_server::AuthServiceServer,
    credential_service_server::CredentialServiceServer,
    project_service_server::ProjectServiceServer, share_service_server::ShareServiceServer,
    storage_service_client::StorageServiceClient, track_service_server::TrackServiceServer,
    usage_service_server::UsageServiceServer,
};
use cadenza_queue::Publisher;
use cadenza_runtime::mesh_auth::{self, Access, Rule};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Every public service is the gateway's to call: it verified the user and
/// says so in the call's assertion. Nothing else in the mesh calls `project`.
const CALLERS: &[Rule] = &[
    mesh_auth::HEALTH,
    mesh_auth::VERSION,
    Rule::new("/cadenza.v1.", Access::From(&[Service::Gateway])),
];

/// How often the purge of deleted projects and accounts looks for work.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Stage updates handled at once.
const UPDATE_PREFETCH: u16 = 64;

pub use cadenza_runtime::Listeners;

/// Runs the project service until `shutdown`. Migrations are not applied here:
/// `migrate` (or the dev runner) does that first.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut db_config = cadenza_db::DbConfig::new(&config.database_url, "cadenza-project");
    db_config.max_connections = config.db_pool_size;
    let pool = cadenza_db::build_pool(&db_config)?;
    let topology = config.queue.topology();
    let publisher = Arc::new(Publisher::new(
        &config.queue.url,
        "cadenza-project",
        topology.clone(),
    ));
    let relay_wake = Arc::new(Notify::new());
    let hub = watch::WatchHub::new();
    let orchestrator = orchestrator::Orchestrator {
        max_attempts: i32::try_from(config.max_attempts).unwrap_or(3),
        exchange: topology.exchange(),
        credits: credits::CreditPolicy {
            enforced: config.credits_enforced,
        },
        free_tier: config.free_tier,
    };
    let storage = StorageServiceClient::new(config.tls.balanced_channel(
        &config.storage_url,
        config.balance_refresh,
        &shutdown,
        config.mesh.credentials(Service::Storage),
    )?);
    let shared = api::Shared {
        pool: pool.clone(),
        orchestrator: orchestrator.clone(),
        relay_wake: relay_wake.clone(),
        hub: hub.clone(),
        storage: storage.clone(),
        max_duration_seconds: config.max_duration_seconds,
        streams: watch_limits::StreamLimits::new(
            config.watch_streams_per_user,
            config.watch_streams_per_replica,
        ),
    };

    if config.jwt.active.is_none() {
        tracing::warn!(
            "dev mode: signing access tokens with a random key; only a gateway in this process can verify them"
        );
    }
    let accounts = accounts::AccountsConfig {
        keys: Arc::new(
            cadenza_auth::TokenKeys::from_secrets(config.jwt.active.as_ref(), &config.jwt.previous)
                .context("CADENZA_JWT_SECRET / CADENZA_JWT_PREVIOUS_SECRETS")?,
        ),
        access_ttl: chrono::Duration::seconds(config.access_token_seconds),
        refresh_ttl: chrono::Duration::days(config.refresh_token_days),
        terms_version: config.terms_version.clone(),
        signup_credits: config.signup_credits,
        throttle: config.sign_in,
        hasher: accounts::hashing::Hasher::new(config.password_hashing_memory_mb),
    };

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(relay::run(
        pool.clone(),
        publisher.clone(),
        relay_wake.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(hub.listen(config.database_url.clone(), shutdown.clone()));
    {
        let (pool, orchestrator, wake) = (pool.clone(), orchestrator.clone(), relay_wake.clone());
        let publisher = publisher.clone();
        let (url, queue, topology, stop) = (
            config.queue.url.clone(),
            topology.update_queue(),
            topology.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            cadenza_queue::consume(
                &url,
                "cadenza-project-updates",
                &topology,
                &queue,
                UPDATE_PREFETCH,
                stop,
                move |incoming| {
                    updates::handle(
                        pool.clone(),
                        orchestrator.clone(),
                        publisher.clone(),
                        wake.clone(),
                        incoming,
                    )
                },
            )
            .await;
        });
    }

    {
        let (pool, orchestrator, wake) = (pool.clone(), orchestrator.clone(), relay_wake.clone());
        let (url, queue, topology, stop) = (
            config.queue.url.clone(),
            topology.dead_letter_queue(),
            topology.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            cadenza_queue::consume(
                &url,
                "cadenza-project-dead-letters",
                &topology,
                &queue,
                UPDATE_PREFETCH,
                stop,
                move |incoming| {
                    dead_letters::handle(pool.clone(), orchestrator.clone(), wake.clone(), incoming)
                },
            )
            .await;
        });
    }
    tasks.spawn(object_release::run(
        pool.clone(),
        storage,
        config.reconcile_every,
        shutdown.clone(),
    ));
    tasks.spawn(purge::run(
        pool.clone(),
        config.deleted_retention,
        PURGE_EVERY,
        shutdown.clone(),
    ));
    tasks.spawn(reconcile_forever(
        pool.clone(),
        publisher.clone(),
        orchestrator.clone(),
        config.reconcile,
        config.reconcile_every,
        relay_wake.clone(),
        shutdown.clone(),
    ));

    let (health, health_service) = cadenza_runtime::Health::new(vec![
        "cadenza.v1.ProjectService",
        "cadenza.v1.ShareService",
        "cadenza.v1.AuthService",
        "cadenza.v1.ApiKeyService",
        "cadenza.v1.CredentialService",
        "cadenza.v1.AdminService",
        "cadenza.v1.UsageService",
        "cadenza.v1.TrackService",
        "cadenza.v1.AssetService",
    ])
    .await;
    let probe_pool = pool.clone();
    let probe_publisher = publisher.clone();
    tasks.spawn(health.track(
        vec![
            cadenza_runtime::Dependency::required(
                "postgres",
                cadenza_runtime::probe(move || {
                    let pool = probe_pool.clone();
                    async move { cadenza_db::pool::ping(&pool).await }
                }),
            ),
            // Without the broker, calls are still served: work waits in the
            // outbox and stage updates in their queue. Readiness following it
            // would take every gateway out of service with it.
            cadenza_runtime::Dependency::watched(
                "rabbitmq",
                cadenza_runtime::probe(move || {
                    let publisher = probe_publisher.clone();
                    async move { publisher.ping().await }
                }),
            ),
        ],
        shutdown.clone(),
    ));
    cadenza_runtime::spawn_admin(listeners.admin, shutdown.clone());
    cadenza_runtime::spawn_health(listeners.health, health_service.clone(), shutdown.clone());
    let (reflection_v1, reflection_v1alpha) = cadenza_runtime::reflection()?;
    let guard = config.mesh.guard(CALLERS, &config.tls)?;
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), "project serving");
    cadenza_runtime::grpc_server(config.max_connection_age, &config.tls)?
        .layer(cadenza_telemetry::grpc::GrpcTelemetryLayer::new("project"))
        .layer(guard)
        .add_service(health_service)
        .add_service(cadenza_runtime::version_service("project"))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ProjectServiceServer::new(api::projects::ProjectApi {
            shared: shared.clone(),
        }))
        .add_service(TrackServiceServer::new(api::tracks::TrackApi {
            shared: shared.clone(),
        }))
        .add_service(UsageServiceServer::new(api::usage::UsageApi {
            shared: shared.clone(),
        }))
        .add_service(ShareServiceServer::new(api::shares::ShareApi {
            shared: shared.clone(),
        }))
        .add_service(AdminServiceServer::new(accounts::admin::AdminApi {
            shared: shared.clone(),
            terms_version: config.terms_version.clone(),
        }))
        .add_service(ApiKeyServiceServer::new(accounts::api_keys::ApiKeyApi {
            shared: shared.clone(),
        }))
        .add_service(CredentialServiceServer::new(
            accounts::api_keys::CredentialApi {
                shared: shared.clone(),
            },
        ))
        .add_service(AuthServiceServer::new(accounts::api::AuthApi {
            shared: shared.clone(),
            config: accounts,
        }))
        .add_service(AssetServiceServer::new(api::assets::AssetApi { shared }))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listeners.grpc),
            shutdown.clone().cancelled_owned(),
        )
        .await
        .context("project gRPC server")?;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Reconciles at start-up (a crash may have left stages running) and then every
/// `every`, until shutdown. Each pass first asks the broker for its queue depths
/// (kept as gauges; the reconciler needs them to tell lost work from a backlog).
async fn reconcile_forever(
    pool: cadenza_db::Pool,
    publisher: Arc<Publisher>,
    orchestrator: orchestrator::Orchestrator,
    config: orchestrator::reconcile::ReconcileConfig,
    every: std::time::Duration,
    relay_wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let queues = gauges::observe_queues(&publisher).await;
        let pass = async {
            let mut conn = pool.get().await.map_err(error::ApiError::from)?;
            gauges::observe_dead_letters(&mut conn).await?;
            orchestrator
                .reconcile(&mut conn, config, chrono::Utc::now(), queues)
                .await
        };
        match pass.await {
            // New attempts wrote work to the outbox: publish it now.
            Ok(done) if done.retried > 0 => relay_wake.notify_one(),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "a reconciler pass failed; trying again later")
            }
        }
    }
}
