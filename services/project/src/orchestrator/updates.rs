//! Applying what workers report: one transaction per report, keyed by message id
//! (inbox), stage id and attempt, moving stages only forward.
//!
//! A report from the queue costs four round trips to Postgres: BEGIN with the
//! inbox and the project's lock; the run, its stages and outputs (pipelined);
//! every write (pipelined); COMMIT. (The end of a run adds the credits'
//! settlement, and a retry ordered by the reconciler or the dead-letter queue a
//! read of the run's outputs.)

use cadenza_db::schema::inbox;
use cadenza_proto::v1::{self, stage_update::Update};
use cadenza_queue::Publisher;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use uuid::Uuid;

use super::{Applied, HeldRun, Orchestrator, inputs_from};
use crate::domain::{RunState, StageKind, StageState};
use crate::error::{ApiError, ApiResult};
use crate::relay::Sent;
use crate::store::events::EventType;
use crate::store::models::{AssetRow, RunRow, StageRow};
use crate::store::outbox::NewMessage;
use crate::store::{projects, runs as run_store};

impl Orchestrator {
    /// Applies one worker report in its own transaction; the work it causes
    /// is published by the relay.
    pub async fn apply_update(
        &self,
        conn: &mut AsyncPgConnection,
        message_id: Uuid,
        update: v1::StageUpdate,
    ) -> ApiResult<Applied> {
        let this = self.clone();
        let Published { applied, .. } = conn
            .transaction(async move |conn| {
                this.apply_in_tx(conn, message_id, update, None, Framing::Diesel)
                    .await
            })
            .await?;
        Ok(applied)
    }

    /// [`Self::apply_update`] for a caller that publishes the work the report
    /// causes itself: the outbox rows are leased to it until `lease_until` (the
    /// relay leaves them alone until then). With a `publisher`, they are sent
    /// while the COMMIT is on its way (`crate::relay::send_leased`) and the
    /// broker's answer is returned for the caller to record
    /// (`crate::relay::record_sent`); without, they are returned to be sent
    /// after the commit (`crate::relay::publish_now`).
    ///
    /// Sending before the commit is answered saves the next stage the commit's
    /// wait for the disk. Should the COMMIT then fail, the work is out for a
    /// state change that did not happen. It is handled like a message the relay
    /// sends twice: until the report is applied again on redelivery the stage
    /// is not queued, so the work's reports are ignored; once it is, the work
    /// is one more delivery of the queued attempt, and forward-only transitions
    /// keep the first result.
    ///
    /// The transaction is opened by hand, BEGIN sent with the first reads (a
    /// round trip fewer than diesel's transaction manager, which waits for it).
    /// diesel does not know of the transaction, so after an error, or if this
    /// future is dropped midway, the caller must not use the connection again:
    /// it drops it (closing it rolls back), see `cadenza_db::Disposable`.
    /// COMMIT goes once every write has been answered: a simple query, sent
    /// alongside them it would overtake a write still being prepared.
    pub async fn apply_update_publishing(
        &self,
        conn: &mut AsyncPgConnection,
        message_id: Uuid,
        update: v1::StageUpdate,
        lease_until: DateTime<Utc>,
        publisher: Option<&Publisher>,
    ) -> ApiResult<Published> {
        self.apply_in_tx(
            conn,
            message_id,
            update,
            Some(lease_until),
            Framing::Pipelined { publisher },
        )
        .await
    }

    async fn apply_in_tx(
        &self,
        conn: &mut AsyncPgConnection,
        message_id: Uuid,
        update: v1::StageUpdate,
        lease_until: Option<DateTime<Utc>>,
        framing: Framing<'_>,
    ) -> ApiResult<Published> {
        let Ok(stage_id) = Uuid::parse_str(&update.stage_id) else {
            // Nothing begun yet.
            return Ok(Published::nothing(Applied::Ignored));
        };
        // Two round trips. First (with BEGIN, when framed by hand) the message id
        // into the inbox and the project's lock; then, under that lock, the run,
        // the run's stages, locked (lock order: project, then stages), and what
        // a completion needs of the run's outputs so far (its inputs, and those
        // of the stages it lets start; a failure may need them for a retry).
        // All are found from the stage id, so none waits for another's answer
        // within a round trip. The lock goes first on its own, so the reads'
        // correctness never rests on the order statements leave in: diesel-async
        // keeps its own statements in the order polled (a statement being
        // prepared holds the statement cache, whose lock is fair), but a simple
        // query overtakes them. Reads merged into the first round, with the
        // COMMIT sent behind the writes, were tried: the bench's median did not
        // move (5.1-5.6 ms where tried), as two quorum-queue hops dominate.
        let wants_assets = matches!(
            update.update,
            Some(Update::Completed(_) | Update::Failed(_))
        );
        let (first_time, project, run, stages, assets) = {
            let conn: &AsyncPgConnection = conn;
            let assets = async {
                if wants_assets {
                    run_store::assets_of_run_of(conn, stage_id).await.map(Some)
                } else {
                    Ok(None)
                }
            };
            // BEGIN is a simple query, sent as soon as it is polled: first.
            let ((), first_time, project) = futures::try_join!(
                framing.begin(conn),
                record_in_inbox(conn, message_id),
                projects::lock_of_stage(conn, stage_id),
            )?;
            let (run, stages, assets) = futures::try_join!(
                run_store::run_of_stage(conn, stage_id),
                run_store::lock_stages_of_run_of(conn, stage_id),
                assets,
            )?;
            (first_time, project, run, stages, assets)
        };
        if !first_time {
            return framing.commit_alone(conn, Applied::Ignored).await;
        }
        let Some(index) = stages.iter().position(|s| s.id == stage_id) else {
            return framing.commit_alone(conn, Applied::Ignored).await;
        };
        let (Some((project_id, last_seq)), Some(run)) = (project, run) else {
            return Err(diesel::result::Error::NotFound.into());
        };
        let stage = &stages[index];
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
            return framing.commit_alone(conn, Applied::Ignored).await;
        }
        let mut held = HeldRun::new(run, stages);
        held.writes.relay_after = lease_until;
        // A worker's lines about the current attempt are kept even after the run
        // ended (a stage stopping because its run was cancelled says so).
        for log in &update.logs {
            let at = log
                .log_time
                .as_ref()
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .unwrap_or_else(Utc::now);
            let short = |text: &str| text.chars().take(200).collect::<String>();
            held.writes.logs.push(run_store::LogLine {
                run_id: held.run.id,
                stage_kind: kind.as_str(),
                attempt,
                severity: i16::try_from(log.severity.clamp(1, 3)).unwrap_or(1),
                message: log.message.chars().take(2000).collect(),
                at,
                provider: short(&log.provider),
                provider_job_id: short(&log.provider_job_id),
                error_code: short(&log.error_code),
                worker_id: short(&update.worker_id),
            });
        }
        if state.is_terminal() || run_state.is_terminal() {
            return framing
                .flush_and_commit(conn, held.writes, project_id, last_seq, Applied::Ignored)
                .await;
        }
        // Any report of the current attempt is a sign of life (written with
        // whatever else this report changes on the stage).
        let now = Utc::now();
        held.writes.stage(stage_id).heartbeat_at = Some(now);
        let provider: String = update.provider.chars().take(64).collect();
        let applied = match update.update {
            Some(Update::Started(started)) => {
                let took = started.start_time.and_then(|t| {
                    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                });
                if self.start(&mut held, index, kind, &provider, took.unwrap_or(now), now) {
                    Applied::Changed
                } else {
                    Applied::Ignored
                }
            }
            Some(Update::Progress(p)) => {
                self.on_progress(&mut held, index, kind, &provider, p.progress, now)
            }
            Some(Update::Completed(done)) => {
                let assets = assets.unwrap_or_default();
                self.on_completed(conn, &mut held, index, kind, &provider, done, assets, now)
                    .await?
            }
            Some(Update::Failed(failed)) => {
                self.fail(conn, &mut held, index, kind, failed, assets)
                    .await?
            }
            Some(Update::Heartbeat(_)) => {
                self.start(&mut held, index, kind, &provider, now, now);
                Applied::Changed
            }
            None => Applied::Ignored,
        };
        framing
            .flush_and_commit(conn, held.writes, project_id, last_seq, applied)
            .await
    }

    /// Moves a queued stage to RUNNING and records its start, once. Reports of one
    /// attempt are applied concurrently, so progress or completion may arrive
    /// before "started": whichever comes first records the start, so every stage
    /// has the same history, and the later "started" is ignored. `took` is when
    /// the worker took the work (by its clock, from "started"; otherwise the
    /// report's arrival), kept between the queueing and `now`.
    fn start(
        &self,
        held: &mut HeldRun,
        index: usize,
        kind: StageKind,
        provider: &str,
        took: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let stage = &held.stages[index];
        if stage.state != StageState::Queued.as_str() {
            return false;
        }
        let (queued_at, attempt) = (stage.queued_at, stage.attempt);
        let took = queued_at.map_or(took, |at| took.max(at)).min(now);
        let changes = held.set_state(index, StageState::Running);
        changes.started_at = Some(took);
        changes.provider = Some(provider.to_owned());
        // The consumer lag: how long the work waited for a worker, not counting
        // the time the report took to reach this service.
        if let Some(waited) = queued_at.and_then(|at| (took - at).to_std().ok()) {
            metrics::histogram!("cadenza_stage_queue_wait_seconds", "kind" => kind.as_str())
                .record(waited.as_secs_f64());
        }
        let run_state = held.mark_running(took);
        held.stage_event(
            kind,
            StageState::Running,
            run_state,
            EventType::StageStarted,
            0.0,
            attempt,
            "",
        );
        true
    }

    fn on_progress(
        &self,
        held: &mut HeldRun,
        index: usize,
        kind: StageKind,
        provider: &str,
        progress: f32,
        now: DateTime<Utc>,
    ) -> Applied {
        // Progress never goes back, and a finished stage reports 1 by completing.
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 0.99)
        } else {
            0.0
        };
        if progress <= held.stages[index].progress {
            return Applied::Ignored;
        }
        self.start(held, index, kind, provider, now, now);
        let stage = &mut held.stages[index];
        stage.progress = progress;
        let (id, attempt) = (stage.id, stage.attempt);
        held.writes.stage(id).progress = Some(progress);
        let run_state = held.mark_running(now);
        held.stage_event(
            kind,
            StageState::Running,
            run_state,
            EventType::StageProgress,
            progress,
            attempt,
            "",
        );
        Applied::Changed
    }

    /// `assets` are the outputs the run had kept before this report.
    #[allow(clippy::too_many_arguments)]
    async fn on_completed(
        &self,
        conn: &mut AsyncPgConnection,
        held: &mut HeldRun,
        index: usize,
        kind: StageKind,
        provider: &str,
        done: v1::StageCompleted,
        mut assets: Vec<AssetRow>,
        now: DateTime<Utc>,
    ) -> ApiResult<Applied> {
        // The outputs join the run's (after the ones kept before). One named
        // like an output already kept is not kept again: the first stays.
        for output in &done.outputs {
            if assets.iter().any(|a| a.file_name == output.file_name) {
                continue;
            }
            let asset = AssetRow {
                id: Uuid::now_v7(),
                project_id: held.run.project_id,
                run_id: held.run.id,
                stage_kind: kind.as_str().to_owned(),
                kind: crate::domain::asset_kind_str(output.kind())
                    .unwrap_or("unknown")
                    .to_owned(),
                file_name: output.file_name.clone(),
                object_key: output.object_key.clone(),
                content_type: output.content_type.clone(),
                size_bytes: output.size_bytes,
                sha256: output.sha256.clone(),
                created_at: now,
            };
            held.writes.assets.push(asset.clone());
            assets.push(asset);
        }
        self.start(held, index, kind, provider, now, now);
        let stage = &mut held.stages[index];
        stage.progress = 1.0;
        let attempt = stage.attempt;
        let stage_id = stage.id;
        let changes = held.set_state(index, StageState::Succeeded);
        changes.progress = Some(1.0);
        changes.provider = Some(provider.to_owned());
        changes.finished_at = Some(now);
        held.writes.provenance = Some(provenance(
            stage_id,
            held.run.id,
            kind,
            attempt,
            provider,
            &inputs_from(&assets, kind),
            &done,
        ));
        let run_state = held.mark_running(now);
        held.stage_event(
            kind,
            StageState::Succeeded,
            run_state,
            EventType::StageSucceeded,
            1.0,
            attempt,
            "",
        );
        let finished = held
            .stages
            .iter()
            .all(|s| StageState::parse(&s.state).is_some_and(StageState::satisfies_dependents));
        if finished {
            self.finish(conn, held, RunState::Succeeded, None).await?;
        } else {
            self.queue_ready(held, &assets);
        }
        Ok(Applied::Changed)
    }

    /// A stage's attempt failed (reported by its worker, or found by the
    /// reconciler or the dead-letter queue): a new attempt if it may retry,
    /// otherwise a failed stage and run. The caller holds the project's lock
    /// and the run's stages'.
    pub(crate) async fn on_failed(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        stage: &StageRow,
        kind: StageKind,
        failed: v1::StageFailed,
    ) -> ApiResult<Applied> {
        let mut stages = run_store::stages_of(conn, run.id).await?;
        let index = stages
            .iter()
            .position(|s| s.id == stage.id)
            .ok_or(diesel::result::Error::NotFound)?;
        stages[index] = stage.clone();
        let mut held = HeldRun::new(run.clone(), stages);
        let applied = self
            .fail(conn, &mut held, index, kind, failed, None)
            .await?;
        held.writes.flush(conn, run.project_id, None).await?;
        Ok(applied)
    }

    /// [`Self::on_failed`] on a held run, leaving the writes in it. `assets`
    /// are the run's outputs, if the caller has read them.
    async fn fail(
        &self,
        conn: &mut AsyncPgConnection,
        held: &mut HeldRun,
        index: usize,
        kind: StageKind,
        failed: v1::StageFailed,
        assets: Option<Vec<AssetRow>>,
    ) -> ApiResult<Applied> {
        let code: String = if failed.error_code.is_empty() {
            "STAGE_FAILED".into()
        } else {
            failed.error_code.chars().take(64).collect()
        };
        let message: String = failed.message.chars().take(500).collect();
        let (attempt, progress) = (held.stages[index].attempt, held.stages[index].progress);
        if failed.retryable && attempt < self.max_attempts {
            let retry = format!("attempt {attempt} failed ({code}): {message}; retrying");
            let assets = match assets {
                Some(assets) => assets,
                None => run_store::assets_of_run(conn, held.run.id).await?,
            };
            self.enqueue(
                held,
                index,
                kind,
                attempt + 1,
                &retry,
                inputs_from(&assets, kind),
            );
            return Ok(Applied::Changed);
        }
        let changes = held.set_state(index, StageState::Failed);
        changes.error_code = Some(Some(code));
        changes.error_message = Some(Some(message.clone()));
        changes.finished_at = Some(Utc::now());
        held.stage_event(
            kind,
            StageState::Failed,
            RunState::Running,
            EventType::StageFailed,
            progress,
            attempt,
            &message,
        );
        let reason = format!("the {} stage failed: {message}", kind.as_str());
        self.finish(conn, held, RunState::Failed, Some(("STAGE_FAILED", reason)))
            .await?;
        Ok(Applied::Changed)
    }
}

/// Records the message as applied; false if it already was.
async fn record_in_inbox(mut conn: &AsyncPgConnection, message_id: Uuid) -> QueryResult<bool> {
    let inserted = diesel::insert_into(inbox::table)
        .values(inbox::message_id.eq(message_id))
        .on_conflict_do_nothing()
        .execute(&mut conn)
        .await?;
    Ok(inserted > 0)
}

/// Where a stage's outputs came from: the provider and the SHA-256 of every
/// input and output.
fn provenance(
    stage_id: Uuid,
    run_id: Uuid,
    kind: StageKind,
    attempt: i32,
    provider: &str,
    inputs: &[v1::ArtifactRef],
    done: &v1::StageCompleted,
) -> run_store::NewProvenance {
    let hashes = |refs: &[v1::ArtifactRef]| {
        serde_json::Value::Array(
            refs.iter()
                .map(|r| serde_json::json!({"file_name": r.file_name, "sha256": r.sha256}))
                .collect(),
        )
    };
    run_store::NewProvenance {
        stage_id,
        run_id,
        kind: kind.as_str(),
        attempt,
        provider: provider.to_owned(),
        provider_version: done.provider_version.chars().take(200).collect(),
        provider_job_id: done.provider_job_id.chars().take(200).collect(),
        inputs: hashes(inputs),
        outputs: hashes(&done.outputs),
    }
}

/// What [`Orchestrator::apply_update_publishing`] did.
#[derive(Debug)]
pub struct Published {
    pub applied: Applied,
    /// The work the report caused, leased to the caller.
    pub messages: Vec<NewMessage>,
    /// The broker's answer, when the messages were sent alongside the COMMIT.
    pub sent: Option<Sent>,
}

impl Published {
    /// A report that caused no work.
    fn nothing(applied: Applied) -> Self {
        Self {
            applied,
            messages: Vec::new(),
            sent: None,
        }
    }
}

/// Who frames a report's transaction (see [`Orchestrator::apply_update_publishing`]).
#[derive(Clone, Copy)]
enum Framing<'a> {
    /// diesel's transaction manager, around the whole of it.
    Diesel,
    /// BEGIN and COMMIT by hand, BEGIN in the round trip of the first reads;
    /// the work is sent with the COMMIT when there is a publisher.
    Pipelined { publisher: Option<&'a Publisher> },
}

impl Framing<'_> {
    async fn begin(self, mut conn: &AsyncPgConnection) -> QueryResult<()> {
        match self {
            Self::Diesel => Ok(()),
            Self::Pipelined { .. } => {
                SimpleAsyncConnection::batch_execute(&mut conn, "BEGIN").await
            }
        }
    }

    async fn commit(self, mut conn: &AsyncPgConnection) -> QueryResult<()> {
        match self {
            Self::Diesel => Ok(()),
            Self::Pipelined { .. } => {
                SimpleAsyncConnection::batch_execute(&mut conn, "COMMIT").await
            }
        }
    }

    /// Ends a transaction that decided to write nothing more.
    async fn commit_alone(
        self,
        conn: &AsyncPgConnection,
        applied: Applied,
    ) -> ApiResult<Published> {
        self.commit(conn).await?;
        Ok(Published::nothing(applied))
    }

    /// Sends the writes, then (once all are answered) the COMMIT, and with it
    /// the work they queued when there is a publisher. The COMMIT is polled
    /// first, so it leaves before the work does.
    async fn flush_and_commit(
        self,
        conn: &AsyncPgConnection,
        writes: super::Writes,
        project_id: Uuid,
        last_seq: i64,
        applied: Applied,
    ) -> ApiResult<Published> {
        let messages = writes.flush(conn, project_id, Some(last_seq)).await?;
        let sent = match self {
            Self::Pipelined {
                publisher: Some(publisher),
            } if !messages.is_empty() => {
                let (committed, sent) = futures::join!(
                    self.commit(conn),
                    crate::relay::send_leased(publisher, &messages)
                );
                committed?;
                Some(sent)
            }
            _ => {
                self.commit(conn).await?;
                None
            }
        };
        Ok(Published {
            applied,
            messages,
            sent,
        })
    }
}
