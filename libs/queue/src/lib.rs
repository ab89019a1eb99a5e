#![doc = include_str!("../README.md")]

pub mod config;
pub mod consume;
pub mod envelope;
pub mod publish;
pub mod topology;

pub use config::QueueConfig;
pub use consume::{Handled, consume, listen};
pub use envelope::{EnvelopeError, decode, encode};
pub use lapin;
pub use publish::{Publisher, QueueDepth};
pub use topology::Topology;

/// Connects to the broker, naming the connection after the service for the
/// management UI.
pub async fn connect(url: &str, name: &str) -> Result<lapin::Connection, lapin::Error> {
    let properties =
        lapin::ConnectionProperties::default().with_connection_name(name.to_owned().into());
    lapin::Connection::connect(url, properties).await
}
