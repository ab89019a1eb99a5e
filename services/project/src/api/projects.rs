//! `cadenza.v1.ProjectService`.

use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use cadenza_proto::names::{ProjectName, ProjectOrRun};
use cadenza_proto::v1::{self, project_service_server::ProjectService};
use diesel_async::AsyncConnection;
use futures::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::validate::{self, Limits};
use super::{Shared, claim_request, convert, request_hash};
use crate::domain::{RunState, StageKind};
use crate::error::{ApiError, ApiResult};
use crate::store::models::RunRow;
use crate::store::{events, projects, runs};

pub struct ProjectApi {
    pub shared: Shared,
}

/// Deletes a locked project inside the caller's transaction: a run still going
/// is cancelled (which refunds its credits), and the project leaves every view.
pub async fn delete_locked(
    conn: &mut diesel_async::AsyncPgConnection,
    orchestrator: &crate::orchestrator::Orchestrator,
    project: &crate::store::models::ProjectRow,
) -> ApiResult<()> {
    if let Some(run_id) = project.latest_run_id {
        let run = runs::get(conn, run_id).await?;
        if RunState::parse(&run.state).is_some_and(|s| !s.is_terminal()) {
            orchestrator
                .finish_run(conn, &run, RunState::Cancelled, None)
                .await?;
        }
    }
    projects::soft_delete(conn, project.id).await?;
    Ok(())
}

/// After a project's deletion committed: storage hides its bytes and purges them
/// after its grace period. If storage cannot be reached the project is still
/// deleted for the user, and the reconciler releases its objects later
/// (`crate::object_release`).
pub async fn forget_objects(shared: &Shared, owner: &str, project_id: Uuid) {
    crate::object_release::release(&shared.pool, &shared.storage, owner, project_id).await;
}

fn name_error(field: &str, err: cadenza_proto::names::NameError) -> ApiError {
    ApiError::invalid(field, err.to_string())
}

impl ProjectApi {
    fn limits(&self) -> Limits {
        Limits {
            max_duration_seconds: self.shared.max_duration_seconds,
        }
    }

    /// The run a name means: the run itself, or the project's latest.
    pub(crate) async fn resolve_run(
        conn: &mut cadenza_db::AsyncPgConnection,
        owner: &str,
        target: ProjectOrRun,
    ) -> ApiResult<RunRow> {
        let project = projects::find(conn, owner, target.project())
            .await?
            .ok_or_else(|| ApiError::project_not_found(format!("projects/{}", target.project())))?;
        let run_id = match target {
            ProjectOrRun::Run(run) => run.run,
            ProjectOrRun::Project(_) => project.latest_run_id.ok_or_else(|| {
                ApiError::NotFound(
                    "RUN_NOT_FOUND",
                    "this project has never been generated".into(),
                )
            })?,
        };
        runs::find(conn, owner, run_id)
            .await?
            .filter(|r| r.project_id == project.id)
            .ok_or_else(|| {
                ApiError::NotFound("RUN_NOT_FOUND", format!("run `{run_id}` does not exist"))
            })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::StageEvent, Status>> + Send>>;

/// Watchers re-read the log this often even without a notification.
const WATCH_POLL: Duration = Duration::from_secs(2);
const WATCH_BATCH: i64 = 500;

#[tonic::async_trait]
impl ProjectService for ProjectApi {
    async fn create_project(
        &self,
        request: Request<v1::CreateProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let request_id = validate::request_id(&request.request_id)?.map(str::to_owned);
        let project = request.project.unwrap_or_default();
        let fields = validate::new_project(&project, &self.limits())?;
        let hash = request_hash(&project);
        let mut conn = self.shared.conn().await?;
        let row = conn
            .transaction(async |conn| {
                let id = Uuid::now_v7();
                if let Some(request_id) = &request_id
                    && let Some(existing) =
                        claim_request(conn, &owner, "CreateProject", request_id, &hash, id).await?
                {
                    return projects::find(conn, &owner, existing)
                        .await?
                        .ok_or_else(|| {
                            ApiError::project_not_found(format!("projects/{existing}"))
                        });
                }
                Ok::<_, ApiError>(projects::insert(conn, id, &owner, &fields).await?)
            })
            .await?;
        tracing::info!(project_id = %row.id, "project created");
        Ok(Response::new(convert::project(&row)))
    }

    async fn get_project(
        &self,
        request: Request<v1::GetProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        let owner = self.shared.caller(&request).await?;
        let name =
            ProjectName::parse(&request.get_ref().name).map_err(|e| name_error("name", e))?;
        let mut conn = self.shared.conn().await?;
        let row = projects::find(&mut conn, &owner, name.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::project_not_found(name))?;
        Ok(Response::new(convert::project(&row)))
    }

    async fn list_projects(
        &self,
        request: Request<v1::ListProjectsRequest>,
    ) -> Result<Response<v1::ListProjectsResponse>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let size = validate::page_size(request.page_size, 20, 100)?;
        let after = decode_page_token(&request.page_token)?;
        let title = request.title_contains.trim();
        if title.chars().count() > 100 {
            return Err(
                ApiError::invalid("title_contains", "must be at most 100 characters").into(),
            );
        }
        let mut conn = self.shared.conn().await?;
        let filter = (!title.is_empty()).then_some(title);
        let mut rows = projects::list(&mut conn, &owner, after, filter, size + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > size {
            rows.truncate(size as usize);
            rows.last()
                .map(|r| encode_page_token(r.created_at, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListProjectsResponse {
            projects: rows.iter().map(convert::project).collect(),
            next_page_token,
        }))
    }

    async fn update_project(
        &self,
        request: Request<v1::UpdateProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let patch = request.project.unwrap_or_default();
        let name = ProjectName::parse(&patch.name).map_err(|e| name_error("project.name", e))?;
        let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(
                ApiError::invalid("update_mask", "name at least one field to update").into(),
            );
        }
        let limits = self.limits();
        let mut conn = self.shared.conn().await?;
        let row = conn
            .transaction(async |conn| {
                let current = projects::lock(conn, &owner, name.0).await?.ok_or_else(|| ApiError::project_not_found(name))?;
                let mut fields = projects::ProjectFields {
                    title: current.title.clone(),
                    title_derived: current.title_derived,
                    prompt: current.prompt.clone(),
                    duration_seconds: current.duration_seconds,
                    has_vocals: current.has_vocals,
                    style_strength: current.style_strength,
                    seed: current.seed,
                    lyrics: current.lyrics.clone(),
                };
                let mut violations = Vec::new();
                for path in &paths {
                    let field = format!("project.{path}");
                    match path.as_str() {
                        "title" => {
                            fields.title = validate::title(&patch.title, &fields.prompt, &field, &mut violations);
                            fields.title_derived = patch.title.trim().is_empty();
                        }
                        "prompt" => fields.prompt = validate::prompt(&patch.prompt, &field, &mut violations),
                        "duration_seconds" => fields.duration_seconds = validate::duration(patch.duration_seconds, &field, &limits, &mut violations),
                        "has_vocals" => fields.has_vocals = patch.has_vocals,
                        "style_strength" => fields.style_strength = validate::style_strength(patch.style_strength, &field, &mut violations),
                        "seed" => fields.seed = patch.seed.map(|s| s as i64),
                        "lyrics" => fields.lyrics = validate::lyrics(patch.lyrics.as_deref(), &field, &mut violations),
                        other => violations.push(cadenza_runtime::status::Violation::new(
                            "update_mask",
                            format!("`{other}` cannot be updated; use title, prompt, duration_seconds, has_vocals, style_strength, seed or lyrics"),
                        )),
                    }
                }
                if !violations.is_empty() {
                    return Err(ApiError::Invalid(violations));
                }
                Ok(projects::update_fields(conn, current.id, &fields).await?)
            })
            .await?;
        Ok(Response::new(convert::project(&row)))
    }

    async fn delete_project(
        &self,
        request: Request<v1::DeleteProjectRequest>,
    ) -> Result<Response<()>, Status> {
        let owner = self.shared.caller(&request).await?;
        let address = crate::accounts::audit::client_address(&request);
        let name =
            ProjectName::parse(&request.get_ref().name).map_err(|e| name_error("name", e))?;
        let orchestrator = self.shared.orchestrator.clone();
        let mut conn = self.shared.conn().await?;
        conn.transaction(async |conn| {
            crate::accounts::audit::record(
                conn,
                crate::accounts::audit::Event {
                    actor: &owner,
                    action: "project.delete",
                    target: &name.to_string(),
                    client_address: address.as_deref(),
                    detail: None,
                },
            )
            .await;
            let project = projects::lock(conn, &owner, name.0)
                .await?
                .ok_or_else(|| ApiError::project_not_found(name))?;
            delete_locked(conn, &orchestrator, &project).await
        })
        .await?;
        forget_objects(&self.shared, &owner, name.0).await;
        Ok(Response::new(()))
    }

    async fn generate_song(
        &self,
        request: Request<v1::GenerateSongRequest>,
    ) -> Result<Response<v1::Run>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let name = ProjectName::parse(&request.name).map_err(|e| name_error("name", e))?;
        let request_id = validate::request_id(&request.request_id)?.map(str::to_owned);
        let hash = request_hash(&v1::GenerateSongRequest {
            name: request.name.clone(),
            request_id: String::new(),
        });
        let orchestrator = self.shared.orchestrator.clone();
        let mut conn = self.shared.conn().await?;
        let (run, stages) = conn
            .transaction(async |conn| {
                let project = projects::lock(conn, &owner, name.0)
                    .await?
                    .ok_or_else(|| ApiError::project_not_found(name))?;
                let run_id = Uuid::now_v7();
                if let Some(request_id) = &request_id
                    && let Some(existing) =
                        claim_request(conn, &owner, "GenerateSong", request_id, &hash, run_id)
                            .await?
                {
                    let run = runs::get(conn, existing).await?;
                    let stages = runs::stages_of(conn, existing).await?;
                    return Ok::<_, ApiError>((run, stages));
                }
                let run = orchestrator.start_run(conn, &project, run_id).await?;
                let stages = runs::stages_of(conn, run.id).await?;
                Ok((run, stages))
            })
            .await?;
        self.shared.relay_wake.notify_one();
        tracing::info!(run_id = %run.id, project_id = %run.project_id, "generation started");
        Ok(Response::new(convert::run(&run, &stages)))
    }

    async fn cancel_generation(
        &self,
        request: Request<v1::CancelGenerationRequest>,
    ) -> Result<Response<v1::Run>, Status> {
        let owner = self.shared.caller(&request).await?;
        let target =
            ProjectOrRun::parse(&request.get_ref().name).map_err(|e| name_error("name", e))?;
        let orchestrator = self.shared.orchestrator.clone();
        let mut conn = self.shared.conn().await?;
        let (run, stages) = conn
            .transaction(async |conn| {
                projects::lock(conn, &owner, target.project())
                    .await?
                    .ok_or_else(|| {
                        ApiError::project_not_found(format!("projects/{}", target.project()))
                    })?;
                let run = Self::resolve_run(conn, &owner, target).await?;
                if RunState::parse(&run.state).is_some_and(|s| !s.is_terminal()) {
                    orchestrator
                        .finish_run(conn, &run, RunState::Cancelled, None)
                        .await?;
                }
                let run = runs::get(conn, run.id).await?;
                let stages = runs::stages_of(conn, run.id).await?;
                Ok::<_, ApiError>((run, stages))
            })
            .await?;
        Ok(Response::new(convert::run(&run, &stages)))
    }

    async fn get_project_status(
        &self,
        request: Request<v1::GetProjectStatusRequest>,
    ) -> Result<Response<v1::ProjectStatus>, Status> {
        let owner = self.shared.caller(&request).await?;
        let name =
            ProjectName::parse(&request.get_ref().name).map_err(|e| name_error("name", e))?;
        let mut conn = self.shared.conn().await?;
        let project = projects::find(&mut conn, &owner, name.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::project_not_found(name))?;
        let status = crate::status::project_status(&mut conn, &project).await?;
        Ok(Response::new(status))
    }

    type WatchProjectStream = EventStream;

    async fn watch_project(
        &self,
        request: Request<v1::WatchProjectRequest>,
    ) -> Result<Response<Self::WatchProjectStream>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let name = ProjectName::parse(&request.name).map_err(|e| name_error("name", e))?;
        if request.after_event_id < 0 {
            return Err(
                ApiError::invalid("after_event_id", "must be 0 or a positive event id").into(),
            );
        }
        {
            let mut conn = self.shared.conn().await?;
            projects::find(&mut conn, &owner, name.0)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::project_not_found(name))?;
        }
        let permit = self.shared.streams.admit(&owner)?;
        // Subscribe before the first read, so nothing committed in between is missed.
        let mut notifications = self.shared.hub.subscribe();
        let pool = self.shared.pool.clone();
        let project_id = name.0;
        let mut last = request.after_event_id;
        let stream = async_stream::try_stream! {
            // Held as long as the stream lives: dropped with it, when it ends
            // or its client goes away.
            let _permit = permit;
            loop {
                let batch = {
                    let mut conn = pool.get().await.map_err(|e| Status::from(ApiError::from(e)))?;
                    events::after(&mut conn, project_id, last, WATCH_BATCH).await.map_err(|e| Status::from(ApiError::from(e)))?
                };
                let full = batch.len() as i64 == WATCH_BATCH;
                for row in &batch {
                    last = row.seq;
                    yield convert::event(row);
                }
                if full {
                    continue;
                }
                // Wait for news of this project, or poll anyway after a while.
                let closed = wait_for_news(&mut notifications, project_id).await;
                if closed {
                    Err(cadenza_runtime::status::unavailable("the service is shutting down"))?;
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_provenance(
        &self,
        request: Request<v1::GetProvenanceRequest>,
    ) -> Result<Response<v1::Provenance>, Status> {
        let owner = self.shared.caller(&request).await?;
        let mut conn = self.shared.conn().await?;
        let provenance =
            super::provenance::provenance(&mut conn, &owner, &request.get_ref().name).await?;
        Ok(Response::new(provenance))
    }

    async fn list_job_logs(
        &self,
        request: Request<v1::ListJobLogsRequest>,
    ) -> Result<Response<v1::ListJobLogsResponse>, Status> {
        use cadenza_db::schema::job_logs;
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let target = ProjectOrRun::parse(&request.parent).map_err(|e| name_error("parent", e))?;
        let size = validate::page_size(request.page_size, 100, 1000)?;
        let after: i64 = if request.page_token.is_empty() {
            0
        } else {
            decode_token_text(&request.page_token)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| ApiError::invalid("page_token", "this page token is not valid"))?
        };
        let mut conn = self.shared.conn().await?;
        let run = Self::resolve_run(&mut conn, &owner, target).await?;
        type Row = (
            (i64, String, i32, i16, String, chrono::DateTime<chrono::Utc>),
            (String, String, String, String),
        );
        let rows: Vec<Row> = job_logs::table
            .filter(job_logs::run_id.eq(run.id))
            .filter(job_logs::id.gt(after))
            .order(job_logs::id.asc())
            .limit(size + 1)
            .select((
                (
                    job_logs::id,
                    job_logs::stage_kind,
                    job_logs::attempt,
                    job_logs::severity,
                    job_logs::message,
                    job_logs::logged_at,
                ),
                (
                    job_logs::provider,
                    job_logs::provider_job_id,
                    job_logs::error_code,
                    job_logs::worker_id,
                ),
            ))
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        let (project_name, run_name) = (
            format!("projects/{}", run.project_id),
            format!("projects/{}/runs/{}", run.project_id, run.id),
        );
        let more = rows.len() as i64 > size;
        let rows = &rows[..rows.len().min(size as usize)];
        Ok(Response::new(v1::ListJobLogsResponse {
            next_page_token: if more {
                rows.last()
                    .map(|r| encode_token_text(&r.0.0.to_string()))
                    .unwrap_or_default()
            } else {
                String::new()
            },
            logs: rows
                .iter()
                .map(
                    |(
                        (_, kind, attempt, severity, message, at),
                        (provider, provider_job_id, error_code, worker_id),
                    )| v1::JobLog {
                        stage_kind: StageKind::parse(kind)
                            .map_or(v1::StageKind::Unspecified, StageKind::proto)
                            as i32,
                        attempt: u32::try_from(*attempt).unwrap_or(0),
                        severity: i32::from(*severity),
                        message: message.clone(),
                        log_time: Some(cadenza_proto::timestamp(*at)),
                        project: project_name.clone(),
                        run: run_name.clone(),
                        provider: provider.clone(),
                        provider_job_id: provider_job_id.clone(),
                        error_code: error_code.clone(),
                        worker_id: worker_id.clone(),
                    },
                )
                .collect(),
        }))
    }
}

/// Waits for a notification about `project_id` or the poll interval; true when
/// the hub is gone (shutdown).
async fn wait_for_news(
    notifications: &mut tokio::sync::broadcast::Receiver<Uuid>,
    project_id: Uuid,
) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::sleep(WATCH_POLL);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return false,
            received = notifications.recv() => match received {
                Ok(id) if id == project_id => return false,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return false,
                Err(RecvError::Closed) => return true,
            },
        }
    }
}

/// Page tokens are opaque to clients: base64 of our own cursor text.
pub(crate) fn encode_token_text(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

pub(crate) fn decode_token_text(token: &str) -> Option<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

pub(crate) fn encode_page_token(time: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    encode_token_text(&format!("{}|{id}", time.timestamp_micros()))
}

pub(crate) fn decode_page_token(
    token: &str,
) -> ApiResult<Option<(chrono::DateTime<chrono::Utc>, Uuid)>> {
    if token.is_empty() {
        return Ok(None);
    }
    decode_token_text(token)
        .and_then(|text| {
            let (micros, id) = text.split_once('|')?;
            let time = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?;
            Some((time, Uuid::parse_str(id).ok()?))
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "page_token",
                "this page token is not valid; start again without one",
            )
        })
}
