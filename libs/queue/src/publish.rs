//! Publishing with publisher confirms.

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
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

/// A confirmed publisher. One channel, shared; it is replaced after any failure.
pub struct Publisher {
    url: String,
    name: String,
    topology: Topology,
    link: Mutex<Option<Link>>,
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
        let mut guard = self.link.lock().await;
        if guard
            .as_ref()
            .is_none_or(|link| !link.connection.status().connected())
        {
            *guard = Some(self.open().await?);
        }
        let Some(link) = guard.as_ref() else {
            return Err(PublishError::Refused);
        };
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(traceparent.to_owned().into()),
        );
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/x-protobuf".into())
            .with_message_id(message_id.to_owned().into())
            .with_headers(headers);
        let outcome = async {
            link.channel
                .basic_publish(
                    self.topology.exchange().into(),
                    routing_key.to_owned().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await?
                .await
        }
        .await;
        match outcome {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(()),
            Ok(Confirmation::Ack(Some(_))) => Err(PublishError::Unroutable),
            Ok(Confirmation::Nack(_)) => Err(PublishError::Refused),
            Err(err) => {
                *guard = None;
                Err(err.into())
            }
        }
    }

    async fn open(&self) -> Result<Link, lapin::Error> {
        let connection = crate::connect(&self.url, &self.name).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    /// The work, update and dead-letter queues' depths, by passive declares on
    /// the publishing channel (connecting if needed).
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>, PublishError> {
        let mut guard = self.link.lock().await;
        if guard
            .as_ref()
            .is_none_or(|link| !link.connection.status().connected())
        {
            *guard = Some(self.open().await?);
        }
        let Some(link) = guard.as_ref() else {
            return Err(PublishError::Refused);
        };
        let mut depths = Vec::with_capacity(3);
        for queue in [
            self.topology.work_queue(),
            self.topology.update_queue(),
            self.topology.dead_letter_queue(),
        ] {
            let declared = link
                .channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(found) => depths.push(QueueDepth {
                    queue,
                    ready: found.message_count(),
                    consumers: found.consumer_count(),
                }),
                Err(err) => {
                    // A failed passive declare closes the channel: start afresh next time.
                    *guard = None;
                    return Err(err.into());
                }
            }
        }
        Ok(depths)
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
                *guard = Some(link);
                true
            }
            Err(_) => false,
        }
    }
}
