//! Accounts and sessions: registration, sign-in, rotating refresh tokens with
//! reuse detection, terms acceptance. Access tokens are signed here and verified
//! by the gateway with the same keys.

pub mod admin;
pub mod api;
pub mod api_keys;
pub mod audit;
pub mod credentials;
pub mod email;
pub mod hashing;
pub mod store;
pub mod throttle;

use std::sync::Arc;

use cadenza_auth::TokenKeys;
use chrono::Duration;

/// What the accounts API needs besides the database.
#[derive(Clone)]
pub struct AccountsConfig {
    pub keys: Arc<TokenKeys>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub terms_version: String,
    /// Credits every new account starts with.
    pub signup_credits: i64,
    /// Sign-in limits.
    pub throttle: throttle::ThrottleConfig,
    /// Runs password hashes within a memory budget.
    pub hasher: hashing::Hasher,
}
