//! The fixture the orchestrator's tests share: a fresh database with one run
//! started, and helpers to report on its stages and to reach the broker.
// Each test binary uses its own share of these.
#![allow(dead_code)]

use cadenza_db::schema::outbox;
use cadenza_db::testing::TestDatabase;
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::{Applied, Orchestrator};
use cadenza_project::store::{models::StageRow, projects, runs};
use cadenza_proto::v1::{self, stage_update::Update};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub struct Fixture {
    pub _db: TestDatabase,
    pub conn: AsyncPgConnection,
    pub orchestrator: Orchestrator,
    pub run_id: Uuid,
    pub project_id: Uuid,
}

pub async fn fixture(has_vocals: bool) -> Fixture {
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
        title_derived: false,
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
    pub async fn stage(&mut self, kind: StageKind) -> StageRow {
        runs::stages_of(&mut self.conn, self.run_id)
            .await
            .expect("stages")
            .into_iter()
            .find(|s| s.kind == kind.as_str())
            .expect("stage exists")
    }

    pub async fn state(&mut self, kind: StageKind) -> String {
        self.stage(kind).await.state
    }

    pub async fn report(
        &mut self,
        kind: StageKind,
        attempt: u32,
        update: Update,
    ) -> (Uuid, Applied) {
        let id = Uuid::new_v4();
        (id, self.report_with_id(id, kind, attempt, update).await)
    }

    pub async fn report_with_id(
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

    pub async fn complete(&mut self, kind: StageKind, attempt: u32) -> Applied {
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

    pub async fn run_state(&mut self) -> String {
        runs::get(&mut self.conn, self.run_id)
            .await
            .expect("run")
            .state
    }

    pub async fn unpublished(&mut self) -> i64 {
        outbox::table
            .filter(outbox::published_at.is_null())
            .count()
            .get_result(&mut self.conn)
            .await
            .expect("count")
    }
}

/// A broker set-up of one test's own: the run's outbox rows retargeted at it.
pub struct Broker {
    pub url: String,
    pub topology: cadenza_queue::Topology,
    pub publisher: cadenza_queue::Publisher,
    pub pool: cadenza_db::Pool,
}

impl Fixture {
    /// Queues and an exchange of this test's own (dropped by the broker ten
    /// minutes after the test), with the outbox rows written so far pointed at
    /// them, a publisher and a pool.
    pub async fn broker(&mut self, name: &str) -> Broker {
        let url = std::env::var("CADENZA_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let mut topology =
            cadenza_queue::Topology::new(format!("cadenza-test-{}", Uuid::new_v4().simple()));
        topology.expires = Some(std::time::Duration::from_secs(600));
        diesel::update(outbox::table)
            .set(outbox::exchange.eq(topology.exchange()))
            .execute(&mut self.conn)
            .await
            .expect("retarget");
        let publisher = cadenza_queue::Publisher::new(&url, name, topology.clone());
        let pool =
            cadenza_db::build_pool(&cadenza_db::DbConfig::new(&self._db.url, name)).expect("pool");
        Broker {
            url,
            topology,
            publisher,
            pool,
        }
    }
}

impl Broker {
    /// Takes (and acks) the next `count` messages of the test's work queue,
    /// waiting up to 10 s for each.
    pub async fn take_work(&self, count: usize) -> Vec<v1::StageWork> {
        use futures::StreamExt;
        use lapin::options::{BasicAckOptions, BasicConsumeOptions};
        let connection = cadenza_queue::connect(&self.url, "test-work-consumer")
            .await
            .expect("rabbitmq");
        let channel = connection.create_channel().await.expect("channel");
        let mut consumer = channel
            .basic_consume(
                self.topology.work_queue().into(),
                "".into(),
                BasicConsumeOptions::default(),
                Default::default(),
            )
            .await
            .expect("consume");
        let mut works = Vec::new();
        for _ in 0..count {
            let delivery =
                tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
                    .await
                    .expect("a message arrives")
                    .expect("stream open")
                    .expect("delivery");
            let (_, body) = cadenza_queue::decode(&delivery.data).expect("envelope");
            let v1::envelope::Body::StageWork(work) = body else {
                panic!("not stage work")
            };
            works.push(work);
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .expect("ack");
        }
        works
    }
}
