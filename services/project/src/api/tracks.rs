//! `cadenza.v1.TrackService`: a project and its generation in one call.

use cadenza_proto::names::{JobName, TrackName};
use cadenza_proto::v1::{self, track_service_server::TrackService};
use diesel_async::AsyncConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::validate::{self, Limits};
use super::{Shared, claim_request, convert, request_hash};
use crate::domain::RunState;
use crate::error::ApiError;
use crate::store::{projects, runs};

/// Lifetime of the URL in `Track.file_url`.
const FILE_URL_SECONDS: u32 = 3600;

pub struct TrackApi {
    pub shared: Shared,
}

#[tonic::async_trait]
impl TrackService for TrackApi {
    async fn create_track(
        &self,
        request: Request<v1::CreateTrackRequest>,
    ) -> Result<Response<v1::CreateTrackResponse>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id)?.map(str::to_owned);
        let as_project = v1::Project {
            prompt: request.prompt.clone(),
            duration_seconds: request.duration_seconds,
            has_vocals: request.has_vocals,
            style_strength: request.style_strength,
            seed: request.seed,
            lyrics: request.lyrics.clone(),
            ..Default::default()
        };
        let limits = Limits {
            max_duration_seconds: self.shared.max_duration_seconds,
        };
        // Field paths of this request, not of a project.
        let fields = validate::new_project(&as_project, &limits).map_err(|err| match err {
            ApiError::Invalid(violations) => ApiError::Invalid(
                violations
                    .into_iter()
                    .map(|mut v| {
                        v.field = v.field.trim_start_matches("project.").to_owned();
                        v
                    })
                    .collect(),
            ),
            other => other,
        })?;
        let hash = request_hash(&v1::CreateTrackRequest {
            request_id: String::new(),
            ..request.clone()
        });
        let orchestrator = self.shared.orchestrator.clone();
        let mut conn = self.shared.conn().await?;
        let (project_id, run_id) = conn
            .transaction(async |conn| {
                let project_id = Uuid::now_v7();
                if let Some(request_id) = &request_id
                    && let Some(existing) =
                        claim_request(conn, &owner, "CreateTrack", request_id, &hash, project_id)
                            .await?
                {
                    let project =
                        projects::find(conn, &owner, existing)
                            .await?
                            .ok_or_else(|| {
                                ApiError::NotFound(
                                    "TRACK_NOT_FOUND",
                                    format!("track `tracks/{existing}` was deleted"),
                                )
                            })?;
                    return Ok::<_, ApiError>((
                        existing,
                        project.latest_run_id.unwrap_or_default(),
                    ));
                }
                let project = projects::insert(conn, project_id, &owner, &fields).await?;
                let project = projects::lock(conn, &owner, project.id)
                    .await?
                    .ok_or(diesel::result::Error::NotFound)?;
                let run = orchestrator
                    .start_run(conn, &project, Uuid::now_v7())
                    .await?;
                Ok((project_id, run.id))
            })
            .await?;
        self.shared.relay_wake.notify_one();
        Ok(Response::new(v1::CreateTrackResponse {
            track: TrackName(project_id).to_string(),
            job: JobName(run_id).to_string(),
        }))
    }

    async fn get_track(
        &self,
        request: Request<v1::GetTrackRequest>,
    ) -> Result<Response<v1::Track>, Status> {
        let owner = self.shared.caller(&request).await?;
        let name = TrackName::parse(&request.get_ref().name)
            .map_err(|e| ApiError::invalid("name", e.to_string()))?;
        let mut conn = self.shared.conn().await?;
        let not_found =
            || ApiError::NotFound("TRACK_NOT_FOUND", format!("track `{name}` does not exist"));
        let project = projects::find(&mut conn, &owner, name.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        let mut track = v1::Track {
            name: name.to_string(),
            prompt: project.prompt.clone(),
            duration_seconds: u32::try_from(project.duration_seconds).unwrap_or(0),
            create_time: Some(cadenza_proto::timestamp(project.created_at)),
            state: v1::track::State::Queued as i32,
            ..Default::default()
        };
        let Some(run_id) = project.latest_run_id else {
            return Ok(Response::new(track));
        };
        let run = runs::get(&mut conn, run_id).await.map_err(ApiError::from)?;
        let stages = runs::stages_of(&mut conn, run_id)
            .await
            .map_err(ApiError::from)?;
        track.job = JobName(run_id).to_string();
        track.progress = convert::weighted_progress(&stages);
        track.state = match RunState::parse(&run.state) {
            Some(RunState::Queued) => v1::track::State::Queued,
            Some(RunState::Running) => v1::track::State::Rendering,
            Some(RunState::Succeeded) => v1::track::State::Complete,
            _ => v1::track::State::Failed,
        } as i32;
        if run.state == RunState::Cancelled.as_str() {
            track.error_message = "the generation was cancelled".into();
        } else {
            track.error_message = run.error_message.clone().unwrap_or_default();
        }
        if run.state == RunState::Succeeded.as_str() {
            let master = runs::assets_of_run(&mut conn, run_id)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .find(|a| a.kind == "master")
                .ok_or_else(|| {
                    ApiError::Internal(format!("run {run_id} succeeded without a master"))
                })?;
            let signed = self
                .shared
                .storage
                .clone()
                .sign_download_url(v1::SignDownloadUrlRequest {
                    key: master.object_key,
                    owner: owner.clone(),
                    expire_seconds: FILE_URL_SECONDS,
                    download_name: master.file_name,
                })
                .await
                .map_err(ApiError::Storage)?
                .into_inner();
            track.file_url = signed.url;
            track.file_url_expire_time = signed.expire_time;
        }
        Ok(Response::new(track))
    }

    async fn get_job(
        &self,
        request: Request<v1::GetJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        let owner = self.shared.caller(&request).await?;
        let name = JobName::parse(&request.get_ref().name)
            .map_err(|e| ApiError::invalid("name", e.to_string()))?;
        let mut conn = self.shared.conn().await?;
        let run = runs::find(&mut conn, &owner, name.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound("JOB_NOT_FOUND", format!("job `{name}` does not exist"))
            })?;
        // A job of a deleted track is gone with it.
        projects::find(&mut conn, &owner, run.project_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound("JOB_NOT_FOUND", format!("job `{name}` does not exist"))
            })?;
        let stages = runs::stages_of(&mut conn, run.id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(v1::Job {
            name: name.to_string(),
            track: TrackName(run.project_id).to_string(),
            progress: convert::weighted_progress(&stages),
            run: Some(convert::run(&run, &stages)),
        }))
    }
}
