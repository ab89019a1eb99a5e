//! Configuration of the generation service.

use std::net::SocketAddr;

use cadenza_config::Env;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50062";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9092";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_QUEUE_PREFIX: &str = "cadenza";
pub const DEFAULT_STORAGE_URL: &str = "http://127.0.0.1:50063";
pub const DEFAULT_CONCURRENCY: u16 = 2;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub amqp_url: String,
    pub queue_prefix: String,
    /// Unused queues expire after this long (tests); `None` in production.
    pub queue_expiry: Option<std::time::Duration>,
    pub storage_url: String,
    pub concurrency: u16,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            grpc_addr: env.addr("CADENZA_GENERATION_ADDR", DEFAULT_GRPC_ADDR),
            admin_addr: env.addr("CADENZA_GENERATION_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            amqp_url: env.string("CADENZA_AMQP_URL", DEFAULT_AMQP_URL),
            queue_prefix: env.string("CADENZA_QUEUE_PREFIX", DEFAULT_QUEUE_PREFIX),
            queue_expiry: match env.parse::<u64>("CADENZA_QUEUE_EXPIRES_SECONDS", 0) {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            storage_url: env.string("CADENZA_STORAGE_URL", DEFAULT_STORAGE_URL),
            concurrency: env.bounded("CADENZA_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64),
        }
    }
}
