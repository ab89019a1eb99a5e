//! Authenticating callers and forwarding their identity.

use cadenza_auth::{AuthError, TokenKeys};
use cadenza_proto::v1;
use cadenza_runtime::status;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// Set on every upstream request; `project` trusts only the gateway to set it.
pub const SUBJECT_HEADER: &str = "x-cadenza-subject";
/// Set on sign-in calls: the client's address, for the sign-in throttle.
pub const CLIENT_ADDRESS_HEADER: &str = "x-cadenza-client-address";

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    /// `viewer`, `user` or `admin`.
    pub role: String,
    /// An API key's scopes; `None` for a signed-in session (everything its role allows).
    pub scopes: Option<Vec<v1::ApiKeyScope>>,
}

fn missing_scope(scope: &str) -> Status {
    status::with_reason(
        tonic::Code::PermissionDenied,
        "API_KEY_SCOPE",
        format!("this API key lacks the `{scope}` scope"),
    )
}

impl Caller {
    pub fn may_read(&self) -> Result<(), Status> {
        match &self.scopes {
            Some(scopes) if !scopes.contains(&v1::ApiKeyScope::Read) => Err(missing_scope("read")),
            _ => Ok(()),
        }
    }

    /// Viewers read; everything that creates, changes or generates is refused,
    /// and an API key needs the `generate` scope for it.
    pub fn may_write(&self) -> Result<(), Status> {
        if self.role == "viewer" {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "VIEWER_READ_ONLY",
                "your account can view songs but not create or change them",
            ));
        }
        match &self.scopes {
            Some(scopes) if !scopes.contains(&v1::ApiKeyScope::Generate) => {
                Err(missing_scope("generate"))
            }
            _ => Ok(()),
        }
    }

    /// Administrators only (`project` checks the role again in its database,
    /// where a change takes effect at once).
    pub fn is_admin(&self) -> Result<(), Status> {
        if self.role != "admin" {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "ADMIN_ONLY",
                "only administrators may do this",
            ));
        }
        Ok(())
    }

    /// Managing API keys takes a signed-in session: a key cannot mint keys.
    pub fn is_session(&self) -> Result<(), Status> {
        if self.scopes.is_some() {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "SESSION_REQUIRED",
                "API keys are managed from a signed-in session, not with an API key",
            ));
        }
        Ok(())
    }
}

/// The bearer credential of a request: an access token or an API key.
pub fn bearer<T>(request: &Request<T>) -> Result<&str, Status> {
    let header = request.metadata().get("authorization").ok_or_else(|| {
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

/// The caller an access token names. Tokens without a role are dev tokens:
/// accepted only in dev mode.
pub fn verify_token(keys: &TokenKeys, dev_mode: bool, token: &str) -> Result<Caller, Status> {
    match keys.verify(token) {
        Ok(claims) => match claims.role {
            Some(role) => Ok(Caller {
                subject: claims.sub,
                role,
                scopes: None,
            }),
            None if dev_mode => Ok(Caller {
                subject: claims.sub,
                role: "user".into(),
                scopes: None,
            }),
            None => Err(status::unauthenticated(
                "dev tokens are accepted only in dev mode; sign in with an account",
            )),
        },
        Err(AuthError::Expired) => Err(status::unauthenticated(
            "your access token has expired; sign in again",
        )),
        Err(_) => Err(status::unauthenticated("the access token is not valid")),
    }
}

/// A fresh upstream request carrying only the message, the verified subject and
/// the client's address (for the audit log).
pub fn upstream<T>(
    subject: &str,
    address: Option<std::net::IpAddr>,
    message: T,
) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(subject)
        .map_err(|_| status::unauthenticated("the access token is not valid"))?;
    request.metadata_mut().insert(SUBJECT_HEADER, value);
    if let Some(value) = address.and_then(|ip| MetadataValue::try_from(ip.to_string()).ok()) {
        request.metadata_mut().insert(CLIENT_ADDRESS_HEADER, value);
    }
    Ok(request)
}
