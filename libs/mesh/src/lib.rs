#![doc = include_str!("../README.md")]

pub mod testing;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cadenza_auth::mesh::Service;
use cadenza_config::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What differs between one mesh and another.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub database_url: String,
    pub amqp_url: String,
    pub queue_prefix: String,
    /// Queues expire after this long unused (tests); `None` keeps them.
    pub queue_expiry: Option<std::time::Duration>,
    pub data_dir: PathBuf,
    /// The gateway's public address; port 0 lets the OS choose.
    pub gateway_addr: SocketAddr,
    /// The storage service's HTTP address for signed URLs; port 0 lets the OS choose.
    pub storage_http_addr: SocketAddr,
    /// Bind admin (`/metrics`) ports at their defaults; off in tests.
    pub admin_ports: bool,
    pub worker_concurrency: u16,
    pub env: cadenza_config::Env,
}

/// A running mesh.
pub struct Mesh {
    pub gateway_addr: SocketAddr,
    pub storage_http_addr: SocketAddr,
    /// The internal services' gRPC ports (tests call them directly, as an
    /// intruder inside the network would).
    pub project_addr: SocketAddr,
    pub generation_addr: SocketAddr,
    pub storage_addr: SocketAddr,
    /// The secrets the services sign their calls to each other with.
    pub secrets: MeshSecrets,
    shutdown: CancellationToken,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

async fn loopback() -> std::io::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0").await
}

impl Mesh {
    /// Applies migrations, then starts storage, project, generation and gateway.
    pub async fn start(config: MeshConfig) -> anyhow::Result<Self> {
        cadenza_db::migrate::run_pending(&config.database_url)
            .await
            .context("applying migrations")?;
        let mut env = config.env.clone();
        env.set("CADENZA_DATABASE_URL", &config.database_url);
        env.set("CADENZA_AMQP_URL", &config.amqp_url);
        env.set("CADENZA_QUEUE_PREFIX", &config.queue_prefix);
        env.set("CADENZA_DATA_DIR", config.data_dir.display().to_string());
        env.set(
            "CADENZA_WORKER_CONCURRENCY",
            config.worker_concurrency.to_string(),
        );
        if let Some(expiry) = config.queue_expiry {
            env.set(
                "CADENZA_QUEUE_EXPIRES_SECONDS",
                expiry.as_secs().max(1).to_string(),
            );
        }

        let admin = |addr: &str| {
            let addr = addr.to_owned();
            let enabled = config.admin_ports;
            async move {
                if enabled {
                    TcpListener::bind(&addr)
                        .await
                        .map(Some)
                        .with_context(|| format!("binding admin port {addr}"))
                } else {
                    Ok(None)
                }
            }
        };
        let storage_grpc = loopback().await?;
        let storage_addr = storage_grpc.local_addr()?;
        let storage_http = TcpListener::bind(config.storage_http_addr)
            .await
            .context("binding the storage HTTP port")?;
        let storage_http_addr = storage_http.local_addr()?;
        let project_grpc = loopback().await?;
        let project_addr = project_grpc.local_addr()?;
        let generation_grpc = loopback().await?;
        let generation_addr = generation_grpc.local_addr()?;
        let gateway = TcpListener::bind(config.gateway_addr)
            .await
            .with_context(|| format!("binding the gateway to {}", config.gateway_addr))?;
        let gateway_addr = gateway.local_addr()?;
        // With CADENZA_TLS_* set, the services dial each other over mutual TLS
        // at https://127.0.0.1:port, so the certificate must name 127.0.0.1.
        let scheme = if env.optional(cadenza_runtime::tls::CERT_FILE).is_some() {
            "https"
        } else {
            "http"
        };
        env.set(
            "CADENZA_STORAGE_URL",
            format!("{scheme}://{}", storage_grpc.local_addr()?),
        );
        env.set(
            "CADENZA_PROJECT_URL",
            format!("{scheme}://{}", project_grpc.local_addr()?),
        );
        env.set(
            "CADENZA_GENERATION_URL",
            format!("{scheme}://{}", generation_grpc.local_addr()?),
        );
        env.set("CADENZA_STORAGE_HTTP_ADDR", storage_http_addr.to_string());
        if env.optional("CADENZA_STORAGE_PUBLIC_URL").is_none() {
            env.set(
                "CADENZA_STORAGE_PUBLIC_URL",
                format!("http://{storage_http_addr}"),
            );
        }

        let dev_mode = env.flag("CADENZA_DEV_MODE", true);
        env.set("CADENZA_DEV_MODE", dev_mode.to_string());
        // The gateway verifies what `project` signs: in one process they share
        // one key, random unless configured.
        if dev_mode && env.optional("CADENZA_JWT_SECRET").is_none() {
            env.set(
                "CADENZA_JWT_SECRET",
                cadenza_auth::random_secret().expose_secret(),
            );
        }
        let secrets = MeshSecrets::random();
        secrets.configure(&mut env, Service::Storage);
        let storage_config = cadenza_storage::Config::from_env(&mut env, dev_mode);
        secrets.configure(&mut env, Service::Project);
        let mut project_config = cadenza_project::Config::from_env(&mut env);
        // Four services share one machine's connections: keep the pool modest.
        project_config.db_pool_size = project_config.db_pool_size.min(10);
        secrets.configure(&mut env, Service::Generation);
        let generation_config = cadenza_generation::Config::from_env(&mut env);
        secrets.configure(&mut env, Service::Gateway);
        let gateway_config = cadenza_gateway::Config::from_env(&mut env);
        env.finish()?;

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let storage_listeners = cadenza_storage::Listeners {
            grpc: storage_grpc,
            http: storage_http,
            admin: admin(&storage_config.admin_addr.to_string()).await?,
            // One process serves the four: no separate health port (its
            // gRPC ports answer health, in plain text or with a client
            // certificate).
            health: None,
        };
        tasks.spawn(named(
            "storage",
            cadenza_storage::run(storage_config, storage_listeners, shutdown.clone()),
        ));
        let project_listeners = cadenza_project::Listeners {
            grpc: project_grpc,
            admin: admin(&project_config.admin_addr.to_string()).await?,
            health: None,
        };
        tasks.spawn(named(
            "project",
            cadenza_project::run(project_config, project_listeners, shutdown.clone()),
        ));
        let generation_listeners = cadenza_generation::Listeners {
            grpc: generation_grpc,
            admin: admin(&generation_config.admin_addr.to_string()).await?,
            health: None,
        };
        tasks.spawn(named(
            "generation",
            cadenza_generation::run(generation_config, generation_listeners, shutdown.clone()),
        ));
        let gateway_listeners = cadenza_gateway::Listeners {
            grpc: gateway,
            admin: admin(&gateway_config.admin_addr.to_string()).await?,
            health: None,
        };
        tasks.spawn(named(
            "gateway",
            cadenza_gateway::run(gateway_config, gateway_listeners, shutdown.clone()),
        ));
        Ok(Self {
            gateway_addr,
            storage_http_addr,
            project_addr,
            generation_addr,
            storage_addr,
            secrets,
            shutdown,
            tasks,
        })
    }

    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway_addr)
    }

    /// Waits until `shutdown` or until a service stops on its own (an error).
    pub async fn run_until(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tokio::select! {
            () = shutdown.cancelled() => {}
            Some(joined) = self.tasks.join_next() => {
                let (name, result) = joined.context("a service task panicked")?;
                self.stop().await;
                result.with_context(|| format!("the {name} service stopped"))?;
                anyhow::bail!("the {name} service stopped unexpectedly");
            }
        }
        self.stop().await;
        Ok(())
    }

    /// Signals every service to stop and waits for them to drain.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            if let Ok((name, Err(err))) = joined {
                tracing::warn!(service = name, error = %format!("{err:#}"), "service stopped with an error");
            }
        }
    }
}

/// The mesh secrets of one runner: a random secret per link, made at
/// start-up. They never leave the process, so whatever the environment holds
/// for `CADENZA_MESH_*_SECRET` is replaced: each service gets the secrets of
/// its own links, as separate deployments would.
#[derive(Clone)]
pub struct MeshSecrets {
    links: Vec<((Service, Service), SecretString)>,
}

impl std::fmt::Debug for MeshSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshSecrets(..)")
    }
}

impl MeshSecrets {
    /// A fresh random secret for every link.
    pub fn random() -> Self {
        Self {
            links: cadenza_auth::mesh::LINKS
                .into_iter()
                .map(|link| (link, cadenza_auth::random_secret()))
                .collect(),
        }
    }

    /// The secret of calls from `caller` to `callee`, if they are a link.
    pub fn of(&self, caller: Service, callee: Service) -> Option<&SecretString> {
        self.links
            .iter()
            .find(|(link, _)| *link == (caller, callee))
            .map(|(_, secret)| secret)
    }

    /// The variables `service` is given: the secret of each of its links.
    pub fn variables(&self, service: Service) -> Vec<(String, String)> {
        self.links
            .iter()
            .filter(|((caller, callee), _)| *caller == service || *callee == service)
            .map(|((caller, callee), secret)| {
                (
                    cadenza_auth::mesh::link_variable(*caller, *callee),
                    secret.expose_secret().to_owned(),
                )
            })
            .collect()
    }

    /// Sets the variables as `service` reads them, and blanks those of links
    /// it is no end of (one environment configures all four in turn).
    fn configure(&self, env: &mut cadenza_config::Env, service: Service) {
        for (caller, callee) in cadenza_auth::mesh::LINKS {
            env.set(&cadenza_auth::mesh::link_variable(caller, callee), "");
        }
        for (variable, value) in self.variables(service) {
            env.set(&variable, value);
        }
    }
}

async fn named(
    name: &'static str,
    future: impl std::future::Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, future.await)
}
