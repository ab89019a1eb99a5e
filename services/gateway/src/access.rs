//! Who may call which public method: one table ([`METHODS`]), enforced by one
//! tower layer ([`AccessLayer`]) in front of every public service.
//!
//! The layer authenticates the bearer credential (an access token verified
//! here, or an API key verified by `project` and cached briefly), checks it
//! against the method's [`Access`], takes a token from the caller's rate-limit
//! buckets, and hands the admitted caller to the handlers in the request's
//! extensions ([`Admitted`]). A gRPC method missing from the table is refused
//! before any handler runs: a new RPC is unreachable until someone decides
//! here who may call it (a test walks every public method and fails on one
//! that is missing).

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use cadenza_auth::TokenKeys;
use cadenza_auth::mesh::{Credential, Role, Scope};
use cadenza_proto::v1::{self, credential_service_client::CredentialServiceClient};
use cadenza_runtime::status;
use cadenza_telemetry::grpc::TracedChannel;
use futures::future::BoxFuture;
use tonic::Status;
use tonic::transport::server::TcpConnectInfo;

use crate::auth::{Caller, Permissions, missing_scope, scopes_of, verify_token};
use crate::client_address::TrustedProxies;
use crate::key_cache::KeyCache;
use crate::limits::{Class, Limits};

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential or a rate limit: health, reflection and
    /// the version, which say nothing about anyone.
    Open,
    /// No credential (signing up and in, refreshing, signing out, opening a
    /// gift page); limited per client address.
    Anonymous,
    /// Any signed-in caller; an API key needs the `read` scope.
    Read,
    /// Creating, changing or generating: not viewers; an API key needs the
    /// `generate` scope.
    Write,
    /// A signed-in session, never an API key: managing keys, accepting terms,
    /// deleting the account.
    Session,
    /// An administrator's session, or an administrator's API key with the
    /// `admin` scope (`project` checks the role again, in its database).
    Admin,
}

/// Every public method and what it asks of its caller.
pub const METHODS: &[(&str, Access)] = &[
    // Accounts
    ("/cadenza.v1.AuthService/Register", Access::Anonymous),
    ("/cadenza.v1.AuthService/Login", Access::Anonymous),
    ("/cadenza.v1.AuthService/Refresh", Access::Anonymous),
    ("/cadenza.v1.AuthService/Logout", Access::Anonymous),
    ("/cadenza.v1.AuthService/GetCurrentUser", Access::Read),
    ("/cadenza.v1.AuthService/AcceptTerms", Access::Session),
    ("/cadenza.v1.AuthService/DeleteAccount", Access::Session),
    ("/cadenza.v1.ApiKeyService/CreateApiKey", Access::Session),
    ("/cadenza.v1.ApiKeyService/ListApiKeys", Access::Session),
    ("/cadenza.v1.ApiKeyService/RevokeApiKey", Access::Session),
    ("/cadenza.v1.UsageService/GetUsage", Access::Read),
    // Songs
    ("/cadenza.v1.ProjectService/CreateProject", Access::Write),
    ("/cadenza.v1.ProjectService/GetProject", Access::Read),
    ("/cadenza.v1.ProjectService/ListProjects", Access::Read),
    ("/cadenza.v1.ProjectService/UpdateProject", Access::Write),
    ("/cadenza.v1.ProjectService/DeleteProject", Access::Write),
    ("/cadenza.v1.ProjectService/GenerateSong", Access::Write),
    ("/cadenza.v1.ProjectService/CancelGeneration", Access::Write),
    ("/cadenza.v1.ProjectService/GetProjectStatus", Access::Read),
    ("/cadenza.v1.ProjectService/WatchProject", Access::Read),
    ("/cadenza.v1.ProjectService/ListJobLogs", Access::Read),
    ("/cadenza.v1.ProjectService/GetProvenance", Access::Read),
    ("/cadenza.v1.TrackService/CreateTrack", Access::Write),
    ("/cadenza.v1.TrackService/GetTrack", Access::Read),
    ("/cadenza.v1.TrackService/GetJob", Access::Read),
    ("/cadenza.v1.AssetService/ListAssets", Access::Read),
    ("/cadenza.v1.AssetService/GetDownloadUrl", Access::Read),
    ("/cadenza.v1.AssetService/ReadAsset", Access::Read),
    // Sharing
    ("/cadenza.v1.ShareService/CreateShareLink", Access::Write),
    ("/cadenza.v1.ShareService/ListShareLinks", Access::Read),
    ("/cadenza.v1.ShareService/RevokeShareLink", Access::Write),
    ("/cadenza.v1.ShareService/GetSharedSong", Access::Anonymous),
    // Administration
    ("/cadenza.v1.AdminService/ChangeRole", Access::Admin),
    ("/cadenza.v1.AdminService/ChangePlan", Access::Admin),
    ("/cadenza.v1.AdminService/GrantCredits", Access::Admin),
    ("/cadenza.v1.AdminService/ListAuditEvents", Access::Admin),
    ("/cadenza.v1.AdminService/ListDeadLetters", Access::Admin),
    ("/cadenza.v1.AdminService/RequeueDeadLetter", Access::Admin),
    ("/cadenza.v1.AdminService/DismissDeadLetter", Access::Admin),
    (
        "/cadenza.v1.ProviderService/GetProviderHealth",
        Access::Admin,
    ),
    // Served only in dev mode (the service is not registered otherwise).
    ("/cadenza.v1.DevService/IssueDevToken", Access::Anonymous),
    // What the port itself answers.
    ("/cadenza.v1.VersionService/GetVersion", Access::Open),
    ("/grpc.health.v1.Health/Check", Access::Open),
    ("/grpc.health.v1.Health/Watch", Access::Open),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Access::Open,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Access::Open,
    ),
];

/// What `path` (`/package.Service/Method`) asks of its caller; `None` for a
/// method the table does not name.
pub fn access(path: &str) -> Option<Access> {
    METHODS
        .iter()
        .find(|(method, _)| *method == path)
        .map(|(_, access)| *access)
}

/// How the gateway learns who calls.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Verify the bearer credential of every call (the only mode a running
    /// gateway uses).
    Verify,
    /// Treat every call as this caller, verifying nothing. Never set from
    /// configuration: it exists so a benchmark can measure, on the same RPC,
    /// what verification costs.
    Off(Caller),
}

/// A call the layer let through: who makes it (none for an anonymous call)
/// and from where.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub caller: Option<Caller>,
    pub address: Option<IpAddr>,
}

/// What the layer needs to admit a call.
pub struct Gate {
    pub authentication: Authentication,
    pub keys: TokenKeys,
    pub dev_mode: bool,
    pub limits: Arc<Limits>,
    pub key_cache: Arc<KeyCache>,
    /// Verifies API keys (`project`).
    pub credentials: CredentialServiceClient<TracedChannel>,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

const API_KEY_PREFIX: &str = "cdz_ak_";

/// Whether `caller` may make a call asking `access` (the rate limits aside).
pub fn authorize(caller: &Caller, access: Access) -> Result<Class, Status> {
    match access {
        Access::Open | Access::Anonymous => Ok(Class::Anonymous),
        Access::Read => caller.may_read().map(|()| Class::Read),
        Access::Write => caller.may_write().map(|()| Class::Generate),
        Access::Session => caller.is_session().map(|()| Class::Read),
        Access::Admin => {
            caller.is_admin()?;
            if !caller.has_scope(Scope::Admin) {
                return Err(missing_scope("admin"));
            }
            Ok(Class::Read)
        }
    }
}

impl Gate {
    /// Authenticates, authorises and rate-limits a call asking `access`.
    async fn admit(
        &self,
        access: Access,
        headers: &http::HeaderMap,
        address: Option<IpAddr>,
    ) -> Result<Admitted, Status> {
        if access == Access::Anonymous {
            self.limits.check(Class::Anonymous, None, address)?;
            return Ok(Admitted {
                caller: None,
                address,
            });
        }
        let caller = self.caller(headers).await?;
        let class = authorize(&caller, access)?;
        self.limits.check(class, Some(&caller.subject), address)?;
        Ok(Admitted {
            caller: Some(caller),
            address,
        })
    }

    /// Who the request's bearer credential speaks for: an access token
    /// verified here, or an API key verified by `project` (and cached briefly).
    async fn caller(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        if let Authentication::Off(caller) = &self.authentication {
            return Ok(caller.clone());
        }
        let credential = bearer(headers)?;
        if !credential.starts_with(API_KEY_PREFIX) {
            return verify_token(&self.keys, self.dev_mode, credential);
        }
        if let Some(caller) = self.key_cache.get(credential) {
            return Ok(caller);
        }
        let verified = self
            .credentials
            .clone()
            .verify_api_key(v1::VerifyApiKeyRequest {
                key: credential.to_owned(),
            })
            .await?
            .into_inner();
        let role = match v1::Role::try_from(verified.role) {
            Ok(v1::Role::Viewer) => Role::Viewer,
            Ok(v1::Role::Admin) => Role::Admin,
            _ => Role::User,
        };
        let caller = Caller {
            subject: verified.subject,
            role,
            credential: Credential::ApiKey {
                scopes: scopes_of(&verified.scopes),
            },
        };
        self.key_cache.put(credential, caller.clone());
        Ok(caller)
    }
}

/// The bearer credential of a request: an access token or an API key.
fn bearer(headers: &http::HeaderMap) -> Result<&str, Status> {
    let header = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        status::unauthenticated("sign in first: send `authorization: Bearer <token>`")
    })?;
    header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| status::unauthenticated("the authorization header must be `Bearer <token>`"))
}

/// Whether a request is a gRPC call (gRPC-web arrives here already translated);
/// anything else is the studio's files.
fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Tower layer admitting every public call by [`METHODS`].
#[derive(Clone)]
pub struct AccessLayer {
    gate: Arc<Gate>,
}

impl AccessLayer {
    pub fn new(gate: Gate) -> Self {
        Self {
            gate: Arc::new(gate),
        }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S, B, ResB> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // Take the service that was polled ready and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_grpc(&request) {
            return Box::pin(inner.call(request));
        }
        let access = match access(request.uri().path()) {
            Some(Access::Open) => return Box::pin(inner.call(request)),
            Some(access) => access,
            None => {
                let refused = Status::unimplemented("no such method");
                return Box::pin(std::future::ready(Ok(refused.into_http())));
            }
        };
        let gate = self.gate.clone();
        Box::pin(async move {
            let peer = request
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(TcpConnectInfo::remote_addr);
            let address = gate.trusted_proxies.client(peer, request.headers());
            match gate.admit(access, request.headers(), address).await {
                Ok(admitted) => {
                    request.extensions_mut().insert(admitted);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every method of every service the gateway describes to the public.
    fn public_methods() -> Vec<String> {
        let set = prost_types::FileDescriptorSet::decode(
            cadenza_proto::public_descriptor_set(true).as_slice(),
        )
        .expect("descriptors");
        let mut methods = Vec::new();
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        methods
    }

    #[test]
    fn every_public_method_is_in_the_table_and_nothing_else_is() {
        let methods = public_methods();
        assert!(methods.len() > 40, "{methods:?}");
        let missing: Vec<&String> = methods.iter().filter(|m| access(m).is_none()).collect();
        assert!(
            missing.is_empty(),
            "public methods nobody decided access for: {missing:?}"
        );
        let stale: Vec<&str> = METHODS
            .iter()
            .map(|(method, _)| *method)
            .filter(|method| !method.starts_with("/grpc."))
            .filter(|method| !methods.iter().any(|m| m == method))
            .collect();
        assert!(stale.is_empty(), "methods the API no longer has: {stale:?}");
        let mut sorted: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), METHODS.len(), "a method is listed twice");
    }

    #[test]
    fn no_internal_method_is_reachable() {
        for internal in [
            "/cadenza.v1.CredentialService/VerifyApiKey",
            "/cadenza.v1.CredentialService/ConfirmAdministrator",
            "/cadenza.v1.StorageService/PutObject",
        ] {
            assert_eq!(access(internal), None, "{internal}");
        }
    }

    fn caller(role: Role, credential: Credential) -> Caller {
        Caller {
            subject: "someone".into(),
            role,
            credential,
        }
    }

    #[test]
    fn an_administrators_key_administers_only_with_the_admin_scope() {
        let key = |scopes: Vec<Scope>| caller(Role::Admin, Credential::ApiKey { scopes });
        let read_only = authorize(&key(vec![Scope::Read]), Access::Admin).expect_err("read key");
        assert_eq!(read_only.code(), tonic::Code::PermissionDenied);
        assert!(
            read_only.message().contains("`admin` scope"),
            "{read_only:?}"
        );
        authorize(&key(vec![Scope::Admin]), Access::Admin).expect("admin key");
        authorize(&caller(Role::Admin, Credential::Session), Access::Admin).expect("session");
        // The scope without the role does nothing.
        let user_key = caller(
            Role::User,
            Credential::ApiKey {
                scopes: vec![Scope::Admin],
            },
        );
        assert!(authorize(&user_key, Access::Admin).is_err());
    }

    #[test]
    fn keys_stay_within_their_scopes_and_viewers_read() {
        let read_key = caller(
            Role::User,
            Credential::ApiKey {
                scopes: vec![Scope::Read],
            },
        );
        assert!(authorize(&read_key, Access::Read).is_ok());
        assert!(authorize(&read_key, Access::Write).is_err());
        assert!(authorize(&read_key, Access::Session).is_err());
        let viewer = caller(Role::Viewer, Credential::Session);
        assert!(authorize(&viewer, Access::Read).is_ok());
        assert!(authorize(&viewer, Access::Write).is_err());
    }
}
