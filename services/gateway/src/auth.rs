//! Authenticating callers and forwarding their identity.

use cadenza_auth::{AuthError, TokenKeys};
use cadenza_runtime::status;
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};

/// Set on every upstream request; `project` trusts only the gateway to set it.
pub const SUBJECT_HEADER: &str = "x-cadenza-subject";

/// The verified subject of a request's bearer token.
pub fn authenticate<T>(keys: &TokenKeys, request: &Request<T>) -> Result<String, Status> {
    let header = request.metadata().get("authorization").ok_or_else(|| {
        status::unauthenticated("sign in first: send `authorization: Bearer <token>`")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            status::unauthenticated("the authorization header must be `Bearer <token>`")
        })?;
    match keys.verify(token) {
        Ok(claims) => Ok(claims.sub),
        Err(AuthError::Expired) => Err(status::unauthenticated(
            "your access token has expired; sign in again",
        )),
        Err(_) => Err(status::unauthenticated("the access token is not valid")),
    }
}

/// A fresh upstream request carrying only the message and the verified subject.
pub fn upstream<T>(subject: &str, message: T) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(subject)
        .map_err(|_| status::unauthenticated("the access token is not valid"))?;
    request.metadata_mut().insert(SUBJECT_HEADER, value);
    Ok(request)
}
