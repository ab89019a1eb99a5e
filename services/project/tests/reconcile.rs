//! The reconciler, against the real Postgres and RabbitMQ: stages whose worker
//! went quiet, ran past their time limit, or whose work the broker lost are put
//! right, and retries are bounded.

mod common;

use std::time::Duration;

use cadenza_db::schema::{outbox, stages};
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::Applied;
use cadenza_project::orchestrator::reconcile::{QueueView, ReconcileConfig, Reconciled};
use cadenza_proto::v1::{self, stage_update::Update};
use common::fixture;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// The reconciler's limits: a minute without reports, `stage_timeout` in all,
/// two minutes for work the broker lost.
fn limits(stage_timeout: Duration) -> ReconcileConfig {
    ReconcileConfig {
        heartbeat_timeout: Duration::from_secs(60),
        stage_timeout,
        lost_work_after: Duration::from_secs(120),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_whose_worker_goes_quiet_is_retried_then_failed_by_the_reconciler() {
    let mut f = fixture(false).await;
    let config = limits(Duration::from_secs(3600));
    let now = || chrono::Utc::now();
    // A queued stage is nobody's to lose; a running one with recent reports is fine.
    assert_eq!(
        f.orchestrator
            .reconcile(&mut f.conn, config, now(), None)
            .await
            .expect("pass"),
        Reconciled::default()
    );
    f.report(
        StageKind::Composition,
        1,
        Update::Started(v1::StageStarted::default()),
    )
    .await;
    f.report(
        StageKind::Composition,
        1,
        Update::Heartbeat(v1::StageHeartbeat {}),
    )
    .await;
    assert_eq!(
        f.orchestrator
            .reconcile(&mut f.conn, config, now(), None)
            .await
            .expect("pass"),
        Reconciled::default()
    );

    // Two minutes later nothing more was heard: the stage is queued again as
    // attempt 2, with its work in the outbox.
    let before = f.unpublished().await;
    let later = now() + chrono::Duration::seconds(120);
    let done = f
        .orchestrator
        .reconcile(&mut f.conn, config, later, None)
        .await
        .expect("pass");
    assert_eq!(
        done,
        Reconciled {
            retried: 1,
            failed: 0
        }
    );
    let stage = f.stage(StageKind::Composition).await;
    assert_eq!((stage.state.as_str(), stage.attempt), ("queued", 2));
    assert_eq!(f.unpublished().await, before + 1);
    // Running it twice (or on a second replica) changes nothing more.
    let again = f
        .orchestrator
        .reconcile(&mut f.conn, config, later, None)
        .await
        .expect("pass");
    assert_eq!(again, Reconciled::default());
    // The lost worker's late report is for a superseded attempt: ignored.
    assert_eq!(
        f.complete(StageKind::Composition, 1).await,
        Applied::Ignored
    );

    // Attempt 2 (the last; the fixture allows two) goes quiet too: the stage and
    // the run fail with a code a person can act on.
    f.report(
        StageKind::Composition,
        2,
        Update::Started(v1::StageStarted::default()),
    )
    .await;
    let much_later = now() + chrono::Duration::seconds(600);
    let done = f
        .orchestrator
        .reconcile(&mut f.conn, config, much_later, None)
        .await
        .expect("pass");
    assert_eq!(
        done,
        Reconciled {
            retried: 0,
            failed: 1
        }
    );
    let stage = f.stage(StageKind::Composition).await;
    assert_eq!(stage.state, "failed");
    assert_eq!(stage.error_code.as_deref(), Some("WORKER_LOST"));
    assert_eq!(f.run_state().await, "failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_past_its_time_limit_is_retried_even_while_it_beats() {
    let mut f = fixture(false).await;
    let config = limits(Duration::from_secs(600));
    f.report(
        StageKind::Composition,
        1,
        Update::Started(v1::StageStarted::default()),
    )
    .await;
    // Beating, but started long ago (as seen from 20 minutes on, with a fresh beat).
    let later = chrono::Utc::now() + chrono::Duration::seconds(1200);
    diesel::update(stages::table.filter(stages::run_id.eq(f.run_id)))
        .set(stages::heartbeat_at.eq(later))
        .execute(&mut f.conn)
        .await
        .expect("fresh heartbeat");
    let done = f
        .orchestrator
        .reconcile(&mut f.conn, config, later, None)
        .await
        .expect("pass");
    assert_eq!(
        done,
        Reconciled {
            retried: 1,
            failed: 0
        }
    );
    let logs: Vec<String> = cadenza_db::schema::stage_events::table
        .filter(cadenza_db::schema::stage_events::project_id.eq(f.project_id))
        .select(cadenza_db::schema::stage_events::message)
        .load(&mut f.conn)
        .await
        .expect("events");
    assert!(
        logs.iter()
            .any(|m| m.contains("STAGE_TIMEOUT") && m.contains("time limit")),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_stage_whose_work_the_broker_lost_is_queued_again() {
    let mut f = fixture(false).await;
    let config = limits(Duration::from_secs(3600));
    let empty = Some(QueueView {
        work_ready: 0,
        updates_ready: 0,
    });
    let later = chrono::Utc::now() + chrono::Duration::seconds(300);
    // The work is still in the outbox: on its way, not lost.
    assert_eq!(
        f.orchestrator
            .reconcile(&mut f.conn, config, later, empty)
            .await
            .expect("pass"),
        Reconciled::default()
    );
    // Published; a message still waits in the queue, or the broker could not be
    // asked, or updates are still on their way: a backlog, not a loss.
    diesel::update(outbox::table)
        .set(outbox::published_at.eq(chrono::Utc::now()))
        .execute(&mut f.conn)
        .await
        .expect("mark published");
    for view in [
        Some(QueueView {
            work_ready: 1,
            updates_ready: 0,
        }),
        Some(QueueView {
            work_ready: 0,
            updates_ready: 3,
        }),
        None,
    ] {
        assert_eq!(
            f.orchestrator
                .reconcile(&mut f.conn, config, later, view)
                .await
                .expect("pass"),
            Reconciled::default(),
            "{view:?}"
        );
    }
    // Queued only a moment ago: too early to call it lost.
    assert_eq!(
        f.orchestrator
            .reconcile(&mut f.conn, config, chrono::Utc::now(), empty)
            .await
            .expect("pass"),
        Reconciled::default()
    );

    // Five minutes on, nothing anywhere could start it: queued again as attempt 2.
    let done = f
        .orchestrator
        .reconcile(&mut f.conn, config, later, empty)
        .await
        .expect("pass");
    assert_eq!(
        done,
        Reconciled {
            retried: 1,
            failed: 0
        }
    );
    let stage = f.stage(StageKind::Composition).await;
    assert_eq!((stage.state.as_str(), stage.attempt), ("queued", 2));
    assert_eq!(
        f.unpublished().await,
        1,
        "the new attempt's work is in the outbox"
    );
    let messages: Vec<String> = cadenza_db::schema::stage_events::table
        .filter(cadenza_db::schema::stage_events::project_id.eq(f.project_id))
        .select(cadenza_db::schema::stage_events::message)
        .load(&mut f.conn)
        .await
        .expect("events");
    assert!(
        messages.iter().any(|m| m.contains("WORK_LOST")),
        "{messages:?}"
    );
    // A stray delivery of the lost attempt, should it surface, changes nothing.
    assert_eq!(
        f.complete(StageKind::Composition, 1).await,
        Applied::Ignored
    );
}
