//! The public services: forward each admitted call to `project` unchanged.
//!
//! [`crate::access::AccessLayer`] decided who may make the call before it got
//! here; a handler only builds the upstream request, signing who the admitted
//! caller is into its assertion.

use std::pin::Pin;

use cadenza_proto::v1::{
    self, admin_service_client::AdminServiceClient, api_key_service_client::ApiKeyServiceClient,
    asset_service_client::AssetServiceClient, auth_service_client::AuthServiceClient,
    project_service_client::ProjectServiceClient, share_service_client::ShareServiceClient,
    track_service_client::TrackServiceClient, usage_service_client::UsageServiceClient,
};
use cadenza_telemetry::grpc::TracedChannel;
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::access::Admitted;
use crate::auth::upstream;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Clone)]
pub struct Proxy {
    /// Signs the assertion each upstream call carries.
    pub mesh: cadenza_auth::mesh::AssertionSigner,
    pub auth: AuthServiceClient<TracedChannel>,
    pub api_keys: ApiKeyServiceClient<TracedChannel>,
    pub admin: AdminServiceClient<TracedChannel>,
    pub usage: UsageServiceClient<TracedChannel>,
    pub shares: ShareServiceClient<TracedChannel>,
    pub projects: ProjectServiceClient<TracedChannel>,
    pub tracks: TrackServiceClient<TracedChannel>,
    pub assets: AssetServiceClient<TracedChannel>,
}

/// Forwards one unary call to `$client.$method` for the admitted caller.
macro_rules! forward {
    ($self:ident, $request:ident, $client:ident, $method:ident) => {{
        let call = $self.upstream($request)?;
        $self.$client.clone().$method(call).await
    }};
}

/// Forwards a server-streaming call, passing the upstream stream through.
macro_rules! forward_stream {
    ($self:ident, $request:ident, $client:ident, $method:ident) => {{
        let call = $self.upstream($request)?;
        let response = $self.$client.clone().$method(call).await?;
        Ok(Response::new(
            Box::pin(response.into_inner()) as BoxStream<_>
        ))
    }};
}

/// The caller the access layer admitted; a call that did not pass through it
/// (which no route allows) is refused.
pub(crate) fn admitted<T>(request: &Request<T>) -> Result<Admitted, Status> {
    request
        .extensions()
        .get::<Admitted>()
        .cloned()
        .ok_or_else(|| Status::internal("the call was not admitted by the access layer"))
}

impl Proxy {
    /// The fresh upstream request of an admitted call: its message and an
    /// assertion of who makes it, and nothing else the client sent.
    pub(crate) fn upstream<T>(&self, request: Request<T>) -> Result<Request<T>, Status> {
        let admitted = admitted(&request)?;
        upstream(
            &self.mesh,
            admitted.caller.as_ref(),
            admitted.address,
            request.into_inner(),
        )
    }
}

#[tonic::async_trait]
impl v1::usage_service_server::UsageService for Proxy {
    async fn get_usage(
        &self,
        request: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::Usage>, Status> {
        forward!(self, request, usage, get_usage)
    }
}

#[tonic::async_trait]
impl v1::admin_service_server::AdminService for Proxy {
    async fn change_role(
        &self,
        request: Request<v1::ChangeRoleRequest>,
    ) -> Result<Response<v1::User>, Status> {
        forward!(self, request, admin, change_role)
    }
    async fn list_dead_letters(
        &self,
        request: Request<v1::ListDeadLettersRequest>,
    ) -> Result<Response<v1::ListDeadLettersResponse>, Status> {
        forward!(self, request, admin, list_dead_letters)
    }
    async fn requeue_dead_letter(
        &self,
        request: Request<v1::RequeueDeadLetterRequest>,
    ) -> Result<Response<v1::DeadLetter>, Status> {
        forward!(self, request, admin, requeue_dead_letter)
    }
    async fn dismiss_dead_letter(
        &self,
        request: Request<v1::DismissDeadLetterRequest>,
    ) -> Result<Response<v1::DeadLetter>, Status> {
        forward!(self, request, admin, dismiss_dead_letter)
    }
    async fn change_plan(
        &self,
        request: Request<v1::ChangePlanRequest>,
    ) -> Result<Response<v1::User>, Status> {
        forward!(self, request, admin, change_plan)
    }
    async fn grant_credits(
        &self,
        request: Request<v1::GrantCreditsRequest>,
    ) -> Result<Response<v1::GrantCreditsResponse>, Status> {
        forward!(self, request, admin, grant_credits)
    }
    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        forward!(self, request, admin, list_audit_events)
    }
}

#[tonic::async_trait]
impl v1::api_key_service_server::ApiKeyService for Proxy {
    async fn create_api_key(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        forward!(self, request, api_keys, create_api_key)
    }
    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        forward!(self, request, api_keys, list_api_keys)
    }
    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::ApiKey>, Status> {
        forward!(self, request, api_keys, revoke_api_key)
    }
}

#[tonic::async_trait]
impl v1::project_service_server::ProjectService for Proxy {
    async fn create_project(
        &self,
        request: Request<v1::CreateProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        forward!(self, request, projects, create_project)
    }
    async fn get_project(
        &self,
        request: Request<v1::GetProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        forward!(self, request, projects, get_project)
    }
    async fn list_projects(
        &self,
        request: Request<v1::ListProjectsRequest>,
    ) -> Result<Response<v1::ListProjectsResponse>, Status> {
        forward!(self, request, projects, list_projects)
    }
    async fn update_project(
        &self,
        request: Request<v1::UpdateProjectRequest>,
    ) -> Result<Response<v1::Project>, Status> {
        forward!(self, request, projects, update_project)
    }
    async fn delete_project(
        &self,
        request: Request<v1::DeleteProjectRequest>,
    ) -> Result<Response<()>, Status> {
        forward!(self, request, projects, delete_project)
    }
    async fn generate_song(
        &self,
        request: Request<v1::GenerateSongRequest>,
    ) -> Result<Response<v1::Run>, Status> {
        forward!(self, request, projects, generate_song)
    }
    async fn cancel_generation(
        &self,
        request: Request<v1::CancelGenerationRequest>,
    ) -> Result<Response<v1::Run>, Status> {
        forward!(self, request, projects, cancel_generation)
    }
    async fn get_project_status(
        &self,
        request: Request<v1::GetProjectStatusRequest>,
    ) -> Result<Response<v1::ProjectStatus>, Status> {
        forward!(self, request, projects, get_project_status)
    }
    type WatchProjectStream = BoxStream<v1::StageEvent>;
    async fn watch_project(
        &self,
        request: Request<v1::WatchProjectRequest>,
    ) -> Result<Response<Self::WatchProjectStream>, Status> {
        forward_stream!(self, request, projects, watch_project)
    }
    async fn list_job_logs(
        &self,
        request: Request<v1::ListJobLogsRequest>,
    ) -> Result<Response<v1::ListJobLogsResponse>, Status> {
        forward!(self, request, projects, list_job_logs)
    }
    async fn get_provenance(
        &self,
        request: Request<v1::GetProvenanceRequest>,
    ) -> Result<Response<v1::Provenance>, Status> {
        forward!(self, request, projects, get_provenance)
    }
}

#[tonic::async_trait]
impl v1::track_service_server::TrackService for Proxy {
    async fn create_track(
        &self,
        request: Request<v1::CreateTrackRequest>,
    ) -> Result<Response<v1::CreateTrackResponse>, Status> {
        forward!(self, request, tracks, create_track)
    }
    async fn get_track(
        &self,
        request: Request<v1::GetTrackRequest>,
    ) -> Result<Response<v1::Track>, Status> {
        forward!(self, request, tracks, get_track)
    }
    async fn get_job(
        &self,
        request: Request<v1::GetJobRequest>,
    ) -> Result<Response<v1::Job>, Status> {
        forward!(self, request, tracks, get_job)
    }
}

#[tonic::async_trait]
impl v1::asset_service_server::AssetService for Proxy {
    async fn list_assets(
        &self,
        request: Request<v1::ListAssetsRequest>,
    ) -> Result<Response<v1::ListAssetsResponse>, Status> {
        forward!(self, request, assets, list_assets)
    }
    async fn get_download_url(
        &self,
        request: Request<v1::GetDownloadUrlRequest>,
    ) -> Result<Response<v1::GetDownloadUrlResponse>, Status> {
        forward!(self, request, assets, get_download_url)
    }
    type ReadAssetStream = BoxStream<v1::ReadAssetResponse>;
    async fn read_asset(
        &self,
        request: Request<v1::ReadAssetRequest>,
    ) -> Result<Response<Self::ReadAssetStream>, Status> {
        forward_stream!(self, request, assets, read_asset)
    }
}

#[tonic::async_trait]
impl v1::auth_service_server::AuthService for Proxy {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        forward!(self, request, auth, register)
    }
    async fn login(
        &self,
        request: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        forward!(self, request, auth, login)
    }
    async fn refresh(
        &self,
        request: Request<v1::RefreshRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        forward!(self, request, auth, refresh)
    }
    async fn logout(&self, request: Request<v1::LogoutRequest>) -> Result<Response<()>, Status> {
        forward!(self, request, auth, logout)
    }
    async fn get_current_user(
        &self,
        request: Request<v1::GetCurrentUserRequest>,
    ) -> Result<Response<v1::User>, Status> {
        forward!(self, request, auth, get_current_user)
    }
    async fn accept_terms(
        &self,
        request: Request<v1::AcceptTermsRequest>,
    ) -> Result<Response<v1::User>, Status> {
        forward!(self, request, auth, accept_terms)
    }
    async fn delete_account(
        &self,
        request: Request<v1::DeleteAccountRequest>,
    ) -> Result<Response<()>, Status> {
        forward!(self, request, auth, delete_account)
    }
}

#[tonic::async_trait]
impl v1::share_service_server::ShareService for Proxy {
    async fn create_share_link(
        &self,
        request: Request<v1::CreateShareLinkRequest>,
    ) -> Result<Response<v1::ShareLink>, Status> {
        forward!(self, request, shares, create_share_link)
    }
    async fn list_share_links(
        &self,
        request: Request<v1::ListShareLinksRequest>,
    ) -> Result<Response<v1::ListShareLinksResponse>, Status> {
        forward!(self, request, shares, list_share_links)
    }
    async fn revoke_share_link(
        &self,
        request: Request<v1::RevokeShareLinkRequest>,
    ) -> Result<Response<v1::ShareLink>, Status> {
        forward!(self, request, shares, revoke_share_link)
    }
    /// Gift pages open signed out: no credential, the anonymous rate limit.
    async fn get_shared_song(
        &self,
        request: Request<v1::GetSharedSongRequest>,
    ) -> Result<Response<v1::SharedSong>, Status> {
        forward!(self, request, shares, get_shared_song)
    }
}

/// Dev mode only: tokens for any subject, no password.
pub struct DevTokens {
    pub keys: cadenza_auth::TokenKeys,
}

const DEFAULT_DEV_TTL: u32 = 86_400;
const MAX_DEV_TTL: u32 = 7 * 86_400;

#[tonic::async_trait]
impl v1::dev_service_server::DevService for DevTokens {
    async fn issue_dev_token(
        &self,
        request: Request<v1::IssueDevTokenRequest>,
    ) -> Result<Response<v1::IssueDevTokenResponse>, Status> {
        use cadenza_runtime::status::{Violation, invalid_argument};
        let request = request.into_inner();
        let subject = if request.subject.is_empty() {
            "dev".to_owned()
        } else {
            request.subject
        };
        let ttl = match request.ttl_seconds {
            0 => DEFAULT_DEV_TTL,
            t if (60..=MAX_DEV_TTL).contains(&t) => t,
            _ => {
                return Err(invalid_argument(vec![Violation::new(
                    "ttl_seconds",
                    format!("must be 60 to {MAX_DEV_TTL}"),
                )]));
            }
        };
        if !cadenza_auth::valid_subject(&subject) {
            return Err(invalid_argument(vec![Violation::new(
                "subject",
                "use 1 to 64 letters, digits, `-`, `_`, `.` or `@`",
            )]));
        }
        if crate::auth::names_an_account(&subject) {
            return Err(invalid_argument(vec![Violation::new(
                "subject",
                "a dev token cannot name an account (a UUID); choose another name",
            )]));
        }
        let (token, expires) = self
            .keys
            .issue(&subject, chrono::Duration::seconds(i64::from(ttl)))
            .map_err(|err| cadenza_runtime::status::internal(&err))?;
        tracing::info!(subject = %subject, "dev token issued");
        Ok(Response::new(v1::IssueDevTokenResponse {
            token,
            expire_time: Some(cadenza_proto::timestamp(expires)),
        }))
    }
}
