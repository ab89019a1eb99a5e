//! Rows to API messages.

use cadenza_proto::{timestamp, v1};

use crate::domain::{ProjectState, RunState, StageKind, StageState};
use crate::store::events::EventType;
use crate::store::models::{AssetRow, EventRow, ProjectRow, RunRow, StageRow};

pub fn project(row: &ProjectRow) -> v1::Project {
    v1::Project {
        name: format!("projects/{}", row.id),
        title: row.title.clone(),
        prompt: row.prompt.clone(),
        duration_seconds: u32::try_from(row.duration_seconds).unwrap_or(0),
        has_vocals: row.has_vocals,
        style_strength: row.style_strength,
        seed: row.seed.map(|s| s as u64),
        lyrics: row.lyrics.clone(),
        state: ProjectState::parse(&row.state)
            .map_or(v1::project::State::Unspecified, ProjectState::proto) as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        latest_run: row
            .latest_run_id
            .map(|r| format!("projects/{}/runs/{r}", row.id))
            .unwrap_or_default(),
    }
}

pub fn stage(run: &RunRow, row: &StageRow) -> v1::Stage {
    let kind = StageKind::parse(&row.kind);
    v1::Stage {
        name: format!(
            "projects/{}/runs/{}/stages/{}",
            run.project_id, run.id, row.kind
        ),
        kind: kind.map_or(v1::StageKind::Unspecified, StageKind::proto) as i32,
        state: StageState::parse(&row.state).map_or(v1::StageState::Unspecified, StageState::proto)
            as i32,
        progress: row.progress,
        attempt: u32::try_from(row.attempt).unwrap_or(0),
        provider: row.provider.clone(),
        error_code: row.error_code.clone().unwrap_or_default(),
        error_message: row.error_message.clone().unwrap_or_default(),
        depends_on: kind
            .map(|k| k.depends_on().iter().map(|d| d.proto() as i32).collect())
            .unwrap_or_default(),
        start_time: row.started_at.map(timestamp),
        end_time: row.finished_at.map(timestamp),
    }
}

pub fn run(row: &RunRow, stages: &[StageRow]) -> v1::Run {
    v1::Run {
        name: format!("projects/{}/runs/{}", row.project_id, row.id),
        state: RunState::parse(&row.state).map_or(v1::RunState::Unspecified, RunState::proto)
            as i32,
        stages: stages.iter().map(|s| stage(row, s)).collect(),
        seed: row.seed as u64,
        create_time: Some(timestamp(row.created_at)),
        end_time: row.finished_at.map(timestamp),
        error_code: row.error_code.clone().unwrap_or_default(),
        error_message: row.error_message.clone().unwrap_or_default(),
    }
}

pub fn event(row: &EventRow) -> v1::StageEvent {
    use v1::stage_event::Type;
    let event_type = match EventType::parse(&row.event_type) {
        Some(EventType::RunCreated) => Type::RunCreated,
        Some(EventType::StageQueued) => Type::StageQueued,
        Some(EventType::StageStarted) => Type::StageStarted,
        Some(EventType::StageProgress) => Type::StageProgress,
        Some(EventType::StageSucceeded) => Type::StageSucceeded,
        Some(EventType::StageFailed) => Type::StageFailed,
        Some(EventType::StageCancelled) => Type::StageCancelled,
        Some(EventType::RunFinished) => Type::RunFinished,
        None => Type::Unspecified,
    };
    v1::StageEvent {
        event_id: row.seq,
        r#type: event_type as i32,
        run: format!("projects/{}/runs/{}", row.project_id, row.run_id),
        stage_kind: row
            .stage_kind
            .as_deref()
            .and_then(StageKind::parse)
            .map_or(v1::StageKind::Unspecified, StageKind::proto) as i32,
        stage_state: row
            .stage_state
            .as_deref()
            .and_then(StageState::parse)
            .map_or(v1::StageState::Unspecified, StageState::proto) as i32,
        run_state: RunState::parse(&row.run_state)
            .map_or(v1::RunState::Unspecified, RunState::proto) as i32,
        progress: row.progress,
        attempt: u32::try_from(row.attempt).unwrap_or(0),
        message: row.message.clone(),
        event_time: Some(timestamp(row.created_at)),
    }
}

pub fn asset(row: &AssetRow) -> v1::Asset {
    v1::Asset {
        name: format!("projects/{}/assets/{}", row.project_id, row.id),
        run: format!("projects/{}/runs/{}", row.project_id, row.run_id),
        stage_kind: StageKind::parse(&row.stage_kind)
            .map_or(v1::StageKind::Unspecified, StageKind::proto) as i32,
        kind: crate::domain::asset_kind_from_str(&row.kind) as i32,
        file_name: row.file_name.clone(),
        content_type: row.content_type.clone(),
        size_bytes: row.size_bytes,
        sha256: row.sha256.clone(),
        create_time: Some(timestamp(row.created_at)),
    }
}

/// Progress of a run, 0 to 1, each needed stage weighted by its expected cost.
pub fn weighted_progress(stages: &[StageRow]) -> f32 {
    let mut done = 0.0;
    let mut total = 0.0;
    for s in stages {
        let (Some(kind), Some(state)) = (StageKind::parse(&s.kind), StageState::parse(&s.state))
        else {
            continue;
        };
        if state == StageState::Skipped {
            continue;
        }
        total += kind.cost_weight();
        done += kind.cost_weight()
            * if state == StageState::Succeeded {
                1.0
            } else {
                s.progress.clamp(0.0, 1.0)
            };
    }
    if total > 0.0 {
        (done / total).clamp(0.0, 1.0)
    } else {
        0.0
    }
}
