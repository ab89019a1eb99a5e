//! Applying what workers report: one transaction per report, keyed by message id
//! (inbox), stage id and attempt, moving stages only forward.

use cadenza_db::schema::{assets, inbox, runs, stage_provenance, stages};
use cadenza_proto::v1::{self, stage_update::Update};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Applied, Orchestrator};
use crate::domain::{RunState, StageKind, StageState};
use crate::error::{ApiError, ApiResult};
use crate::store::events::EventType;
use crate::store::models::{RunRow, StageRow};
use crate::store::{projects, runs as run_store};

impl Orchestrator {
    /// Applies one worker report in its own transaction.
    pub async fn apply_update(
        &self,
        conn: &mut AsyncPgConnection,
        message_id: Uuid,
        update: v1::StageUpdate,
    ) -> ApiResult<Applied> {
        let this = self.clone();
        conn.transaction(async move |conn| this.apply_in_tx(conn, message_id, update).await)
            .await
    }

    async fn apply_in_tx(
        &self,
        conn: &mut AsyncPgConnection,
        message_id: Uuid,
        update: v1::StageUpdate,
    ) -> ApiResult<Applied> {
        let first_time = diesel::insert_into(inbox::table)
            .values(inbox::message_id.eq(message_id))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if first_time == 0 {
            return Ok(Applied::Ignored);
        }
        let Ok(stage_id) = Uuid::parse_str(&update.stage_id) else {
            return Ok(Applied::Ignored);
        };
        let Some(stage) = run_store::stage(conn, stage_id).await? else {
            return Ok(Applied::Ignored);
        };
        let run = run_store::get(conn, stage.run_id).await?;
        // Lock order: project, then stages.
        projects::lock_by_id(conn, run.project_id).await?;
        let run = run_store::get(conn, stage.run_id).await?;
        let stage = run_store::lock_stages(conn, run.id)
            .await?
            .into_iter()
            .find(|s| s.id == stage_id)
            .ok_or(diesel::result::Error::NotFound)?;
        let (Some(kind), Some(state), Some(run_state)) = (
            StageKind::parse(&stage.kind),
            StageState::parse(&stage.state),
            RunState::parse(&run.state),
        ) else {
            return Err(ApiError::Internal(format!(
                "stage {stage_id} has an unknown kind or state"
            )));
        };
        let attempt = i32::try_from(update.attempt).unwrap_or(-1);
        if attempt != stage.attempt {
            return Ok(Applied::Ignored);
        }
        // A worker's lines about the current attempt are kept even after the run
        // ended (a stage stopping because its run was cancelled says so).
        for log in &update.logs {
            let at = log
                .log_time
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .unwrap_or_else(Utc::now);
            let severity = i16::try_from(log.severity.clamp(1, 3)).unwrap_or(1);
            let message: String = log.message.chars().take(2000).collect();
            let short = |text: &str| text.chars().take(200).collect::<String>();
            run_store::add_log(
                conn,
                run_store::LogLine {
                    run_id: run.id,
                    stage_kind: kind.as_str(),
                    attempt,
                    severity,
                    message: &message,
                    at,
                    provider: &short(&log.provider),
                    provider_job_id: &short(&log.provider_job_id),
                    error_code: &short(&log.error_code),
                    worker_id: &short(&update.worker_id),
                },
            )
            .await?;
        }
        if state.is_terminal() || run_state.is_terminal() {
            return Ok(Applied::Ignored);
        }
        // Any report of the current attempt is a sign of life.
        diesel::update(stages::table.find(stage.id))
            .set(stages::heartbeat_at.eq(Utc::now()))
            .execute(conn)
            .await?;
        let provider: String = update.provider.chars().take(64).collect();
        match update.update {
            Some(Update::Started(_)) => self.on_started(conn, &run, &stage, kind, &provider).await,
            Some(Update::Progress(p)) => {
                self.on_progress(conn, &run, &stage, kind, &provider, p.progress)
                    .await
            }
            Some(Update::Completed(done)) => {
                self.on_completed(conn, &run, &stage, kind, &provider, done)
                    .await
            }
            Some(Update::Failed(failed)) => self.on_failed(conn, &run, &stage, kind, failed).await,
            Some(Update::Heartbeat(_)) => {
                self.ensure_started(conn, &run, &stage, kind, &provider)
                    .await?;
                Ok(Applied::Changed)
            }
            None => Ok(Applied::Ignored),
        }
    }

    async fn mark_run_running(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
    ) -> ApiResult<RunState> {
        if run.state == RunState::Queued.as_str() {
            diesel::update(runs::table.find(run.id))
                .set((
                    runs::state.eq(RunState::Running.as_str()),
                    runs::started_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
        }
        Ok(RunState::Running)
    }

    async fn on_started(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        provider: &str,
    ) -> ApiResult<Applied> {
        Ok(
            if self
                .ensure_started(conn, run, stage, kind, provider)
                .await?
            {
                Applied::Changed
            } else {
                Applied::Ignored
            },
        )
    }

    /// Moves a queued stage to RUNNING and records its start, once. Reports of one
    /// attempt are applied concurrently, so progress or completion may arrive
    /// before "started": whichever comes first records the start, so every stage
    /// has the same history, and the later "started" is ignored.
    async fn ensure_started(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        provider: &str,
    ) -> ApiResult<bool> {
        if stage.state != StageState::Queued.as_str() {
            return Ok(false);
        }
        let now = Utc::now();
        let queued_at: Option<chrono::DateTime<Utc>> = diesel::update(stages::table.find(stage.id))
            .set((
                stages::state.eq(StageState::Running.as_str()),
                stages::started_at.eq(now),
                stages::provider.eq(provider),
            ))
            .returning(stages::queued_at)
            .get_result(conn)
            .await?;
        // The consumer lag: how long the work waited for a worker.
        if let Some(waited) = queued_at.and_then(|at| (now - at).to_std().ok()) {
            metrics::histogram!("cadenza_stage_queue_wait_seconds", "kind" => kind.as_str())
                .record(waited.as_secs_f64());
        }
        let run_state = self.mark_run_running(conn, run).await?;
        self.stage_event(
            conn,
            run,
            kind,
            StageState::Running,
            run_state,
            EventType::StageStarted,
            0.0,
            stage.attempt,
            "",
        )
        .await?;
        Ok(true)
    }

    async fn on_progress(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        provider: &str,
        progress: f32,
    ) -> ApiResult<Applied> {
        // Progress never goes back, and a finished stage reports 1 by completing.
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 0.99)
        } else {
            0.0
        };
        if progress <= stage.progress {
            return Ok(Applied::Ignored);
        }
        self.ensure_started(conn, run, stage, kind, provider)
            .await?;
        diesel::update(stages::table.find(stage.id))
            .set(stages::progress.eq(progress))
            .execute(conn)
            .await?;
        let run_state = self.mark_run_running(conn, run).await?;
        self.stage_event(
            conn,
            run,
            kind,
            StageState::Running,
            run_state,
            EventType::StageProgress,
            progress,
            stage.attempt,
            "",
        )
        .await?;
        Ok(Applied::Changed)
    }

    async fn on_completed(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        provider: &str,
        done: v1::StageCompleted,
    ) -> ApiResult<Applied> {
        let now = Utc::now();
        self.ensure_started(conn, run, stage, kind, provider)
            .await?;
        self.record_provenance(conn, run, stage, kind, provider, &done)
            .await?;
        for output in done.outputs {
            let kind_str = crate::domain::asset_kind_str(output.kind()).unwrap_or("unknown");
            diesel::insert_into(assets::table)
                .values((
                    assets::id.eq(Uuid::now_v7()),
                    assets::project_id.eq(run.project_id),
                    assets::run_id.eq(run.id),
                    assets::stage_kind.eq(kind.as_str()),
                    assets::kind.eq(kind_str),
                    assets::file_name.eq(&output.file_name),
                    assets::object_key.eq(&output.object_key),
                    assets::content_type.eq(&output.content_type),
                    assets::size_bytes.eq(output.size_bytes),
                    assets::sha256.eq(&output.sha256),
                ))
                .on_conflict((assets::run_id, assets::file_name))
                .do_nothing()
                .execute(conn)
                .await?;
        }
        diesel::update(stages::table.find(stage.id))
            .set((
                stages::state.eq(StageState::Succeeded.as_str()),
                stages::progress.eq(1.0f32),
                stages::provider.eq(provider),
                stages::finished_at.eq(now),
            ))
            .execute(conn)
            .await?;
        let run_state = self.mark_run_running(conn, run).await?;
        self.stage_event(
            conn,
            run,
            kind,
            StageState::Succeeded,
            run_state,
            EventType::StageSucceeded,
            1.0,
            stage.attempt,
            "",
        )
        .await?;

        let all = run_store::stages_of(conn, run.id).await?;
        let finished = all
            .iter()
            .all(|s| StageState::parse(&s.state).is_some_and(StageState::satisfies_dependents));
        if finished {
            self.finish_run(conn, run, RunState::Succeeded, None)
                .await?;
        } else {
            let run = run_store::get(conn, run.id).await?;
            self.queue_ready(conn, &run).await?;
        }
        Ok(Applied::Changed)
    }

    /// Keeps where the stage's outputs came from, once per stage.
    async fn record_provenance(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        provider: &str,
        done: &v1::StageCompleted,
    ) -> ApiResult<()> {
        let hashes = |refs: &[v1::ArtifactRef]| {
            serde_json::Value::Array(
                refs.iter()
                    .map(|r| serde_json::json!({"file_name": r.file_name, "sha256": r.sha256}))
                    .collect(),
            )
        };
        let inputs = self.inputs_for(conn, run.id, kind).await?;
        diesel::insert_into(stage_provenance::table)
            .values((
                stage_provenance::stage_id.eq(stage.id),
                stage_provenance::run_id.eq(run.id),
                stage_provenance::kind.eq(kind.as_str()),
                stage_provenance::attempt.eq(stage.attempt),
                stage_provenance::provider.eq(provider),
                stage_provenance::provider_version.eq(done
                    .provider_version
                    .chars()
                    .take(200)
                    .collect::<String>()),
                stage_provenance::provider_job_id.eq(done
                    .provider_job_id
                    .chars()
                    .take(200)
                    .collect::<String>()),
                stage_provenance::inputs.eq(hashes(&inputs)),
                stage_provenance::outputs.eq(hashes(&done.outputs)),
            ))
            .on_conflict(stage_provenance::stage_id)
            .do_nothing()
            .execute(conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn on_failed(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        failed: v1::StageFailed,
    ) -> ApiResult<Applied> {
        let code: String = if failed.error_code.is_empty() {
            "STAGE_FAILED".into()
        } else {
            failed.error_code.chars().take(64).collect()
        };
        let message: String = failed.message.chars().take(500).collect();
        if failed.retryable && stage.attempt < self.max_attempts {
            let retry = format!(
                "attempt {} failed ({code}): {message}; retrying",
                stage.attempt
            );
            self.enqueue(conn, run, stage, kind, stage.attempt + 1, &retry)
                .await?;
            return Ok(Applied::Changed);
        }
        diesel::update(stages::table.find(stage.id))
            .set((
                stages::state.eq(StageState::Failed.as_str()),
                stages::error_code.eq(&code),
                stages::error_message.eq(&message),
                stages::finished_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
        self.stage_event(
            conn,
            run,
            kind,
            StageState::Failed,
            RunState::Running,
            EventType::StageFailed,
            stage.progress,
            stage.attempt,
            &message,
        )
        .await?;
        let reason = format!("the {} stage failed: {message}", kind.as_str());
        self.finish_run(conn, run, RunState::Failed, Some(("STAGE_FAILED", reason)))
            .await?;
        Ok(Applied::Changed)
    }
}
