#![doc = include_str!("../README.md")]

pub mod artifacts;
pub mod config;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use cadenza_proto::v1::storage_service_client::StorageServiceClient;
use cadenza_queue::Publisher;
use tokio_util::sync::CancellationToken;

pub use config::Config;

pub use cadenza_runtime::Listeners;

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
    let storage =
        StorageServiceClient::new(cadenza_telemetry::grpc::lazy_channel(&config.storage_url)?)
            .max_decoding_message_size(8 << 20);
    let worker = Arc::new(worker::Worker {
        publisher: publisher.clone(),
        storage,
        worker_id: format!("generation-{}", uuid::Uuid::new_v4().simple()),
    });

    let mut tasks = tokio::task::JoinSet::new();
    {
        let (url, queue, stop) = (
            config.queue.url.clone(),
            topology.work_queue(),
            shutdown.clone(),
        );
        let (topology, concurrency) = (topology.clone(), config.concurrency);
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
    let (health, health_service) = cadenza_runtime::Health::new(vec![]).await;
    let probe_publisher = publisher.clone();
    tasks.spawn(health.track(
        vec![(
            "rabbitmq",
            cadenza_runtime::probe(move || {
                let publisher = probe_publisher.clone();
                async move { publisher.ping().await }
            }),
        )],
        shutdown.clone(),
    ));
    cadenza_runtime::spawn_admin(listeners.admin, shutdown.clone());
    let (reflection_v1, reflection_v1alpha) = cadenza_runtime::reflection()?;
    tracing::info!(addr = ?listeners.grpc.local_addr().ok(), concurrency = config.concurrency, "generation serving");
    tonic::transport::Server::builder()
        .layer(cadenza_telemetry::grpc::GrpcTelemetryLayer::new(
            "generation",
        ))
        .add_service(health_service)
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
