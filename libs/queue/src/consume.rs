//! A consumer loop: manual acks, bounded prefetch, reconnection, clean shutdown.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::bounded;
use crate::topology::Topology;

/// What to do with a delivery once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done; remove it from the queue.
    Ack,
    /// Not done, through no fault of the message: deliver it again.
    Requeue,
    /// The message itself is bad: dead-letter it.
    Reject,
}

/// What a handler sees of a delivery.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub data: Vec<u8>,
    /// The broker delivered this message before; dedup only needs to look here.
    pub redelivered: bool,
    /// `traceparent` header, if the publisher sent one.
    pub traceparent: Option<String>,
    /// The routing key it was published with (kept when it is dead-lettered).
    pub routing_key: String,
    /// Why the broker dead-lettered it (`rejected`, `delivery_limit`, ...), on
    /// deliveries from a dead-letter queue.
    pub death_reason: Option<String>,
}

impl Incoming {
    fn from_delivery(delivery: &Delivery) -> Self {
        let header = |name: &str| {
            delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|headers| headers.inner().get(name))
                .and_then(|value| match value {
                    lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
                    lapin::types::AMQPValue::ShortString(s) => Some(s.to_string()),
                    _ => None,
                })
        };
        Self {
            data: delivery.data.clone(),
            redelivered: delivery.redelivered,
            traceparent: header("traceparent"),
            routing_key: delivery.routing_key.to_string(),
            death_reason: header("x-first-death-reason"),
        }
    }
}

/// Consumes `queue` until `shutdown`, handling up to `prefetch` deliveries at
/// once. After a broker failure it reconnects with backoff. On shutdown it stops
/// taking deliveries and waits for the ones in flight: nothing unfinished is acked.
pub async fn consume<H, Fut>(
    url: &str,
    name: &str,
    topology: &Topology,
    queue: &str,
    prefetch: u16,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Handled> + Send + 'static,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match consume_once(
            url,
            name,
            topology,
            queue,
            prefetch,
            &shutdown,
            handler.clone(),
        )
        .await
        {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(err) => {
                tracing::warn!(queue, error = %err, retry_in_ms = backoff.as_millis() as u64, "consumer lost the broker");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn consume_once<H, Fut>(
    url: &str,
    name: &str,
    topology: &Topology,
    queue: &str,
    prefetch: u16,
    shutdown: &CancellationToken,
    handler: H,
) -> Result<(), lapin::Error>
where
    H: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Handled> + Send + 'static,
{
    let connection = crate::connect(url, name).await?;
    let channel = bounded("a new channel", connection.create_channel()).await?;
    bounded("the topology", topology.declare(&channel)).await?;
    bounded(
        "the prefetch",
        channel.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await?;
    let mut consumer = bounded(
        "a consume",
        channel.basic_consume(
            queue.to_owned().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(queue, prefetch, "consuming");
    let mut in_flight = JoinSet::new();
    let result = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    let handler = handler.clone();
                    in_flight.spawn(async move {
                        let outcome = handler(Incoming::from_delivery(&delivery)).await;
                        let acked = match outcome {
                            Handled::Ack => delivery.acker.ack(BasicAckOptions::default()).await,
                            Handled::Requeue => {
                                delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await
                            }
                            Handled::Reject => {
                                delivery.acker.reject(BasicRejectOptions { requeue: false }).await
                            }
                        };
                        if let Err(err) = acked {
                            // The channel is gone; the broker redelivers the message.
                            tracing::warn!(error = %err, "acknowledgement failed");
                        }
                    });
                }
                Some(Err(err)) => break Err(err),
                None => break Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Closed,
                ))),
            },
        }
    };
    // Stop new deliveries, then let the ones in flight finish and ack.
    let _ = bounded(
        "a consumer's cancel",
        channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await;
    while in_flight.join_next().await.is_some() {}
    let _ = bounded(
        "closing a channel",
        channel.close(200, "consumer stopped".into()),
    )
    .await;
    let _ = bounded(
        "closing a connection",
        connection.close(200, "consumer stopped".into()),
    )
    .await;
    result
}

/// Receives every message published with `key` until `shutdown`, on a queue of
/// this process's own (exclusive, deleted with the connection): a broadcast.
/// Messages published while the connection is down are not seen, so listeners
/// must treat what they hear as a hint, never as the only source of truth.
pub async fn listen<H, Fut>(
    url: &str,
    name: &str,
    topology: &Topology,
    key: &str,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        match listen_once(url, name, topology, key, &shutdown, &handler).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(err) => {
                tracing::warn!(key, error = %err, retry_in_ms = backoff.as_millis() as u64, "listener lost the broker");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn listen_once<H, Fut>(
    url: &str,
    name: &str,
    topology: &Topology,
    key: &str,
    shutdown: &CancellationToken,
    handler: &H,
) -> Result<(), lapin::Error>
where
    H: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    let connection = crate::connect(url, name).await?;
    let channel = bounded("a new channel", connection.create_channel()).await?;
    bounded("the topology", topology.declare(&channel)).await?;
    let queue = bounded(
        "a listener's queue",
        channel.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await?;
    bounded(
        "a binding",
        channel.queue_bind(
            queue.name().clone(),
            topology.exchange().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    let mut consumer = bounded(
        "a consume",
        channel.basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            next = consumer.next() => match next {
                Some(Ok(delivery)) => handler(Incoming::from_delivery(&delivery)).await,
                Some(Err(err)) => return Err(err),
                None => return Err(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Closed,
                ))),
            },
        }
    }
}
