//! Identity inside the mesh: short-lived assertions one service signs for the
//! service it calls.
//!
//! A call between services carries an assertion: a JWT naming the calling
//! service (`iss`), the service called (`aud`), a lifetime of seconds and,
//! when the call acts for a user, who that user is (subject, role, the kind of
//! credential they signed in with and an API key's scopes) and the address
//! they called from. The callee believes nothing else about the call: a bare
//! header naming a user means nothing.
//!
//! Every link of the mesh ([`LINKS`]: gateway → project, gateway → generation,
//! project → storage, generation → storage) has a secret of its own, held by
//! its two ends only. So no service holds a secret another service would
//! accept from a third: `generation`, which parses what hosted providers send,
//! holds the secret of gateway → generation but not that of gateway → project,
//! and cannot act as a user at `project`. A link's secret rotates like the
//! access-token keys: the key id in each assertion's header names the secret
//! that signed it, so a callee accepts old and new while callers switch.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{MIN_SECRET_BYTES, key_id, valid_subject};

/// The gRPC metadata key an assertion travels in.
pub const ASSERTION_HEADER: &str = "x-cadenza-assertion";
/// How long an assertion is good for: long enough for a call to arrive,
/// too short to be worth stealing.
pub const LIFETIME_SECONDS: i64 = 30;
/// Clock difference between machines an assertion's times may show.
const LEEWAY_SECONDS: u64 = 10;
/// Issuers and audiences are `cadenza-mesh/<service>`, never the access
/// tokens' `cadenza`/`cadenza-api`: one can never pass for the other.
const NAME_PREFIX: &str = "cadenza-mesh/";

/// A service of the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Gateway,
    Project,
    Generation,
    Storage,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Gateway,
        Service::Project,
        Service::Generation,
        Service::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Project => "project",
            Service::Generation => "generation",
            Service::Storage => "storage",
        }
    }

    /// The DNS name in a service's certificate that says which service it is
    /// (`project.identity.cadenza.internal`). `.internal` is reserved for
    /// private use, so it never names a host on the internet.
    pub fn identity_name(self) -> String {
        format!("{}{IDENTITY_SUFFIX}", self.as_str())
    }

    /// The service a certificate's DNS name proves, if it is an identity name.
    pub fn from_identity_name(name: &str) -> Option<Service> {
        name.strip_suffix(IDENTITY_SUFFIX)?.parse().ok()
    }

    fn claim(self) -> String {
        format!("{NAME_PREFIX}{}", self.as_str())
    }

    fn from_claim(claim: &str) -> Option<Service> {
        claim.strip_prefix(NAME_PREFIX)?.parse().ok()
    }
}

/// Who calls whom: each link is (caller, callee), and has a secret of its own.
pub const LINKS: [(Service, Service); 4] = [
    (Service::Gateway, Service::Project),
    (Service::Gateway, Service::Generation),
    (Service::Project, Service::Storage),
    (Service::Generation, Service::Storage),
];

/// The suffix of identity names in certificates.
pub const IDENTITY_SUFFIX: &str = ".identity.cadenza.internal";

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|service| service.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a service: use gateway, project, generation or storage")
            })
    }
}

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Generate,
    Admin,
}

/// How the user proved who they are at the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    /// An access token from signing in: everything the role allows.
    Session,
    /// An API key: only what its scopes allow.
    ApiKey { scopes: Vec<Scope> },
    /// A dev-mode token (no account behind it).
    DevToken,
}

/// The user a call acts for, as the gateway verified them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub subject: String,
    pub role: Role,
    pub credential: Credential,
}

impl User {
    /// Whether an API key's scopes include `scope` (sessions and dev tokens
    /// are not limited by scopes).
    pub fn has_scope(&self, scope: Scope) -> bool {
        match &self.credential {
            Credential::ApiKey { scopes } => scopes.contains(&scope),
            Credential::Session | Credential::DevToken => true,
        }
    }
}

/// A verified assertion: who called, for whom, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// The service that signed it.
    pub caller: Service,
    /// The user the call acts for; `None` for the service's own work (a
    /// sign-in before anyone is signed in, a background sweep, a probe).
    pub user: Option<User>,
    /// The end user's network address as the gateway determined it.
    pub client_address: Option<IpAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addr: Option<IpAddr>,
}

/// Why an assertion was refused. The messages are safe to return to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    #[error("the call carries no mesh assertion; only services of the mesh may call this one")]
    Missing,
    #[error("the mesh assertion has expired")]
    Expired,
    #[error("the mesh assertion is signed with a key this service does not trust")]
    UnknownKey,
    #[error("the mesh assertion is not valid")]
    Invalid,
    #[error("the mesh assertion is meant for {0}, not this service")]
    WrongAudience(String),
    #[error("the mesh secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
    #[error("{0} holds no secret for calls to {1}")]
    NoLink(Service, Service),
}

/// Signs this service's assertions, with the secret of the link to each
/// service it calls.
#[derive(Clone)]
pub struct AssertionSigner {
    issuer: Service,
    /// Audience → the key id and key of the link to it.
    links: HashMap<Service, (String, EncodingKey)>,
}

impl fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut audiences: Vec<&Service> = self.links.keys().collect();
        audiences.sort();
        write!(f, "AssertionSigner({} to {audiences:?})", self.issuer)
    }
}

impl AssertionSigner {
    /// A signer for `issuer` that can sign for no one yet.
    pub fn new(issuer: Service) -> Self {
        Self {
            issuer,
            links: HashMap::new(),
        }
    }

    /// Signs assertions for `audience` with `secret`, the link's secret.
    pub fn with_link(
        mut self,
        audience: Service,
        secret: &SecretString,
    ) -> Result<Self, AssertionError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(AssertionError::WeakSecret);
        }
        self.links
            .insert(audience, (key_id(secret), EncodingKey::from_secret(bytes)));
        Ok(self)
    }

    pub fn issuer(&self) -> Service {
        self.issuer
    }

    /// An assertion for a call to `audience`, acting for `user` if any.
    pub fn sign(
        &self,
        audience: Service,
        user: Option<&User>,
        client_address: Option<IpAddr>,
    ) -> Result<String, AssertionError> {
        let (kid, key) = self
            .links
            .get(&audience)
            .ok_or(AssertionError::NoLink(self.issuer, audience))?;
        if user.is_some_and(|user| !valid_subject(&user.subject)) {
            return Err(AssertionError::Invalid);
        }
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.claim(),
            aud: audience.claim(),
            iat: now,
            exp: now + LIFETIME_SECONDS,
            user: user.cloned(),
            addr: client_address,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, &claims, key).map_err(|_| AssertionError::Invalid)
    }
}

/// Verifies assertions addressed to this service, signed by the services it
/// trusts.
#[derive(Clone)]
pub struct AssertionVerifier {
    audience: Service,
    /// Key id → the key and the services it may speak for (one secret may be
    /// shared by services that run in one process).
    keys: HashMap<String, (DecodingKey, Vec<Service>)>,
    validation: Validation,
}

impl fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AssertionVerifier({}, {} keys)",
            self.audience,
            self.keys.len()
        )
    }
}

impl AssertionVerifier {
    /// A verifier for `audience` trusting each `(service, secret)` pair: the
    /// secret's assertions may name that service as their caller.
    pub fn new(
        audience: Service,
        trusted: &[(Service, SecretString)],
    ) -> Result<Self, AssertionError> {
        let mut keys: HashMap<String, (DecodingKey, Vec<Service>)> = HashMap::new();
        for (service, secret) in trusted {
            let bytes = secret.expose_secret().as_bytes();
            if bytes.len() < MIN_SECRET_BYTES {
                return Err(AssertionError::WeakSecret);
            }
            keys.entry(key_id(secret))
                .or_insert_with(|| (DecodingKey::from_secret(bytes), Vec::new()))
                .1
                .push(*service);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience.claim()]);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(Self {
            audience,
            keys,
            validation,
        })
    }

    pub fn audience(&self) -> Service {
        self.audience
    }

    /// The services this verifier holds a key of.
    pub fn trusted(&self) -> Vec<Service> {
        let mut services: Vec<Service> = self
            .keys
            .values()
            .flat_map(|(_, services)| services.iter().copied())
            .collect();
        services.sort();
        services.dedup();
        services
    }

    /// Checks the signature (HS256 only), the key's right to the issuer it
    /// names, the audience, and a lifetime that has begun and not ended.
    pub fn verify(&self, token: &str) -> Result<Assertion, AssertionError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AssertionError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(AssertionError::Invalid);
        }
        let (key, services) = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(AssertionError::UnknownKey)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(
                |err| match err.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AssertionError::Expired,
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        AssertionError::WrongAudience(audience_of(token))
                    }
                    _ => AssertionError::Invalid,
                },
            )?;
        let claims = data.claims;
        let caller = Service::from_claim(&claims.iss).ok_or(AssertionError::Invalid)?;
        // A key speaks only for the services it was configured for.
        if !services.contains(&caller) {
            return Err(AssertionError::UnknownKey);
        }
        let now = Utc::now().timestamp();
        let leeway = LEEWAY_SECONDS as i64;
        // Issued in the future, or meant to live longer than any signer makes
        // them: not one of ours.
        if claims.iat > now + leeway || claims.exp - claims.iat > LIFETIME_SECONDS {
            return Err(AssertionError::Invalid);
        }
        if claims
            .user
            .as_ref()
            .is_some_and(|user| !valid_subject(&user.subject))
        {
            return Err(AssertionError::Invalid);
        }
        Ok(Assertion {
            caller,
            user: claims.user,
            client_address: claims.addr,
        })
    }
}

/// The audience an assertion names, for the refusal's message (the signature
/// has been checked by then: only the audience was wrong).
fn audience_of(token: &str) -> String {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|body| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Claims>(&bytes).ok())
        .and_then(|claims| Service::from_claim(&claims.aud))
        .map_or_else(|| "another service".to_owned(), |s| s.to_string())
}

/// The variable holding the secrets of the link `caller` → `callee`
/// (`CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET`).
pub fn link_variable(caller: Service, callee: Service) -> String {
    format!(
        "CADENZA_MESH_{}_TO_{}_SECRET",
        caller.as_str().to_ascii_uppercase(),
        callee.as_str().to_ascii_uppercase()
    )
}

/// Parses a link's secrets: comma-separated, each at least 32 bytes. The
/// caller signs with the first; the callee accepts every one (while a secret
/// rotates, the list holds the old one too).
pub fn parse_secrets(list: &str) -> Result<Vec<SecretString>, String> {
    let secrets: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return Err("holds no secret".into());
    }
    if let Some(index) = secrets.iter().position(|s| s.len() < MIN_SECRET_BYTES) {
        return Err(format!(
            "secret {} of {} is shorter than {MIN_SECRET_BYTES} bytes",
            index + 1,
            secrets.len()
        ));
    }
    Ok(secrets
        .into_iter()
        .map(|s| SecretString::from(s.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests;
