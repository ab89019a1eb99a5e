//! `cadenza.v1.ShareService`: public gift pages for finished songs.
//!
//! A link's token is its page address (`/s/{token}`): 24 random bytes, so it
//! cannot be guessed, stored as it is because it is meant to be passed on. The
//! page learns only the song's public title, the sender's message and signed URLs
//! of the finished audio (`gift`); never the owner, the prompt or the lyrics.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_db::schema::{projects as projects_table, runs as runs_table, share_links};
use cadenza_proto::names::{ProjectName, ProjectOrRun, RunName, ShareLinkName};
use cadenza_proto::v1::{self, share_service_server::ShareService};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::Shared;
use super::gift;
use super::projects::ProjectApi;
use crate::domain::RunState;
use crate::error::{ApiError, ApiResult};
use crate::store::{projects, runs};

const MAX_MESSAGE_CHARS: usize = 500;
const MAX_EXPIRE_DAYS: i32 = 3650;

pub struct ShareApi {
    pub shared: Shared,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = share_links, check_for_backend(diesel::pg::Pg))]
struct ShareLinkRow {
    id: Uuid,
    token: String,
    owner: String,
    project_id: Uuid,
    run_id: Uuid,
    message: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

fn link_proto(row: &ShareLinkRow) -> v1::ShareLink {
    v1::ShareLink {
        name: ShareLinkName {
            project: row.project_id,
            link: row.id,
        }
        .to_string(),
        run: RunName {
            project: row.project_id,
            run: row.run_id,
        }
        .to_string(),
        token: row.token.clone(),
        message: row.message.clone(),
        create_time: Some(cadenza_proto::timestamp(row.created_at)),
        expire_time: row.expires_at.map(cadenza_proto::timestamp),
        revoke_time: row.revoked_at.map(cadenza_proto::timestamp),
    }
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` could be one this service made (anything else is not looked up).
fn plausible_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn link_not_found() -> ApiError {
    ApiError::NotFound(
        "SHARE_LINK_NOT_FOUND",
        "no song is shared at this address".into(),
    )
}

/// The newest run of `project_id` that completed.
async fn newest_completed_run(
    conn: &mut AsyncPgConnection,
    project_id: Uuid,
) -> QueryResult<Option<Uuid>> {
    runs_table::table
        .filter(runs_table::project_id.eq(project_id))
        .filter(runs_table::state.eq(RunState::Succeeded.as_str()))
        .order(runs_table::created_at.desc())
        .select(runs_table::id)
        .first(conn)
        .await
        .optional()
}

impl ShareApi {
    /// The parent, the trimmed message and the idempotency key, every fault
    /// named at once.
    fn validate_create(
        request: &v1::CreateShareLinkRequest,
    ) -> ApiResult<(ProjectName, String, Option<String>)> {
        let mut violations = Vec::new();
        let request_id = match super::validate::request_id(&request.request_id) {
            Ok(id) => id.map(str::to_owned),
            Err(ApiError::Invalid(mut faults)) => {
                violations.append(&mut faults);
                None
            }
            Err(other) => return Err(other),
        };
        let parent = ProjectName::parse(&request.parent);
        if let Err(err) = &parent {
            violations.push(cadenza_runtime::status::Violation::new(
                "parent",
                err.to_string(),
            ));
        }
        let message = request.message.trim().to_owned();
        if message.chars().count() > MAX_MESSAGE_CHARS {
            violations.push(cadenza_runtime::status::Violation::new(
                "message",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        if !(0..=MAX_EXPIRE_DAYS).contains(&request.expire_days) {
            violations.push(cadenza_runtime::status::Violation::new(
                "expire_days",
                format!(
                    "must be 1 to {MAX_EXPIRE_DAYS} days, or 0 for a link that does not expire"
                ),
            ));
        }
        match parent {
            Ok(parent) if violations.is_empty() => Ok((parent, message, request_id)),
            _ => Err(ApiError::Invalid(violations)),
        }
    }
}

#[tonic::async_trait]
impl ShareService for ShareApi {
    async fn create_share_link(
        &self,
        request: Request<v1::CreateShareLinkRequest>,
    ) -> Result<Response<v1::ShareLink>, Status> {
        let owner = self.shared.caller(&request).await?;
        let request = request.into_inner();
        let (parent, message, request_id) = Self::validate_create(&request)?;
        let hash = super::request_hash(&v1::CreateShareLinkRequest {
            request_id: String::new(),
            ..request.clone()
        });
        let mut conn = self.shared.conn().await?;
        let project = projects::find(&mut conn, &owner, parent.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::project_not_found(parent))?;
        let run_id = if request.run.is_empty() {
            newest_completed_run(&mut conn, project.id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(
                        "NO_COMPLETED_SONG",
                        "this project has no finished song to share yet".into(),
                    )
                })?
        } else {
            let run = RunName::parse(&request.run)
                .map_err(|e| ApiError::invalid("run", e.to_string()))?;
            if run.project != project.id {
                return Err(ApiError::invalid("run", "must be a run of `parent`").into());
            }
            let row = ProjectApi::resolve_run(&mut conn, &owner, ProjectOrRun::Run(run)).await?;
            if row.state != RunState::Succeeded.as_str() {
                return Err(ApiError::FailedPrecondition(
                    "RUN_NOT_COMPLETE",
                    "only a song that finished can be shared".into(),
                )
                .into());
            }
            row.id
        };
        let now = Utc::now();
        let expires_at =
            (request.expire_days > 0).then(|| now + Duration::days(i64::from(request.expire_days)));
        let row = conn
            .transaction(async |conn| -> ApiResult<ShareLinkRow> {
                let id = Uuid::now_v7();
                if let Some(request_id) = &request_id
                    && let Some(existing) =
                        super::claim_request(conn, &owner, "CreateShareLink", request_id, &hash, id)
                            .await?
                {
                    return Ok(share_links::table
                        .find(existing)
                        .select(ShareLinkRow::as_select())
                        .first(conn)
                        .await?);
                }
                Ok(diesel::insert_into(share_links::table)
                    .values((
                        share_links::id.eq(id),
                        share_links::token.eq(new_token()),
                        share_links::owner.eq(&owner),
                        share_links::project_id.eq(project.id),
                        share_links::run_id.eq(run_id),
                        share_links::message.eq(&message),
                        share_links::created_at.eq(now),
                        share_links::expires_at.eq(expires_at),
                    ))
                    .returning(ShareLinkRow::as_returning())
                    .get_result(conn)
                    .await?)
            })
            .await?;
        // The grant now, so the song's preview is kept from this moment; if
        // storage is away, the first opening of the page makes it.
        let assets = {
            let mut conn = self.shared.conn().await?;
            runs::assets_of_run(&mut conn, row.run_id)
                .await
                .map_err(ApiError::from)?
        };
        let title = gift::public_title(&project.title, project.title_derived);
        if let Err(err) = gift::grant(
            &self.shared,
            row.id,
            &owner,
            &assets,
            &title,
            row.expires_at,
        )
        .await
        {
            tracing::warn!(link = %row.id, error = %err, "could not grant the shared song's files yet; the page will");
        }
        Ok(Response::new(link_proto(&row)))
    }

    async fn list_share_links(
        &self,
        request: Request<v1::ListShareLinksRequest>,
    ) -> Result<Response<v1::ListShareLinksResponse>, Status> {
        let owner = self.shared.caller(&request).await?;
        let parent = ProjectName::parse(&request.get_ref().parent)
            .map_err(|e| ApiError::invalid("parent", e.to_string()))?;
        let mut conn = self.shared.conn().await?;
        projects::find(&mut conn, &owner, parent.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::project_not_found(parent))?;
        let rows: Vec<ShareLinkRow> = share_links::table
            .filter(share_links::project_id.eq(parent.0))
            .filter(share_links::owner.eq(&owner))
            .order(share_links::created_at.desc())
            .limit(200)
            .select(ShareLinkRow::as_select())
            .load(&mut conn)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(v1::ListShareLinksResponse {
            share_links: rows.iter().map(link_proto).collect(),
        }))
    }

    async fn revoke_share_link(
        &self,
        request: Request<v1::RevokeShareLinkRequest>,
    ) -> Result<Response<v1::ShareLink>, Status> {
        let owner = self.shared.caller(&request).await?;
        let name = ShareLinkName::parse(&request.get_ref().name)
            .map_err(|e| ApiError::invalid("name", e.to_string()))?;
        // Storage first: the URLs handed out stop working before the link
        // says revoked, and a storage that cannot be reached leaves the link as
        // it was (UNAVAILABLE: try again).
        gift::revoke(&self.shared, name.link, &owner).await?;
        let mut conn = self.shared.conn().await?;
        let mine = share_links::table
            .filter(share_links::id.eq(name.link))
            .filter(share_links::project_id.eq(name.project))
            .filter(share_links::owner.eq(&owner));
        // Revoking twice keeps the first time.
        diesel::update(mine.filter(share_links::revoked_at.is_null()))
            .set(share_links::revoked_at.eq(Utc::now()))
            .execute(&mut conn)
            .await
            .map_err(ApiError::from)?;
        let row: ShareLinkRow = mine
            .select(ShareLinkRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::NotFound(
                    "SHARE_LINK_NOT_FOUND",
                    format!("share link `{name}` does not exist"),
                )
            })?;
        Ok(Response::new(link_proto(&row)))
    }

    async fn get_shared_song(
        &self,
        request: Request<v1::GetSharedSongRequest>,
    ) -> Result<Response<v1::SharedSong>, Status> {
        let token = request.into_inner().token;
        if !plausible_token(&token) {
            return Err(link_not_found().into());
        }
        let mut conn = self.shared.conn().await?;
        let found: Option<(ShareLinkRow, String, bool, i32)> = share_links::table
            .inner_join(projects_table::table)
            .filter(share_links::token.eq(&token))
            .filter(projects_table::deleted_at.is_null())
            .select((
                ShareLinkRow::as_select(),
                projects_table::title,
                projects_table::title_derived,
                projects_table::duration_seconds,
            ))
            .first(&mut conn)
            .await
            .optional()
            .map_err(ApiError::from)?;
        let (link, title, title_derived, duration_seconds) = found.ok_or_else(link_not_found)?;
        if link.revoked_at.is_some() {
            return Err(ApiError::FailedPrecondition(
                "SHARE_LINK_REVOKED",
                "the sender has withdrawn this link".into(),
            )
            .into());
        }
        if link.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(ApiError::FailedPrecondition(
                "SHARE_LINK_EXPIRED",
                "this link has expired".into(),
            )
            .into());
        }
        let assets = runs::assets_of_run(&mut conn, link.run_id)
            .await
            .map_err(ApiError::from)?;
        drop(conn);
        let title = gift::public_title(&title, title_derived);
        let urls = gift::grant(
            &self.shared,
            link.id,
            &link.owner,
            &assets,
            &title,
            link.expires_at,
        )
        .await?;
        Ok(Response::new(gift::song(
            title,
            link.message.clone(),
            duration_seconds,
            link.created_at,
            urls,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognised() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(plausible_token(&a), "{a}");
        assert!(!plausible_token("../../etc/passwd"));
        assert!(!plausible_token(&format!("{a}x")));
    }
}
