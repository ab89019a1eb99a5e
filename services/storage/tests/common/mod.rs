//! Starting the storage service for tests, on any backend, with a real
//! S3-compatible server (moto's server mode, from PyPI) for the S3 backend.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cadenza_config::SecretString;
use cadenza_proto::v1::{
    self, put_object_request::Part, storage_service_client::StorageServiceClient,
};
use cadenza_storage::backend::{BackendKind, S3Config};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

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
    pub client: StorageServiceClient<Channel>,
    pub data: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub http_url: String,
    _s3: Option<S3Server>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start(backend: BackendKind) -> Storage {
    let s3 = match backend {
        BackendKind::S3 => Some(S3Server::start().await),
        _ => None,
    };
    let data = tempfile::tempdir().expect("tempdir");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (grpc_addr, http_addr) = (
        grpc.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
    );
    let config = cadenza_storage::Config {
        grpc_addr,
        http_addr,
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        public_url: format!("http://{http_addr}"),
        backend,
        data_dir: data.path().to_path_buf(),
        s3: s3.as_ref().map(S3Server::config),
        signing_key: SecretString::from(KEY),
        max_object_bytes: 64 << 20,
    };
    let shutdown = CancellationToken::new();
    let listeners = cadenza_storage::Listeners {
        grpc,
        http,
        admin: None,
    };
    tokio::spawn(cadenza_storage::run(config, listeners, shutdown.clone()));
    let client = loop {
        if let Ok(client) = StorageServiceClient::connect(format!("http://{grpc_addr}")).await {
            break client.max_decoding_message_size(8 << 20);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Storage {
        client,
        data,
        shutdown,
        http_url: format!("http://{http_addr}"),
        _s3: s3,
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
        })),
    };
    std::iter::once(header)
        .chain(chunks.into_iter().map(|c| v1::PutObjectRequest {
            part: Some(Part::Chunk(c)),
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
