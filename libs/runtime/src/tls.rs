//! Mutual TLS between the internal services.
//!
//! Three variables, all of them or none:
//!
//! | variable | holds (PEM) |
//! |---|---|
//! | `CADENZA_TLS_CERT_FILE` | this process's certificate, then any intermediates |
//! | `CADENZA_TLS_KEY_FILE` | its private key (PKCS#8, PKCS#1 or SEC1) |
//! | `CADENZA_TLS_CA_FILE` | the CA certificate(s) that sign every service's certificate |
//!
//! With them, project, generation and storage serve their gRPC port over TLS and
//! accept only clients that present a certificate the CA signed; every internal
//! client presents this process's certificate and checks the server's against the
//! CA; internal URLs must be `https://`. One certificate serves both ways, so it
//! needs the `serverAuth` and `clientAuth` extended key usages, and a DNS name
//! (subject alternative name) for each host name its clients dial. Without the
//! variables everything stays plain text. The gateway's public port never uses
//! them: TLS for the public ends at the ingress.
//!
//! Setting only some of the three, or a file that cannot be read or holds no
//! usable PEM, is a configuration problem naming the variable and the file. The
//! files are read once, at start-up: a renewed certificate takes effect when the
//! process restarts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use cadenza_config::Env;
use cadenza_telemetry::grpc::TracedChannel;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

pub const CERT_FILE: &str = "CADENZA_TLS_CERT_FILE";
pub const KEY_FILE: &str = "CADENZA_TLS_KEY_FILE";
pub const CA_FILE: &str = "CADENZA_TLS_CA_FILE";

/// A TLS handshake, on either side, must finish within this: a peer that
/// connects and then stalls does not hold a task for ever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the three PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Why the files do not make a TLS identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        variable: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no usable {expected}: {reason}", path.display())]
    Invalid {
        variable: &'static str,
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error(
        "the certificate in {} and the key in {} do not make an identity: {reason}",
        cert.display(),
        key.display()
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

impl TlsError {
    /// The variable naming the file at fault.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::Unreadable { variable, .. } | Self::Invalid { variable, .. } => variable,
            Self::Mismatch { .. } => KEY_FILE,
        }
    }
}

/// This process's TLS identity and the CA it trusts, or plain text.
#[derive(Clone, Default)]
pub struct MeshTls {
    material: Option<Arc<Material>>,
}

struct Material {
    files: TlsFiles,
    identity: Identity,
    ca: Certificate,
}

impl std::fmt::Debug for MeshTls {
    /// The files, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.material {
            None => f.write_str("MeshTls(plain)"),
            Some(material) => f.debug_tuple("MeshTls").field(&material.files).finish(),
        }
    }
}

impl MeshTls {
    /// No TLS: plain-text gRPC, `http://` URLs.
    pub fn plain() -> Self {
        Self::default()
    }

    /// Reads `CADENZA_TLS_CERT_FILE`, `CADENZA_TLS_KEY_FILE` and
    /// `CADENZA_TLS_CA_FILE` and loads the files, recording a problem in `env`
    /// for each variable missing (when some are set) or each file unusable; then
    /// it returns plain text, and `env.finish()` fails.
    pub fn from_env(env: &mut Env) -> Self {
        let variables = [CERT_FILE, KEY_FILE, CA_FILE];
        let values = variables.map(|variable| env.optional(variable));
        let set: Vec<&str> = variables
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_some())
            .map(|(variable, _)| *variable)
            .collect();
        let [Some(cert), Some(key), Some(ca)] = values else {
            if !set.is_empty() {
                for (variable, value) in variables.iter().zip(&values) {
                    if value.is_none() {
                        env.problem(
                            variable,
                            format!(
                                "missing: {} is set, and mutual TLS needs all of {CERT_FILE}, \
                                 {KEY_FILE} and {CA_FILE}",
                                set.join(" and ")
                            ),
                        );
                    }
                }
            }
            return Self::plain();
        };
        let files = TlsFiles {
            cert: PathBuf::from(cert.trim()),
            key: PathBuf::from(key.trim()),
            ca: PathBuf::from(ca.trim()),
        };
        match Self::load(files) {
            Ok(tls) => tls,
            Err(errors) => {
                for error in errors {
                    env.problem(error.variable(), error.to_string());
                }
                Self::plain()
            }
        }
    }

    /// Loads and checks the three files: each readable and holding PEM of the
    /// right kind, every CA certificate parsable, and the key the certificate's.
    /// Every error found, not only the first.
    pub fn load(files: TlsFiles) -> Result<Self, Vec<TlsError>> {
        install_crypto_provider();
        let mut errors = Vec::new();
        let cert = read(CERT_FILE, &files.cert)
            .and_then(|pem| certificates(CERT_FILE, &files.cert, &pem).map(|chain| (pem, chain)))
            .map_err(|err| errors.push(err))
            .ok();
        let key = read(KEY_FILE, &files.key)
            .and_then(|pem| private_key(&files.key, &pem).map(|der| (pem, der)))
            .map_err(|err| errors.push(err))
            .ok();
        let ca = read(CA_FILE, &files.ca)
            .and_then(|pem| trust_anchors(&files.ca, &pem).map(|()| pem))
            .map_err(|err| errors.push(err))
            .ok();
        if let (Some((_, chain)), Some((_, der))) = (&cert, &key)
            && let Err(reason) = check_pair(chain.clone(), der.clone_key())
        {
            errors.push(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason,
            });
        }
        match (cert, key, ca) {
            (Some((cert, _)), Some((key, _)), Some(ca)) if errors.is_empty() => Ok(Self {
                material: Some(Arc::new(Material {
                    files,
                    identity: Identity::from_pem(cert, key),
                    ca: Certificate::from_pem(ca),
                })),
            }),
            _ => Err(errors),
        }
    }

    /// Whether mutual TLS is on.
    pub fn enabled(&self) -> bool {
        self.material.is_some()
    }

    /// The files in use, when mutual TLS is on.
    pub fn files(&self) -> Option<&TlsFiles> {
        self.material.as_ref().map(|m| &m.files)
    }

    /// The scheme of internal URLs: `https` under mutual TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() { "https" } else { "http" }
    }

    /// An internal service's URL from `key`. Unset, it is `default` (written
    /// `http://`), made `https://` under mutual TLS; set, its scheme must match
    /// (`https://` exactly when mutual TLS is on), or a problem is recorded.
    pub fn internal_url(&self, env: &mut Env, key: &str, default: &str) -> String {
        let Some(url) = env.optional(key).map(|url| url.trim().to_owned()) else {
            return match (self.enabled(), default.strip_prefix("http://")) {
                (true, Some(rest)) => format!("https://{rest}"),
                _ => default.to_owned(),
            };
        };
        let https = url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        // When some TLS variable is set but the TLS set-up failed, that failure
        // is the problem to report, not the URLs that follow from it.
        let tls_meant = [CERT_FILE, KEY_FILE, CA_FILE]
            .iter()
            .any(|variable| env.optional(variable).is_some());
        match (self.enabled(), https) {
            (true, false) => env.problem(
                key,
                format!(
                    "`{url}` must be https:// while {CERT_FILE}, {KEY_FILE} and {CA_FILE} are set"
                ),
            ),
            (false, true) if !tls_meant => env.problem(
                key,
                format!(
                    "`{url}` is https://, which needs mutual TLS: set {CERT_FILE}, {KEY_FILE} \
                     and {CA_FILE}"
                ),
            ),
            _ => {}
        }
        url
    }

    /// A gRPC server's TLS: this identity, and a client certificate signed by
    /// the CA required of every client.
    pub fn server_config(&self) -> Option<ServerTlsConfig> {
        self.material.as_ref().map(|m| {
            ServerTlsConfig::new()
                .identity(m.identity.clone())
                .client_ca_root(m.ca.clone())
                .client_auth_optional(false)
                .timeout(HANDSHAKE_TIMEOUT)
        })
    }

    /// A client's TLS: present this identity, trust only the CA. The server's
    /// certificate must name the host of the URL dialled.
    pub fn client_config(&self) -> Option<ClientTlsConfig> {
        self.material.as_ref().map(|m| {
            ClientTlsConfig::new()
                .ca_certificate(m.ca.clone())
                .identity(m.identity.clone())
                .timeout(HANDSHAKE_TIMEOUT)
        })
    }

    /// A lazy, traced channel to another service (`url` as configured), each
    /// call stamped by `credentials` (the mesh assertion; see
    /// [`crate::mesh_auth::MeshAuth::credentials`]).
    pub fn channel(&self, url: &str, credentials: Credentials) -> anyhow::Result<TracedChannel> {
        cadenza_telemetry::grpc::lazy_channel_with(url, self.client_config(), credentials)
    }

    /// A channel to another service (`url` as configured): with `balance_refresh`
    /// (`CADENZA_BALANCE_REFRESH_SECONDS`), calls spread over every address the
    /// URL's host resolves to, looked up again at that interval until `shutdown`
    /// (see [`crate::balance`]); without, the single lazy [`Self::channel`].
    pub fn balanced_channel(
        &self,
        url: &str,
        balance_refresh: Option<Duration>,
        shutdown: &tokio_util::sync::CancellationToken,
        credentials: Credentials,
    ) -> anyhow::Result<TracedChannel> {
        match balance_refresh {
            Some(refresh) if !refresh.is_zero() => crate::balance::balanced_channel(
                url,
                self.client_config(),
                refresh,
                crate::balance::dns(),
                shutdown.clone(),
                credentials,
            ),
            _ => self.channel(url, credentials),
        }
    }

    /// A lazy, traced channel to `url` whose host is an address (one replica
    /// found behind a name), checking the server's certificate against
    /// `server_name`, the name that was resolved: certificates name services,
    /// not pod addresses.
    pub fn channel_named(
        &self,
        url: &str,
        server_name: &str,
        credentials: Credentials,
    ) -> anyhow::Result<TracedChannel> {
        cadenza_telemetry::grpc::lazy_channel_with(
            url,
            self.client_config()
                .map(|config| config.domain_name(server_name)),
            credentials,
        )
    }
}

/// What a channel stamps on each call to prove its caller, if anything.
pub type Credentials = Option<Arc<dyn cadenza_telemetry::grpc::CallCredentials>>;

/// rustls picks its cryptography provider by itself only when exactly one is
/// compiled in; reqwest's rustls brings aws-lc-rs beside tonic's ring, so ring
/// (the one tonic is built for here) is installed as the process default, once.
/// A provider someone installed earlier stays.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        variable,
        path: path.to_owned(),
        source,
    })
}

fn invalid(
    variable: &'static str,
    path: &Path,
    expected: &'static str,
    reason: impl Into<String>,
) -> TlsError {
    TlsError::Invalid {
        variable,
        path: path.to_owned(),
        expected,
        reason: reason.into(),
    }
}

fn certificates(
    variable: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const EXPECTED: &str = "certificate";
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(variable, path, EXPECTED, err.to_string()))?;
    if chain.is_empty() {
        return Err(invalid(
            variable,
            path,
            EXPECTED,
            "no `BEGIN CERTIFICATE` block",
        ));
    }
    Ok(chain)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| {
        let reason = match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block"
                    .to_owned()
            }
            other => other.to_string(),
        };
        invalid(KEY_FILE, path, "private key", reason)
    })
}

/// Every certificate in the CA file must parse as a trust anchor.
fn trust_anchors(path: &Path, pem: &[u8]) -> Result<(), TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(CA_FILE, path, pem)? {
        roots
            .add(certificate)
            .map_err(|err| invalid(CA_FILE, path, "CA certificate", err.to_string()))?;
    }
    Ok(())
}

/// The key must be the one the (first) certificate was issued for.
fn check_pair(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map(drop)
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA and a certificate it signed for `localhost`, plus a second key.
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let ca_key = rcgen::KeyPair::generate().expect("key");
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = ca_params.self_signed(&ca_key).expect("ca cert");
            let issuer = rcgen::Issuer::new(ca_params, ca_key);
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("cert");
            let other = rcgen::KeyPair::generate().expect("key");
            for (name, pem) in [
                ("ca.crt", ca.pem()),
                ("tls.crt", cert.pem()),
                ("tls.key", key.serialize_pem()),
                ("other.key", other.serialize_pem()),
                ("garbage.pem", "not pem at all\n".to_owned()),
            ] {
                std::fs::write(dir.path().join(name), pem).expect("write");
            }
            Self { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn env(&self, cert: &str, key: &str, ca: &str) -> Env {
            Env::from_pairs([
                (CERT_FILE, self.path(cert)),
                (KEY_FILE, self.path(key)),
                (CA_FILE, self.path(ca)),
            ])
        }
    }

    fn problems(env: &Env) -> Vec<(String, String)> {
        env.finish()
            .err()
            .map(|err| {
                err.problems
                    .into_iter()
                    .map(|p| (p.variable, p.reason))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn none_set_is_plain_text() {
        let mut env = Env::default();
        let tls = MeshTls::from_env(&mut env);
        assert!(!tls.enabled());
        assert_eq!(tls.scheme(), "http");
        assert!(tls.server_config().is_none() && tls.client_config().is_none());
        assert!(env.finish().is_ok());
    }

    #[tokio::test]
    async fn all_three_valid_turn_it_on() {
        let pki = Pki::new();
        let mut env = pki.env("tls.crt", "tls.key", "ca.crt");
        let tls = MeshTls::from_env(&mut env);
        assert!(env.finish().is_ok(), "{:?}", problems(&env));
        assert!(tls.enabled());
        assert_eq!(tls.scheme(), "https");
        assert!(tls.server_config().is_some() && tls.client_config().is_some());
        assert!(!format!("{tls:?}").contains("PRIVATE"), "{tls:?}");
        // tonic accepts what was loaded, on both sides.
        tonic::transport::Server::builder()
            .tls_config(tls.server_config().expect("server"))
            .expect("server TLS");
        tls.channel("https://localhost:1", None)
            .expect("client TLS");
    }

    #[test]
    fn some_set_names_each_missing_variable() {
        let pki = Pki::new();
        let mut env = Env::from_pairs([(CERT_FILE, pki.path("tls.crt"))]);
        let tls = MeshTls::from_env(&mut env);
        assert!(!tls.enabled());
        let found = problems(&env);
        let variables: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(variables, [KEY_FILE, CA_FILE]);
        assert!(found[0].1.contains(CERT_FILE), "{found:?}");
    }

    #[test]
    fn unreadable_and_invalid_files_are_named() {
        let pki = Pki::new();
        let mut env = pki.env("missing.crt", "garbage.pem", "tls.key");
        MeshTls::from_env(&mut env);
        let found = problems(&env);
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, CERT_FILE);
        assert!(found[0].1.contains(&pki.path("missing.crt")), "{found:?}");
        assert_eq!(found[1].0, KEY_FILE);
        assert!(found[1].1.contains(&pki.path("garbage.pem")), "{found:?}");
        assert!(found[1].1.contains("private key"), "{found:?}");
        // A key where the CA should be: no certificate in it.
        assert_eq!(found[2].0, CA_FILE);
        assert!(found[2].1.contains(&pki.path("tls.key")), "{found:?}");
        assert!(found[2].1.contains("BEGIN CERTIFICATE"), "{found:?}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let pki = Pki::new();
        let mut env = pki.env("tls.crt", "other.key", "ca.crt");
        assert!(!MeshTls::from_env(&mut env).enabled());
        let found = problems(&env);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, KEY_FILE);
        assert!(
            found[0].1.contains(&pki.path("tls.crt"))
                && found[0].1.contains(&pki.path("other.key")),
            "{found:?}"
        );
    }

    #[test]
    fn internal_urls_follow_the_tls_setting() {
        let pki = Pki::new();
        let mut env = pki.env("tls.crt", "tls.key", "ca.crt");
        let tls = MeshTls::from_env(&mut env);
        assert_eq!(
            tls.internal_url(&mut env, "CADENZA_X_URL", "http://127.0.0.1:1"),
            "https://127.0.0.1:1"
        );
        env.set("CADENZA_Y_URL", "http://storage:50063");
        tls.internal_url(&mut env, "CADENZA_Y_URL", "http://127.0.0.1:1");
        let found = problems(&env);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "CADENZA_Y_URL");

        let mut env = Env::from_pairs([("CADENZA_Y_URL", "https://storage:50063")]);
        let plain = MeshTls::from_env(&mut env);
        assert_eq!(
            plain.internal_url(&mut env, "CADENZA_X_URL", "http://127.0.0.1:1"),
            "http://127.0.0.1:1"
        );
        plain.internal_url(&mut env, "CADENZA_Y_URL", "http://127.0.0.1:1");
        assert_eq!(problems(&env).len(), 1);
    }

    #[tokio::test]
    async fn channels_refuse_a_scheme_that_does_not_match() {
        let pki = Pki::new();
        let mut env = pki.env("tls.crt", "tls.key", "ca.crt");
        let tls = MeshTls::from_env(&mut env);
        assert!(tls.channel("http://localhost:1", None).is_err());
        assert!(
            MeshTls::plain()
                .channel("https://localhost:1", None)
                .is_err()
        );
        assert!(MeshTls::plain().channel("http://localhost:1", None).is_ok());
        assert!(
            tls.channel_named("https://127.0.0.1:1", "localhost", None)
                .is_ok()
        );
    }
}
