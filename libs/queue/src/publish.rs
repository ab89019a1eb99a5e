//! Publishing with publisher confirms.

use std::sync::Arc;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use tokio::sync::Mutex;

use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("broker unavailable: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker refused the message (nack)")]
    Refused,
    #[error("the message could not be routed to any queue")]
    Unroutable,
}

/// One queue as the broker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub queue: String,
    /// Messages waiting to be delivered (not those delivered and unacknowledged).
    pub ready: u32,
    pub consumers: u32,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

/// One message for [`Publisher::publish_all`].
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub routing_key: &'a str,
    pub message_id: &'a str,
    pub traceparent: &'a str,
    pub payload: &'a [u8],
}

/// A confirmed publisher. One channel, shared; it is replaced after any failure.
///
/// The lock guards only the choice of channel, never a wait for the broker: a
/// publish sends its frames and then awaits its confirm unlocked, so publishes
/// from many tasks (or a batch from one) share the broker's confirm round trip
/// instead of queueing behind each other's. A lapin channel takes concurrent
/// publishes; each gets its own delivery tag and confirm.
pub struct Publisher {
    url: String,
    name: String,
    topology: Topology,
    link: Mutex<Option<Arc<Link>>>,
}

impl Publisher {
    /// Does not connect: the first publish does (and declares the topology).
    pub fn new(url: impl Into<String>, name: impl Into<String>, topology: Topology) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            topology,
            link: Mutex::new(None),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Publishes one persistent message and waits for the broker's confirm.
    /// `mandatory` makes a message that reaches no queue an error, not a silent loss.
    pub async fn publish(
        &self,
        routing_key: &str,
        message_id: &str,
        traceparent: &str,
        payload: &[u8],
    ) -> Result<(), PublishError> {
        let message = Outgoing {
            routing_key,
            message_id,
            traceparent,
            payload,
        };
        let link = self.link().await?;
        let confirm = self.send(&link, message).await;
        self.confirmed(&link, confirm).await
    }

    /// Publishes every message, then waits for all their confirms: one confirm
    /// round trip for the batch instead of one per message. The results are in
    /// the order of `messages`; a failure does not stop the messages already
    /// sent from being confirmed (each result says which were).
    pub async fn publish_all(&self, messages: &[Outgoing<'_>]) -> Vec<Result<(), PublishError>> {
        let link = match self.link().await {
            Ok(link) => link,
            Err(err) => {
                return messages
                    .iter()
                    .map(|_| Err(PublishError::Broker(err.clone())))
                    .collect();
            }
        };
        let mut sent = Vec::with_capacity(messages.len());
        for message in messages {
            sent.push(self.send(&link, *message).await);
        }
        let mut results = Vec::with_capacity(sent.len());
        for confirm in sent {
            results.push(self.confirmed(&link, confirm).await);
        }
        results
    }

    /// The current channel, (re)connecting if there is none or it was closed.
    async fn link(&self) -> Result<Arc<Link>, lapin::Error> {
        let mut guard = self.link.lock().await;
        match guard.as_ref() {
            Some(link) if link.connection.status().connected() => Ok(link.clone()),
            _ => {
                let link = Arc::new(self.open().await?);
                *guard = Some(link.clone());
                Ok(link)
            }
        }
    }

    /// Drops `failed` so the next publish opens a new channel, unless another
    /// task has already replaced it.
    async fn forget(&self, failed: &Arc<Link>) {
        let mut guard = self.link.lock().await;
        if guard
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, failed))
        {
            *guard = None;
        }
    }

    /// Hands the message to the channel (written to the socket, not yet confirmed).
    async fn send(
        &self,
        link: &Link,
        message: Outgoing<'_>,
    ) -> Result<PublisherConfirm, lapin::Error> {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(message.traceparent.to_owned().into()),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/x-protobuf".into())
            .with_message_id(message.message_id.to_owned().into())
            .with_headers(headers);
        crate::bounded(
            "a publish",
            link.channel.basic_publish(
                self.topology.exchange().into(),
                message.routing_key.to_owned().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.payload,
                properties,
            ),
        )
        .await
    }

    /// Waits for the broker's answer to a sent message.
    async fn confirmed(
        &self,
        link: &Arc<Link>,
        sent: Result<PublisherConfirm, lapin::Error>,
    ) -> Result<(), PublishError> {
        let outcome = match sent {
            Ok(confirm) => crate::bounded("a publisher confirm", confirm).await,
            Err(err) => Err(err),
        };
        match outcome {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
            Ok(Confirmation::Ack(Some(_))) => Err(PublishError::Unroutable),
            Ok(Confirmation::Nack(_)) => Err(PublishError::Refused),
            Err(err) => {
                self.forget(link).await;
                Err(err.into())
            }
        }
    }

    async fn open(&self) -> Result<Link, lapin::Error> {
        let connection = crate::connect(&self.url, &self.name).await?;
        let channel = crate::bounded("a new channel", connection.create_channel()).await?;
        crate::bounded("the topology", self.topology.declare(&channel)).await?;
        crate::bounded(
            "confirm mode",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    /// The work, update and dead-letter queues' depths, by passive declares on
    /// a short-lived channel of the publishing connection (connecting if needed):
    /// a failed passive declare closes its channel, which must not be the one
    /// publishes are in flight on.
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>, PublishError> {
        let link = self.link().await?;
        let channel = match crate::bounded("a new channel", link.connection.create_channel()).await
        {
            Ok(channel) => channel,
            Err(err) => {
                self.forget(&link).await;
                return Err(err.into());
            }
        };
        let mut depths = Vec::with_capacity(3);
        let mut failure = None;
        for queue in [
            self.topology.work_queue(),
            self.topology.update_queue(),
            self.topology.dead_letter_queue(),
        ] {
            let declared = crate::bounded(
                "a queue's depth",
                channel.queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await;
            match declared {
                Ok(found) => depths.push(QueueDepth {
                    queue,
                    ready: found.message_count(),
                    consumers: found.consumer_count(),
                }),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        match failure {
            // The broker closed the channel already.
            Some(err) => {
                self.forget(&link).await;
                Err(err.into())
            }
            None => {
                let _ = crate::bounded(
                    "closing a channel",
                    channel.close(200, "queue depths read".into()),
                )
                .await;
                Ok(depths)
            }
        }
    }

    /// Whether the broker can be reached (connecting if needed): the readiness signal.
    pub async fn ping(&self) -> bool {
        let mut guard = self.link.lock().await;
        if guard
            .as_ref()
            .is_some_and(|link| link.connection.status().connected())
        {
            return true;
        }
        match self.open().await {
            Ok(link) => {
                *guard = Some(Arc::new(link));
                true
            }
            Err(_) => false,
        }
    }
}
