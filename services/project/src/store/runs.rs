//! Runs, their stages, assets and worker logs.

use cadenza_db::schema::{assets, job_logs, runs, stage_provenance, stages};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::Reusable;
use super::models::{AssetRow, RunChanges, RunRow, StageChanges, StageRow};
use crate::domain::{StageKind, StageState};

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

/// A run about to be created.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub owner: &'a str,
    pub state: &'a str,
    pub prompt: &'a str,
    pub duration_seconds: i32,
    pub has_vocals: bool,
    pub style_strength: f32,
    pub seed: i64,
    pub lyrics: Option<&'a str>,
}

pub async fn insert_run(mut conn: &AsyncPgConnection, run: NewRun<'_>) -> QueryResult<RunRow> {
    diesel::insert_into(runs::table)
        .values((
            runs::id.eq(run.id),
            runs::project_id.eq(run.project_id),
            runs::owner.eq(run.owner),
            runs::state.eq(run.state),
            runs::prompt.eq(run.prompt),
            runs::duration_seconds.eq(run.duration_seconds),
            runs::has_vocals.eq(run.has_vocals),
            runs::style_strength.eq(run.style_strength),
            runs::seed.eq(run.seed),
            runs::lyrics.eq(run.lyrics),
        ))
        .returning(RunRow::as_returning())
        .get_result(&mut conn)
        .await
}

pub async fn insert_stage(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    run_id: Uuid,
    kind: StageKind,
    state: StageState,
) -> QueryResult<StageRow> {
    diesel::insert_into(stages::table)
        .values((
            stages::id.eq(id),
            stages::run_id.eq(run_id),
            stages::kind.eq(kind.as_str()),
            stages::state.eq(state.as_str()),
        ))
        .returning(StageRow::as_returning())
        .get_result(&mut conn)
        .await
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

/// The run a stage belongs to, found from the stage's id alone (see
/// [`super::projects::lock_of_stage`]).
pub async fn run_of_stage(
    mut conn: &AsyncPgConnection,
    stage_id: Uuid,
) -> QueryResult<Option<RunRow>> {
    let run_of_stage = stages::table
        .find(stage_id)
        .select(stages::run_id)
        .single_value();
    runs::table
        .filter(runs::id.nullable().eq(run_of_stage))
        .select(RunRow::as_select())
        .first(&mut conn)
        .await
        .optional()
}

/// The stages of a stage's run, locked, found from the stage's id alone (the
/// caller already holds, or has asked before this for, the project lock).
pub async fn lock_stages_of_run_of(
    mut conn: &AsyncPgConnection,
    stage_id: Uuid,
) -> QueryResult<Vec<StageRow>> {
    let target = diesel::alias!(stages as target);
    let run_of_stage = target
        .filter(target.field(stages::id).eq(stage_id))
        .select(target.field(stages::run_id))
        .single_value();
    let mut rows: Vec<StageRow> = stages::table
        .filter(stages::run_id.nullable().eq(run_of_stage))
        .select(StageRow::as_select())
        .for_update()
        .load(&mut conn)
        .await?;
    rows.sort_by_key(|s| crate::domain::StageKind::parse(&s.kind));
    Ok(rows)
}

/// Writes one stage's changes (see [`StageChanges`]).
pub async fn update_stage(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    changes: StageChanges,
) -> QueryResult<()> {
    Reusable(diesel::update(stages::table.find(id)).set(changes))
        .execute(&mut conn)
        .await
        .map(drop)
}

/// Writes one run's changes (see [`RunChanges`]).
pub async fn update_run(
    mut conn: &AsyncPgConnection,
    id: Uuid,
    changes: RunChanges,
) -> QueryResult<()> {
    Reusable(diesel::update(runs::table.find(id)).set(changes))
        .execute(&mut conn)
        .await
        .map(drop)
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

/// The outputs kept so far by a stage's run, found from the stage's id alone
/// (see [`super::projects::lock_of_stage`]), in the order they were kept.
pub async fn assets_of_run_of(
    mut conn: &AsyncPgConnection,
    stage_id: Uuid,
) -> QueryResult<Vec<AssetRow>> {
    let run_of_stage = stages::table
        .find(stage_id)
        .select(stages::run_id)
        .single_value();
    assets::table
        .filter(assets::run_id.nullable().eq(run_of_stage))
        .order((assets::created_at.asc(), assets::id.asc()))
        .select(AssetRow::as_select())
        .load(&mut conn)
        .await
}

/// Keeps an output (its `created_at` is the database's); one already kept under
/// the same name stays as it was.
pub async fn add_asset(mut conn: &AsyncPgConnection, asset: &AssetRow) -> QueryResult<()> {
    diesel::insert_into(assets::table)
        .values((
            assets::id.eq(asset.id),
            assets::project_id.eq(asset.project_id),
            assets::run_id.eq(asset.run_id),
            assets::stage_kind.eq(&asset.stage_kind),
            assets::kind.eq(&asset.kind),
            assets::file_name.eq(&asset.file_name),
            assets::object_key.eq(&asset.object_key),
            assets::content_type.eq(&asset.content_type),
            assets::size_bytes.eq(asset.size_bytes),
            assets::sha256.eq(&asset.sha256),
        ))
        .on_conflict((assets::run_id, assets::file_name))
        .do_nothing()
        .execute(&mut conn)
        .await
        .map(drop)
}

/// Where a stage's outputs came from (see the `stage_provenance` table).
#[derive(Debug, Clone)]
pub struct NewProvenance {
    pub stage_id: Uuid,
    pub run_id: Uuid,
    pub kind: &'static str,
    pub attempt: i32,
    pub provider: String,
    pub provider_version: String,
    pub provider_job_id: String,
    pub inputs: serde_json::Value,
    pub outputs: serde_json::Value,
}

/// Keeps a stage's provenance, once per stage.
pub async fn add_provenance(
    mut conn: &AsyncPgConnection,
    provenance: &NewProvenance,
) -> QueryResult<()> {
    diesel::insert_into(stage_provenance::table)
        .values((
            stage_provenance::stage_id.eq(provenance.stage_id),
            stage_provenance::run_id.eq(provenance.run_id),
            stage_provenance::kind.eq(provenance.kind),
            stage_provenance::attempt.eq(provenance.attempt),
            stage_provenance::provider.eq(&provenance.provider),
            stage_provenance::provider_version.eq(&provenance.provider_version),
            stage_provenance::provider_job_id.eq(&provenance.provider_job_id),
            stage_provenance::inputs.eq(&provenance.inputs),
            stage_provenance::outputs.eq(&provenance.outputs),
        ))
        .on_conflict(stage_provenance::stage_id)
        .do_nothing()
        .execute(&mut conn)
        .await
        .map(drop)
}

/// One line of a stage's job log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub run_id: Uuid,
    pub stage_kind: &'static str,
    pub attempt: i32,
    pub severity: i16,
    pub message: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub provider: String,
    pub provider_job_id: String,
    pub error_code: String,
    pub worker_id: String,
}

pub async fn add_log(mut conn: &AsyncPgConnection, line: &LogLine) -> QueryResult<()> {
    diesel::insert_into(job_logs::table)
        .values((
            job_logs::run_id.eq(line.run_id),
            job_logs::stage_kind.eq(line.stage_kind),
            job_logs::attempt.eq(line.attempt),
            job_logs::severity.eq(line.severity),
            job_logs::message.eq(&line.message),
            job_logs::logged_at.eq(line.at),
            job_logs::provider.eq(&line.provider),
            job_logs::provider_job_id.eq(&line.provider_job_id),
            job_logs::error_code.eq(&line.error_code),
            job_logs::worker_id.eq(&line.worker_id),
        ))
        .execute(&mut conn)
        .await
        .map(drop)
}
