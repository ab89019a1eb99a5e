//! `cadenza-project [serve|migrate]`

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut env = cadenza_config::Env::from_process();
    let format = env.parse("CADENZA_LOG_FORMAT", cadenza_telemetry::LogFormat::Json);
    cadenza_telemetry::init(format);
    let config = cadenza_project::Config::from_env(&mut env);
    env.finish()?;
    match std::env::args().nth(1).as_deref() {
        Some("migrate") => {
            let applied = cadenza_db::migrate::run_pending(&config.database_url)
                .await
                .context("applying migrations")?;
            tracing::info!(applied = ?applied, "migrations applied");
            Ok(())
        }
        None | Some("serve") => {
            let listeners =
                cadenza_project::Listeners::bind(config.grpc_addr, config.admin_addr).await?;
            cadenza_project::run(config, listeners, cadenza_runtime::shutdown_signal()).await
        }
        Some(other) => anyhow::bail!("unknown command `{other}`: use `serve` or `migrate`"),
    }
}
