//! Authenticating callers and forwarding their identity.

use cadenza_auth::mesh::{AssertionSigner, Credential, Role, Scope, Service};
use cadenza_auth::{AuthError, TokenKeys};
use cadenza_proto::v1;
use cadenza_runtime::status;
use tonic::{Request, Status};

/// Who a verified credential speaks for: the same record the gateway signs
/// into each upstream call's assertion.
pub type Caller = cadenza_auth::mesh::User;

pub(crate) fn missing_scope(scope: &str) -> Status {
    status::with_reason(
        tonic::Code::PermissionDenied,
        "API_KEY_SCOPE",
        format!("this API key lacks the `{scope}` scope"),
    )
}

/// What a caller may do, judged from its credential.
pub trait Permissions {
    /// Reading (an API key needs the `read` scope).
    fn may_read(&self) -> Result<(), Status>;
    /// Viewers read; everything that creates, changes or generates is
    /// refused, and an API key needs the `generate` scope for it.
    fn may_write(&self) -> Result<(), Status>;
    /// Administrators only (`project` checks the role again in its
    /// database, where a change takes effect at once).
    fn is_admin(&self) -> Result<(), Status>;
    /// Managing API keys takes a signed-in session: a key cannot mint keys.
    fn is_session(&self) -> Result<(), Status>;
}

impl Permissions for Caller {
    fn may_read(&self) -> Result<(), Status> {
        if self.has_scope(Scope::Read) {
            Ok(())
        } else {
            Err(missing_scope("read"))
        }
    }

    fn may_write(&self) -> Result<(), Status> {
        if self.role == Role::Viewer {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "VIEWER_READ_ONLY",
                "your account can view songs but not create or change them",
            ));
        }
        if self.has_scope(Scope::Generate) {
            Ok(())
        } else {
            Err(missing_scope("generate"))
        }
    }

    fn is_admin(&self) -> Result<(), Status> {
        if self.role != Role::Admin {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "ADMIN_ONLY",
                "only administrators may do this",
            ));
        }
        Ok(())
    }

    fn is_session(&self) -> Result<(), Status> {
        if matches!(self.credential, Credential::ApiKey { .. }) {
            return Err(status::with_reason(
                tonic::Code::PermissionDenied,
                "SESSION_REQUIRED",
                "API keys are managed from a signed-in session, not with an API key",
            ));
        }
        Ok(())
    }
}

/// An API key's scopes as `project` reports them.
pub fn scopes_of(scopes: &[i32]) -> Vec<Scope> {
    scopes
        .iter()
        .filter_map(|s| match v1::ApiKeyScope::try_from(*s).ok()? {
            v1::ApiKeyScope::Read => Some(Scope::Read),
            v1::ApiKeyScope::Generate => Some(Scope::Generate),
            v1::ApiKeyScope::Admin => Some(Scope::Admin),
            v1::ApiKeyScope::Unspecified => None,
        })
        .collect()
}

/// The caller an access token names. Tokens without a role are dev tokens:
/// accepted only in dev mode.
pub fn verify_token(keys: &TokenKeys, dev_mode: bool, token: &str) -> Result<Caller, Status> {
    match keys.verify(token) {
        Ok(claims) => match claims.role.as_deref().map(Role::parse) {
            Some(Some(role)) => Ok(Caller {
                subject: claims.sub,
                role,
                credential: Credential::Session,
            }),
            Some(None) => Err(status::unauthenticated("the access token is not valid")),
            // A dev token never speaks for an account (accounts are named by
            // their UUID): dev mode must not be a way into someone's songs.
            None if dev_mode && !names_an_account(&claims.sub) => Ok(Caller {
                subject: claims.sub,
                role: Role::User,
                credential: Credential::DevToken,
            }),
            None if dev_mode => Err(status::unauthenticated(
                "a dev token cannot act for a registered account; sign in",
            )),
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

/// Whether `subject` has the shape of a registered account's subject (its id).
pub fn names_an_account(subject: &str) -> bool {
    uuid::Uuid::parse_str(subject).is_ok()
}

/// A fresh request to `project` carrying only the message and an assertion,
/// signed here, of the caller (if any) and the client's address (for the
/// audit log and the sign-in throttle). Nothing the client sent but the
/// message goes upstream.
pub fn upstream<T>(
    signer: &AssertionSigner,
    caller: Option<&Caller>,
    address: Option<std::net::IpAddr>,
    message: T,
) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    cadenza_runtime::mesh_auth::assert_for(
        signer,
        Service::Project,
        caller,
        address,
        request.metadata_mut(),
    )?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_token_naming_an_account_is_refused_even_in_dev_mode() {
        let keys = TokenKeys::random();
        let account = uuid::Uuid::new_v4().to_string();
        let (token, _) = keys
            .issue(&account, chrono::Duration::minutes(5))
            .expect("token");
        let refused = verify_token(&keys, true, &token).expect_err("an account's name");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let (token, _) = keys
            .issue("tinkerer", chrono::Duration::minutes(5))
            .expect("token");
        assert_eq!(
            verify_token(&keys, true, &token)
                .expect("a dev name")
                .credential,
            Credential::DevToken
        );
        assert!(
            verify_token(&keys, false, &token).is_err(),
            "not outside dev mode"
        );
    }
}
