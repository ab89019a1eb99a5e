//! Mutual TLS between the services, with the four as real processes given
//! `CADENZA_TLS_*` and `CADENZA_HEALTH_ADDR` as the Helm chart gives them, and
//! certificates this test makes: a CA, one certificate per service (server and
//! client authentication, named `localhost` only, as a Kubernetes certificate
//! names Services and never pod addresses), and the wrong ones.
//!
//! It shows that a song goes through gateway → project → RabbitMQ → generation →
//! storage and its master comes back through gateway → project → storage; that
//! the gateway's public port stays plain; that the gateway reaches the generation
//! replica it found by address while checking the certificate against the name;
//! that project and storage refuse a client with no certificate, with one from
//! another CA, with one not made for client authentication, and a plain-text
//! client; that the plain health ports answer SERVING, from the same state as the
//! TLS ports; and that a partial or broken TLS configuration stops a service at
//! start-up with a message naming the variable and the file.
//!
//! The binaries are the workspace's own (`cargo build --bins`, which `make test`
//! and `cargo test --workspace` do); a missing one fails the test and says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cadenza_auth::mesh::{AssertionSigner, Credential, Role, Service as MeshService, User};
use cadenza_db::testing::TestDatabase;
use cadenza_mesh::testing::{admin_token_in, authed, finished_state};
use cadenza_proto::v1::{self, project_service_client::ProjectServiceClient};
use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate and its key, in PEM.
struct Pem {
    cert: String,
    key: String,
}

/// A certificate authority that signs leaf certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf named `name` (common name) with DNS names `hosts`, for `usages`.
    fn issue(&self, name: &str, hosts: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> Pem {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// What a service's certificate needs: both usages (it serves and it calls).
const BOTH_WAYS: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

/// A port nobody listens on right now (the OS's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Where cargo put this workspace's binaries: beside the test's `deps/` folder.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the services first (`cargo build --bins`)",
        path.display()
    );
    path
}

fn command(name: &str, env: &HashMap<String, String>, log: &Path) -> Command {
    let file = std::fs::File::create(log).expect("log file");
    let mut command = Command::new(binary(&format!("cadenza-{name}")));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    command
}

/// One service process, logging into a file; killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
    grpc: u16,
    /// The plain-text health port (not the gateway's).
    health: Option<u16>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Asks `url`'s `grpc.health.v1` about `service` (`""`: overall), with `tls` or
/// in plain text: the status, or why there was none.
async fn health(
    url: &str,
    tls: Option<ClientTlsConfig>,
    service: &str,
) -> Result<ServingStatus, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|err| err.to_string())?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|err| err.to_string())?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| format!("connect: {err:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|answer| answer.into_inner().status())
        .map_err(|status| format!("call: {status:?}"))
}

/// A client that trusts `ca` and presents `identity`, if any.
fn client_tls(ca: &str, identity: Option<&Pem>) -> ClientTlsConfig {
    let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    match identity {
        Some(pem) => config.identity(Identity::from_pem(&pem.cert, &pem.key)),
        None => config,
    }
}

/// Waits until `service` says SERVING: on its plain health port, or (the
/// gateway) on its plain public port.
async fn wait_serving(service: &mut Service) {
    let port = service.health.unwrap_or(service.grpc);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!(
                "{} exited ({status}) while starting:\n{}",
                service.name,
                service.logs()
            );
        }
        if health(&format!("http://127.0.0.1:{port}"), None, "").await == Ok(ServingStatus::Serving)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not become ready:\n{}",
            service.name,
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `name` with `env`, expecting it to refuse to start: its output.
async fn refused_start(name: &str, env: &HashMap<String, String>, dir: &Path, tag: &str) -> String {
    let log = dir.join(format!("{name}-{tag}.log"));
    let mut child = command(name, env, &log).spawn().expect("start");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{name} ({tag}) kept running instead of refusing to start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{name} ({tag}) exited 0:\n{output}");
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn services_talk_over_mutual_tls_and_refuse_everyone_else() {
    let db = TestDatabase::create().await;
    if let Err(err) = cadenza_queue::connect(AMQP_URL, "cadenza-mtls-test-probe").await {
        panic!("RabbitMQ is not reachable at {AMQP_URL}: {err}. Start it with `make services`.");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write a PEM file");
        path.display().to_string()
    };

    let ca = Ca::new("cadenza test CA");
    let ca_file = write("ca.crt", &ca.pem);
    let rogue_ca = Ca::new("someone else's CA");
    let names = ["gateway", "project", "generation", "storage"];
    let mut tls_env: HashMap<&str, [(String, String); 3]> = HashMap::new();
    let mut pems: HashMap<&str, Pem> = HashMap::new();
    for name in names {
        // The host name clients dial, and the name that says which service it is.
        let identity = format!("{name}.identity.cadenza.internal");
        let pem = ca.issue(
            &format!("cadenza-{name}"),
            &["localhost", &identity],
            BOTH_WAYS,
        );
        tls_env.insert(
            name,
            [
                (
                    "CADENZA_TLS_CERT_FILE".to_owned(),
                    write(&format!("{name}.crt"), &pem.cert),
                ),
                (
                    "CADENZA_TLS_KEY_FILE".to_owned(),
                    write(&format!("{name}.key"), &pem.key),
                ),
                ("CADENZA_TLS_CA_FILE".to_owned(), ca_file.clone()),
            ],
        );
        pems.insert(name, pem);
    }
    let secrets = cadenza_mesh::MeshSecrets::random();
    let good_client = ca.issue(
        "test-client",
        &["localhost"],
        &[ExtendedKeyUsagePurpose::ClientAuth],
    );
    let rogue_client = rogue_ca.issue("intruder", &["localhost"], BOTH_WAYS);
    let server_only = ca.issue(
        "server-only",
        &["localhost"],
        &[ExtendedKeyUsagePurpose::ServerAuth],
    );

    let prefix = format!("mtls-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let ports: HashMap<&str, (u16, u16, u16)> = names
        .into_iter()
        .map(|name| (name, (free_port(), free_port(), free_port())))
        .collect();
    // Internal URLs name `localhost`: the certificates carry that name and no
    // address, as in Kubernetes.
    let url = |name: &str| format!("https://localhost:{}", ports[name].0);
    let common: HashMap<String, String> = [
        ("CADENZA_DEV_MODE", "true".to_owned()),
        (
            "CADENZA_JWT_SECRET",
            "mtls-test-secret-of-at-least-32-bytes!!".to_owned(),
        ),
        ("CADENZA_DATABASE_URL", db.url.clone()),
        ("CADENZA_AMQP_URL", AMQP_URL.to_owned()),
        ("CADENZA_QUEUE_PREFIX", prefix.clone()),
        ("CADENZA_QUEUE_EXPIRES_SECONDS", "600".to_owned()),
        ("CADENZA_PROJECT_URL", url("project")),
        ("CADENZA_GENERATION_URL", url("generation")),
        ("CADENZA_STORAGE_URL", url("storage")),
        ("CADENZA_WEB_DIR", String::new()),
        ("CADENZA_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info,lapin=warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let env_of = |name: &str| {
        let (grpc, admin, health) = ports[name];
        let upper = name.to_ascii_uppercase();
        let mut env = common.clone();
        env.insert(format!("CADENZA_{upper}_ADDR"), addr(grpc));
        env.insert(format!("CADENZA_{upper}_ADMIN_ADDR"), addr(admin));
        env.extend(tls_env[name].iter().cloned());
        env.extend(secrets.variables(name.parse().expect("a service")));
        if name != "gateway" {
            env.insert("CADENZA_HEALTH_ADDR".to_owned(), addr(health));
        }
        if name == "storage" {
            env.insert("CADENZA_STORAGE_HTTP_ADDR".to_owned(), addr(free_port()));
            env.insert(
                "CADENZA_DATA_DIR".to_owned(),
                dir.path().join("data").display().to_string(),
            );
        }
        env
    };

    // A partial or broken TLS configuration stops a service at start-up, naming
    // what is wrong.
    let mut partial = env_of("project");
    partial.remove("CADENZA_TLS_KEY_FILE");
    partial.remove("CADENZA_TLS_CA_FILE");
    let output = refused_start("project", &partial, dir.path(), "partial").await;
    assert!(
        output.contains("CADENZA_TLS_KEY_FILE") && output.contains("CADENZA_TLS_CA_FILE"),
        "the missing variables are named:\n{output}"
    );
    let mut broken = env_of("storage");
    let garbage = write("garbage.crt", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    broken.insert("CADENZA_TLS_CERT_FILE".to_owned(), garbage.clone());
    let output = refused_start("storage", &broken, dir.path(), "broken").await;
    assert!(
        output.contains("CADENZA_TLS_CERT_FILE") && output.contains(&garbage),
        "the broken file is named:\n{output}"
    );
    let mut unreadable = env_of("generation");
    let nowhere = dir.path().join("nowhere.key").display().to_string();
    unreadable.insert("CADENZA_TLS_KEY_FILE".to_owned(), nowhere.clone());
    let output = refused_start("generation", &unreadable, dir.path(), "unreadable").await;
    assert!(
        output.contains("CADENZA_TLS_KEY_FILE") && output.contains(&nowhere),
        "the unreadable file is named:\n{output}"
    );
    let mut plain_url = env_of("gateway");
    plain_url.insert(
        "CADENZA_PROJECT_URL".to_owned(),
        format!("http://localhost:{}", ports["project"].0),
    );
    let output = refused_start("gateway", &plain_url, dir.path(), "plain-url").await;
    assert!(
        output.contains("CADENZA_PROJECT_URL"),
        "an http:// internal URL under mTLS is refused:\n{output}"
    );

    // The mesh, under mutual TLS.
    let mut services = Vec::new();
    for name in ["storage", "project", "generation", "gateway"] {
        let log = dir.path().join(format!("{name}.log"));
        let child = command(name, &env_of(name), &log)
            .spawn()
            .expect("start the service");
        let (grpc, _, health) = ports[name];
        services.push(Service {
            name,
            child,
            log,
            grpc,
            health: (name != "gateway").then_some(health),
        });
    }
    // SERVING on the plain health ports; the gateway's turns SERVING only once
    // it reaches project, over mutual TLS.
    for service in &mut services {
        wait_serving(service).await;
    }
    let logs = || {
        services
            .iter()
            .map(|s| format!("--- {}\n{}", s.name, s.logs()))
            .collect::<String>()
    };

    // The health ports answer from the same state as the TLS ports: the
    // services registered there are known here.
    for (name, service) in [
        ("project", "cadenza.v1.ProjectService"),
        ("generation", "cadenza.v1.ProviderService"),
        ("storage", "cadenza.v1.StorageService"),
    ] {
        let plain = format!("http://127.0.0.1:{}", ports[name].2);
        assert_eq!(
            health(&plain, None, service).await,
            Ok(ServingStatus::Serving),
            "{name}'s health port"
        );
        let tls = format!("https://localhost:{}", ports[name].0);
        assert_eq!(
            health(&tls, Some(client_tls(&ca.pem, Some(&good_client))), service).await,
            Ok(ServingStatus::Serving),
            "{name}'s gRPC port, with a certificate the CA signed"
        );
    }

    // Project and storage let in no one else.
    for name in ["project", "storage"] {
        let tls = format!("https://localhost:{}", ports[name].0);
        let no_certificate = health(&tls, Some(client_tls(&ca.pem, None)), "").await;
        assert!(
            no_certificate.is_err(),
            "{name} answered a client without a certificate: {no_certificate:?}"
        );
        let other_ca = health(&tls, Some(client_tls(&ca.pem, Some(&rogue_client))), "").await;
        assert!(
            other_ca.is_err(),
            "{name} answered a client whose certificate another CA signed: {other_ca:?}"
        );
        let not_for_clients = health(&tls, Some(client_tls(&ca.pem, Some(&server_only))), "").await;
        assert!(
            not_for_clients.is_err(),
            "{name} answered a certificate not made for client authentication: {not_for_clients:?}"
        );
        let plain_text = health(&format!("http://127.0.0.1:{}", ports[name].0), None, "").await;
        assert!(
            plain_text.is_err(),
            "{name}'s gRPC port answered in plain text: {plain_text:?}"
        );
    }

    // Each service is who its certificate says, and no one else: with the
    // gateway's real assertion, only the gateway's certificate is answered.
    let project_url = format!("https://localhost:{}", ports["project"].0);
    let gateway_signer = AssertionSigner::new(MeshService::Gateway)
        .with_link(
            MeshService::Project,
            secrets
                .of(MeshService::Gateway, MeshService::Project)
                .expect("a link"),
        )
        .expect("signer");
    let as_user = User {
        subject: "mtls".into(),
        role: Role::User,
        credential: Credential::DevToken,
    };
    let list_as = |identity: Option<&Pem>, assertion: Option<String>| {
        let tls = client_tls(&ca.pem, identity);
        let url = project_url.clone();
        async move {
            let channel = Endpoint::from_shared(url)
                .expect("url")
                .tls_config(tls)
                .expect("tls")
                .connect()
                .await
                .expect("connect");
            let mut request = tonic::Request::new(v1::ListProjectsRequest::default());
            if let Some(token) = assertion {
                request.metadata_mut().insert(
                    cadenza_auth::mesh::ASSERTION_HEADER,
                    token.parse().expect("ascii"),
                );
            }
            ProjectServiceClient::new(channel)
                .list_projects(request)
                .await
        }
    };
    let assertion = || {
        Some(
            gateway_signer
                .sign(MeshService::Project, Some(&as_user), None)
                .expect("sign"),
        )
    };
    list_as(Some(&pems["gateway"]), assertion())
        .await
        .unwrap_or_else(|status| panic!("the gateway's certificate and assertion: {status:?}"));
    for (who, identity) in [
        ("generation's certificate", Some(&pems["generation"])),
        ("storage's certificate", Some(&pems["storage"])),
        ("a certificate naming no service", Some(&good_client)),
    ] {
        let refused = list_as(identity, assertion())
            .await
            .expect_err("a certificate of the wrong service");
        assert_eq!(
            refused.code(),
            tonic::Code::PermissionDenied,
            "{who}: {refused:?}"
        );
    }
    let refused = list_as(Some(&pems["gateway"]), None)
        .await
        .expect_err("no assertion");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    // A song through the gateway's plain public port: gateway → project →
    // RabbitMQ → generation → storage, all internal calls over mutual TLS.
    let gateway = Channel::from_shared(format!("http://127.0.0.1:{}", ports["gateway"].0))
        .expect("url")
        .connect()
        .await
        .expect("the gateway's public port is plain");
    let token = v1::dev_service_client::DevServiceClient::new(gateway.clone())
        .issue_dev_token(v1::IssueDevTokenRequest {
            subject: "mtls".into(),
            ttl_seconds: 0,
        })
        .await
        .expect("dev token")
        .into_inner()
        .token;
    let project = ProjectServiceClient::new(gateway.clone())
        .create_project(authed(
            &token,
            v1::CreateProjectRequest {
                project: Some(v1::Project {
                    title: "behind mTLS".into(),
                    prompt: "a short lo-fi song".into(),
                    duration_seconds: 5,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("create: {status:?}\n{}", logs()))
        .into_inner();
    ProjectServiceClient::new(gateway.clone())
        .generate_song(authed(
            &token,
            v1::GenerateSongRequest {
                name: project.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("generate: {status:?}\n{}", logs()));
    let state = finished_state(&gateway, &token, &project.name, Duration::from_secs(120)).await;
    assert_eq!(state, v1::RunState::Succeeded, "{}", logs());

    // Its master comes back gateway → project → storage.
    let mut assets = v1::asset_service_client::AssetServiceClient::new(gateway.clone())
        .max_decoding_message_size(8 << 20);
    let listed = assets
        .list_assets(authed(
            &token,
            v1::ListAssetsRequest {
                parent: project.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("list assets")
        .into_inner();
    let master = listed
        .assets
        .iter()
        .find(|a| a.kind() == v1::AssetKind::Master)
        .expect("a master");
    let mut stream = assets
        .read_asset(authed(
            &token,
            v1::ReadAssetRequest {
                name: master.name.clone(),
            },
        ))
        .await
        .unwrap_or_else(|status| panic!("read the master: {status:?}\n{}", logs()))
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("a chunk").data);
    }
    assert_eq!(bytes.len() as i64, master.size_bytes);
    assert!(bytes.starts_with(b"RIFF"), "a WAV file");

    // Provider health: the gateway resolves `localhost`, dials each address it
    // finds and checks the certificate against `localhost`, the name it
    // resolved (the certificate names no address).
    let admin = admin_token_in(&db.url, &gateway, "ops@example.com").await;
    let view = v1::provider_service_client::ProviderServiceClient::new(gateway.clone())
        .get_provider_health(authed(&admin, v1::GetProviderHealthRequest {}))
        .await
        .unwrap_or_else(|status| panic!("provider health: {status:?}\n{}", logs()))
        .into_inner();
    let replica = format!("127.0.0.1:{}", ports["generation"].0);
    assert!(
        !view.providers.is_empty() && !view.unreachable_replicas.contains(&replica),
        "the generation replica at {replica} answered: {view:?}"
    );
}

/// The in-process mesh (the dev runner and the test sandbox) under mutual TLS:
/// one certificate for the four, naming the loopback address they dial.
#[tokio::test(flavor = "multi_thread")]
async fn the_in_process_mesh_runs_over_mutual_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("cadenza test CA");
    // One process is all four services: its certificate names each of them.
    let pem = ca.issue(
        "cadenza-mesh",
        &[
            "127.0.0.1",
            "gateway.identity.cadenza.internal",
            "project.identity.cadenza.internal",
            "generation.identity.cadenza.internal",
            "storage.identity.cadenza.internal",
        ],
        BOTH_WAYS,
    );
    let mut env = cadenza_config::Env::default();
    for (variable, name, contents) in [
        ("CADENZA_TLS_CERT_FILE", "tls.crt", &pem.cert),
        ("CADENZA_TLS_KEY_FILE", "tls.key", &pem.key),
        ("CADENZA_TLS_CA_FILE", "ca.crt", &ca.pem),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write a PEM file");
        env.set(variable, path.display().to_string());
    }
    let mesh = cadenza_mesh::testing::TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let token = mesh.token("mesh-mtls").await;
    let project = cadenza_mesh::testing::create_project(
        &channel,
        &token,
        v1::Project {
            title: "in one process".into(),
            prompt: "a short lo-fi song".into(),
            duration_seconds: 5,
            ..Default::default()
        },
    )
    .await;
    cadenza_mesh::testing::generate(&channel, &token, &project.name).await;
    assert_eq!(
        finished_state(&channel, &token, &project.name, Duration::from_secs(120)).await,
        v1::RunState::Succeeded
    );
    mesh.stop().await;
}
