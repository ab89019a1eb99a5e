//! The aggregate status of a project: weighted progress, queue position and ETA.

use std::collections::HashMap;

use cadenza_proto::v1;
use diesel::sql_types::{Double, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::api::convert;
use crate::domain::{RunState, StageKind, StageState};
use crate::error::ApiResult;
use crate::store::models::{ProjectRow, StageRow};
use crate::store::runs;

/// Recent stages used to estimate durations.
const RECENT_STAGES: i64 = 200;

#[derive(diesel::QueryableByName)]
struct KindRate {
    #[diesel(sql_type = Text)]
    kind: String,
    /// Seconds of work per second of song.
    #[diesel(sql_type = Double)]
    seconds_per_second: f64,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub async fn project_status(
    conn: &mut AsyncPgConnection,
    project: &ProjectRow,
) -> ApiResult<v1::ProjectStatus> {
    let name = format!("projects/{}", project.id);
    let Some(run_id) = project.latest_run_id else {
        return Ok(v1::ProjectStatus {
            project: name,
            last_event_id: project.last_event_seq,
            ..Default::default()
        });
    };
    let run = runs::get(conn, run_id).await?;
    let stages = runs::stages_of(conn, run_id).await?;
    let state = RunState::parse(&run.state).unwrap_or(RunState::Queued);
    let (queue_position, eta) = if state.is_terminal() {
        (0, None)
    } else {
        let position = queue_position(conn, run_id, &stages).await?;
        let rates = recent_rates(conn).await?;
        (position, eta_seconds(&stages, &rates, run.duration_seconds))
    };
    Ok(v1::ProjectStatus {
        project: name,
        run: format!("projects/{}/runs/{}", run.project_id, run.id),
        state: state.proto() as i32,
        progress: convert::weighted_progress(&stages),
        queue_position,
        eta: eta.map(|secs| prost_types::Duration {
            seconds: secs.ceil() as i64,
            nanos: 0,
        }),
        stages: stages
            .iter()
            .map(|s| v1::StageStatus {
                kind: StageKind::parse(&s.kind).map_or(v1::StageKind::Unspecified, StageKind::proto)
                    as i32,
                state: StageState::parse(&s.state)
                    .map_or(v1::StageState::Unspecified, StageState::proto)
                    as i32,
                progress: s.progress,
                attempt: u32::try_from(s.attempt).unwrap_or(0),
                provider: s.provider.clone(),
                error_code: s.error_code.clone().unwrap_or_default(),
                error_message: s.error_message.clone().unwrap_or_default(),
            })
            .collect(),
        last_event_id: project.last_event_seq,
    })
}

/// Queued stages of other runs waiting longer than this run's oldest queued stage.
async fn queue_position(
    conn: &mut AsyncPgConnection,
    run_id: uuid::Uuid,
    stages: &[StageRow],
) -> ApiResult<u32> {
    let Some(first_queued) = stages
        .iter()
        .filter(|s| s.state == StageState::Queued.as_str())
        .filter_map(|s| s.queued_at)
        .min()
    else {
        return Ok(0);
    };
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM stages WHERE state = 'queued' AND queued_at < $1 AND run_id <> $2",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(first_queued)
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .get_result(conn)
    .await?;
    Ok(u32::try_from(count.n).unwrap_or(u32::MAX))
}

async fn recent_rates(conn: &mut AsyncPgConnection) -> ApiResult<HashMap<String, f64>> {
    let rows: Vec<KindRate> = diesel::sql_query(
        "SELECT kind, avg(seconds_per_second)::float8 AS seconds_per_second FROM (
             SELECT s.kind,
                    extract(epoch FROM (s.finished_at - s.started_at)) / greatest(r.duration_seconds, 1)
                        AS seconds_per_second
             FROM stages s JOIN runs r ON r.id = s.run_id
             WHERE s.state = 'succeeded' AND s.started_at IS NOT NULL AND s.finished_at IS NOT NULL
             ORDER BY s.finished_at DESC
             LIMIT $1
         ) recent GROUP BY kind",
    )
    .bind::<diesel::sql_types::BigInt, _>(RECENT_STAGES)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.kind, r.seconds_per_second))
        .collect())
}

/// Time until the run ends: the longest remaining path through the DAG, each stage
/// taking its recent average (scaled by song length) times what is left of it.
/// `None` until every remaining stage kind has been seen finishing.
pub fn eta_seconds(
    stages: &[StageRow],
    rates: &HashMap<String, f64>,
    duration_seconds: i32,
) -> Option<f64> {
    let mut finish: HashMap<StageKind, f64> = HashMap::new();
    for kind in StageKind::ALL {
        let Some(stage) = stages.iter().find(|s| s.kind == kind.as_str()) else {
            finish.insert(kind, 0.0);
            continue;
        };
        let state = StageState::parse(&stage.state)?;
        let own = if state.is_terminal() {
            0.0
        } else {
            rates.get(kind.as_str())?
                * f64::from(duration_seconds.max(1))
                * f64::from(1.0 - stage.progress.clamp(0.0, 1.0))
        };
        let start = kind
            .depends_on()
            .iter()
            .map(|d| finish.get(d).copied().unwrap_or(0.0))
            .fold(0.0, f64::max);
        finish.insert(kind, start + own);
    }
    finish.values().copied().reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(kind: StageKind, state: StageState, progress: f32) -> StageRow {
        StageRow {
            id: uuid::Uuid::nil(),
            run_id: uuid::Uuid::nil(),
            kind: kind.as_str().into(),
            state: state.as_str().into(),
            attempt: 1,
            progress,
            provider: String::new(),
            error_code: None,
            error_message: None,
            queued_at: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn eta_follows_the_longest_remaining_path() {
        // One second of work per second of song for every kind; a 10 s song.
        let rates: HashMap<String, f64> = StageKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), 1.0))
            .collect();
        let stages = vec![
            stage(StageKind::Lyrics, StageState::Succeeded, 1.0),
            stage(StageKind::Composition, StageState::Succeeded, 1.0),
            stage(StageKind::Arrangement, StageState::Running, 0.5),
            stage(StageKind::Vocals, StageState::Queued, 0.0),
            stage(StageKind::Mix, StageState::Pending, 0.0),
            stage(StageKind::Master, StageState::Pending, 0.0),
        ];
        // Arrangement (5 s left) and vocals (10 s) run side by side; mix and master follow.
        assert_eq!(eta_seconds(&stages, &rates, 10), Some(10.0 + 10.0 + 10.0));
        // A kind never seen finishing: no estimate rather than a wrong one.
        let mut partial = rates.clone();
        partial.remove("mix");
        assert_eq!(eta_seconds(&stages, &partial, 10), None);
    }

    #[test]
    fn progress_weighs_stages_by_cost_and_ignores_skipped_ones() {
        let mut stages: Vec<StageRow> = StageKind::ALL
            .iter()
            .map(|k| stage(*k, StageState::Pending, 0.0))
            .collect();
        assert_eq!(convert::weighted_progress(&stages), 0.0);
        stages[4] = stage(StageKind::Mix, StageState::Succeeded, 1.0);
        assert!((convert::weighted_progress(&stages) - StageKind::Mix.cost_weight()).abs() < 1e-6);
        for s in &mut stages {
            if s.kind == "lyrics" || s.kind == "vocals" {
                s.state = "skipped".into();
            }
        }
        let expected = StageKind::Mix.cost_weight()
            / (1.0 - StageKind::Lyrics.cost_weight() - StageKind::Vocals.cost_weight());
        assert!((convert::weighted_progress(&stages) - expected).abs() < 1e-6);
    }
}
