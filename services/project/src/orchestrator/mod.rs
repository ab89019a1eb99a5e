//! The stage orchestrator: creates runs, applies what workers report, and queues
//! stages whose dependencies are met, always inside the caller's transaction so a
//! state change and the work it causes commit together or not at all.
//!
//! Transitions only move forward (PENDING -> QUEUED -> RUNNING -> terminal) and are
//! keyed by stage id and attempt, so a report that arrives twice, late, or for an
//! attempt that was superseded changes nothing.

use cadenza_db::schema::{outbox, runs, stages};
use cadenza_proto::v1::{self, envelope::Body};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub mod reconcile;
mod updates;

use crate::domain::{ProjectState, RunState, StageKind, StageState};
use crate::error::{ApiError, ApiResult};
use crate::store::events::{self, EventType, NewEvent};
use crate::store::models::{ProjectRow, RunRow, StageRow};
use crate::store::{projects, runs as run_store};

#[derive(Debug, Clone)]
pub struct Orchestrator {
    /// Attempts a stage gets before its failure fails the run.
    pub max_attempts: i32,
    pub exchange: String,
    /// Whether runs reserve credits.
    pub credits: crate::credits::CreditPolicy,
    /// Caps for accounts on the free plan.
    pub free_tier: crate::plans::FreeTier,
}

/// What applying a worker's report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// Already seen, stale, or about a finished stage: nothing changed.
    Ignored,
}

impl Orchestrator {
    /// Creates a run for a locked project: its stages, its first events, and the
    /// work for the stages with no dependencies.
    pub async fn start_run(
        &self,
        conn: &mut AsyncPgConnection,
        project: &ProjectRow,
        run_id: Uuid,
    ) -> ApiResult<RunRow> {
        self.free_tier
            .admit(conn, &project.owner, project.duration_seconds, Utc::now())
            .await?;
        if self.credits.enforced {
            let cost = crate::credits::cost(project.duration_seconds, project.has_vocals);
            crate::credits::reserve(conn, &project.owner, run_id, cost).await?;
        }
        let seed = project.seed.unwrap_or_else(rand::random::<i64>);
        let inserted = diesel::insert_into(runs::table)
            .values((
                runs::id.eq(run_id),
                runs::project_id.eq(project.id),
                runs::owner.eq(&project.owner),
                runs::state.eq(RunState::Queued.as_str()),
                runs::prompt.eq(&project.prompt),
                runs::duration_seconds.eq(project.duration_seconds),
                runs::has_vocals.eq(project.has_vocals),
                runs::style_strength.eq(project.style_strength),
                runs::seed.eq(seed),
                runs::lyrics.eq(&project.lyrics),
            ))
            .execute(conn)
            .await;
        match inserted {
            Ok(_) => {}
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                return Err(ApiError::FailedPrecondition(
                    "GENERATION_IN_PROGRESS",
                    "this project is already generating; cancel it or wait for it to finish".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
        for kind in StageKind::ALL {
            let state = if kind.needed(project.has_vocals) {
                StageState::Pending
            } else {
                StageState::Skipped
            };
            diesel::insert_into(stages::table)
                .values((
                    stages::id.eq(Uuid::now_v7()),
                    stages::run_id.eq(run_id),
                    stages::kind.eq(kind.as_str()),
                    stages::state.eq(state.as_str()),
                ))
                .execute(conn)
                .await?;
        }
        projects::set_state(
            conn,
            project.id,
            ProjectState::Generating.as_str(),
            Some(run_id),
        )
        .await?;
        events::append(
            conn,
            project.id,
            NewEvent {
                run_id,
                event_type: EventType::RunCreated,
                stage: None,
                run_state: RunState::Queued,
                progress: 0.0,
                attempt: 0,
                message: String::new(),
            },
        )
        .await?;
        let run = run_store::get(conn, run_id).await?;
        self.queue_ready(conn, &run).await?;
        Ok(run)
    }

    /// Queues every pending stage whose dependencies are satisfied.
    pub(super) async fn queue_ready(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
    ) -> ApiResult<()> {
        let stage_rows = run_store::lock_stages(conn, run.id).await?;
        let state_of = |kind: StageKind| {
            stage_rows
                .iter()
                .find(|s| StageKind::parse(&s.kind) == Some(kind))
                .and_then(|s| StageState::parse(&s.state))
        };
        for stage in &stage_rows {
            let (Some(kind), Some(StageState::Pending)) = (
                StageKind::parse(&stage.kind),
                StageState::parse(&stage.state),
            ) else {
                continue;
            };
            let ready = kind
                .depends_on()
                .iter()
                .all(|dep| state_of(*dep).is_some_and(StageState::satisfies_dependents));
            if ready {
                self.enqueue(conn, run, stage, kind, 1, "").await?;
            }
        }
        Ok(())
    }

    /// Marks a stage queued for `attempt` and writes its work to the outbox.
    pub(super) async fn enqueue(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        attempt: i32,
        message: &str,
    ) -> ApiResult<()> {
        diesel::update(stages::table.find(stage.id))
            .set((
                stages::state.eq(StageState::Queued.as_str()),
                stages::attempt.eq(attempt),
                stages::progress.eq(0.0f32),
                stages::queued_at.eq(Utc::now()),
                stages::error_code.eq(None::<String>),
                stages::error_message.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
        let inputs = self.inputs_for(conn, run.id, kind).await?;
        let work = v1::StageWork {
            run_id: run.id.to_string(),
            stage_id: stage.id.to_string(),
            project_id: run.project_id.to_string(),
            owner: run.owner.clone(),
            kind: kind.proto() as i32,
            attempt: u32::try_from(attempt).unwrap_or(1),
            spec: Some(v1::SongSpec {
                prompt: run.prompt.clone(),
                duration_seconds: u32::try_from(run.duration_seconds).unwrap_or(0),
                has_vocals: run.has_vocals,
                style_strength: run.style_strength,
                seed: run.seed as u64,
                lyrics: run.lyrics.clone(),
            }),
            inputs,
        };
        let message_id = Uuid::new_v4();
        let envelope = cadenza_queue::envelope::wrap_with_id(message_id, Body::StageWork(work));
        diesel::insert_into(outbox::table)
            .values((
                outbox::message_id.eq(message_id),
                outbox::exchange.eq(&self.exchange),
                outbox::routing_key.eq(cadenza_queue::topology::WORK_KEY),
                outbox::payload.eq(cadenza_queue::encode(&envelope)),
            ))
            .execute(conn)
            .await?;
        events::append(
            conn,
            run.project_id,
            NewEvent {
                run_id: run.id,
                event_type: EventType::StageQueued,
                stage: Some((kind, StageState::Queued)),
                run_state: RunState::parse(&run.state).unwrap_or(RunState::Queued),
                progress: 0.0,
                attempt,
                message: message.to_owned(),
            },
        )
        .await?;
        Ok(())
    }

    /// Tells every worker (through the outbox, with the final state) that the run
    /// is over, so stages of it still running stop at their next checkpoint.
    async fn broadcast_cancel(&self, conn: &mut AsyncPgConnection, run_id: Uuid) -> ApiResult<()> {
        let message_id = Uuid::new_v4();
        let envelope = cadenza_queue::envelope::wrap_with_id(
            message_id,
            Body::RunCancelled(v1::RunCancelled {
                run_id: run_id.to_string(),
            }),
        );
        diesel::insert_into(outbox::table)
            .values((
                outbox::message_id.eq(message_id),
                outbox::exchange.eq(&self.exchange),
                outbox::routing_key.eq(cadenza_queue::topology::CANCEL_KEY),
                outbox::payload.eq(cadenza_queue::encode(&envelope)),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// The outputs of the stages `kind` depends on.
    async fn inputs_for(
        &self,
        conn: &mut AsyncPgConnection,
        run_id: Uuid,
        kind: StageKind,
    ) -> ApiResult<Vec<v1::ArtifactRef>> {
        let deps: Vec<&str> = kind.depends_on().iter().map(|k| k.as_str()).collect();
        if deps.is_empty() {
            return Ok(Vec::new());
        }
        let rows = run_store::assets_of_run(conn, run_id).await?;
        Ok(rows
            .into_iter()
            .filter(|a| deps.contains(&a.stage_kind.as_str()))
            .map(|a| v1::ArtifactRef {
                kind: crate::domain::asset_kind_from_str(&a.kind) as i32,
                file_name: a.file_name,
                object_key: a.object_key,
                content_type: a.content_type,
                size_bytes: a.size_bytes,
                sha256: a.sha256,
            })
            .collect())
    }

    /// Ends a run: cancels its unfinished stages and updates the project.
    pub async fn finish_run(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        state: RunState,
        error: Option<(&str, String)>,
    ) -> ApiResult<()> {
        let now = Utc::now();
        for stage in run_store::lock_stages(conn, run.id).await? {
            let (Some(kind), Some(stage_state)) = (
                StageKind::parse(&stage.kind),
                StageState::parse(&stage.state),
            ) else {
                continue;
            };
            if stage_state.is_terminal() {
                continue;
            }
            diesel::update(stages::table.find(stage.id))
                .set((
                    stages::state.eq(StageState::Cancelled.as_str()),
                    stages::finished_at.eq(now),
                ))
                .execute(conn)
                .await?;
            self.stage_event(
                conn,
                run,
                kind,
                StageState::Cancelled,
                state,
                EventType::StageCancelled,
                stage.progress,
                stage.attempt,
                "",
            )
            .await?;
        }
        let (code, message) = error.map_or((None, None), |(c, m)| (Some(c.to_owned()), Some(m)));
        diesel::update(runs::table.find(run.id))
            .set((
                runs::state.eq(state.as_str()),
                runs::finished_at.eq(now),
                runs::error_code.eq(&code),
                runs::error_message.eq(&message),
            ))
            .execute(conn)
            .await?;
        // In the same transaction as the final state: charged only for a song
        // that arrived, refunded otherwise, settled once.
        crate::credits::settle(conn, &run.owner, run.id, state).await?;
        if state != RunState::Succeeded {
            self.broadcast_cancel(conn, run.id).await?;
        }
        projects::set_state(
            conn,
            run.project_id,
            ProjectState::after_run(state).as_str(),
            None,
        )
        .await?;
        events::append(
            conn,
            run.project_id,
            NewEvent {
                run_id: run.id,
                event_type: EventType::RunFinished,
                stage: None,
                run_state: state,
                progress: if state == RunState::Succeeded {
                    1.0
                } else {
                    0.0
                },
                attempt: 0,
                message: message.unwrap_or_default(),
            },
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn stage_event(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        kind: StageKind,
        stage_state: StageState,
        run_state: RunState,
        event_type: EventType,
        progress: f32,
        attempt: i32,
        message: &str,
    ) -> ApiResult<()> {
        events::append(
            conn,
            run.project_id,
            NewEvent {
                run_id: run.id,
                event_type,
                stage: Some((kind, stage_state)),
                run_state,
                progress,
                attempt,
                message: message.to_owned(),
            },
        )
        .await?;
        Ok(())
    }
}
