//! `ProjectService.GetProvenance`: where a song came from, stage by stage.

use cadenza_db::schema::stage_provenance;
use cadenza_proto::names::ProjectOrRun;
use cadenza_proto::v1;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::projects::ProjectApi;
use crate::domain::StageKind;
use crate::error::{ApiError, ApiResult};

type Row = (
    String,
    i32,
    String,
    String,
    String,
    serde_json::Value,
    serde_json::Value,
    DateTime<Utc>,
);

fn hashes(value: &serde_json::Value) -> Vec<v1::FileHash> {
    value
        .as_array()
        .map(|all| {
            all.iter()
                .map(|h| v1::FileHash {
                    file_name: h["file_name"].as_str().unwrap_or_default().to_owned(),
                    sha256: h["sha256"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The provenance of `name` (a run, or a project's latest run) for `owner`.
pub async fn provenance(
    conn: &mut AsyncPgConnection,
    owner: &str,
    name: &str,
) -> ApiResult<v1::Provenance> {
    let target = ProjectOrRun::parse(name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    let run = ProjectApi::resolve_run(conn, owner, target).await?;
    let rows: Vec<Row> = stage_provenance::table
        .filter(stage_provenance::run_id.eq(run.id))
        .order(stage_provenance::completed_at.asc())
        .select((
            stage_provenance::kind,
            stage_provenance::attempt,
            stage_provenance::provider,
            stage_provenance::provider_version,
            stage_provenance::provider_job_id,
            stage_provenance::inputs,
            stage_provenance::outputs,
            stage_provenance::completed_at,
        ))
        .load(conn)
        .await?;
    Ok(v1::Provenance {
        run: format!("projects/{}/runs/{}", run.project_id, run.id),
        stages: rows
            .into_iter()
            .map(
                |(kind, attempt, provider, version, job_id, inputs, outputs, at)| {
                    v1::StageProvenance {
                        kind: StageKind::parse(&kind)
                            .map_or(v1::StageKind::Unspecified, StageKind::proto)
                            as i32,
                        attempt: u32::try_from(attempt).unwrap_or(0),
                        provider,
                        provider_version: version,
                        provider_job_id: job_id,
                        // Stored bit for bit in a signed column.
                        seed: run.seed as u64,
                        duration_seconds: u32::try_from(run.duration_seconds).unwrap_or(0),
                        has_vocals: run.has_vocals,
                        style_strength: run.style_strength,
                        inputs: hashes(&inputs),
                        outputs: hashes(&outputs),
                        complete_time: Some(cadenza_proto::timestamp(at)),
                    }
                },
            )
            .collect(),
    })
}
