//! The durable stage event log, numbered per project.
//!
//! A number is taken by incrementing `projects.last_event_seq`, which locks the
//! project row until commit; so events of one project commit in number order and a
//! reader that saw number N has already seen every smaller one.

use cadenza_db::schema::{projects, stage_events};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::EventRow;
use crate::domain::{RunState, StageKind, StageState};

/// Postgres channel announcing new events; the payload is the project id.
pub const EVENTS_CHANNEL: &str = "cadenza_stage_events";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    RunCreated,
    StageQueued,
    StageStarted,
    StageProgress,
    StageSucceeded,
    StageFailed,
    StageCancelled,
    RunFinished,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunCreated => "run_created",
            Self::StageQueued => "stage_queued",
            Self::StageStarted => "stage_started",
            Self::StageProgress => "stage_progress",
            Self::StageSucceeded => "stage_succeeded",
            Self::StageFailed => "stage_failed",
            Self::StageCancelled => "stage_cancelled",
            Self::RunFinished => "run_finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::RunCreated,
            Self::StageQueued,
            Self::StageStarted,
            Self::StageProgress,
            Self::StageSucceeded,
            Self::StageFailed,
            Self::StageCancelled,
            Self::RunFinished,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// An event about to be written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub run_id: Uuid,
    pub event_type: EventType,
    pub stage: Option<(StageKind, StageState)>,
    pub run_state: RunState,
    pub progress: f32,
    pub attempt: i32,
    pub message: String,
}

/// Appends an event and announces it (delivered when the transaction commits).
pub async fn append(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    event: NewEvent,
) -> QueryResult<i64> {
    let seq: i64 = diesel::update(projects::table.find(project_id))
        .set(projects::last_event_seq.eq(projects::last_event_seq + 1))
        .returning(projects::last_event_seq)
        .get_result(conn)
        .await?;
    diesel::insert_into(stage_events::table)
        .values((
            stage_events::project_id.eq(project_id),
            stage_events::seq.eq(seq),
            stage_events::run_id.eq(event.run_id),
            stage_events::event_type.eq(event.event_type.as_str()),
            stage_events::stage_kind.eq(event.stage.map(|(k, _)| k.as_str())),
            stage_events::stage_state.eq(event.stage.map(|(_, s)| s.as_str())),
            stage_events::run_state.eq(event.run_state.as_str()),
            stage_events::progress.eq(event.progress),
            stage_events::attempt.eq(event.attempt),
            stage_events::message.eq(event.message),
        ))
        .execute(conn)
        .await?;
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(EVENTS_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(project_id.to_string())
        .execute(conn)
        .await?;
    Ok(seq)
}

pub async fn after(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
    after_seq: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    stage_events::table
        .filter(stage_events::project_id.eq(project_id))
        .filter(stage_events::seq.gt(after_seq))
        .order(stage_events::seq.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
        .await
}
