//! Exchanges and queues.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// Routing key of stage work (project -> generation).
pub const WORK_KEY: &str = "stage.work";
/// Routing key of stage updates (generation -> project).
pub const UPDATE_KEY: &str = "stage.update";
/// Routing key of run cancellations (project -> every worker's own queue).
pub const CANCEL_KEY: &str = "run.cancel";

/// Every name derives from one prefix (`cadenza` in production, a random one per test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub prefix: String,
    /// Deliveries of one message before it is dead-lettered.
    pub delivery_limit: u32,
    /// Queues unused this long are deleted by the broker (tests set it, so queues
    /// of a crashed test run clean themselves up); `None` in production.
    pub expires: Option<std::time::Duration>,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            delivery_limit: 5,
            expires: None,
        }
    }

    /// Direct exchange all stage traffic is published to.
    pub fn exchange(&self) -> String {
        format!("{}.stages", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// Stage work, consumed by `generation` workers.
    pub fn work_queue(&self) -> String {
        format!("{}.stage-work", self.prefix)
    }

    /// Stage updates, consumed by `project`.
    pub fn update_queue(&self) -> String {
        format!("{}.stage-updates", self.prefix)
    }

    /// Where messages go after `delivery_limit` failed deliveries.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letters", self.prefix)
    }

    /// Declares everything; declaring again with the same arguments is a no-op.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;

        let mut dead_letter_args = FieldTable::default();
        dead_letter_args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        self.add_expiry(&mut dead_letter_args);
        self.queue(channel, &self.dead_letter_queue(), dead_letter_args)
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue().into(),
                self.dead_letter_exchange().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        for (queue, key) in [
            (self.work_queue(), WORK_KEY),
            (self.update_queue(), UPDATE_KEY),
        ] {
            self.queue(channel, &queue, self.work_queue_arguments())
                .await?;
            channel
                .queue_bind(
                    queue.into(),
                    self.exchange().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    async fn queue(
        &self,
        channel: &Channel,
        name: &str,
        args: FieldTable,
    ) -> Result<(), lapin::Error> {
        channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await
            .map(|_| ())
    }

    fn work_queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange().into()),
        );
        // Without these two, a dead-lettered message could be lost in transit.
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        self.add_expiry(&mut args);
        args
    }

    fn add_expiry(&self, args: &mut FieldTable) {
        if let Some(expires) = self.expires {
            let millis = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-expires".into(), AMQPValue::LongLongInt(millis));
        }
    }

    /// Deletes every queue and exchange (tests clean up after themselves).
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        for queue in [
            self.work_queue(),
            self.update_queue(),
            self.dead_letter_queue(),
        ] {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [self.exchange(), self.dead_letter_exchange()] {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}
