//! Runs, their stages, assets and worker logs.

use cadenza_db::schema::{assets, job_logs, runs, stages};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{AssetRow, RunRow, StageRow};

pub async fn find(
    conn: &mut AsyncPgConnection,
    owner: &str,
    id: Uuid,
) -> QueryResult<Option<RunRow>> {
    runs::table
        .filter(runs::id.eq(id))
        .filter(runs::owner.eq(owner))
        .select(RunRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<RunRow> {
    runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .await
}

pub async fn stages_of(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<Vec<StageRow>> {
    let mut rows: Vec<StageRow> = stages::table
        .filter(stages::run_id.eq(run_id))
        .select(StageRow::as_select())
        .load(conn)
        .await?;
    // Pipeline order, not text order.
    rows.sort_by_key(|s| crate::domain::StageKind::parse(&s.kind));
    Ok(rows)
}

/// The stages of a run, locked (the caller already holds the project lock).
pub async fn lock_stages(conn: &mut AsyncPgConnection, run_id: Uuid) -> QueryResult<Vec<StageRow>> {
    let mut rows: Vec<StageRow> = stages::table
        .filter(stages::run_id.eq(run_id))
        .select(StageRow::as_select())
        .for_update()
        .load(conn)
        .await?;
    rows.sort_by_key(|s| crate::domain::StageKind::parse(&s.kind));
    Ok(rows)
}

pub async fn stage(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<StageRow>> {
    stages::table
        .find(id)
        .select(StageRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn assets_of_run(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
) -> QueryResult<Vec<AssetRow>> {
    assets::table
        .filter(assets::run_id.eq(run_id))
        .order((assets::created_at.asc(), assets::id.asc()))
        .select(AssetRow::as_select())
        .load(conn)
        .await
}

/// One line of a stage's job log.
pub struct LogLine<'a> {
    pub run_id: Uuid,
    pub stage_kind: &'a str,
    pub attempt: i32,
    pub severity: i16,
    pub message: &'a str,
    pub at: chrono::DateTime<chrono::Utc>,
    pub provider: &'a str,
    pub provider_job_id: &'a str,
    pub error_code: &'a str,
    pub worker_id: &'a str,
}

pub async fn add_log(conn: &mut AsyncPgConnection, line: LogLine<'_>) -> QueryResult<()> {
    diesel::insert_into(job_logs::table)
        .values((
            job_logs::run_id.eq(line.run_id),
            job_logs::stage_kind.eq(line.stage_kind),
            job_logs::attempt.eq(line.attempt),
            job_logs::severity.eq(line.severity),
            job_logs::message.eq(line.message),
            job_logs::logged_at.eq(line.at),
            job_logs::provider.eq(line.provider),
            job_logs::provider_job_id.eq(line.provider_job_id),
            job_logs::error_code.eq(line.error_code),
            job_logs::worker_id.eq(line.worker_id),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
