//! Configuration of the gateway.

use std::net::SocketAddr;

use cadenza_config::{Env, JwtSecrets};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9090";
/// Where `make web` puts the studio, relative to the working directory.
pub const DEFAULT_WEB_DIR: &str = "web/dist";
pub const DEFAULT_PROJECT_URL: &str = "http://127.0.0.1:50061";
pub const DEFAULT_GENERATION_URL: &str = "http://127.0.0.1:50062";

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub project_url: String,
    /// Client-side balancing over every replica behind project's host name,
    /// looked up again at this interval (`CADENZA_BALANCE_REFRESH_SECONDS`;
    /// `None`: off, one connection).
    pub balance_refresh: Option<std::time::Duration>,
    /// Asked (every replica its host name resolves to) for provider health.
    pub generation_url: String,
    /// Mutual TLS towards project and generation (`CADENZA_TLS_*`); the
    /// gateway's own port stays plain, TLS for the public ends at the ingress.
    pub tls: cadenza_runtime::MeshTls,
    /// Signs the assertion every upstream call carries
    /// (`CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET`,
    /// `CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET`).
    pub mesh: cadenza_runtime::MeshAuth,
    pub dev_mode: bool,
    /// No active secret only in dev mode: a random key is made at start-up.
    pub jwt: JwtSecrets,
    pub cors_origins: Vec<String>,
    pub limits: crate::limits::LimitsConfig,
    /// How long one call may take before it is cancelled
    /// (`CADENZA_GATEWAY_REQUEST_TIMEOUT_SECONDS`).
    pub request_timeout: std::time::Duration,
    /// Calls answered at once on this replica; more are shed
    /// (`CADENZA_GATEWAY_MAX_IN_FLIGHT`).
    pub max_in_flight: usize,
    /// Proxies whose `X-Forwarded-For` names the client
    /// (`CADENZA_TRUSTED_PROXIES`); none by default.
    pub trusted_proxies: crate::client_address::TrustedProxies,
    /// How long a verified API key is trusted without asking `project` again.
    pub api_key_cache_seconds: u64,
    /// The built web studio to serve (`web/dist`); `None` serves the API only.
    pub web_dir: Option<std::path::PathBuf>,
    /// CSP sources the studio may load audio and waveforms from.
    pub web_media_sources: String,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Self {
        let dev_mode = env.dev_mode();
        let jwt = JwtSecrets::from_env(env, dev_mode);
        let tls = cadenza_runtime::MeshTls::from_env(env);
        Self {
            addr: env.addr("CADENZA_GATEWAY_ADDR", DEFAULT_ADDR),
            admin_addr: env.addr("CADENZA_GATEWAY_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            project_url: tls.internal_url(env, "CADENZA_PROJECT_URL", DEFAULT_PROJECT_URL),
            balance_refresh: cadenza_runtime::balance::refresh_from_env(env),
            generation_url: tls.internal_url(env, "CADENZA_GENERATION_URL", DEFAULT_GENERATION_URL),
            tls,
            mesh: cadenza_runtime::MeshAuth::from_env(env, cadenza_auth::mesh::Service::Gateway),
            dev_mode,
            jwt,
            limits: crate::limits::LimitsConfig::from_env(env),
            trusted_proxies: crate::client_address::TrustedProxies::from_env(env),
            request_timeout: std::time::Duration::from_secs(env.bounded(
                "CADENZA_GATEWAY_REQUEST_TIMEOUT_SECONDS",
                30,
                1..=3600,
            )),
            max_in_flight: env.bounded(
                "CADENZA_GATEWAY_MAX_IN_FLIGHT",
                crate::overload::DEFAULT_MAX_IN_FLIGHT,
                1..=1_000_000,
            ),
            api_key_cache_seconds: env.bounded(
                "CADENZA_API_KEY_CACHE_SECONDS",
                crate::key_cache::DEFAULT_TTL_SECONDS,
                0..=300,
            ),
            web_dir: Some(env.string("CADENZA_WEB_DIR", DEFAULT_WEB_DIR))
                .filter(|dir| !dir.is_empty())
                .map(std::path::PathBuf::from),
            web_media_sources: {
                let value = env.string(
                    "CADENZA_WEB_MEDIA_SOURCES",
                    crate::web::DEFAULT_MEDIA_SOURCES,
                );
                crate::web::parse_media_sources(&value).unwrap_or_else(|reason| {
                    env.problem("CADENZA_WEB_MEDIA_SOURCES", reason);
                    crate::web::DEFAULT_MEDIA_SOURCES.to_owned()
                })
            },
            cors_origins: env
                .string("CADENZA_CORS_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}
