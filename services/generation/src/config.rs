//! Configuration of the generation service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cadenza_config::Env;
use cadenza_synth::Stage;

use crate::providers::breaker::BreakerConfig;
use crate::providers::chain::{RetryConfig, parse_order};
use crate::providers::hosted::HostedConfig;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50062";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9092";
pub const DEFAULT_STORAGE_URL: &str = "http://127.0.0.1:50063";
pub const DEFAULT_CONCURRENCY: u16 = 2;
pub const DEFAULT_FAL_URL: &str = "https://queue.fal.run";
pub const DEFAULT_REPLICATE_URL: &str = "https://api.replicate.com";

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    /// Client connections are closed at this age (`None`: never), so calls
    /// spread over replicas that started later.
    pub max_connection_age: Option<std::time::Duration>,
    pub admin_addr: SocketAddr,
    /// Plain-text `grpc.health.v1` for probes (`CADENZA_HEALTH_ADDR`), when set.
    pub health_addr: Option<SocketAddr>,
    /// Mutual TLS on the gRPC port and towards storage (`CADENZA_TLS_*`).
    pub tls: cadenza_runtime::MeshTls,
    /// Signs calls to storage (`CADENZA_MESH_GENERATION_TO_STORAGE_SECRET`)
    /// and believes the gateway's (`CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET`).
    pub mesh: cadenza_runtime::MeshAuth,
    pub queue: cadenza_queue::QueueConfig,
    pub storage_url: String,
    /// Client-side balancing over every replica behind storage's host name,
    /// looked up again at this interval (`CADENZA_BALANCE_REFRESH_SECONDS`;
    /// `None`: off, one connection).
    pub balance_refresh: Option<std::time::Duration>,
    pub concurrency: u16,
    pub providers: ProvidersConfig,
    /// How often a running stage reports that it is alive (keep it well under
    /// `project`'s CADENZA_STAGE_HEARTBEAT_TIMEOUT_SECONDS).
    pub heartbeat: Duration,
}

/// Hosted providers (each only when its key is set) and the order to try them in.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub fal: Option<HostedConfig>,
    pub replicate: Option<HostedConfig>,
    pub order: HashMap<Stage, Vec<&'static str>>,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
}

impl ProvidersConfig {
    fn from_env(env: &mut Env) -> Self {
        let http_timeout =
            Duration::from_secs(env.bounded("CADENZA_PROVIDER_HTTP_TIMEOUT_SECONDS", 30, 1..=600));
        let job_timeout = Duration::from_secs(env.bounded(
            "CADENZA_PROVIDER_JOB_TIMEOUT_SECONDS",
            900,
            1..=86_400,
        ));
        let poll_interval =
            Duration::from_millis(env.bounded("CADENZA_PROVIDER_POLL_MILLIS", 1000, 10..=60_000));
        // A 10-minute 48 kHz stereo 24-bit WAV is about 170 MB.
        let max_download_bytes = env.bounded(
            "CADENZA_PROVIDER_MAX_DOWNLOAD_BYTES",
            512u64 << 20,
            1..=(16u64 << 30),
        );
        let hosted = |prefix: &str, key_name: &str, default_url: &str, default_model: &str| {
            let key = env.secret(&format!("CADENZA_{prefix}_{key_name}"))?;
            Some(HostedConfig {
                base_url: env.string(&format!("CADENZA_{prefix}_URL"), default_url),
                key,
                model: env.string(&format!("CADENZA_{prefix}_MODEL"), default_model),
                http_timeout,
                job_timeout,
                poll_interval,
                max_download_bytes,
            })
        };
        let fal = hosted("FAL", "KEY", DEFAULT_FAL_URL, "cadenza/stage");
        let replicate = hosted("REPLICATE", "TOKEN", DEFAULT_REPLICATE_URL, "cadenza-stage");
        let mut known = vec![crate::providers::builtin::NAME];
        known.extend(fal.as_ref().map(|_| "fal"));
        known.extend(replicate.as_ref().map(|_| "replicate"));
        let spec = env.string("CADENZA_PROVIDER_CHAIN", "");
        let order = parse_order(&spec, &known).unwrap_or_else(|reason| {
            env.problem(
                "CADENZA_PROVIDER_CHAIN",
                format!("{reason} (a hosted provider is known once its key is set)"),
            );
            HashMap::new()
        });
        let first_delay =
            Duration::from_millis(env.bounded("CADENZA_PROVIDER_BACKOFF_MILLIS", 500, 1..=60_000));
        let max_delay = Duration::from_millis(env.bounded(
            "CADENZA_PROVIDER_BACKOFF_MAX_MILLIS",
            10_000,
            1..=600_000,
        ));
        Self {
            fal,
            replicate,
            order,
            retry: RetryConfig {
                attempts: env.bounded("CADENZA_PROVIDER_ATTEMPTS", 3, 1..=20),
                first_delay,
                max_delay: max_delay.max(first_delay),
            },
            breaker: BreakerConfig {
                threshold: env.bounded("CADENZA_PROVIDER_BREAKER_FAILURES", 5, 1..=1000),
                cooldown: Duration::from_secs(env.bounded(
                    "CADENZA_PROVIDER_BREAKER_COOLDOWN_SECONDS",
                    30,
                    1..=3600,
                )),
            },
        }
    }
}

impl Config {
    pub fn from_env(env: &mut Env) -> Self {
        // Generation has no dev mode of its own, but it holds the hosted
        // providers' keys: a dev-mode mesh must not (see `Env::dev_mode`).
        env.dev_mode();
        let tls = cadenza_runtime::MeshTls::from_env(env);
        Self {
            grpc_addr: env.addr("CADENZA_GENERATION_ADDR", DEFAULT_GRPC_ADDR),
            max_connection_age: match env.bounded(
                "CADENZA_GRPC_MAX_CONNECTION_AGE_SECONDS",
                0u64,
                0..=86_400,
            ) {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            admin_addr: env.addr("CADENZA_GENERATION_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            health_addr: env.optional_addr("CADENZA_HEALTH_ADDR"),
            queue: cadenza_queue::QueueConfig::from_env(env),
            storage_url: tls.internal_url(env, "CADENZA_STORAGE_URL", DEFAULT_STORAGE_URL),
            balance_refresh: cadenza_runtime::balance::refresh_from_env(env),
            tls,
            mesh: cadenza_runtime::MeshAuth::from_env(env, cadenza_auth::mesh::Service::Generation),
            concurrency: env.bounded("CADENZA_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64),
            providers: ProvidersConfig::from_env(env),
            heartbeat: Duration::from_secs(env.bounded("CADENZA_HEARTBEAT_SECONDS", 10, 1..=600)),
        }
    }
}
