//! Orchestration overhead: how long `project` takes from a stage's result to the
//! next stage's work reaching a worker, with an instant provider, through the
//! real RabbitMQ and Postgres, and how many stages per second it moves. The same
//! run then times an equivalent chain of Celery tasks (acks_late) on the same
//! broker and prints the ratio.
//!
//!     make bench-orchestration
//!
//! (which installs Celery into a virtualenv and sets `CADENZA_CELERY_PYTHON`);
//! without that variable the Celery half is skipped with a note.
//!
//! The worker here is this process: it takes each stage's work from the queue and
//! at once reports it done. The overhead of a stage is the time from the last of
//! its dependencies' results being published to its own work arriving: the
//! update crossing the broker, `project` applying it in one transaction, the next
//! stage's work written to the outbox, relayed with a publisher confirm, and
//! delivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadenza_db::testing::TestDatabase;
use cadenza_project::domain::StageKind;
use cadenza_project::orchestrator::Orchestrator;
use cadenza_project::store::projects;
use cadenza_proto::v1::{self, envelope::Body, stage_update::Update};
use cadenza_queue::consume::{Handled, Incoming};
use cadenza_queue::topology::UPDATE_KEY;
use cadenza_queue::{Publisher, Topology};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Stages measured for the latency figures (each song with vocals has four
/// stages that wait for others).
const MEASURED_STAGES: usize = 500;
/// Songs started at once for the throughput figure.
const THROUGHPUT_SONGS: usize = 100;

/// What the instant worker saw.
#[derive(Default)]
struct Timeline {
    /// When each (run, stage)'s result was published.
    finished: HashMap<(String, StageKind), Instant>,
    /// Result-to-next-work delays.
    overheads: Vec<Duration>,
    /// Work for a (run, stage) delivered again after its first delivery.
    duplicates: usize,
    /// Handoffs slower than a second (a lease or redelivery, not the path).
    stalls: usize,
}

struct Worker {
    publisher: Publisher,
    timeline: Mutex<Timeline>,
    /// Told the run id when a run's last stage (master) is done.
    done: mpsc::UnboundedSender<String>,
}

fn kind_of(work: &v1::StageWork) -> Option<StageKind> {
    StageKind::ALL
        .into_iter()
        .find(|k| k.proto() as i32 == work.kind)
}

impl Worker {
    async fn handle(&self, incoming: Incoming) -> Handled {
        let arrived = Instant::now();
        let Ok((_, Body::StageWork(work))) = cadenza_queue::decode(&incoming.data) else {
            return Handled::Reject;
        };
        let Some(kind) = kind_of(&work) else {
            return Handled::Reject;
        };
        {
            let mut timeline = self.timeline.lock().expect("timeline");
            if timeline.finished.contains_key(&(work.run_id.clone(), kind)) {
                timeline.duplicates += 1;
                return Handled::Ack;
            }
            let ready = kind
                .depends_on()
                .iter()
                .filter_map(|dep| timeline.finished.get(&(work.run_id.clone(), *dep)))
                .max()
                .copied();
            if let Some(ready) = ready {
                if arrived - ready > Duration::from_secs(1) {
                    timeline.stalls += 1;
                }
                timeline.overheads.push(arrived - ready);
            }
        }
        let output = v1::ArtifactRef {
            kind: v1::AssetKind::Composition as i32,
            file_name: format!("{}.out", kind.as_str()),
            object_key: format!("bench/{}/{}", work.run_id, kind.as_str()),
            content_type: "application/octet-stream".into(),
            size_bytes: 1,
            sha256: "00".repeat(32),
        };
        let update = v1::StageUpdate {
            run_id: work.run_id.clone(),
            stage_id: work.stage_id.clone(),
            attempt: work.attempt,
            worker_id: "bench".into(),
            provider: "instant".into(),
            update: Some(Update::Completed(v1::StageCompleted {
                outputs: vec![output],
                provider_version: "instant".into(),
                provider_job_id: String::new(),
            })),
            logs: vec![],
        };
        let envelope = cadenza_queue::envelope::wrap(Body::StageUpdate(update));
        // The result exists from this moment: the clock for the next stage starts.
        let published = Instant::now();
        self.timeline
            .lock()
            .expect("timeline")
            .finished
            .insert((work.run_id.clone(), kind), published);
        let sent = self
            .publisher
            .publish(
                UPDATE_KEY,
                &envelope.message_id,
                &envelope.traceparent,
                &cadenza_queue::encode(&envelope),
            )
            .await;
        if sent.is_err() {
            return Handled::Requeue;
        }

        if kind == StageKind::Master {
            let _ = self.done.send(work.run_id);
        }
        Handled::Ack
    }
}

/// Creates `songs` projects and starts a run of each, all in one transaction, so
/// their first stages become work at the same moment.
async fn start_songs(conn: &mut AsyncPgConnection, orchestrator: &Orchestrator, songs: usize) {
    let orchestrator = orchestrator.clone();
    conn.transaction::<_, cadenza_project::error::ApiError, _>(async move |conn| {
        for _ in 0..songs {
            let fields = projects::ProjectFields {
                title: "bench".into(),
                title_derived: false,
                prompt: "an instant song".into(),
                duration_seconds: 10,
                has_vocals: true,
                style_strength: 0.5,
                seed: Some(1),
                lyrics: None,
            };
            let project = projects::insert(conn, Uuid::now_v7(), "bench", &fields).await?;
            orchestrator
                .start_run(conn, &project, Uuid::now_v7())
                .await?;
        }
        Ok(())
    })
    .await
    .expect("start the runs");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The Celery figures, from `benches/celery_chain.py`'s JSON line.
struct CeleryFigures {
    median_ms: f64,
    p99_ms: f64,
    per_second: f64,
}

fn run_celery(python: &str) -> anyhow::Result<CeleryFigures> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/celery_chain.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .args(["--transitions", &MEASURED_STAGES.to_string()])
        .args(["--chains-at-once", &THROUGHPUT_SONGS.to_string()])
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "the Celery benchmark failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("no JSON line from the Celery benchmark: {stdout}"))?;
    let figures: serde_json::Value = serde_json::from_str(line)?;
    let number = |key: &str| {
        figures[key]
            .as_f64()
            .ok_or_else(|| anyhow::anyhow!("`{key}` missing in {line}"))
    };
    Ok(CeleryFigures {
        median_ms: number("median_ms")?,
        p99_ms: number("p99_ms")?,
        per_second: number("transitions_per_second")?,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // Warnings and errors only (RUST_LOG overrides): a failure should say why.
    cadenza_telemetry::init_for_test();
    let db = TestDatabase::create().await;
    let prefix = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DATABASE_URL", &db.url);
    env.set("CADENZA_AMQP_URL", AMQP_URL);
    env.set("CADENZA_QUEUE_PREFIX", &prefix);
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_CREDITS_ENFORCED", "false");
    env.set("CADENZA_FREE_SONGS_PER_DAY", "0");
    // The broker drops this run's queues ten minutes after it stops using them.
    env.set("CADENZA_QUEUE_EXPIRES_SECONDS", "600");
    cadenza_runtime::mesh_auth::set_random_secrets(&mut env);
    let config = cadenza_project::Config::from_env(&mut env);
    env.finish()?;
    let topology = Topology {
        expires: Some(Duration::from_secs(600)),
        ..Topology::new(&prefix)
    };
    let orchestrator = Orchestrator {
        max_attempts: 3,
        exchange: topology.exchange(),
        credits: cadenza_project::credits::CreditPolicy { enforced: false },
        free_tier: Default::default(),
    };

    let shutdown = CancellationToken::new();
    let listeners = cadenza_project::Listeners {
        grpc: tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        admin: None,
        health: None,
    };
    let service = tokio::spawn(cadenza_project::run(config, listeners, shutdown.clone()));

    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let worker = Arc::new(Worker {
        publisher: Publisher::new(AMQP_URL, "bench-worker", topology.clone()),
        timeline: Mutex::new(Timeline::default()),
        done: done_tx,
    });
    {
        let (worker, topology, stop) = (worker.clone(), topology.clone(), shutdown.clone());
        tokio::spawn(async move {
            let queue = topology.work_queue();
            cadenza_queue::consume(
                AMQP_URL,
                "bench-worker",
                &topology,
                &queue,
                64,
                stop,
                move |incoming| {
                    let worker = worker.clone();
                    async move { worker.handle(incoming).await }
                },
            )
            .await;
        });
    }
    let mut conn = AsyncPgConnection::establish(&db.url).await?;

    // Warm up: connections, prepared statements, the broker's queues.
    start_songs(&mut conn, &orchestrator, 5).await;
    for _ in 0..5 {
        done_rx.recv().await;
    }
    worker.timeline.lock().expect("timeline").overheads.clear();

    // Latency: one song at a time, until enough stages were measured.
    let mut songs = 0;
    while worker.timeline.lock().expect("timeline").overheads.len() < MEASURED_STAGES {
        start_songs(&mut conn, &orchestrator, 1).await;
        done_rx.recv().await;
        songs += 1;
    }
    let mut overheads = std::mem::take(&mut worker.timeline.lock().expect("timeline").overheads);

    overheads.sort();

    // Throughput: many songs at once, from the commit that queues their first
    // stages; every stage is one result applied and (but for the last) one next
    // stage dispatched.
    start_songs(&mut conn, &orchestrator, THROUGHPUT_SONGS).await;
    let started = Instant::now();
    for _ in 0..THROUGHPUT_SONGS {
        done_rx.recv().await;
    }
    let elapsed = started.elapsed();
    let stages = THROUGHPUT_SONGS * StageKind::ALL.len();
    let per_second = stages as f64 / elapsed.as_secs_f64();

    shutdown.cancel();
    let _ = service.await;
    let (duplicates, stalls) = {
        let timeline = worker.timeline.lock().expect("timeline");
        (timeline.duplicates, timeline.stalls)
    };

    let (median, p99) = (percentile(&overheads, 0.5), percentile(&overheads, 0.99));
    println!(
        "cadenza: {} stages over {songs} songs, one at a time: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        overheads.len(),
        ms(median),
        ms(p99),
        ms(overheads[overheads.len() - 1]),
    );
    println!(
        "cadenza: {THROUGHPUT_SONGS} songs at once: {stages} stages in {:.2} s = {per_second:.0} stages/s",
        elapsed.as_secs_f64()
    );
    println!("cadenza, both phases: {duplicates} duplicate deliveries, {stalls} handoffs over 1 s");
    println!("targets: median < 5 ms, p99 < 25 ms, >= 500 stages/s");

    match std::env::var("CADENZA_CELERY_PYTHON") {
        Ok(python) => {
            let celery = run_celery(&python)?;
            println!(
                "celery (acks_late, same broker): median {:.2} ms, p99 {:.2} ms, {:.0} tasks/s",
                celery.median_ms, celery.p99_ms, celery.per_second
            );
            println!(
                "ratio cadenza/celery: median {:.2}x, p99 {:.2}x, throughput {:.2}x",
                ms(median) / celery.median_ms,
                ms(p99) / celery.p99_ms,
                per_second / celery.per_second
            );
        }
        Err(_) => println!(
            "celery: skipped (set CADENZA_CELERY_PYTHON, or run `make bench-orchestration`)"
        ),
    }
    Ok(())
}
