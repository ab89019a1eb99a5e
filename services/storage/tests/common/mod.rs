//! Starting the storage service for tests, on any backend, with a real
//! S3-compatible server (moto's server mode, from PyPI) for the S3 backend.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cadenza_auth::mesh::{AssertionSigner, AssertionVerifier, Service};
use cadenza_config::SecretString;
use cadenza_db::testing::TestDatabase;
use cadenza_proto::v1::{
    self, put_object_request::Part, storage_service_client::StorageServiceClient,
};
use cadenza_runtime::MeshAuth;
use cadenza_storage::backend::{Backend, BackendKind, S3Config};
use cadenza_storage::catalog::Catalog;
use cadenza_storage::lifecycle::{self, LifecycleConfig, SweepReport};
use cadenza_telemetry::grpc::TracedChannel;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const KEY: &str = "0123456789abcdef0123456789abcdef-test-signing-key";
pub const PROJECT: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ab";
pub const RUN: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ac";

/// A moto S3 server on a free loopback port, killed on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr").port()
        };
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run python3 for the S3 test server: {err}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = Self {
            child,
            endpoint,
            bucket: format!("cadenza-test-{}", uuid::Uuid::new_v4().simple()),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the S3 test server exited ({status}); install it with `make services` (pip: moto[server])"
                );
            }
            // moto accepts unsigned requests, so a plain PUT creates the bucket.
            if let Ok(response) = http
                .put(format!("{}/{}", server.endpoint, server.bucket))
                .send()
                .await
            {
                assert!(
                    response.status().is_success(),
                    "creating the test bucket: {}",
                    response.status()
                );
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = server.child.kill();
        panic!("the S3 test server did not start on {}", server.endpoint);
    }

    pub fn config(&self) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: Some(SecretString::from("testing")),
            secret_access_key: Some(SecretString::from("testing")),
            allow_http: true,
            retry_timeout: Duration::from_secs(2),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Storage {
    /// A client calling as `project` would (with project's mesh assertion).
    pub client: StorageServiceClient<TracedChannel>,
    /// The same service, called as `generation` would.
    pub as_generation: StorageServiceClient<TracedChannel>,
    pub data: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub http_url: String,
    /// The object store the service writes to, for looking behind its back.
    pub backend: Backend,
    pub catalog: Catalog,
    pub db: TestDatabase,
    _s3: Option<S3Server>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How to start the service in a test.
#[derive(Default)]
pub struct Options {
    pub preview_ttl: Option<chrono::Duration>,
    /// Reach the S3 server through this endpoint (a proxy) instead of directly.
    pub s3_endpoint: Option<String>,
}

pub async fn start(backend: BackendKind) -> Storage {
    start_with(backend, Options::default()).await
}

pub async fn start_with(kind: BackendKind, options: Options) -> Storage {
    let s3 = match kind {
        BackendKind::S3 => Some(S3Server::start().await),
        _ => None,
    };
    let s3_config = s3.as_ref().map(S3Server::config);
    launch(kind, s3_config, s3, options).await
}

/// The service on an S3 server the test owns (and may interfere with).
pub async fn start_with_s3(server: &S3Server, options: Options) -> Storage {
    launch(BackendKind::S3, Some(server.config()), None, options).await
}

async fn launch(
    kind: BackendKind,
    s3_direct: Option<S3Config>,
    s3: Option<S3Server>,
    options: Options,
) -> Storage {
    let db = TestDatabase::create().await;
    let data = tempfile::tempdir().expect("tempdir");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (grpc_addr, http_addr) = (
        grpc.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
    );
    let s3_config = s3_direct.clone().map(|mut config| {
        if let Some(endpoint) = &options.s3_endpoint {
            config.endpoint = Some(endpoint.clone());
        }
        config
    });
    // The memory backend is private to the service; tests look at it through
    // the service only.
    let backend = match kind {
        BackendKind::Local => Backend::local(data.path()).expect("local store"),
        BackendKind::Memory => Backend::memory(),
        BackendKind::S3 => Backend::s3(s3_direct.as_ref().expect("s3 settings")).expect("s3 store"),
    };
    // Storage believes project and generation, each with a secret of its own.
    let (project_secret, generation_secret) =
        (cadenza_auth::random_secret(), cadenza_auth::random_secret());
    let storage_auth = MeshAuth {
        me: Service::Storage,
        signer: None,
        verifier: Some(
            AssertionVerifier::new(
                Service::Storage,
                &[
                    (Service::Project, project_secret.clone()),
                    (Service::Generation, generation_secret.clone()),
                ],
            )
            .expect("verifier"),
        ),
    };
    let config = cadenza_storage::Config {
        grpc_addr,
        max_connection_age: None,
        http_addr,
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        health_addr: None,
        tls: cadenza_runtime::MeshTls::plain(),
        mesh: storage_auth,
        public_url: format!("http://{http_addr}"),
        backend: kind,
        data_dir: data.path().to_path_buf(),
        s3: s3_config,
        signing_key: SecretString::from(KEY),
        max_object_bytes: 64 << 20,
        database_url: db.url.clone(),
        db_pool_size: 4,
        lifecycle: LifecycleConfig {
            purge_after: chrono::Duration::days(30),
            preview_ttl: options.preview_ttl,
            // Tests sweep by hand, with a clock of their choosing.
            sweep_every: Duration::from_secs(24 * 3600),
        },
    };
    let pool =
        cadenza_db::build_pool(&cadenza_db::DbConfig::new(&db.url, "storage-test")).expect("pool");
    let shutdown = CancellationToken::new();
    let listeners = cadenza_storage::Listeners {
        grpc,
        http,
        admin: None,
        health: None,
    };
    tokio::spawn(cadenza_storage::run(config, listeners, shutdown.clone()));
    let client_as = |service: Service, secret: &SecretString| {
        let caller = MeshAuth {
            me: service,
            signer: Some(
                AssertionSigner::new(service)
                    .with_link(Service::Storage, secret)
                    .expect("signer"),
            ),
            verifier: None,
        };
        let channel = cadenza_telemetry::grpc::lazy_channel_with(
            &format!("http://{grpc_addr}"),
            None,
            caller.credentials(Service::Storage),
        )
        .expect("channel");
        StorageServiceClient::new(channel).max_decoding_message_size(8 << 20)
    };
    let client = client_as(Service::Project, &project_secret);
    let as_generation = client_as(Service::Generation, &generation_secret);
    Storage {
        client,
        as_generation,
        data,
        shutdown,
        http_url: format!("http://{http_addr}"),
        backend,
        catalog: Catalog::new(pool),
        db,
        _s3: s3,
    }
}

impl Storage {
    /// Runs the lifecycle sweep as a replica would, with the clock at `now`.
    pub async fn sweep(&self, now: chrono::DateTime<chrono::Utc>) -> SweepReport {
        lifecycle::sweep(
            &self.catalog,
            &self.backend.store,
            chrono::Duration::days(30),
            now,
        )
        .await
        .expect("sweep")
    }
}

pub fn locator(owner: &str, file: &str) -> v1::ObjectLocator {
    v1::ObjectLocator {
        owner: owner.into(),
        project_id: PROJECT.into(),
        run_id: RUN.into(),
        file_name: file.into(),
    }
}

pub fn upload_messages(
    locator: v1::ObjectLocator,
    declared_size: i64,
    sha256: String,
    chunks: Vec<Vec<u8>>,
) -> Vec<v1::PutObjectRequest> {
    let header = v1::PutObjectRequest {
        part: Some(Part::Header(v1::PutObjectHeader {
            locator: Some(locator),
            content_type: "audio/wav".into(),
            size_bytes: declared_size,
            sha256,
            kind: v1::AssetKind::Master as i32,
        })),
    };
    std::iter::once(header)
        .chain(chunks.into_iter().map(|c| v1::PutObjectRequest {
            part: Some(Part::Chunk(c.into())),
        }))
        .collect()
}

pub async fn put(
    storage: &mut Storage,
    file: &str,
    bytes: &[u8],
) -> Result<v1::ObjectInfo, tonic::Status> {
    let sha = hex::encode(Sha256::digest(bytes));
    let chunks = bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let messages = upload_messages(locator("alice", file), bytes.len() as i64, sha, chunks);
    storage
        .client
        .put_object(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

pub async fn get(
    storage: &mut Storage,
    key: &str,
    owner: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = storage
        .client
        .get_object(v1::GetObjectRequest {
            key: key.into(),
            owner: owner.into(),
            offset,
            length,
        })
        .await?
        .into_inner();
    let mut read = Vec::new();
    while let Some(part) = stream.message().await? {
        read.extend_from_slice(&part.chunk);
    }
    Ok(read)
}

/// Uploads `bytes` as `owner`'s `file` in `project`, declared as `kind`.
pub async fn put_as(
    storage: &mut Storage,
    owner: &str,
    project: &str,
    file: &str,
    bytes: &[u8],
    kind: v1::AssetKind,
) -> Result<v1::ObjectInfo, tonic::Status> {
    let mut located = locator(owner, file);
    located.project_id = project.into();
    let mut messages = upload_messages(
        located,
        bytes.len() as i64,
        hex::encode(Sha256::digest(bytes)),
        vec![bytes.to_vec()],
    );
    if let Some(Part::Header(header)) = &mut messages[0].part {
        header.kind = kind as i32;
    }
    storage
        .client
        .put_object(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}
