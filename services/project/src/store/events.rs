//! The durable stage event log, numbered per project.
//!
//! A number is taken by incrementing `projects.last_event_seq`, which locks the
//! project row until commit; so events of one project commit in number order and a
//! reader that saw number N has already seen every smaller one.

use cadenza_db::schema::{projects, stage_events};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Reusable;
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

/// Appends `events` with consecutive numbers and announces them once (the
/// announcement is delivered when the transaction commits).
///
/// `last_seq` is the project's counter as the caller read it under the project's
/// row lock, when it holds that lock: then the counter, the rows and the
/// announcement go out together, in one round trip, and the counter's new value
/// is checked (a mismatch fails the transaction). Without it the counter is
/// taken first, one round trip more.
pub async fn append_all(
    conn: &AsyncPgConnection,
    project_id: Uuid,
    last_seq: Option<i64>,
    events: Vec<NewEvent>,
) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let count = events.len() as i64;
    let take = || async move {
        let mut conn = conn;
        Reusable(
            diesel::update(projects::table.find(project_id))
                .set(projects::last_event_seq.eq(projects::last_event_seq + count))
                .returning(projects::last_event_seq),
        )
        .get_result::<i64>(&mut conn)
        .await
    };
    let inserts = |first: i64| insert_all(conn, project_id, first, events);
    let notify = async {
        let mut conn = conn;
        Reusable(
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(EVENTS_CHANNEL)
                .bind::<diesel::sql_types::Text, _>(project_id.to_string()),
        )
        .execute(&mut conn)
        .await
    };
    match last_seq {
        Some(seq) => {
            let checked = async {
                if take().await? == seq + count {
                    Ok(())
                } else {
                    Err(diesel::result::Error::QueryBuilderError(
                        "the project's event counter moved without its lock".into(),
                    ))
                }
            };
            futures::try_join!(checked, inserts(seq + 1), notify)?;
        }
        None => {
            let last = take().await?;
            futures::try_join!(inserts(last - count + 1), notify)?;
        }
    }
    Ok(())
}

/// Inserts `events` numbered from `first`, in one statement. Its text depends on
/// how many rows it has, and a transaction writes a handful at most, so the few
/// texts are kept prepared ([`Reusable`]).
async fn insert_all(
    mut conn: &AsyncPgConnection,
    project_id: Uuid,
    first: i64,
    events: Vec<NewEvent>,
) -> QueryResult<usize> {
    let rows: Vec<_> = events
        .into_iter()
        .zip(first..)
        .map(|(event, seq)| {
            (
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
            )
        })
        .collect();
    Reusable(diesel::insert_into(stage_events::table).values(rows))
        .execute(&mut conn)
        .await
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
