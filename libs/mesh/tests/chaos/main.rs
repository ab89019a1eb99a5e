//! The chaos test (issue 7). Twenty songs in flight through a mesh of real
//! processes (storage, project, two generation workers, gateway), and in turn: a
//! generation worker killed with SIGKILL mid-stage, the project service killed
//! with SIGKILL, RabbitMQ stopped and started, Postgres stopped (immediate mode:
//! every connection cut) and started. After each fault: every song completes;
//! each is charged exactly once; no stage has two successful results stored; the
//! event log of every project is gapless and in order; nothing is left in the
//! outbox or the queues, and nothing was dead-lettered. A summary table at the end.
//!
//! It never touches the shared Postgres and RabbitMQ other tests use: it starts
//! its own Postgres (initdb into a scratch directory, run as the `postgres` user
//! when the test runs as root) and its own RabbitMQ node (its own node name,
//! ports, data and cookie) on free ports, kills and restarts those freely, and
//! stops them at the end.
//!
//! Slow (a few minutes) and it needs the service binaries, so a plain
//! `cargo test` skips it: run `scripts/chaos.sh` (`make chaos`), which builds
//! them, runs this test, and cleans up even when the test itself is killed.
//!
//! Environment:
//! - `CADENZA_CHAOS_FAULTS`: the faults to inject, in order, comma-separated,
//!   from `worker`, `project`, `rabbitmq`, `postgres` (default: all four);
//!   `none` is a round without a fault (a baseline).
//! - `CADENZA_CHAOS_DIR`: the scratch directory (default: a new temporary one).
//! - `CADENZA_CHAOS_BIN_DIR`: where `cadenza-{gateway,project,generation,storage}`
//!   are (default: the profile directory this test was built into).
//! - `CADENZA_TEST_OUTPUT`: where the services' logs go (default
//!   `test-output/chaos` in the workspace).

mod checks;
mod faults;
mod infra;
mod round;
mod rows;
mod services;

use std::fs;
use std::time::{Duration, Instant};

use faults::{Fault, faults_from_env};
use infra::{CLOCK, blocking, run};
use round::Outcome;
use services::Sandbox;

// The test's parameters: private here, and so seen by every module below.

/// Songs in flight in each round.
const SONGS: usize = 20;
/// Short songs with vocals: all six stages run, and a round takes seconds.
const SONG_SECONDS: u32 = 6;
/// What one song costs: a credit a second, half as much again with vocals.
const SONG_COST: i64 = 9;
const SIGNUP_CREDITS: i64 = 1_000;
/// The first song of every round is requested this many times at once, with one
/// request id: it must make one run.
const IDENTICAL_REQUESTS: usize = 100;
/// Stages that must be RUNNING when a fault is injected: with two workers of
/// concurrency two, three running stages mean both workers are busy.
const MID_STAGE_RUNNING: i64 = 3;

const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(90);
const MID_STAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// From the fault until every song has finished.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(150);
/// After the songs finished, for the outbox and the queues to empty.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long each dependency stays down.
const WORKER_DOWN: Duration = Duration::from_secs(3);
const PROJECT_DOWN: Duration = Duration::from_secs(2);
const RABBITMQ_DOWN: Duration = Duration::from_secs(2);
const POSTGRES_DOWN: Duration = Duration::from_secs(3);

const QUEUE_PREFIX: &str = "chaos";
const PASSWORD: &str = "a long enough passphrase";

fn print_summary(outcomes: &[Outcome], total: Duration, extra: &[String]) {
    let secs =
        |d: Option<Duration>| d.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!();
    println!(
        "Chaos summary ({SONGS} songs of {SONG_SECONDS} s with vocals per fault, 2 generation workers)"
    );
    println!(
        "{:<28} {:>5} {:>9} {:>10} {:>6} {:>12} {:>7} {:>7} {:>8}  notes",
        "fault",
        "songs",
        "completed",
        "duplicates",
        "losses",
        "dead letters",
        "retried",
        "down",
        "recovery",
    );
    let mut totals = (0, 0, 0, 0, 0, 0);
    for o in outcomes {
        totals.0 += o.songs;
        totals.1 += o.completed;
        totals.2 += o.duplicates;
        totals.3 += o.losses;
        totals.4 += o.retried;
        totals.5 += o.dead_letters;
        println!(
            "{:<28} {:>5} {:>9} {:>10} {:>6} {:>12} {:>7} {:>7} {:>8}  {}",
            o.fault.map_or("?", Fault::label),
            o.songs,
            o.completed,
            o.duplicates,
            o.losses,
            o.dead_letters,
            o.retried,
            secs(Some(o.window)),
            secs(o.recovery),
            o.note
        );
    }
    println!(
        "{:<28} {:>5} {:>9} {:>10} {:>6} {:>12} {:>7}",
        format!("total ({} faults)", outcomes.len()),
        totals.0,
        totals.1,
        totals.2,
        totals.3,
        totals.5,
        totals.4
    );
    println!(
        "duplicates: extra runs, charges, stage successes or stored results; losses: songs not \
         completed, results or events missing, messages left behind; dead letters: messages the \
         broker gave up on; retried: stages that needed another attempt; down: how long the fault \
         lasted; recovery: from the fault to the last song finished. Every round also sent one \
         GenerateSong {IDENTICAL_REQUESTS} times at once with one request_id and got one run. \
         Total time {:.0} s.",
        total.as_secs_f64()
    );
    let violations: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| o.violations.iter())
        .chain(extra)
        .collect();
    if violations.is_empty() {
        println!(
            "No violations: every song completed once, charged once, with gapless ordered events and nothing left behind."
        );
    } else {
        println!("{} violations:", violations.len());
        for v in violations {
            println!("  - {v}");
        }
    }
    println!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow, and starts its own Postgres and RabbitMQ: run scripts/chaos.sh (make chaos)"]
async fn twenty_songs_survive_workers_project_broker_and_database_dying() {
    CLOCK.get_or_init(Instant::now);
    let faults = faults_from_env();
    let mut sandbox = match Sandbox::start().await {
        Ok(sandbox) => sandbox,
        Err(err) => panic!("the chaos sandbox did not start: {err:#}"),
    };
    let mut outcomes = Vec::new();
    for (index, fault) in faults.iter().enumerate() {
        outcomes.push(sandbox.round(index, *fault).await);
    }
    let mut extra = Vec::new();
    sandbox.supervise(&mut extra);
    let logs = sandbox.logs.clone();
    if outcomes.iter().any(|o| !o.violations.is_empty()) || !extra.is_empty() {
        // The database as the test left it, for whoever looks into the failure.
        let port = sandbox.postgres.port.to_string();
        let dump = blocking(|| {
            run(
                sandbox.postgres.tool("pg_dump").args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "cadenza",
                ]),
                "pg_dump",
            )
        });
        if let Ok(dump) = dump {
            let _ = fs::write(logs.join("cadenza.sql"), dump);
        }
    }
    blocking(|| sandbox.teardown());
    drop(sandbox);
    let total = CLOCK.get().map_or(Duration::ZERO, Instant::elapsed);
    print_summary(&outcomes, total, &extra);
    let failed = outcomes.iter().any(|o| !o.violations.is_empty()) || !extra.is_empty();
    assert!(
        !failed,
        "the chaos test found violations (listed above); the services' logs are in {}",
        logs.display()
    );
}
