//! `cadenza-gateway`: the public door.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Json);
    cadenza_telemetry::init(format);
    let config = cadenza_gateway::Config::from_env(&mut env);
    env.finish()?;
    let listeners = cadenza_gateway::Listeners::bind(config.addr, config.admin_addr).await?;
    let outcome = cadenza_gateway::run(config, listeners, cadenza_runtime::shutdown_signal()).await;
    cadenza_telemetry::otlp::shutdown();
    outcome
}
