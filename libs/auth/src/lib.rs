#![doc = include_str!("../README.md")]

pub mod mesh;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const ISSUER: &str = "cadenza";
const AUDIENCE: &str = "cadenza-api";
/// Shorter secrets make HS256 guessable.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The subject: who the token speaks for, and the owner of what they create.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// `viewer`, `user` or `admin`; absent on dev tokens, which act as `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
    #[error("`{0}` is not a valid subject: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`")]
    BadSubject(String),
    #[error("the signing secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
}

/// Seconds of clock difference between machines that a token's times may show.
const LEEWAY_SECONDS: i64 = 30;

/// Issues tokens with the active secret and verifies tokens signed with it or with
/// any previous secret still configured, found by the key id (`kid`) in the token
/// header. Rotating: make the new secret active and keep the old one as previous
/// until the last token it signed has expired.
#[derive(Clone)]
pub struct TokenKeys {
    active_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenKeys(active {}, {} verifying)",
            self.active_kid,
            self.decoding.len()
        )
    }
}

/// The key id of a secret: a short hash, so it names the key without revealing it
/// and configuration needs no separate id.
pub fn key_id(secret: &SecretString) -> String {
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenKeys {
    pub fn new(secret: &SecretString) -> Result<Self, AuthError> {
        Self::with_previous(secret, &[])
    }

    /// `active` signs and verifies; `previous` only verify.
    pub fn with_previous(
        active: &SecretString,
        previous: &[SecretString],
    ) -> Result<Self, AuthError> {
        let mut decoding = HashMap::new();
        for secret in std::iter::once(active).chain(previous) {
            let bytes = secret.expose_secret().as_bytes();
            if bytes.len() < MIN_SECRET_BYTES {
                return Err(AuthError::WeakSecret);
            }
            decoding.insert(key_id(secret), DecodingKey::from_secret(bytes));
        }
        Ok(Self {
            active_kid: key_id(active),
            encoding: EncodingKey::from_secret(active.expose_secret().as_bytes()),
            decoding,
        })
    }

    /// The configured ring, or in dev mode without a secret a random key (tokens
    /// then die with the process, and only this process verifies them).
    pub fn from_secrets(
        active: Option<&SecretString>,
        previous: &[SecretString],
    ) -> Result<Self, AuthError> {
        match active {
            Some(secret) => Self::with_previous(secret, previous),
            None => Ok(Self::random()),
        }
    }

    /// A random secret, for dev mode when none is configured.
    pub fn random() -> Self {
        match Self::new(&random_secret()) {
            Ok(keys) => keys,
            Err(_) => unreachable!("a 64-byte secret is long enough"),
        }
    }

    pub fn issue(
        &self,
        subject: &str,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        self.issue_with_role(subject, None, ttl)
    }

    pub fn issue_with_role(
        &self,
        subject: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        if !valid_subject(subject) {
            return Err(AuthError::BadSubject(subject.chars().take(80).collect()));
        }
        let now = Utc::now();
        let expires = now + ttl;
        let claims = Claims {
            sub: subject.to_owned(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            role: role.map(str::to_owned),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.active_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)?;
        Ok((token, expires))
    }

    /// Checks signature (HS256 only: `alg: none` and every other algorithm are
    /// refused), key id, issuer, audience, expiry, and an issue time not in the future.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(AuthError::Invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECONDS as u64;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|err| {
                match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        if !valid_subject(&data.claims.sub)
            || data.claims.iat > Utc::now().timestamp() + LEEWAY_SECONDS
        {
            return Err(AuthError::Invalid);
        }
        Ok(data.claims)
    }
}

/// 64 random hex characters.
pub fn random_secret() -> SecretString {
    let secret: String = (0..2)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    SecretString::from(secret)
}

/// Subjects become storage key prefixes and log fields: keep them plain.
pub fn valid_subject(subject: &str) -> bool {
    (1..=64).contains(&subject.len())
        && subject
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        && !subject.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_name_their_subject() {
        let keys = TokenKeys::random();
        let (token, expires) = keys.issue("alice", Duration::minutes(5)).expect("issue");
        assert!(expires > Utc::now());
        assert_eq!(keys.verify(&token).expect("valid").sub, "alice");
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let keys = TokenKeys::random();
        let other = TokenKeys::random();
        let (foreign, _) = other.issue("alice", Duration::minutes(5)).expect("issue");
        assert_eq!(keys.verify(&foreign), Err(AuthError::Invalid));
        let (expired, _) = keys.issue("alice", Duration::minutes(-10)).expect("issue");
        assert_eq!(keys.verify(&expired), Err(AuthError::Expired));
        assert_eq!(keys.verify("not.a.token"), Err(AuthError::Invalid));
        let (token, _) = keys.issue("alice", Duration::minutes(5)).expect("issue");
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(keys.verify(&tampered), Err(AuthError::Invalid));
    }

    fn forge(header: &str, claims: &Claims) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = serde_json::to_vec(claims).expect("json");
        format!("{}.{}.", b64.encode(header), b64.encode(body))
    }

    fn claims_for(sub: &str, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat,
            exp: iat + 600,
            jti: "x".into(),
            role: None,
        }
    }

    #[test]
    fn unsigned_and_future_dated_tokens_are_refused() {
        let keys = TokenKeys::random();
        let now = Utc::now().timestamp();
        let unsigned = forge(r#"{"alg":"none","typ":"JWT"}"#, &claims_for("alice", now));
        assert_eq!(keys.verify(&unsigned), Err(AuthError::Invalid));
        let kid = keys.active_kid.clone();
        let unsigned_with_kid = forge(
            &format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#),
            &claims_for("alice", now),
        );
        assert_eq!(keys.verify(&unsigned_with_kid), Err(AuthError::Invalid));
        // Correctly signed, but issued an hour from now.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid);
        let future =
            jsonwebtoken::encode(&header, &claims_for("alice", now + 3600), &keys.encoding)
                .expect("encode");
        assert_eq!(keys.verify(&future), Err(AuthError::Invalid));
    }

    #[test]
    fn rotated_keys_still_verify_their_tokens_until_dropped() {
        let old = random_secret();
        let new = random_secret();
        let before = TokenKeys::new(&old).expect("old keys");
        let (old_token, _) = before.issue("alice", Duration::minutes(5)).expect("issue");
        let rotated = TokenKeys::with_previous(&new, std::slice::from_ref(&old)).expect("rotated");
        assert_eq!(rotated.verify(&old_token).expect("old token").sub, "alice");
        let (new_token, _) = rotated.issue("bob", Duration::minutes(5)).expect("issue");
        assert_ne!(
            jsonwebtoken::decode_header(&new_token).expect("header").kid,
            jsonwebtoken::decode_header(&old_token).expect("header").kid
        );
        assert_eq!(rotated.verify(&new_token).expect("new token").sub, "bob");
        let dropped = TokenKeys::new(&new).expect("old key dropped");
        assert_eq!(dropped.verify(&old_token), Err(AuthError::Invalid));
    }

    #[test]
    fn roles_travel_in_the_token() {
        let keys = TokenKeys::random();
        let (token, _) = keys
            .issue_with_role("alice", Some("viewer"), Duration::minutes(5))
            .expect("issue");
        assert_eq!(
            keys.verify(&token).expect("valid").role.as_deref(),
            Some("viewer")
        );
    }

    #[test]
    fn subjects_are_plain() {
        assert!(valid_subject("dev"));
        assert!(valid_subject("alice@example.com"));
        for bad in ["", "../etc", "a b", "x/y", ".hidden", &"a".repeat(65)] {
            assert!(!valid_subject(bad), "{bad}");
        }
        assert!(TokenKeys::new(&SecretString::from("short")).is_err());
    }
}
