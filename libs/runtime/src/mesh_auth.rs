//! Who may call an internal service: every call proves its caller with a
//! signed assertion ([`cadenza_auth::mesh`]), and under mutual TLS with a
//! certificate naming the same service.
//!
//! Each link of the mesh has its own secret, given to its two ends only:
//!
//! | variable | given to |
//! |---|---|
//! | `CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET` | gateway, project |
//! | `CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET` | gateway, generation |
//! | `CADENZA_MESH_PROJECT_TO_STORAGE_SECRET` | project, storage |
//! | `CADENZA_MESH_GENERATION_TO_STORAGE_SECRET` | generation, storage |
//!
//! Each holds 32+ random bytes, or several secrets separated by commas while
//! one rotates: the caller signs with the first, the callee accepts them all.
//! To rotate, give both ends `old,new`, then `new,old`, then `new`, restarting
//! each in turn. Every variable of a service's links is required, in every
//! mode; the dev runner (all four services in one process) makes its own.
//!
//! [`MeshGuardLayer`] is the server side: a tower layer that refuses a call
//! without a valid assertion (UNAUTHENTICATED), a caller the called method does
//! not accept (PERMISSION_DENIED), and, under mutual TLS, a certificate that
//! does not name the service the assertion names (PERMISSION_DENIED). It hands
//! the verified [`Assertion`] to the handlers in the request's extensions.
//! [`MeshAuth::credentials`] is the client side: it stamps each call a channel
//! makes with a fresh assertion of this service.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cadenza_auth::mesh::{
    ASSERTION_HEADER, Assertion, AssertionError, AssertionSigner, AssertionVerifier,
    LIFETIME_SECONDS, LINKS, Service, link_variable, parse_secrets,
};
use cadenza_config::Env;
use cadenza_telemetry::grpc::CallCredentials;
use tonic::Code;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::status;

/// A service's assertion for its own work is signed again after this long
/// (a third of its lifetime), not for every call.
const REUSE_FOR: Duration = Duration::from_secs(LIFETIME_SECONDS as u64 / 3);

/// This service's part in the mesh's identity: what it signs with and whom it
/// believes.
#[derive(Clone, Debug)]
pub struct MeshAuth {
    pub me: Service,
    pub signer: Option<AssertionSigner>,
    pub verifier: Option<AssertionVerifier>,
}

impl MeshAuth {
    /// Reads the secrets of every link `me` is an end of
    /// ([`cadenza_auth::mesh::LINKS`]), recording a problem for each variable
    /// that is missing or malformed.
    pub fn from_env(env: &mut Env, me: Service) -> Self {
        let mut signer = AssertionSigner::new(me);
        let mut trusted = Vec::new();
        let mut complete = true;
        for (caller, callee) in LINKS {
            if me != caller && me != callee {
                continue;
            }
            let variable = link_variable(caller, callee);
            let secrets = env
                .optional(&variable)
                .ok_or_else(|| {
                    format!(
                        "required: the secret of calls from {caller} to {callee} (32+ random bytes), \
                         the same value at both ends"
                    )
                })
                .and_then(|list| parse_secrets(&list));
            let secrets = match secrets {
                Ok(secrets) => secrets,
                Err(reason) => {
                    env.problem(&variable, reason);
                    complete = false;
                    continue;
                }
            };
            if me == caller {
                match signer.clone().with_link(callee, &secrets[0]) {
                    Ok(linked) => signer = linked,
                    Err(err) => {
                        env.problem(&variable, err.to_string());
                        complete = false;
                    }
                }
            } else {
                trusted.extend(secrets.into_iter().map(|secret| (caller, secret)));
            }
        }
        let verifier = (!trusted.is_empty())
            .then(|| AssertionVerifier::new(me, &trusted).ok())
            .flatten();
        let signs = LINKS.iter().any(|(caller, _)| *caller == me);
        Self {
            me,
            signer: (complete && signs).then_some(signer),
            verifier: if complete { verifier } else { None },
        }
    }

    /// Every variable of the links of `me`, for documentation and tooling.
    pub fn variables(me: Service) -> Vec<String> {
        LINKS
            .iter()
            .filter(|(caller, callee)| *caller == me || *callee == me)
            .map(|(caller, callee)| link_variable(*caller, *callee))
            .collect()
    }

    /// Credentials for a channel to `audience`: each call carries this
    /// service's own assertion, unless it already carries one (a call acting
    /// for a user). `None` when this service signs nothing.
    pub fn credentials(&self, audience: Service) -> Option<Arc<dyn CallCredentials>> {
        let signer = self.signer.clone()?;
        Some(Arc::new(ServiceCredentials {
            signer,
            audience,
            cached: Mutex::new(None),
        }))
    }

    /// The server layer admitting calls by `rules` (see [`MeshGuardLayer`]);
    /// `tls` is the server's own TLS (on: callers' certificates must name them).
    /// An error for a service that was configured without trusted secrets.
    pub fn guard(
        &self,
        rules: &'static [Rule],
        tls: &crate::MeshTls,
    ) -> anyhow::Result<MeshGuardLayer> {
        let verifier = self.verifier.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "{} was configured without the secrets of its callers",
                self.me
            )
        })?;
        Ok(MeshGuardLayer {
            inner: Arc::new(Guard {
                verifier,
                rules,
                tls_required: tls.enabled(),
            }),
        })
    }
}

/// Sets every link variable to a fresh random secret: for a service a test or
/// a benchmark starts alone, which nothing calls that would need to know them.
pub fn set_random_secrets(env: &mut Env) {
    use cadenza_config::ExposeSecret;
    for (caller, callee) in LINKS {
        env.set(
            &link_variable(caller, callee),
            cadenza_auth::random_secret().expose_secret(),
        );
    }
}

/// A service's own assertion for calls to one audience, re-signed every few
/// seconds.
struct ServiceCredentials {
    signer: AssertionSigner,
    audience: Service,
    cached: Mutex<Option<(Instant, AsciiMetadataValue)>>,
}

impl CallCredentials for ServiceCredentials {
    fn apply(&self, metadata: &mut MetadataMap) -> Result<(), tonic::Status> {
        if metadata.contains_key(ASSERTION_HEADER) {
            return Ok(());
        }
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let value = match &*cached {
            Some((signed, value)) if signed.elapsed() < REUSE_FOR => value.clone(),
            _ => {
                let token = self
                    .signer
                    .sign(self.audience, None, None)
                    .map_err(|err| status::internal(&err))?;
                let value = AsciiMetadataValue::try_from(token.as_str())
                    .map_err(|err| status::internal(&err))?;
                *cached = Some((Instant::now(), value.clone()));
                value
            }
        };
        metadata.insert(ASSERTION_HEADER, value);
        Ok(())
    }
}

/// Puts an assertion for `audience`, acting for `user`, on an outgoing call.
pub fn assert_for(
    signer: &AssertionSigner,
    audience: Service,
    user: Option<&cadenza_auth::mesh::User>,
    client_address: Option<std::net::IpAddr>,
    metadata: &mut MetadataMap,
) -> Result<(), tonic::Status> {
    let token = signer
        .sign(audience, user, client_address)
        .map_err(|err| status::internal(&err))?;
    let value =
        AsciiMetadataValue::try_from(token.as_str()).map_err(|err| status::internal(&err))?;
    metadata.insert(ASSERTION_HEADER, value);
    Ok(())
}

/// Which callers a path admits.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, without an assertion (`grpc.health.v1`: probes carry none).
    Open,
    /// Any service this one trusts (reflection, version).
    Mesh,
    /// Only these services.
    From(&'static [Service]),
}

/// A path prefix (`/cadenza.v1.StorageService/` for a whole service,
/// `/cadenza.v1.StorageService/DeleteProjectObjects` for one method) and who
/// may call it. The longest matching prefix decides; a path no rule matches
/// admits [`Access::Mesh`].
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub path: &'static str,
    pub access: Access,
}

impl Rule {
    pub const fn new(path: &'static str, access: Access) -> Self {
        Self { path, access }
    }
}

/// The health service: probes call it without credentials.
pub const HEALTH: Rule = Rule::new("/grpc.health.v1.Health/", Access::Open);
/// The build's version: operators ask it with plain tools (it names a release,
/// nothing of anyone's).
pub const VERSION: Rule = Rule::new("/cadenza.v1.VersionService/", Access::Open);

fn access(rules: &[Rule], path: &str) -> Access {
    rules
        .iter()
        .filter(|rule| path.starts_with(rule.path))
        .max_by_key(|rule| rule.path.len())
        .map_or(Access::Mesh, |rule| rule.access)
}

struct Guard {
    verifier: AssertionVerifier,
    rules: &'static [Rule],
    /// Mutual TLS is on: every call must come with a certificate naming a
    /// service.
    tls_required: bool,
}

fn denied(message: String) -> tonic::Status {
    status::with_reason(Code::PermissionDenied, "MESH_CALLER_REFUSED", message)
}

impl Guard {
    /// The verified assertion of a call `path` admits, or why it is refused.
    fn admit(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Option<Assertion>, tonic::Status> {
        let access = access(self.rules, path);
        if matches!(access, Access::Open) {
            return Ok(None);
        }
        let me = self.verifier.audience();
        let peers = if self.tls_required {
            Some(peer_services(extensions)?)
        } else {
            None
        };
        let token = headers
            .get(ASSERTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| status::unauthenticated(AssertionError::Missing.to_string()))?;
        let assertion = self
            .verifier
            .verify(token)
            .map_err(|err| status::unauthenticated(err.to_string()))?;
        if let Some(peers) = peers
            && !peers.contains(&assertion.caller)
        {
            return Err(denied(format!(
                "the assertion names {} but the certificate {}: {me} believes a caller only when both agree",
                assertion.caller,
                names(&peers)
            )));
        }
        let admitted = match access {
            Access::Open | Access::Mesh => true,
            Access::From(callers) => callers.contains(&assertion.caller),
        };
        if !admitted {
            return Err(denied(format!(
                "{me} does not accept this call from {}",
                assertion.caller
            )));
        }
        Ok(Some(assertion))
    }
}

/// The services a TLS client's certificate names (DNS names
/// `<service>.identity.cadenza.internal`). The handshake already checked the
/// certificate against the CA.
fn peer_services(extensions: &http::Extensions) -> Result<Vec<Service>, tonic::Status> {
    let certs = extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .ok_or_else(|| {
            status::unauthenticated("this port takes only calls with a client certificate")
        })?;
    let leaf = certs
        .first()
        .ok_or_else(|| status::unauthenticated("the client presented no certificate"))?;
    identities_of(leaf).map_err(denied)
}

/// The services a certificate's identity names prove: one for a service's own
/// certificate; several only for a process that runs several services (the
/// in-process dev runner).
pub fn identities_of(cert: &rustls::pki_types::CertificateDer<'_>) -> Result<Vec<Service>, String> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|err| format!("the client certificate cannot be read: {err}"))?;
    let mut found: Vec<Service> = parsed
        .valid_dns_names()
        .filter_map(Service::from_identity_name)
        .collect();
    found.sort();
    found.dedup();
    if found.is_empty() {
        return Err(format!(
            "the client certificate names no service (a DNS name like project{})",
            cadenza_auth::mesh::IDENTITY_SUFFIX
        ));
    }
    Ok(found)
}

fn names(services: &[Service]) -> String {
    services
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Tower layer admitting calls to an internal service (see the module doc).
#[derive(Clone)]
pub struct MeshGuardLayer {
    inner: Arc<Guard>,
}

impl<S> tower::Layer<S> for MeshGuardLayer {
    type Service = MeshGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshGuard {
            inner,
            guard: self.inner.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MeshGuard<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S, B, ResB> tower::Service<http::Request<B>> for MeshGuard<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<std::future::Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.guard.admit(
            request.uri().path(),
            request.headers(),
            request.extensions(),
        ) {
            Ok(assertion) => {
                if let Some(assertion) = assertion {
                    request.extensions_mut().insert(assertion);
                }
                futures::future::Either::Right(self.inner.call(request))
            }
            Err(status) => {
                metrics::counter!("cadenza_mesh_calls_refused_total", "code" => cadenza_telemetry::grpc::code_name(status.code()))
                    .increment(1);
                tracing::warn!(path = %request.uri().path(), reason = status.message(), "mesh call refused");
                futures::future::Either::Left(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[Rule] = &[
        HEALTH,
        Rule::new(
            "/cadenza.v1.StorageService/",
            Access::From(&[Service::Project, Service::Generation]),
        ),
        Rule::new(
            "/cadenza.v1.StorageService/DeleteProjectObjects",
            Access::From(&[Service::Project]),
        ),
    ];

    #[test]
    fn the_longest_prefix_decides() {
        let only = |path| match access(RULES, path) {
            Access::From(callers) => callers.to_vec(),
            Access::Open => vec![],
            Access::Mesh => Service::ALL.to_vec(),
        };
        assert_eq!(
            only("/cadenza.v1.StorageService/DeleteProjectObjects"),
            [Service::Project]
        );
        assert_eq!(
            only("/cadenza.v1.StorageService/PutObject"),
            [Service::Project, Service::Generation]
        );
        assert!(matches!(
            access(RULES, "/grpc.health.v1.Health/Check"),
            Access::Open
        ));
        assert!(matches!(
            access(
                RULES,
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            ),
            Access::Mesh
        ));
    }
}
