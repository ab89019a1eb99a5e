//! Broker settings every service that talks to RabbitMQ reads the same way.

use std::time::Duration;

use cadenza_config::Env;

use crate::Topology;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_QUEUE_PREFIX: &str = "cadenza";

/// `CADENZA_AMQP_URL`, `CADENZA_QUEUE_PREFIX`, `CADENZA_QUEUE_EXPIRES_SECONDS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub url: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Unused queues expire after this long (tests); `None` in production.
    pub expiry: Option<Duration>,
}

impl QueueConfig {
    pub fn from_env(env: &mut Env) -> Self {
        Self {
            url: env.string("CADENZA_AMQP_URL", DEFAULT_AMQP_URL),
            prefix: env.string("CADENZA_QUEUE_PREFIX", DEFAULT_QUEUE_PREFIX),
            expiry: match env.parse::<u64>("CADENZA_QUEUE_EXPIRES_SECONDS", 0) {
                0 => None,
                secs => Some(Duration::from_secs(secs)),
            },
        }
    }

    pub fn topology(&self) -> Topology {
        let mut topology = Topology::new(&self.prefix);
        topology.expires = self.expiry;
        topology
    }
}
