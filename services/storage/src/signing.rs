//! HMAC-signed download URLs for the local backend.

use cadenza_config::{ExposeSecret, SecretString};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks `(key, expiry, download name)` triples.
#[derive(Clone)]
pub struct UrlSigner {
    key: SecretString,
}

impl UrlSigner {
    pub fn new(key: SecretString) -> Self {
        Self { key }
    }

    fn mac(&self, key: &str, expires: i64, name: &str) -> HmacSha256 {
        let mut mac = match HmacSha256::new_from_slice(self.key.expose_secret().as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        // Newline-separated: none of the fields can contain one.
        mac.update(format!("GET\n{key}\n{expires}\n{name}").as_bytes());
        mac
    }

    pub fn sign(&self, key: &str, expires: i64, name: &str) -> String {
        hex::encode(self.mac(key, expires, name).finalize().into_bytes())
    }

    /// Constant-time check of a signature.
    pub fn verify(&self, key: &str, expires: i64, name: &str, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        self.mac(key, expires, name).verify_slice(&bytes).is_ok()
    }
}

/// Keeps only characters that need no escaping in a URL or a header.
pub fn safe_download_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(100)
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') {
        "download".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_field() {
        let signer = UrlSigner::new(SecretString::from("k".repeat(32)));
        let sig = signer.sign("users/a/x", 100, "song.wav");
        assert!(signer.verify("users/a/x", 100, "song.wav", &sig));
        assert!(!signer.verify("users/b/x", 100, "song.wav", &sig));
        assert!(!signer.verify("users/a/x", 101, "song.wav", &sig));
        assert!(!signer.verify("users/a/x", 100, "other.wav", &sig));
        assert!(!signer.verify("users/a/x", 100, "song.wav", "zz"));
        let other = UrlSigner::new(SecretString::from("j".repeat(32)));
        assert!(!other.verify("users/a/x", 100, "song.wav", &sig));
    }

    #[test]
    fn download_names_are_sanitised() {
        assert_eq!(safe_download_name("my song (1).wav"), "mysong1.wav");
        assert_eq!(safe_download_name("../.."), "download");
    }
}
