//! The reconciler: finds stages left RUNNING by a worker that died (no report
//! for longer than the heartbeat timeout) or that ran past the stage timeout, and
//! puts them right: a new attempt on another worker while attempts remain,
//! otherwise a failed stage (and run, refunded) with the code `WORKER_LOST`.
//!
//! It runs at start-up and then periodically, on every replica: each stage is
//! re-read under its project's lock and acted on only if it is still stale in
//! the same attempt, so two replicas never act twice on one stage.

use std::time::Duration;

use cadenza_db::schema::stages;
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
    /// One pass over the running stages, as of `now`.
    pub async fn reconcile(
        &self,
        conn: &mut AsyncPgConnection,
        config: ReconcileConfig,
        now: DateTime<Utc>,
    ) -> ApiResult<Reconciled> {
        let quiet_since = ago(now, config.heartbeat_timeout);
        let started_before = ago(now, config.stage_timeout);
        let candidates: Vec<(Uuid, i32)> = stages::table
            .filter(stages::state.eq(StageState::Running.as_str()))
            .filter(
                stages::heartbeat_at
                    .lt(quiet_since)
                    .or(stages::heartbeat_at
                        .is_null()
                        .and(stages::started_at.lt(quiet_since)))
                    .or(stages::started_at.lt(started_before)),
            )
            .select((stages::id, stages::attempt))
            .limit(BATCH)
            .load(conn)
            .await?;
        let mut done = Reconciled::default();
        for (stage_id, attempt) in candidates {
            let this = self.clone();
            let outcome = conn
                .transaction(async move |conn| {
                    this.reconcile_stage(conn, stage_id, attempt, quiet_since, started_before)
                        .await
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
                "reconciled stages whose workers went quiet"
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
        quiet_since: DateTime<Utc>,
        started_before: DateTime<Utc>,
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
        let (heartbeat, started): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = stages::table
            .find(stage_id)
            .select((stages::heartbeat_at, stages::started_at))
            .first(conn)
            .await?;
        let last_sign = heartbeat.or(started);
        let quiet = last_sign.is_some_and(|at| at < quiet_since);
        let overdue = started.is_some_and(|at| at < started_before);
        let still_stale = stage.state == StageState::Running.as_str()
            && stage.attempt == attempt
            && (quiet || overdue)
            && RunState::parse(&run.state).is_some_and(|s| !s.is_terminal());
        let Some(kind) = StageKind::parse(&stage.kind).filter(|_| still_stale) else {
            return Ok(None);
        };
        let message = if overdue {
            format!("attempt {attempt} ran past the stage time limit")
        } else {
            format!("the worker running attempt {attempt} stopped answering")
        };
        let retried = stage.attempt < self.max_attempts;
        self.on_failed(
            conn,
            &run,
            &stage,
            kind,
            v1::StageFailed {
                error_code: if overdue {
                    "STAGE_TIMEOUT".into()
                } else {
                    "WORKER_LOST".into()
                },
                message,
                retryable: true,
            },
        )
        .await?;
        Ok(Some(retried))
    }
}
