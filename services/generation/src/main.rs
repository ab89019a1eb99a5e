//! `cadenza-generation`: the stage workers.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Json);
    cadenza_telemetry::init(format);
    let config = cadenza_generation::Config::from_env(&mut env);
    env.finish()?;
    let listeners = cadenza_generation::Listeners::bind(config.grpc_addr, config.admin_addr)
        .await?
        .with_health(config.health_addr)
        .await?;
    let outcome =
        cadenza_generation::run(config, listeners, cadenza_runtime::shutdown_signal()).await;
    cadenza_telemetry::otlp::shutdown();
    outcome
}
