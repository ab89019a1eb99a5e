//! Secrets at rest: Argon2id for passwords, SHA-256 for refresh tokens.
//!
//! Argon2id parameters are OWASP's first recommendation (19 MiB, 2 passes, 1 lane);
//! `cargo bench -p cadenza-project --bench password` measures their cost. Hashing
//! runs on the blocking pool: it is deliberately slow.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;
/// Refresh tokens carry this prefix, so a leaked one is recognisable in a scan.
const REFRESH_PREFIX: &str = "cdz_rt_";

fn argon2() -> Argon2<'static> {
    let params = match Params::new(19 * 1024, 2, 1, None) {
        Ok(params) => params,
        Err(_) => unreachable!("constant Argon2 parameters are valid"),
    };
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
}

/// Whether `password` matches the stored PHC string (in constant time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the account does not exist, so a missing
/// account costs the same time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a real password, only spends time").unwrap_or_default())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(format!(
            "must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// A new refresh token: 256 random bits.
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a refresh token.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password(
            "correct horse battery",
            "not a phc string"
        ));
        assert_ne!(
            hash,
            hash_password("correct horse battery").expect("hash"),
            "salted"
        );
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert!(a.starts_with("cdz_rt_") && a.len() > 40);
        assert_eq!(refresh_token_hash(&a).len(), 64);
        assert_ne!(refresh_token_hash(&a), a);
    }
}
