//! `cadenza-dev`: the whole mesh in one process, in dev mode, until interrupted.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Plain);
    cadenza_telemetry::init(format);
    if env.optional("CADENZA_DEV_MODE").is_none() {
        env.set("CADENZA_DEV_MODE", "true");
    }
    let gateway_addr: SocketAddr = env.addr(
        "CADENZA_GATEWAY_ADDR",
        cadenza_gateway::config::DEFAULT_ADDR,
    );
    let storage_http_addr = env.addr(
        "CADENZA_STORAGE_HTTP_ADDR",
        cadenza_storage::config::DEFAULT_HTTP_ADDR,
    );
    let config = cadenza_mesh::MeshConfig {
        database_url: env.string(
            "CADENZA_DATABASE_URL",
            cadenza_project::config::DEFAULT_DATABASE_URL,
        ),
        amqp_url: env.string("CADENZA_AMQP_URL", cadenza_queue::config::DEFAULT_AMQP_URL),
        queue_prefix: env.string(
            "CADENZA_QUEUE_PREFIX",
            cadenza_queue::config::DEFAULT_QUEUE_PREFIX,
        ),
        queue_expiry: None,
        data_dir: env
            .string(
                "CADENZA_DATA_DIR",
                cadenza_storage::config::DEFAULT_DATA_DIR,
            )
            .into(),
        gateway_addr,
        storage_http_addr,
        admin_ports: true,
        worker_concurrency: env.parse("CADENZA_WORKER_CONCURRENCY", 2),
        env,
    };
    let mesh = cadenza_mesh::Mesh::start(config).await?;
    tracing::info!(gateway = %mesh.gateway_url(), "Cadenza is running; Ctrl-C stops it");
    println!("Cadenza gateway: {}", mesh.gateway_url());
    mesh.run_until(cadenza_runtime::shutdown_signal()).await
}
