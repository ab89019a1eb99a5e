//! The reconciler: finds stages left RUNNING by a worker that died (no report
//! for longer than the heartbeat timeout) or that ran past the stage timeout, and
//! stages left QUEUED whose work the broker no longer holds, and puts them right:
//! a new attempt while attempts remain, otherwise a failed stage (and run,
//! refunded) with a code a person can act on (`WORKER_LOST`, `STAGE_TIMEOUT`,
//! `WORK_LOST`).
//!
//! Lost work is only suspected when the broker says the work queue and the update
//! queue are both empty and every outbox row has been published: then a stage
//! still QUEUED long after it was queued has no message anywhere that could start
//! it. (A backlog never looks like a loss: its messages are still in the queue.)
//!
//! It runs at start-up and then periodically, on every replica: each stage is
//! re-read under its project's lock and acted on only if it is still stale in
//! the same attempt, so two replicas never act twice on one stage.

use std::time::Duration;

use cadenza_db::schema::{outbox, stages};
use cadenza_proto::v1;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Orchestrator;
use crate::domain::{RunState, StageKind, StageState};
use crate::error::ApiResult;
use crate::store::{projects, runs as run_store};

/// Stages looked at in one pass; the next pass takes the rest.
const BATCH: i64 = 200;

#[derive(Debug, Clone, Copy)]
pub struct ReconcileConfig {
    /// A running stage with no report for this long has lost its worker.
    pub heartbeat_timeout: Duration,
    /// A running stage this old is given up on, heartbeats or not.
    pub stage_timeout: Duration,
    /// A queued stage this old, with nothing left in the queues or the outbox,
    /// lost its work message.
    pub lost_work_after: Duration,
}

/// What the broker said about the queues just before a pass: ready messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueView {
    pub work_ready: u32,
    pub updates_ready: u32,
}

/// When something last happened to a stage, if it did.
type Instant = Option<DateTime<Utc>>;

/// Why a stage is being put right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    Quiet,
    Overdue,
    Lost,
}

impl Stale {
    fn code(self) -> &'static str {
        match self {
            Self::Quiet => "WORKER_LOST",
            Self::Overdue => "STAGE_TIMEOUT",
            Self::Lost => "WORK_LOST",
        }
    }

    fn message(self, attempt: i32) -> String {
        match self {
            Self::Quiet => format!("the worker running attempt {attempt} stopped answering"),
            Self::Overdue => format!("attempt {attempt} ran past the stage time limit"),
            Self::Lost => format!("the message queue lost the work of attempt {attempt}"),
        }
    }
}

/// The instants that make a stage stale, as of one pass.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    quiet_since: DateTime<Utc>,
    started_before: DateTime<Utc>,
    queued_before: DateTime<Utc>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub retried: u32,
    pub failed: u32,
}

fn ago(now: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
}

impl Orchestrator {
    /// One pass, as of `now`. `queues` is `None` when the broker could not be
    /// asked: lost work is then not looked for.
    pub async fn reconcile(
        &self,
        conn: &mut AsyncPgConnection,
        config: ReconcileConfig,
        now: DateTime<Utc>,
        queues: Option<QueueView>,
    ) -> ApiResult<Reconciled> {
        let cutoffs = Cutoffs {
            quiet_since: ago(now, config.heartbeat_timeout),
            started_before: ago(now, config.stage_timeout),
            queued_before: ago(now, config.lost_work_after),
        };
        let mut candidates: Vec<(Uuid, i32)> = stages::table
            .filter(stages::state.eq(StageState::Running.as_str()))
            .filter(
                stages::heartbeat_at
                    .lt(cutoffs.quiet_since)
                    .or(stages::heartbeat_at
                        .is_null()
                        .and(stages::started_at.lt(cutoffs.quiet_since)))
                    .or(stages::started_at.lt(cutoffs.started_before)),
            )
            .select((stages::id, stages::attempt))
            .limit(BATCH)
            .load(conn)
            .await?;
        let queues_empty = queues.is_some_and(|q| q.work_ready == 0 && q.updates_ready == 0);
        if queues_empty && unpublished(conn).await? == 0 {
            candidates.extend(
                stages::table
                    .filter(stages::state.eq(StageState::Queued.as_str()))
                    .filter(stages::queued_at.lt(cutoffs.queued_before))
                    .select((stages::id, stages::attempt))
                    .limit(BATCH)
                    .load::<(Uuid, i32)>(conn)
                    .await?,
            );
        }
        let mut done = Reconciled::default();
        for (stage_id, attempt) in candidates {
            let this = self.clone();
            let outcome = conn
                .transaction(async move |conn| {
                    this.reconcile_stage(conn, stage_id, attempt, cutoffs).await
                })
                .await?;
            match outcome {
                Some(true) => done.retried += 1,
                Some(false) => done.failed += 1,
                None => {}
            }
        }
        if done != Reconciled::default() {
            tracing::warn!(
                retried = done.retried,
                failed = done.failed,
                "reconciled stages whose workers or work went missing"
            );
            metrics::counter!("cadenza_stages_reconciled_total", "outcome" => "retried")
                .increment(u64::from(done.retried));
            metrics::counter!("cadenza_stages_reconciled_total", "outcome" => "failed")
                .increment(u64::from(done.failed));
        }
        Ok(done)
    }

    /// `Some(true)` if the stage was queued again, `Some(false)` if it failed,
    /// `None` if it moved on meanwhile.
    async fn reconcile_stage(
        &self,
        conn: &mut AsyncPgConnection,
        stage_id: Uuid,
        attempt: i32,
        cutoffs: Cutoffs,
    ) -> ApiResult<Option<bool>> {
        let Some(stage) = run_store::stage(conn, stage_id).await? else {
            return Ok(None);
        };
        let run = run_store::get(conn, stage.run_id).await?;
        // Lock order: project, then stages (as every report does).
        projects::lock_by_id(conn, run.project_id).await?;
        let run = run_store::get(conn, stage.run_id).await?;
        let Some(stage) = run_store::lock_stages(conn, run.id)
            .await?
            .into_iter()
            .find(|s| s.id == stage_id)
        else {
            return Ok(None);
        };
        let (heartbeat, started, queued): (Instant, Instant, Instant) = stages::table
            .find(stage_id)
            .select((stages::heartbeat_at, stages::started_at, stages::queued_at))
            .first(conn)
            .await?;
        let stale = if stage.state == StageState::Queued.as_str() {
            queued
                .is_some_and(|at| at < cutoffs.queued_before)
                .then_some(Stale::Lost)
        } else if stage.state != StageState::Running.as_str() {
            None
        } else if started.is_some_and(|at| at < cutoffs.started_before) {
            Some(Stale::Overdue)
        } else if heartbeat
            .or(started)
            .is_some_and(|at| at < cutoffs.quiet_since)
        {
            Some(Stale::Quiet)
        } else {
            None
        };
        let live_run = RunState::parse(&run.state).is_some_and(|s| !s.is_terminal());
        let (Some(stale), Some(kind)) = (
            stale.filter(|_| stage.attempt == attempt && live_run),
            StageKind::parse(&stage.kind),
        ) else {
            return Ok(None);
        };
        let retried = stage.attempt < self.max_attempts;
        self.on_failed(
            conn,
            &run,
            &stage,
            kind,
            v1::StageFailed {
                error_code: stale.code().into(),
                message: stale.message(attempt),
                retryable: true,
            },
        )
        .await?;
        Ok(Some(retried))
    }
}

/// Outbox rows not yet published (work that is on its way, not lost).
async fn unpublished(conn: &mut AsyncPgConnection) -> ApiResult<i64> {
    Ok(outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await?)
}
