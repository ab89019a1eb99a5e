//! A stage update's handler publishes the work it caused itself, right after its
//! commit, instead of waking the relay: the rows it writes are leased, so the
//! relay leaves them alone, and the relay takes over whatever the broker did not
//! confirm. Against the real Postgres and RabbitMQ.

mod common;

use std::time::Duration;

use cadenza_db::schema::outbox;
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::{Applied, Published};
use cadenza_project::relay;
use cadenza_proto::v1::{self, stage_update::Update};
use common::{Broker, Fixture, fixture};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::sync::Notify;
use uuid::Uuid;

/// Completes `kind` (attempt 1) leasing the work it causes for a minute, sent
/// with the commit when there is a `publisher`.
async fn complete_leased_with(
    f: &mut Fixture,
    kind: StageKind,
    publisher: Option<&cadenza_queue::Publisher>,
) -> Published {
    let stage = f.stage(kind).await;
    let update = v1::StageUpdate {
        run_id: f.run_id.to_string(),
        stage_id: stage.id.to_string(),
        attempt: 1,
        worker_id: "w".into(),
        provider: "builtin".into(),
        update: Some(Update::Completed(v1::StageCompleted {
            outputs: vec![],
            provider_version: "test".into(),
            provider_job_id: String::new(),
        })),
        logs: vec![],
    };
    let lease_until = chrono::Utc::now() + chrono::Duration::seconds(60);
    let published = f
        .orchestrator
        .apply_update_publishing(&mut f.conn, Uuid::new_v4(), update, lease_until, publisher)
        .await
        .expect("apply");
    assert_eq!(published.applied, Applied::Changed);
    published
}

/// [`complete_leased_with`] without a publisher: returns the messages the
/// caller is to publish.
async fn complete_leased(
    f: &mut Fixture,
    kind: StageKind,
) -> Vec<cadenza_project::store::outbox::NewMessage> {
    let published = complete_leased_with(f, kind, None).await;
    assert!(published.sent.is_none(), "nothing sent without a publisher");
    published.messages
}

/// Unpublished rows leased to their writer, as another connection sees them
/// (so only what was committed).
async fn leased_rows(broker: &Broker) -> i64 {
    let mut conn = broker.pool.get().await.expect("connection");
    outbox::table
        .filter(outbox::published_at.is_null())
        .filter(outbox::relay_after.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .expect("count")
}

/// The stage kinds of the next `count` messages of work.
async fn work_kinds(broker: &Broker, count: usize) -> Vec<v1::StageKind> {
    broker
        .take_work(count)
        .await
        .iter()
        .map(|work| work.kind())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn work_published_at_once_is_left_alone_by_the_relay_and_marked_once_confirmed() {
    let mut f = fixture(false).await;
    let broker = f.broker("direct-publish-test").await;
    // The run's first work (composition: a song without vocals has no lyrics) goes the usual way, through the relay.
    assert_eq!(
        relay::relay_batch(&broker.pool, &broker.publisher)
            .await
            .expect("relay"),
        1
    );

    let messages = complete_leased(&mut f, StageKind::Composition).await;
    assert_eq!(messages.len(), 1, "the arrangement's work");
    // Written for the exchange the fixture names; this test's broker has its own.
    diesel::update(outbox::table)
        .set(outbox::exchange.eq(broker.topology.exchange()))
        .execute(&mut f.conn)
        .await
        .expect("retarget");
    assert_eq!(leased_rows(&broker).await, 1);
    assert_eq!(
        relay::relay_batch(&broker.pool, &broker.publisher)
            .await
            .expect("relay"),
        0,
        "the relay leaves leased work to its writer"
    );

    let wake = Notify::new();
    relay::publish_now(&broker.pool, &broker.publisher, &messages, &wake).await;
    assert_eq!(
        f.unpublished().await,
        0,
        "confirmed work is marked published"
    );
    assert_eq!(
        work_kinds(&broker, 2).await,
        vec![v1::StageKind::Composition, v1::StageKind::Arrangement]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn work_the_broker_did_not_take_goes_to_the_relay_at_once() {
    let mut f = fixture(false).await;
    let broker = f.broker("direct-publish-refused").await;
    relay::relay_batch(&broker.pool, &broker.publisher)
        .await
        .expect("relay");
    let messages = complete_leased(&mut f, StageKind::Composition).await;
    diesel::update(outbox::table)
        .set(outbox::exchange.eq(broker.topology.exchange()))
        .execute(&mut f.conn)
        .await
        .expect("retarget");

    // Nothing listens on this port: every publish fails.
    let unreachable = cadenza_queue::Publisher::new(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        "direct-publish-unreachable",
        broker.topology.clone(),
    );
    let wake = Notify::new();
    relay::publish_now(&broker.pool, &unreachable, &messages, &wake).await;
    assert_eq!(f.unpublished().await, 1, "not confirmed, not marked");
    assert_eq!(leased_rows(&broker).await, 0, "handed back to the relay");
    tokio::time::timeout(Duration::from_secs(1), wake.notified())
        .await
        .expect("the relay is woken");
    // The lease had most of a minute to run; the relay sends it now.
    assert_eq!(
        relay::relay_batch(&broker.pool, &broker.publisher)
            .await
            .expect("relay"),
        1
    );
    assert_eq!(f.unpublished().await, 0);
    assert_eq!(
        work_kinds(&broker, 2).await,
        vec![v1::StageKind::Composition, v1::StageKind::Arrangement]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn work_sent_alongside_the_commit_arrives_and_is_marked_once_recorded() {
    let mut f = fixture(false).await;
    let broker = f.broker("direct-publish-with-commit").await;
    relay::relay_batch(&broker.pool, &broker.publisher)
        .await
        .expect("relay");
    let published =
        complete_leased_with(&mut f, StageKind::Composition, Some(&broker.publisher)).await;
    let sent = published.sent.expect("sent with the commit");
    assert_eq!(sent.confirmed, vec![published.messages[0].message_id]);
    assert!(sent.refused.is_empty());
    // Committed, leased, not yet recorded: the relay leaves it alone.
    assert_eq!(leased_rows(&broker).await, 1);
    assert_eq!(
        work_kinds(&broker, 2).await,
        vec![v1::StageKind::Composition, v1::StageKind::Arrangement],
        "the work is out before it is recorded"
    );
    relay::record_sent(&broker.pool, &sent, &Notify::new()).await;
    assert_eq!(f.unpublished().await, 0, "recorded as published");
}
