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

pub async fn add_log(
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    stage_kind: &str,
    attempt: i32,
    severity: i16,
    message: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> QueryResult<()> {
    diesel::insert_into(job_logs::table)
        .values((
            job_logs::run_id.eq(run_id),
            job_logs::stage_kind.eq(stage_kind),
            job_logs::attempt.eq(attempt),
            job_logs::severity.eq(severity),
            job_logs::message.eq(message),
            job_logs::logged_at.eq(at),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
