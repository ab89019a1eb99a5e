//! Configuration of the generation service.

use std::net::SocketAddr;

use cadenza_config::Env;

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50062";
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9092";
pub const DEFAULT_STORAGE_URL: &str = "http://127.0.0.1:50063";
pub const DEFAULT_CONCURRENCY: u16 = 2;

#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub queue: cadenza_queue::QueueConfig,
    pub storage_url: String,
    pub concurrency: u16,
}

impl Config {
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            grpc_addr: env.addr("CADENZA_GENERATION_ADDR", DEFAULT_GRPC_ADDR),
            admin_addr: env.addr("CADENZA_GENERATION_ADMIN_ADDR", DEFAULT_ADMIN_ADDR),
            queue: cadenza_queue::QueueConfig::from_env(env),
            storage_url: env.string("CADENZA_STORAGE_URL", DEFAULT_STORAGE_URL),
            concurrency: env.bounded("CADENZA_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64),
        }
    }
}
