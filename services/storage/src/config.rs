//! Configuration of the storage service.

use std::net::SocketAddr;
use std::path::PathBuf;

use cadenza_config::{Env, ExposeSecret, SecretString};

use crate::backend::{BackendKind, S3Config};
use crate::lifecycle::LifecycleConfig;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50063";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8090";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9093";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 1 << 30;
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cadenza";
pub const DEFAULT_PURGE_AFTER_DAYS: u64 = 30;
pub const DEFAULT_PREVIEW_TTL_DAYS: u64 = 30;
pub const DEFAULT_SWEEP_SECONDS: u64 = 3600;
/// HMAC-SHA256 wants at least its output size in key material.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    /// Client connections are closed at this age (`None`: never), so calls
    /// spread over replicas that started later.
    pub max_connection_age: Option<std::time::Duration>,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Plain-text `grpc.health.v1` for probes (`CADENZA_HEALTH_ADDR`), when set.
    pub health_addr: Option<SocketAddr>,
    /// Mutual TLS on the gRPC port (`CADENZA_TLS_*`); the signed-URL HTTP port
    /// and the admin port stay plain.
    pub tls: cadenza_runtime::MeshTls,
    /// Whose calls the gRPC port believes: project's and generation's
    /// (`CADENZA_MESH_PROJECT_TO_STORAGE_SECRET`,
    /// `CADENZA_MESH_GENERATION_TO_STORAGE_SECRET`).
    pub mesh: cadenza_runtime::MeshAuth,
    /// Base of signed URLs, as a browser reaches `http_addr`.
    pub public_url: String,
    pub backend: BackendKind,
    /// Root of the local backend.
    pub data_dir: PathBuf,
    /// Settings of the S3 backend, when chosen.
    pub s3: Option<S3Config>,
    pub signing_key: SecretString,
    pub max_object_bytes: u64,
    /// The catalog of stored objects.
    pub database_url: String,
    pub db_pool_size: usize,
    pub lifecycle: LifecycleConfig,
}

impl Config {
    pub fn from_env(env: &mut Env, dev_mode: bool) -> Self {
        let http_addr = env.addr("CADENZA_STORAGE_HTTP_ADDR", DEFAULT_HTTP_ADDR);
        let backend = env.parse("CADENZA_STORAGE_BACKEND", BackendKind::Local);
        let signing_key = match env.secret("CADENZA_URL_SIGNING_KEY") {
            Some(key) if key.expose_secret().len() >= MIN_SIGNING_KEY_BYTES => key,
            Some(_) => {
                env.problem(
                    "CADENZA_URL_SIGNING_KEY",
                    format!("must be at least {MIN_SIGNING_KEY_BYTES} bytes"),
                );
                random_key()
            }
            None if dev_mode => random_key(),
            None => {
                env.problem("CADENZA_URL_SIGNING_KEY", "required outside dev mode");
                random_key()
            }
        };
        Self {
            grpc_addr: env.addr("CADENZA_STORAGE_ADDR", DEFAULT_GRPC_ADDR),
            max_connection_age: match env.bounded(
                "CADENZA_GRPC_MAX_CONNECTION_AGE_SECONDS",
                0u64,
                0..=86_400,
            ) {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            http_addr,
            admin_addr: env.addr("CADENZA_STORAGE_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            health_addr: env.optional_addr("CADENZA_HEALTH_ADDR"),
            tls: cadenza_runtime::MeshTls::from_env(env),
            mesh: cadenza_runtime::MeshAuth::from_env(env, cadenza_auth::mesh::Service::Storage),
            public_url: env
                .string("CADENZA_STORAGE_PUBLIC_URL", &format!("http://{http_addr}"))
                .trim_end_matches('/')
                .to_owned(),
            data_dir: PathBuf::from(env.string("CADENZA_DATA_DIR", DEFAULT_DATA_DIR)),
            s3: (backend == BackendKind::S3).then(|| S3Config::from_env(env)),
            backend,
            signing_key,
            max_object_bytes: env.bounded(
                "CADENZA_MAX_OBJECT_BYTES",
                DEFAULT_MAX_OBJECT_BYTES,
                1..=(64 << 30),
            ),
            database_url: env.string("CADENZA_DATABASE_URL", DEFAULT_DATABASE_URL),
            db_pool_size: env.bounded("CADENZA_STORAGE_DB_POOL_SIZE", 8, 1..=256),
            lifecycle: lifecycle_from_env(env),
        }
    }
}

fn lifecycle_from_env(env: &mut Env) -> LifecycleConfig {
    let days = |n: u64| chrono::Duration::days(i64::try_from(n).unwrap_or(i64::MAX));
    let purge_after = env.bounded(
        "CADENZA_STORAGE_PURGE_AFTER_DAYS",
        DEFAULT_PURGE_AFTER_DAYS,
        0..=3650,
    );
    // 0 keeps previews for as long as their project.
    let preview_ttl = env.bounded(
        "CADENZA_PREVIEW_TTL_DAYS",
        DEFAULT_PREVIEW_TTL_DAYS,
        0..=3650,
    );
    let sweep_seconds = env.bounded(
        "CADENZA_STORAGE_SWEEP_SECONDS",
        DEFAULT_SWEEP_SECONDS,
        10..=7 * 24 * 3600,
    );
    LifecycleConfig {
        purge_after: days(purge_after),
        preview_ttl: (preview_ttl > 0).then(|| days(preview_ttl)),
        sweep_every: std::time::Duration::from_secs(sweep_seconds),
    }
}

fn random_key() -> SecretString {
    SecretString::from(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ))
}
