//! Configuration of the project service.

use std::net::SocketAddr;

use cadenza_config::{Env, JwtSecrets};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50061";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9091";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cadenza";
pub const DEFAULT_STORAGE_URL: &str = "http://127.0.0.1:50063";
pub const DEFAULT_MAX_DURATION_SECONDS: u32 = 600;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
pub const DEFAULT_DB_POOL_SIZE: usize = 16;
pub const DEFAULT_ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
pub const DEFAULT_REFRESH_TOKEN_DAYS: i64 = 30;
pub const DEFAULT_TERMS_VERSION: &str = "2026-11-01";

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
    /// Signs calls to storage (`CADENZA_MESH_PROJECT_TO_STORAGE_SECRET`) and
    /// believes the gateway's (`CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET`).
    pub mesh: cadenza_runtime::MeshAuth,
    pub database_url: String,
    pub db_pool_size: usize,
    pub queue: cadenza_queue::QueueConfig,
    pub storage_url: String,
    /// Client-side balancing over every replica behind storage's host name,
    /// looked up again at this interval (`CADENZA_BALANCE_REFRESH_SECONDS`;
    /// `None`: off, one connection).
    pub balance_refresh: Option<std::time::Duration>,
    pub max_duration_seconds: u32,
    /// How long a deleted project or account is kept before its personal data
    /// is purged (`CADENZA_DELETED_RETENTION_DAYS`).
    pub deleted_retention: chrono::Duration,
    /// Open `WatchProject` streams per user and on this replica.
    pub watch_streams_per_user: usize,
    pub watch_streams_per_replica: usize,
    pub max_attempts: u32,
    pub dev_mode: bool,
    /// Signs access tokens; the gateway verifies them with the same secrets.
    pub jwt: JwtSecrets,
    pub access_token_seconds: i64,
    pub refresh_token_days: i64,
    pub terms_version: String,
    /// Sign-in throttling (`CADENZA_SIGNIN_*`).
    pub sign_in: crate::accounts::throttle::ThrottleConfig,
    /// Memory for password hashing at once (`CADENZA_PASSWORD_HASHING_MEMORY_MB`).
    pub password_hashing_memory_mb: usize,
    /// Generation costs credits (default: on, except in dev mode).
    pub credits_enforced: bool,
    pub signup_credits: i64,
    /// Caps for accounts on the free plan.
    pub free_tier: crate::plans::FreeTier,
    /// When a running stage counts as lost.
    pub reconcile: crate::orchestrator::reconcile::ReconcileConfig,
    /// How often the reconciler looks.
    pub reconcile_every: std::time::Duration,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Self {
        let dev_mode = env.dev_mode();
        let tls = cadenza_runtime::MeshTls::from_env(env);
        Self {
            dev_mode,
            jwt: JwtSecrets::from_env(env, dev_mode),
            access_token_seconds: env.bounded(
                "CADENZA_ACCESS_TOKEN_SECONDS",
                DEFAULT_ACCESS_TOKEN_SECONDS,
                60..=3600,
            ),
            refresh_token_days: env.bounded(
                "CADENZA_REFRESH_TOKEN_DAYS",
                DEFAULT_REFRESH_TOKEN_DAYS,
                1..=365,
            ),
            terms_version: env.string("CADENZA_TERMS_VERSION", DEFAULT_TERMS_VERSION),
            sign_in: crate::accounts::throttle::ThrottleConfig::from_env(env),
            password_hashing_memory_mb: env.bounded(
                crate::accounts::hashing::MEMORY_VARIABLE,
                crate::accounts::hashing::DEFAULT_MEMORY_MB,
                19..=1_000_000,
            ),
            credits_enforced: env.flag("CADENZA_CREDITS_ENFORCED", !dev_mode),
            signup_credits: env.bounded("CADENZA_SIGNUP_CREDITS", 600, 0..=1_000_000_000),
            free_tier: crate::plans::FreeTier {
                max_song_seconds: env.bounded("CADENZA_FREE_MAX_SONG_SECONDS", 180, 0..=3600),
                songs_per_day: env.bounded("CADENZA_FREE_SONGS_PER_DAY", 20, 0..=100_000),
            },
            grpc_addr: env.addr("CADENZA_PROJECT_ADDR", DEFAULT_GRPC_ADDR),
            max_connection_age: match env.bounded(
                "CADENZA_GRPC_MAX_CONNECTION_AGE_SECONDS",
                0u64,
                0..=86_400,
            ) {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            admin_addr: env.addr("CADENZA_PROJECT_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            health_addr: env.optional_addr("CADENZA_HEALTH_ADDR"),
            database_url: env.string("CADENZA_DATABASE_URL", DEFAULT_DATABASE_URL),
            db_pool_size: env.bounded("CADENZA_DB_POOL_SIZE", DEFAULT_DB_POOL_SIZE, 1..=512),
            queue: cadenza_queue::QueueConfig::from_env(env),
            storage_url: tls.internal_url(env, "CADENZA_STORAGE_URL", DEFAULT_STORAGE_URL),
            balance_refresh: cadenza_runtime::balance::refresh_from_env(env),
            tls,
            mesh: cadenza_runtime::MeshAuth::from_env(env, cadenza_auth::mesh::Service::Project),
            max_duration_seconds: env.bounded(
                "CADENZA_MAX_DURATION_SECONDS",
                DEFAULT_MAX_DURATION_SECONDS,
                5..=3600,
            ),
            deleted_retention: chrono::Duration::days(env.bounded(
                crate::purge::RETENTION_VARIABLE,
                crate::purge::DEFAULT_RETENTION_DAYS,
                0..=3650,
            )),
            watch_streams_per_user: env.bounded(
                "CADENZA_WATCH_STREAMS_PER_USER",
                crate::watch_limits::DEFAULT_PER_USER,
                1..=100_000,
            ),
            watch_streams_per_replica: env.bounded(
                "CADENZA_WATCH_STREAMS_PER_REPLICA",
                crate::watch_limits::DEFAULT_PER_REPLICA,
                1..=10_000_000,
            ),
            max_attempts: env.bounded("CADENZA_STAGE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1..=20),
            reconcile: crate::orchestrator::reconcile::ReconcileConfig {
                heartbeat_timeout: std::time::Duration::from_secs(env.bounded(
                    "CADENZA_STAGE_HEARTBEAT_TIMEOUT_SECONDS",
                    60,
                    5..=3600,
                )),
                stage_timeout: std::time::Duration::from_secs(env.bounded(
                    "CADENZA_STAGE_TIMEOUT_SECONDS",
                    3600,
                    10..=86_400,
                )),
                lost_work_after: std::time::Duration::from_secs(env.bounded(
                    "CADENZA_STAGE_LOST_WORK_SECONDS",
                    120,
                    5..=86_400,
                )),
            },
            reconcile_every: std::time::Duration::from_secs(env.bounded(
                "CADENZA_RECONCILE_SECONDS",
                15,
                1..=3600,
            )),
        }
    }
}
