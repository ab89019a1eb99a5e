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

/// How long one exchange with the broker (connecting, opening a channel,
/// declaring, publishing, a confirm, closing) may take. A broker that is
/// restarting can accept a connection and then answer nothing; without a
/// bound, whatever awaits it (and everything queued behind the publisher's
/// lock) would wait for ever instead of reconnecting.
pub const BROKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `future`, or a timed-out IO error naming `what` once [`BROKER_TIMEOUT`] has
/// passed (an error every caller already treats as a lost broker).
pub async fn bounded<T>(
    what: &'static str,
    future: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<T, lapin::Error> {
    match tokio::time::timeout(BROKER_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::from(lapin::ErrorKind::IOError(
            std::sync::Arc::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the broker did not answer {what} within {BROKER_TIMEOUT:?}"),
            )),
        ))),
    }
}

/// Connects to the broker, naming the connection after the service for the
/// management UI.
pub async fn connect(url: &str, name: &str) -> Result<lapin::Connection, lapin::Error> {
    let properties =
        lapin::ConnectionProperties::default().with_connection_name(name.to_owned().into());
    bounded(
        "the connection",
        lapin::Connection::connect(url, properties),
    )
    .await
}
