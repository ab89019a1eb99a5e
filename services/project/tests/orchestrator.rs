//! The stage state machine and the outbox relay, against the real Postgres and
//! RabbitMQ: every transition, duplicates, stale attempts and out-of-order reports.

use cadenza_db::schema::{outbox, projects as projects_table, stages};
use cadenza_db::testing::TestDatabase;
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::{Applied, Orchestrator};
use cadenza_project::store::{models::StageRow, projects, runs};
use cadenza_proto::v1::{self, stage_update::Update};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

struct Fixture {
    _db: TestDatabase,
    conn: AsyncPgConnection,
    orchestrator: Orchestrator,
    run_id: Uuid,
    project_id: Uuid,
}

async fn fixture(has_vocals: bool) -> Fixture {
    let db = TestDatabase::create().await;
    let mut conn = AsyncPgConnection::establish(&db.url)
        .await
        .expect("connect");
    let orchestrator = Orchestrator {
        max_attempts: 2,
        exchange: "test.stages".into(),
        credits: cadenza_project::credits::CreditPolicy { enforced: false },
        free_tier: Default::default(),
    };
    let fields = projects::ProjectFields {
        title: "t".into(),
        prompt: "a song".into(),
        duration_seconds: 10,
        has_vocals,
        style_strength: 0.5,
        seed: Some(1),
        lyrics: None,
    };
    let project_id = Uuid::now_v7();
    let run_id = Uuid::now_v7();
    let orch = orchestrator.clone();
    conn.transaction::<_, cadenza_project::error::ApiError, _>(async |conn| {
        let project = projects::insert(conn, project_id, "alice", &fields).await?;
        orch.start_run(conn, &project, run_id).await?;
        Ok(())
    })
    .await
    .expect("start run");
    Fixture {
        _db: db,
        conn,
        orchestrator,
        run_id,
        project_id,
    }
}

impl Fixture {
    async fn stage(&mut self, kind: StageKind) -> StageRow {
        runs::stages_of(&mut self.conn, self.run_id)
            .await
            .expect("stages")
            .into_iter()
            .find(|s| s.kind == kind.as_str())
            .expect("stage exists")
    }

    async fn state(&mut self, kind: StageKind) -> String {
        self.stage(kind).await.state
    }

    async fn report(&mut self, kind: StageKind, attempt: u32, update: Update) -> (Uuid, Applied) {
        let id = Uuid::new_v4();
        (id, self.report_with_id(id, kind, attempt, update).await)
    }

    async fn report_with_id(
        &mut self,
        id: Uuid,
        kind: StageKind,
        attempt: u32,
        update: Update,
    ) -> Applied {
        let stage = self.stage(kind).await;
        let message = v1::StageUpdate {
            run_id: self.run_id.to_string(),
            stage_id: stage.id.to_string(),
            attempt,
            worker_id: "w".into(),
            provider: "builtin".into(),
            update: Some(update),
            logs: vec![],
        };
        self.orchestrator
            .apply_update(&mut self.conn, id, message)
            .await
            .expect("apply")
    }

    async fn complete(&mut self, kind: StageKind, attempt: u32) -> Applied {
        let file = format!("{}.out", kind.as_str());
        let output = v1::ArtifactRef {
            kind: v1::AssetKind::Composition as i32,
            file_name: file.clone(),
            object_key: format!("users/alice/projects/x/runs/y/{file}"),
            content_type: "application/json".into(),
            size_bytes: 3,
            sha256: "00".repeat(32),
        };
        self.report(
            kind,
            attempt,
            Update::Completed(v1::StageCompleted {
                outputs: vec![output],
                provider_version: "test".into(),
                provider_job_id: String::new(),
            }),
        )
        .await
        .1
    }

    async fn run_state(&mut self) -> String {
        runs::get(&mut self.conn, self.run_id)
            .await
            .expect("run")
            .state
    }

    async fn unpublished(&mut self) -> i64 {
        outbox::table
            .filter(outbox::published_at.is_null())
            .count()
            .get_result(&mut self.conn)
            .await
            .expect("count")
    }
}

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
            Update::Started(v1::StageStarted {}),
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
            Update::Started(v1::StageStarted {})
        )
        .await,
        Applied::Ignored
    );
    // Another "started" for a running stage: ignored by the state machine.
    assert_eq!(
        f.report(
            StageKind::Composition,
            1,
            Update::Started(v1::StageStarted {})
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
        f.report(StageKind::Lyrics, 1, Update::Started(v1::StageStarted {}))
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
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions};
    let mut f = fixture(true).await;
    let url = std::env::var("CADENZA_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let mut topology =
        cadenza_queue::Topology::new(format!("cadenza-test-{}", Uuid::new_v4().simple()));
    topology.expires = Some(std::time::Duration::from_secs(600));
    // The rows were written for this exchange name.
    diesel::update(outbox::table)
        .set(outbox::exchange.eq(topology.exchange()))
        .execute(&mut f.conn)
        .await
        .expect("retarget");
    let publisher = cadenza_queue::Publisher::new(&url, "relay-test", topology.clone());
    let pool =
        cadenza_db::build_pool(&cadenza_db::DbConfig::new(&f._db.url, "relay-test")).expect("pool");
    let sent = cadenza_project::relay::relay_batch(&pool, &publisher)
        .await
        .expect("relay");
    assert_eq!(sent, 2);
    assert_eq!(f.unpublished().await, 0);
    assert_eq!(
        cadenza_project::relay::relay_batch(&pool, &publisher)
            .await
            .expect("relay"),
        0,
        "nothing is sent twice"
    );

    let connection = cadenza_queue::connect(&url, "relay-test-consumer")
        .await
        .expect("rabbitmq");
    let channel = connection.create_channel().await.expect("channel");
    let mut consumer = channel
        .basic_consume(
            topology.work_queue().into(),
            "".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .expect("consume");
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
            .await
            .expect("a message arrives")
            .expect("stream open")
            .expect("delivery");
        let (_, body) = cadenza_queue::decode(&delivery.data).expect("envelope");
        let v1::envelope::Body::StageWork(work) = body else {
            panic!("not stage work")
        };
        assert_eq!(work.run_id, f.run_id.to_string());
        kinds.push(work.kind());
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
    }
    kinds.sort_by_key(|k| *k as i32);
    assert_eq!(kinds, [v1::StageKind::Lyrics, v1::StageKind::Composition]);
    topology.delete(&channel).await.expect("cleanup");
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
async fn a_stage_whose_worker_goes_quiet_is_retried_then_failed_by_the_reconciler() {
    use cadenza_project::orchestrator::reconcile::{ReconcileConfig, Reconciled};
    let mut f = fixture(false).await;
    let config = ReconcileConfig {
        heartbeat_timeout: std::time::Duration::from_secs(60),
        stage_timeout: std::time::Duration::from_secs(3600),
        lost_work_after: std::time::Duration::from_secs(120),
    };
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
        Update::Started(v1::StageStarted {}),
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
        Update::Started(v1::StageStarted {}),
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
    use cadenza_project::orchestrator::reconcile::{ReconcileConfig, Reconciled};
    let mut f = fixture(false).await;
    let config = ReconcileConfig {
        heartbeat_timeout: std::time::Duration::from_secs(60),
        stage_timeout: std::time::Duration::from_secs(600),
        lost_work_after: std::time::Duration::from_secs(120),
    };
    f.report(
        StageKind::Composition,
        1,
        Update::Started(v1::StageStarted {}),
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
    use cadenza_project::orchestrator::reconcile::{QueueView, ReconcileConfig, Reconciled};
    let mut f = fixture(false).await;
    let config = ReconcileConfig {
        heartbeat_timeout: std::time::Duration::from_secs(60),
        stage_timeout: std::time::Duration::from_secs(3600),
        lost_work_after: std::time::Duration::from_secs(120),
    };
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
