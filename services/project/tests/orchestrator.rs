//! The stage state machine and the outbox relay, against the real Postgres and
//! RabbitMQ: every transition, duplicates, stale attempts and out-of-order reports.

mod common;

use cadenza_db::schema::{projects as projects_table, stages};
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::Applied;
use cadenza_project::store::{projects, runs};
use cadenza_proto::v1::{self, stage_update::Update};
use common::fixture;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn a_new_run_queues_only_the_stages_without_dependencies() {
    let mut f = fixture(true).await;
    assert_eq!(f.state(StageKind::Lyrics).await, "queued");
    assert_eq!(f.state(StageKind::Composition).await, "queued");
    for kind in [
        StageKind::Arrangement,
        StageKind::Vocals,
        StageKind::Mix,
        StageKind::Master,
    ] {
        assert_eq!(f.state(kind).await, "pending", "{kind:?}");
    }
    assert_eq!(f.unpublished().await, 2, "one outbox row per queued stage");
    let seq: i64 = projects_table::table
        .find(f.project_id)
        .select(projects_table::last_event_seq)
        .first(&mut f.conn)
        .await
        .expect("seq");
    assert_eq!(seq, 3, "run created + two stages queued");

    let mut g = fixture(false).await;
    assert_eq!(g.state(StageKind::Lyrics).await, "skipped");
    assert_eq!(g.state(StageKind::Vocals).await, "skipped");
    assert_eq!(g.unpublished().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn transitions_move_forward_only_and_duplicates_change_nothing() {
    let mut f = fixture(true).await;
    let (started_id, applied) = f
        .report(
            StageKind::Composition,
            1,
            Update::Started(v1::StageStarted::default()),
        )
        .await;
    assert_eq!(applied, Applied::Changed);
    assert_eq!(f.state(StageKind::Composition).await, "running");
    assert_eq!(f.run_state().await, "running");
    // The same message again: ignored by the inbox.
    assert_eq!(
        f.report_with_id(
            started_id,
            StageKind::Composition,
            1,
            Update::Started(v1::StageStarted::default())
        )
        .await,
        Applied::Ignored
    );
    // Another "started" for a running stage: ignored by the state machine.
    assert_eq!(
        f.report(
            StageKind::Composition,
            1,
            Update::Started(v1::StageStarted::default())
        )
        .await
        .1,
        Applied::Ignored
    );

    assert_eq!(
        f.report(
            StageKind::Composition,
            1,
            Update::Progress(v1::StageProgress { progress: 0.5 })
        )
        .await
        .1,
        Applied::Changed
    );
    // Late, lower progress: ignored.
    assert_eq!(
        f.report(
            StageKind::Composition,
            1,
            Update::Progress(v1::StageProgress { progress: 0.3 })
        )
        .await
        .1,
        Applied::Ignored
    );
    assert!((f.stage(StageKind::Composition).await.progress - 0.5).abs() < 1e-6);
    // A report for an attempt that does not exist: ignored.
    assert_eq!(
        f.report(
            StageKind::Composition,
            7,
            Update::Progress(v1::StageProgress { progress: 0.9 })
        )
        .await
        .1,
        Applied::Ignored
    );

    assert_eq!(
        f.complete(StageKind::Composition, 1).await,
        Applied::Changed
    );
    assert_eq!(f.state(StageKind::Composition).await, "succeeded");
    // Arrangement needs only composition; vocals still waits for lyrics.
    assert_eq!(f.state(StageKind::Arrangement).await, "queued");
    assert_eq!(f.state(StageKind::Vocals).await, "pending");
    // Completing twice, or progress after completion: ignored.
    assert_eq!(
        f.complete(StageKind::Composition, 1).await,
        Applied::Ignored
    );
    assert_eq!(
        f.report(
            StageKind::Composition,
            1,
            Update::Progress(v1::StageProgress { progress: 0.7 })
        )
        .await
        .1,
        Applied::Ignored
    );

    // A stage may complete without a "started" (the started report was lost).
    assert_eq!(f.complete(StageKind::Lyrics, 1).await, Applied::Changed);
    let lyric_events: Vec<String> = cadenza_db::schema::stage_events::table
        .filter(cadenza_db::schema::stage_events::project_id.eq(f.project_id))
        .filter(cadenza_db::schema::stage_events::stage_kind.eq("lyrics"))
        .order(cadenza_db::schema::stage_events::seq.asc())
        .select(cadenza_db::schema::stage_events::event_type)
        .load(&mut f.conn)
        .await
        .expect("events");
    assert_eq!(
        lyric_events,
        ["stage_queued", "stage_started", "stage_succeeded"],
        "the missed start is recorded"
    );
    // The late "started" report then changes nothing.
    assert_eq!(
        f.report(
            StageKind::Lyrics,
            1,
            Update::Started(v1::StageStarted::default())
        )
        .await
        .1,
        Applied::Ignored
    );
    assert_eq!(f.state(StageKind::Vocals).await, "queued");
    for kind in [StageKind::Arrangement, StageKind::Vocals] {
        assert_eq!(f.complete(kind, 1).await, Applied::Changed);
    }
    assert_eq!(f.state(StageKind::Mix).await, "queued");
    assert_eq!(f.complete(StageKind::Mix, 1).await, Applied::Changed);
    assert_eq!(f.complete(StageKind::Master, 1).await, Applied::Changed);
    assert_eq!(f.run_state().await, "succeeded");
    let state: String = projects_table::table
        .find(f.project_id)
        .select(projects_table::state)
        .first(&mut f.conn)
        .await
        .expect("state");
    assert_eq!(state, "ready");
    // After the run ends, nothing changes it.
    assert_eq!(f.complete(StageKind::Master, 1).await, Applied::Ignored);
}

#[tokio::test(flavor = "multi_thread")]
async fn retryable_failures_retry_and_final_failures_fail_the_run() {
    let mut f = fixture(true).await;
    let failed = |retryable| {
        Update::Failed(v1::StageFailed {
            error_code: "PROVIDER_ERROR".into(),
            message: "boom".into(),
            retryable,
        })
    };
    assert_eq!(
        f.report(StageKind::Composition, 1, failed(true)).await.1,
        Applied::Changed
    );
    let stage = f.stage(StageKind::Composition).await;
    assert_eq!((stage.state.as_str(), stage.attempt), ("queued", 2));
    assert_eq!(
        f.unpublished().await,
        3,
        "the retry was written to the outbox"
    );
    // The superseded attempt finishing late changes nothing.
    assert_eq!(
        f.complete(StageKind::Composition, 1).await,
        Applied::Ignored
    );
    // Out of attempts (max 2): the run fails, unfinished stages are cancelled.
    assert_eq!(
        f.report(StageKind::Composition, 2, failed(true)).await.1,
        Applied::Changed
    );
    assert_eq!(f.state(StageKind::Composition).await, "failed");
    assert_eq!(f.run_state().await, "failed");
    for kind in [StageKind::Lyrics, StageKind::Arrangement, StageKind::Mix] {
        assert_eq!(f.state(kind).await, "cancelled", "{kind:?}");
    }
    let run = runs::get(&mut f.conn, f.run_id).await.expect("run");
    assert_eq!(run.error_code.as_deref(), Some("STAGE_FAILED"));
    assert!(
        run.error_message
            .unwrap_or_default()
            .contains("composition")
    );
    let kinds: Vec<String> = stages::table
        .filter(stages::run_id.eq(f.run_id))
        .select(stages::state)
        .load(&mut f.conn)
        .await
        .expect("load");
    assert!(
        kinds
            .iter()
            .all(|s| s != "queued" && s != "running" && s != "pending"),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_publishes_every_outbox_row_once_confirmed() {
    let mut f = fixture(true).await;
    let broker = f.broker("relay-test").await;
    let (publisher, pool) = (&broker.publisher, &broker.pool);
    let sent = cadenza_project::relay::relay_batch(pool, publisher)
        .await
        .expect("relay");
    assert_eq!(sent, 2);
    assert_eq!(f.unpublished().await, 0);
    assert_eq!(
        cadenza_project::relay::relay_batch(pool, publisher)
            .await
            .expect("relay"),
        0,
        "nothing is sent twice"
    );

    let mut kinds = Vec::new();
    for work in broker.take_work(2).await {
        assert_eq!(work.run_id, f.run_id.to_string());
        kinds.push(work.kind());
    }
    kinds.sort_by_key(|k| *k as i32);
    assert_eq!(kinds, [v1::StageKind::Lyrics, v1::StageKind::Composition]);
    let connection = cadenza_queue::connect(&broker.url, "relay-test-cleanup")
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    broker.topology.delete(&channel).await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_while_one_is_active_is_refused_and_writes_nothing() {
    let mut f = fixture(true).await;
    let orchestrator = f.orchestrator.clone();
    let project_id = f.project_id;
    let before = f.unpublished().await;
    let result = f
        .conn
        .transaction::<_, cadenza_project::error::ApiError, _>(async |conn| {
            let project = projects::lock(conn, "alice", project_id)
                .await?
                .expect("project");
            orchestrator.start_run(conn, &project, Uuid::now_v7()).await
        })
        .await;
    match result {
        Err(cadenza_project::error::ApiError::FailedPrecondition(reason, _)) => {
            assert_eq!(reason, "GENERATION_IN_PROGRESS");
        }
        other => panic!("expected GENERATION_IN_PROGRESS, got {other:?}"),
    }
    assert_eq!(f.unpublished().await, before, "no work was queued");
    let count: i64 = cadenza_db::schema::runs::table
        .filter(cadenza_db::schema::runs::project_id.eq(project_id))
        .count()
        .get_result(&mut f.conn)
        .await
        .expect("count");
    assert_eq!(count, 1, "no second run was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_lettered_work_fails_its_stage_once_with_a_clear_code() {
    let mut f = fixture(false).await;
    let stage = f.stage(StageKind::Composition).await;
    let work = v1::StageWork {
        run_id: f.run_id.to_string(),
        stage_id: stage.id.to_string(),
        attempt: 1,
        ..Default::default()
    };
    // Work for another attempt than the one the stage waits for changes nothing.
    let stale = v1::StageWork {
        attempt: 7,
        ..work.clone()
    };
    assert!(
        !f.orchestrator
            .poisoned(&mut f.conn, &stale, "delivery_limit")
            .await
            .expect("poisoned")
    );
    assert!(
        f.orchestrator
            .poisoned(&mut f.conn, &work, "delivery_limit")
            .await
            .expect("poisoned")
    );
    let stage = f.stage(StageKind::Composition).await;
    assert_eq!(stage.state, "failed");
    assert_eq!(stage.error_code.as_deref(), Some("POISON_MESSAGE"));
    assert!(
        stage
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("delivery_limit")),
        "{stage:?}"
    );
    assert_eq!(f.run_state().await, "failed");
    // The same dead letter again (a redelivery) does nothing more.
    assert!(
        !f.orchestrator
            .poisoned(&mut f.conn, &work, "delivery_limit")
            .await
            .expect("poisoned")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_starts_when_its_worker_took_the_work_within_what_is_possible() {
    let mut f = fixture(true).await;
    let started = |at: chrono::DateTime<chrono::Utc>| {
        Update::Started(v1::StageStarted {
            start_time: Some(cadenza_proto::timestamp(at)),
        })
    };
    // Lyrics: the worker took it 1.5 ms after it was queued (microseconds, as
    // Postgres keeps them); its report arrives later, and the start is the
    // worker's moment, not the report's.
    let queued = f.stage(StageKind::Lyrics).await.queued_at.expect("queued");
    let took = queued + chrono::Duration::microseconds(1500);
    // (The report must arrive after that moment, or "now" would bound it.)
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    f.report(StageKind::Lyrics, 1, started(took)).await;
    assert_eq!(f.stage(StageKind::Lyrics).await.started_at, Some(took));

    // Composition: a worker clock an hour behind cannot start it before it was
    // queued, nor one an hour ahead after the report arrived.
    let queued = f
        .stage(StageKind::Composition)
        .await
        .queued_at
        .expect("queued");
    f.report(
        StageKind::Composition,
        1,
        started(queued - chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(
        f.stage(StageKind::Composition).await.started_at,
        Some(queued)
    );
    let mut g = fixture(true).await;
    let before = chrono::Utc::now();
    g.report(
        StageKind::Lyrics,
        1,
        started(before + chrono::Duration::hours(1)),
    )
    .await;
    let after = chrono::Utc::now();
    let at = g
        .stage(StageKind::Lyrics)
        .await
        .started_at
        .expect("started");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
}
