//! Page tokens of ListOwnerObjects: the last key of the previous page, opaque
//! to callers. A token is only accepted for the owner it was issued to.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadenza_runtime::status::{self, Violation};
use tonic::Status;

use crate::keys;

pub fn encode(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key)
}

/// The key to continue after, or `None` for the first page.
pub fn decode(token: &str, owner: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| keys::parse_key(key).is_ok() && keys::owner_of(key) == owner)
        .map(Some)
        .ok_or_else(|| {
            status::invalid_argument(vec![Violation::new(
                "page_token",
                "is not a token from a previous response for this owner",
            )])
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "users/alice/projects/0190b8d2-7c1e-7cc0-a1b2-0123456789ab/runs/0190b8d2-7c1e-7cc0-a1b2-0123456789ac/master.wav";

    #[test]
    fn tokens_round_trip_for_their_owner_only() {
        let token = encode(KEY);
        assert_eq!(decode(&token, "alice").ok().flatten().as_deref(), Some(KEY));
        assert!(decode(&token, "bob").is_err());
        assert!(decode("not base64!", "alice").is_err());
        assert_eq!(decode("", "alice").ok(), Some(None));
    }
}
