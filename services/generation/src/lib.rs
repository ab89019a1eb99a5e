#![doc = include_str!("../README.md")]

pub mod artifacts;
pub mod config;
pub mod providers;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use cadenza_auth::mesh::Service;
use cadenza_proto::v1::{
    self, provider_service_server::ProviderService, provider_service_server::ProviderServiceServer,
    storage_service_client::StorageServiceClient,
};
use cadenza_queue::Publisher;
use cadenza_runtime::mesh_auth::{self, Access, Rule};
use providers::chain::Chain;
use providers::hosted::{Flavor, Hosted};
use providers::{Provider, builtin::Builtin};
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub use cadenza_runtime::Listeners;

/// Only the gateway asks for provider health (for administrators).
const CALLERS: &[Rule] = &[
    mesh_auth::HEALTH,
    mesh_auth::VERSION,
    Rule::new("/cadenza.v1.", Access::From(&[Service::Gateway])),
];

/// Runs the workers until `shutdown`; stages in flight finish first.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topology = config.queue.topology();
    let publisher = Arc::new(Publisher::new(
        &config.queue.url,
        "cadenza-generation",
        topology.clone(),
    ));
    let storage = StorageServiceClient::new(config.tls.balanced_channel(
        &config.storage_url,
        config.balance_refresh,
        &shutdown,
        config.mesh.credentials(Service::Storage),
    )?)
    .max_decoding_message_size(8 << 20);
    let chain = Arc::new(build_chain(&config.providers).context("hosted provider HTTP client")?);
    let replica = replica_id();
    let worker = Arc::new(worker::Worker {
        publisher: publisher.clone(),
        storage,
        worker_id: replica.clone(),
        chain: chain.clone(),
        heartbeat: config.heartbeat,
        running: worker::RunningRuns::default(),
    });

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (url, queue, stop) = (
            config.queue.url.clone(),
            topology.work_queue(),
            shutdown.clone(),
        );
        let (topology, concurrency) = (topology.clone(), config.concurrency);
        let worker = worker.clone();
        tasks.spawn(async move {
            cadenza_queue::consume(
                &url,
                "cadenza-generation-worker",
                &topology,
                &queue,
                concurrency,
                stop,
                move |incoming| worker.clone().handle(incoming),
            )
            .await;
        });
    }
    {
        let (url, topology, stop, worker) = (
            config.queue.url.clone(),
            topology.clone(),
            shutdown.clone(),
            worker.clone(),
        );
        tasks.spawn(async move {
            cadenza_queue::listen(
                &url,
                "cadenza-generation-control",
                &topology,
                cadenza_queue::topology::CANCEL_KEY,
                stop,
                move |incoming| worker.clone().on_control(incoming),
            )
            .await;
        });
    }
    let (health, health_service) =
        cadenza_runtime::Health::new(vec!["cadenza.v1.ProviderService"]).await;
    let probe_publisher = publisher.clone();
    tasks.spawn(health.track(
        vec![cadenza_runtime::Dependency::required(
            "rabbitmq",
            cadenza_runtime::probe(move || {
                let publisher = probe_publisher.clone();
                async move { publisher.ping().await }
            }),
        )],
        shutdown.clone(),
    ));
    cadenza_runtime::spawn_admin(listeners.admin, shutdown.clone());
    cadenza_runtime::spawn_health(listeners.health, health_service.clone(), shutdown.clone());
    let (reflection_v1, reflection_v1alpha) = cadenza_runtime::reflection()?;
    let guard = config.mesh.guard(CALLERS, &config.tls)?;
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), concurrency = config.concurrency, tls = config.tls.enabled(), "generation serving");
    cadenza_runtime::grpc_server(config.max_connection_age, &config.tls)?
        .layer(cadenza_telemetry::grpc::GrpcTelemetryLayer::new(
            "generation",
        ))
        .layer(guard)
        .add_service(health_service)
        .add_service(cadenza_runtime::version_service("generation"))
        .add_service(ProviderServiceServer::new(ProviderHealthApi {
            chain,
            replica,
        }))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listeners.grpc),
            shutdown.clone().cancelled_owned(),
        )
        .await
        .context("generation gRPC server")?;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The built-in engine first (the default for every stage), then each hosted
/// provider whose key is configured.
pub fn build_chain(config: &config::ProvidersConfig) -> Result<Chain, reqwest::Error> {
    let mut providers: Vec<Arc<dyn Provider>> = vec![Arc::new(Builtin)];
    if let Some(fal) = &config.fal {
        providers.push(Arc::new(Hosted::new("fal", Flavor::Fal, fal.clone())?));
    }
    if let Some(replicate) = &config.replicate {
        providers.push(Arc::new(Hosted::new(
            "replicate",
            Flavor::Replicate,
            replicate.clone(),
        )?));
    }
    for provider in &providers {
        tracing::info!(provider = provider.name(), "provider available");
    }
    Ok(Chain::new(
        providers,
        config.order.clone(),
        config.retry,
        config.breaker,
    ))
}

/// `cadenza.v1.ProviderService`: this replica's view of its providers.
pub struct ProviderHealthApi {
    pub chain: Arc<Chain>,
    /// Named in every entry, so a merged view across replicas says whose it is.
    pub replica: String,
}

/// This process's worker id: the host name (a pod's name in Kubernetes) and a
/// random suffix, so logs and provider health name the replica a person can find.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 63)
        .unwrap_or_else(|| "generation".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

#[tonic::async_trait]
impl ProviderService for ProviderHealthApi {
    async fn get_provider_health(
        &self,
        _: tonic::Request<v1::GetProviderHealthRequest>,
    ) -> Result<tonic::Response<v1::GetProviderHealthResponse>, tonic::Status> {
        let mut providers = self.chain.health();
        for provider in &mut providers {
            provider.replica.clone_from(&self.replica);
        }
        Ok(tonic::Response::new(v1::GetProviderHealthResponse {
            providers,
            unreachable_replicas: vec![],
        }))
    }
}
