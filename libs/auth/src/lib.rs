#![doc = include_str!("../README.md")]

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};

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

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    pub fn new(secret: &SecretString) -> Result<Self, AuthError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(AuthError::WeakSecret);
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
        })
    }

    /// A random secret, for dev mode when none is configured.
    pub fn random() -> Self {
        let secret: String = (0..2)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        let secret = SecretString::from(secret);
        // 64 hex characters always satisfy the minimum.
        match Self::new(&secret) {
            Ok(keys) => keys,
            Err(_) => unreachable!("a 64-byte secret is long enough"),
        }
    }

    pub fn issue(
        &self,
        subject: &str,
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
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)?;
        Ok((token, expires))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|err| {
                match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        if !valid_subject(&data.claims.sub) {
            return Err(AuthError::Invalid);
        }
        Ok(data.claims)
    }
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
