//! `cadenza-project [serve|migrate]`

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Json);
    cadenza_telemetry::init(format);
    match std::env::args().nth(1).as_deref() {
        // Migrating needs the database and nothing else (no secrets), so a
        // migration job is given only what it uses.
        Some("migrate") => {
            let url = env.string(
                "CADENZA_DATABASE_URL",
                cadenza_project::config::DEFAULT_DATABASE_URL,
            );
            let applied = cadenza_db::migrate::run_pending(&url)
                .await
                .context("applying migrations")?;
            tracing::info!(applied = ?applied, "migrations applied");
            Ok(())
        }
        None | Some("serve") => {
            let config = cadenza_project::Config::from_env(&mut env);
            env.finish()?;
            let listeners = cadenza_project::Listeners::bind(config.grpc_addr, config.admin_addr)
                .await?
                .with_health(config.health_addr)
                .await?;
            let outcome =
                cadenza_project::run(config, listeners, cadenza_runtime::shutdown_signal()).await;
            cadenza_telemetry::otlp::shutdown();
            outcome
        }
        Some(other) => anyhow::bail!("unknown command `{other}`: use `serve` or `migrate`"),
    }
}
