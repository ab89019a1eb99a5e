//! The object store behind the service, chosen by configuration: the local
//! filesystem (the default), S3-compatible (AWS S3, MinIO), or memory (tests).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cadenza_config::{Env, ExposeSecret, SecretString};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{ObjectStore, ObjectStoreExt};

/// Which object store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Local,
    S3,
    Memory,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "local" | "fs" | "filesystem" => Ok(Self::Local),
            "s3" | "minio" => Ok(Self::S3),
            "memory" => Ok(Self::Memory),
            other => Err(format!(
                "unknown backend `{other}` (use local, s3 or memory)"
            )),
        }
    }
}

/// S3 settings. Credentials may also come from the standard `AWS_*` variables
/// (or an instance role), which the S3 client reads itself.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// For MinIO and other S3-compatible servers; unset for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
    /// Plain-HTTP endpoints (a local MinIO); never for AWS.
    pub allow_http: bool,
    /// How long one request to the store is retried before the caller hears
    /// UNAVAILABLE (and may retry the whole operation).
    pub retry_timeout: Duration,
}

pub const DEFAULT_S3_RETRY_SECONDS: u64 = 20;

impl S3Config {
    /// Reads `CADENZA_S3_*`; records a problem for a missing bucket.
    pub fn from_env(env: &mut Env) -> Self {
        let bucket = env.string("CADENZA_S3_BUCKET", "");
        if bucket.is_empty() {
            env.problem(
                "CADENZA_S3_BUCKET",
                "required when CADENZA_STORAGE_BACKEND=s3",
            );
        }
        Self {
            bucket,
            endpoint: env.optional("CADENZA_S3_ENDPOINT"),
            region: env.string("CADENZA_S3_REGION", "us-east-1"),
            access_key_id: env.secret("CADENZA_S3_ACCESS_KEY_ID"),
            secret_access_key: env.secret("CADENZA_S3_SECRET_ACCESS_KEY"),
            allow_http: env.flag("CADENZA_S3_ALLOW_HTTP", false),
            retry_timeout: Duration::from_secs(env.bounded(
                "CADENZA_S3_RETRY_SECONDS",
                DEFAULT_S3_RETRY_SECONDS,
                1..=300,
            )),
        }
    }
}

/// The store and, for stores that can presign URLs themselves, their signer.
#[derive(Clone)]
pub struct Backend {
    pub kind: BackendKind,
    pub store: Arc<dyn ObjectStore>,
    presigner: Option<Arc<dyn Signer>>,
}

impl Backend {
    pub fn local(root: &std::path::Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("creating the data directory {}", root.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(root)
            .context("opening the local object store")?
            .with_automatic_cleanup(true);
        Ok(Self {
            kind: BackendKind::Local,
            store: Arc::new(store),
            presigner: None,
        })
    }

    pub fn memory() -> Self {
        Self {
            kind: BackendKind::Memory,
            store: Arc::new(object_store::memory::InMemory::new()),
            presigner: None,
        }
    }

    pub fn s3(config: &S3Config) -> anyhow::Result<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_retry(object_store::RetryConfig {
                retry_timeout: config.retry_timeout,
                ..object_store::RetryConfig::default()
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(config.retry_timeout.max(Duration::from_secs(30))),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key.expose_secret());
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let s3 = Arc::new(builder.build().context("configuring the S3 backend")?);
        Ok(Self {
            kind: BackendKind::S3,
            store: s3.clone(),
            presigner: Some(s3),
        })
    }

    /// A URL for `key` from the store itself (S3 presigning), or `None` when the
    /// service must sign and serve the URL (local and memory stores).
    pub async fn presigned_url(
        &self,
        key: &str,
        expires_in: Duration,
        download_name: &str,
    ) -> Option<object_store::Result<String>> {
        let signer = self.presigner.as_ref()?;
        let options = SignedUrlOptions::new().with_query([(
            "response-content-disposition",
            format!("attachment; filename=\"{download_name}\""),
        )]);
        Some(
            signer
                .signed_url_opts(http::Method::GET, &Path::from(key), expires_in, &options)
                .await
                .map(|url| url.to_string()),
        )
    }

    /// Whether the store answers: a missing object counts as an answer.
    pub async fn reachable(&self) -> bool {
        match self.store.head(&Path::from("health/probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => true,
            Err(_) => false,
        }
    }
}
