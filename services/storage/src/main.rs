//! `cadenza-storage`: artifact bytes.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Json);
    cadenza_telemetry::init(format);
    let dev_mode = env.dev_mode();
    let config = cadenza_storage::Config::from_env(&mut env, dev_mode);
    env.finish()?;
    let listeners = cadenza_storage::Listeners::bind(&config).await?;
    let outcome = cadenza_storage::run(config, listeners, cadenza_runtime::shutdown_signal()).await;
    cadenza_telemetry::otlp::shutdown();
    outcome
}
