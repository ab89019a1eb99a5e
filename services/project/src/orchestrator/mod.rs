//! The stage orchestrator: creates runs, applies what workers report, and queues
//! stages whose dependencies are met, always inside the caller's transaction so a
//! state change and the work it causes commit together or not at all.
//!
//! Transitions only move forward (PENDING -> QUEUED -> RUNNING -> terminal) and are
//! keyed by stage id and attempt, so a report that arrives twice, late, or for an
//! attempt that was superseded changes nothing.
//!
//! A transaction here reads what it needs first (the project locked, then the
//! run's stages locked), decides in memory, and sends its writes together at the
//! end (`Writes`): on this path a round trip to Postgres costs far more than
//! the statement it carries, so a report costs a handful of round trips, not one
//! per statement.

use cadenza_proto::v1::{self, envelope::Body};
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

pub mod reconcile;
mod updates;
pub use updates::Published;

use crate::domain::{ProjectState, RunState, StageKind, StageState};
use crate::error::{ApiError, ApiResult};
use crate::store::events::{self, EventType, NewEvent};
use crate::store::models::{AssetRow, ProjectRow, RunChanges, RunRow, StageChanges, StageRow};
use crate::store::outbox::{self, NewMessage};
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

/// The writes a transaction has decided on, sent together by [`Writes::flush`].
#[derive(Debug, Default)]
pub(crate) struct Writes {
    /// Each stage's changes, merged: one UPDATE per stage however many steps
    /// changed it.
    stages: Vec<(Uuid, StageChanges)>,
    run: Option<(Uuid, RunChanges)>,
    /// The project's new state and, when a run starts, its latest run.
    project_state: Option<(ProjectState, Option<Uuid>)>,
    /// In the order they happened; numbered in that order.
    events: Vec<NewEvent>,
    outbox: Vec<NewMessage>,
    logs: Vec<run_store::LogLine>,
    /// Outputs to keep.
    assets: Vec<AssetRow>,
    provenance: Option<run_store::NewProvenance>,
    /// Set when the caller publishes the outbox messages itself right after
    /// the commit: the relay leaves them alone until then.
    relay_after: Option<DateTime<Utc>>,
}

impl Writes {
    fn stage(&mut self, id: Uuid) -> &mut StageChanges {
        let index = match self.stages.iter().position(|(stage, _)| *stage == id) {
            Some(index) => index,
            None => {
                self.stages.push((id, StageChanges::default()));
                self.stages.len() - 1
            }
        };
        &mut self.stages[index].1
    }

    fn run(&mut self, id: Uuid) -> &mut RunChanges {
        &mut self
            .run
            .get_or_insert_with(|| (id, RunChanges::default()))
            .1
    }

    /// Sends every write at once: each statement is sent without waiting for
    /// the previous one's answer (they are independent of each other), so
    /// the lot costs about one round trip. `last_seq` is the project's event
    /// counter if the caller read it under the project's lock (see
    /// [`events::append_all`]). Returns the outbox messages written.
    async fn flush(
        self,
        conn: &AsyncPgConnection,
        project_id: Uuid,
        last_seq: Option<i64>,
    ) -> ApiResult<Vec<NewMessage>> {
        let Writes {
            stages,
            run,
            project_state,
            events,
            outbox,
            logs,
            assets,
            provenance,
            relay_after,
        } = self;
        let stages = futures::future::try_join_all(
            stages
                .into_iter()
                .map(|(id, changes)| run_store::update_stage(conn, id, changes)),
        );
        let run = async {
            match run {
                Some((id, changes)) => run_store::update_run(conn, id, changes).await,
                None => Ok(()),
            }
        };
        let project = async {
            match project_state {
                Some((state, latest_run)) => {
                    projects::set_state(conn, project_id, state.as_str(), latest_run).await
                }
                None => Ok(()),
            }
        };
        let outbox_rows = outbox::insert_all(conn, &outbox, relay_after);
        let logs =
            futures::future::try_join_all(logs.iter().map(|line| run_store::add_log(conn, line)));
        let assets = futures::future::try_join_all(
            assets.iter().map(|asset| run_store::add_asset(conn, asset)),
        );
        let provenance = async {
            match &provenance {
                Some(provenance) => run_store::add_provenance(conn, provenance).await,
                None => Ok(()),
            }
        };
        let events = events::append_all(conn, project_id, last_seq, events);
        futures::try_join!(
            stages,
            run,
            project,
            outbox_rows,
            logs,
            assets,
            provenance,
            events
        )?;
        Ok(outbox)
    }
}

/// A run as one transaction holds it: the run and its stages (locked, under the
/// project's lock), changed in memory step by step, with the writes that make
/// the same changes in the database.
pub(crate) struct HeldRun {
    pub run: RunRow,
    /// In pipeline order.
    pub stages: Vec<StageRow>,
    pub writes: Writes,
}

impl HeldRun {
    fn new(run: RunRow, stages: Vec<StageRow>) -> Self {
        Self {
            run,
            stages,
            writes: Writes::default(),
        }
    }

    fn run_state(&self) -> RunState {
        RunState::parse(&self.run.state).unwrap_or(RunState::Queued)
    }

    fn state_of(&self, kind: StageKind) -> Option<StageState> {
        self.stages
            .iter()
            .find(|s| StageKind::parse(&s.kind) == Some(kind))
            .and_then(|s| StageState::parse(&s.state))
    }

    /// Moves stage `index` to `state` (in memory and in the writes).
    fn set_state(&mut self, index: usize, state: StageState) -> &mut StageChanges {
        let id = self.stages[index].id;
        self.stages[index].state = state.as_str().to_owned();
        let changes = self.writes.stage(id);
        changes.state = Some(state.as_str());
        changes
    }

    /// Marks a queued run running; returns the run's state.
    fn mark_running(&mut self, now: DateTime<Utc>) -> RunState {
        if self.run.state == RunState::Queued.as_str() {
            self.run.state = RunState::Running.as_str().to_owned();
            let changes = self.writes.run(self.run.id);
            changes.state = Some(RunState::Running.as_str());
            changes.started_at = Some(now);
        }
        RunState::Running
    }

    #[allow(clippy::too_many_arguments)]
    fn stage_event(
        &mut self,
        kind: StageKind,
        stage_state: StageState,
        run_state: RunState,
        event_type: EventType,
        progress: f32,
        attempt: i32,
        message: &str,
    ) {
        self.writes.events.push(NewEvent {
            run_id: self.run.id,
            event_type,
            stage: Some((kind, stage_state)),
            run_state,
            progress,
            attempt,
            message: message.to_owned(),
        });
    }
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
        let inserted = run_store::insert_run(
            conn,
            run_store::NewRun {
                id: run_id,
                project_id: project.id,
                owner: &project.owner,
                state: RunState::Queued.as_str(),
                prompt: &project.prompt,
                duration_seconds: project.duration_seconds,
                has_vocals: project.has_vocals,
                style_strength: project.style_strength,
                seed,
                lyrics: project.lyrics.as_deref(),
            },
        )
        .await;
        let run = match inserted {
            Ok(run) => run,
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
        };
        let stages = futures::future::try_join_all(StageKind::ALL.into_iter().map(|kind| {
            let state = if kind.needed(project.has_vocals) {
                StageState::Pending
            } else {
                StageState::Skipped
            };
            run_store::insert_stage(&*conn, Uuid::now_v7(), run_id, kind, state)
        }))
        .await?;
        let mut held = HeldRun::new(run, stages);
        held.writes.project_state = Some((ProjectState::Generating, Some(run_id)));
        held.writes.events.push(NewEvent {
            run_id,
            event_type: EventType::RunCreated,
            stage: None,
            run_state: RunState::Queued,
            progress: 0.0,
            attempt: 0,
            message: String::new(),
        });
        // A new run has no outputs yet: the stages that can start need none.
        self.queue_ready(&mut held, &[]);
        let HeldRun { run, writes, .. } = held;
        writes.flush(conn, project.id, None).await?;
        Ok(run)
    }

    /// Queues every pending stage whose dependencies are satisfied; `assets`
    /// are the run's outputs so far (their inputs).
    pub(super) fn queue_ready(&self, held: &mut HeldRun, assets: &[AssetRow]) {
        for index in 0..held.stages.len() {
            let stage = &held.stages[index];
            let (Some(kind), Some(StageState::Pending)) = (
                StageKind::parse(&stage.kind),
                StageState::parse(&stage.state),
            ) else {
                continue;
            };
            let ready = kind.depends_on().iter().all(|dep| {
                held.state_of(*dep)
                    .is_some_and(StageState::satisfies_dependents)
            });
            if ready {
                self.enqueue(held, index, kind, 1, "", inputs_from(assets, kind));
            }
        }
    }

    /// Marks stage `index` queued for `attempt` and writes its work to the outbox.
    pub(super) fn enqueue(
        &self,
        held: &mut HeldRun,
        index: usize,
        kind: StageKind,
        attempt: i32,
        message: &str,
        inputs: Vec<v1::ArtifactRef>,
    ) {
        let changes = held.set_state(index, StageState::Queued);
        changes.attempt = Some(attempt);
        changes.progress = Some(0.0);
        changes.queued_at = Some(Utc::now());
        changes.error_code = Some(None);
        changes.error_message = Some(None);
        let stage = &mut held.stages[index];
        stage.attempt = attempt;
        stage.progress = 0.0;
        let run = &held.run;
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
        held.writes.outbox.push(NewMessage {
            message_id,
            exchange: self.exchange.clone(),
            routing_key: cadenza_queue::topology::WORK_KEY,
            payload: cadenza_queue::encode(&envelope),
        });
        let run_state = held.run_state();
        held.stage_event(
            kind,
            StageState::Queued,
            run_state,
            EventType::StageQueued,
            0.0,
            attempt,
            message,
        );
    }

    /// Tells every worker (through the outbox, with the final state) that the run
    /// is over, so stages of it still running stop at their next checkpoint.
    fn broadcast_cancel(&self, held: &mut HeldRun) {
        let message_id = Uuid::new_v4();
        let envelope = cadenza_queue::envelope::wrap_with_id(
            message_id,
            Body::RunCancelled(v1::RunCancelled {
                run_id: held.run.id.to_string(),
            }),
        );
        held.writes.outbox.push(NewMessage {
            message_id,
            exchange: self.exchange.clone(),
            routing_key: cadenza_queue::topology::CANCEL_KEY,
            payload: cadenza_queue::encode(&envelope),
        });
    }

    /// Ends a run: cancels its unfinished stages and updates the project. The
    /// caller holds the project's lock.
    pub async fn finish_run(
        &self,
        conn: &mut AsyncPgConnection,
        run: &RunRow,
        state: RunState,
        error: Option<(&str, String)>,
    ) -> ApiResult<()> {
        let stages = run_store::lock_stages(conn, run.id).await?;
        let mut held = HeldRun::new(run.clone(), stages);
        self.finish(conn, &mut held, state, error).await?;
        held.writes.flush(conn, run.project_id, None).await?;
        Ok(())
    }

    /// [`Self::finish_run`] on a held run: settles the credits at once, and
    /// leaves the rest in its writes.
    pub(super) async fn finish(
        &self,
        conn: &mut AsyncPgConnection,
        held: &mut HeldRun,
        state: RunState,
        error: Option<(&str, String)>,
    ) -> ApiResult<()> {
        let now = Utc::now();
        for index in 0..held.stages.len() {
            let stage = &held.stages[index];
            let (Some(kind), Some(stage_state)) = (
                StageKind::parse(&stage.kind),
                StageState::parse(&stage.state),
            ) else {
                continue;
            };
            if stage_state.is_terminal() {
                continue;
            }
            let (progress, attempt) = (stage.progress, stage.attempt);
            held.set_state(index, StageState::Cancelled).finished_at = Some(now);
            held.stage_event(
                kind,
                StageState::Cancelled,
                state,
                EventType::StageCancelled,
                progress,
                attempt,
                "",
            );
        }
        let (code, message) = error.map_or((None, None), |(c, m)| (Some(c.to_owned()), Some(m)));
        held.run.state = state.as_str().to_owned();
        let changes = held.writes.run(held.run.id);
        changes.state = Some(state.as_str());
        changes.finished_at = Some(now);
        changes.error_code = Some(code);
        changes.error_message = Some(message.clone());
        // In the same transaction as the final state: charged only for a song
        // that arrived, refunded otherwise, settled once.
        crate::credits::settle(conn, &held.run.owner, held.run.id, state).await?;
        if state != RunState::Succeeded {
            self.broadcast_cancel(held);
        }
        held.writes.project_state = Some((ProjectState::after_run(state), None));
        held.writes.events.push(NewEvent {
            run_id: held.run.id,
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
        });
        Ok(())
    }
}

/// The outputs of the stages `kind` depends on, among a run's `assets`.
fn inputs_from(assets: &[AssetRow], kind: StageKind) -> Vec<v1::ArtifactRef> {
    let deps = kind.depends_on();
    assets
        .iter()
        .filter(|a| StageKind::parse(&a.stage_kind).is_some_and(|k| deps.contains(&k)))
        .map(|a| v1::ArtifactRef {
            kind: crate::domain::asset_kind_from_str(&a.kind) as i32,
            file_name: a.file_name.clone(),
            object_key: a.object_key.clone(),
            content_type: a.content_type.clone(),
            size_bytes: a.size_bytes,
            sha256: a.sha256.clone(),
        })
        .collect()
}
