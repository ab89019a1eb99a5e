//! Rows as diesel loads them.

use cadenza_db::schema::{assets, projects, runs, stage_events, stages};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg))]
pub struct ProjectRow {
    pub id: Uuid,
    pub owner: String,
    pub title: String,
    /// The title was made from the prompt (see `ProjectFields::title_derived`).
    pub title_derived: bool,
    pub prompt: String,
    pub duration_seconds: i32,
    pub has_vocals: bool,
    pub style_strength: f32,
    pub seed: Option<i64>,
    pub lyrics: Option<String>,
    pub state: String,
    pub latest_run_id: Option<Uuid>,
    pub last_event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = runs, check_for_backend(diesel::pg::Pg))]
pub struct RunRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub owner: String,
    pub state: String,
    pub prompt: String,
    pub duration_seconds: i32,
    pub has_vocals: bool,
    pub style_strength: f32,
    pub seed: i64,
    pub lyrics: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stages, check_for_backend(diesel::pg::Pg))]
pub struct StageRow {
    pub id: Uuid,
    pub run_id: Uuid,
    pub kind: String,
    pub state: String,
    pub attempt: i32,
    pub progress: f32,
    pub provider: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = stage_events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    pub project_id: Uuid,
    pub seq: i64,
    pub run_id: Uuid,
    pub event_type: String,
    pub stage_kind: Option<String>,
    pub stage_state: Option<String>,
    pub run_state: String,
    pub progress: f32,
    pub attempt: i32,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = assets, check_for_backend(diesel::pg::Pg))]
pub struct AssetRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub run_id: Uuid,
    pub stage_kind: String,
    pub kind: String,
    pub file_name: String,
    pub object_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// Changes to one stage row; fields left `None` are not touched. One
/// transaction's changes to a stage are merged into one of these, so the stage
/// is written once however many steps changed it.
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = stages)]
pub struct StageChanges {
    pub state: Option<&'static str>,
    pub attempt: Option<i32>,
    pub progress: Option<f32>,
    pub provider: Option<String>,
    pub error_code: Option<Option<String>>,
    pub error_message: Option<Option<String>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
}

/// Changes to one run row, like [`StageChanges`].
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = runs)]
pub struct RunChanges {
    pub state: Option<&'static str>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_code: Option<Option<String>>,
    pub error_message: Option<Option<String>>,
}
