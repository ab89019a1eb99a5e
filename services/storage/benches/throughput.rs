//! Upload and ranged-download throughput through the storage service on loopback,
//! against the same bytes written and read directly through `object_store` in the
//! same run. `cargo bench -p cadenza-storage --bench throughput`
//!
//! Prints medians of several rounds and the service's overhead over direct access.

use std::time::{Duration, Instant};

use cadenza_auth::mesh::{AssertionSigner, AssertionVerifier, Service};
use cadenza_config::SecretString;
use cadenza_proto::v1::{
    self, put_object_request::Part, storage_service_client::StorageServiceClient,
};
use cadenza_storage::backend::BackendKind;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

const SIZE: usize = 50 << 20;
const CHUNK: usize = 1 << 20;
const PART: usize = 8 << 20;
const ROUNDS: usize = 7;
const PROJECT: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ab";
const RUN: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ac";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bytes: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sha = hex::encode(Sha256::digest(&bytes));

    // Direct: object_store on its own directory, the same part size the service uses.
    let direct_dir = tempfile::tempdir()?;
    let direct = object_store::local::LocalFileSystem::new_with_prefix(direct_dir.path())?;
    let path = Path::from("direct/master.wav");
    let mut direct_put = Vec::new();
    let mut direct_get = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut upload = direct.put_multipart(&path).await?;
        for part in bytes.chunks(PART) {
            upload.put_part(PutPayload::from(part.to_vec())).await?;
        }
        upload.complete().await?;
        direct_put.push(started.elapsed());

        let started = Instant::now();
        let options = GetOptions {
            range: Some(GetRange::Bounded(1 << 20..(SIZE - (1 << 20)) as u64)),
            ..Default::default()
        };
        let read = direct.get_opts(&path, options).await?.bytes().await?;
        direct_get.push(started.elapsed());
        assert_eq!(read.len(), SIZE - (2 << 20));
    }

    // Through the service over loopback gRPC, with its catalog in Postgres.
    let db = cadenza_db::testing::TestDatabase::create().await;
    let data = tempfile::tempdir()?;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (grpc_addr, http_addr) = (grpc.local_addr()?, http.local_addr()?);
    // Called as project calls it: with project's assertion on every call.
    let secret = cadenza_auth::random_secret();
    let storage_auth = cadenza_runtime::MeshAuth {
        me: Service::Storage,
        signer: None,
        verifier: Some(AssertionVerifier::new(
            Service::Storage,
            &[(Service::Project, secret.clone())],
        )?),
    };
    let project_auth = cadenza_runtime::MeshAuth {
        me: Service::Project,
        signer: Some(AssertionSigner::new(Service::Project).with_link(Service::Storage, &secret)?),
        verifier: None,
    };
    let config = cadenza_storage::Config {
        grpc_addr,
        max_connection_age: None,
        http_addr,
        admin_addr: "127.0.0.1:0".parse()?,
        health_addr: None,
        tls: cadenza_runtime::MeshTls::plain(),
        mesh: storage_auth,
        public_url: format!("http://{http_addr}"),
        backend: BackendKind::Local,
        data_dir: data.path().to_path_buf(),
        s3: None,
        signing_key: SecretString::from("0123456789abcdef0123456789abcdef"),
        max_object_bytes: 1 << 30,
        database_url: db.url.clone(),
        db_pool_size: 4,
        lifecycle: cadenza_storage::lifecycle::LifecycleConfig {
            purge_after: chrono::Duration::days(30),
            preview_ttl: None,
            sweep_every: Duration::from_secs(24 * 3600),
        },
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(cadenza_storage::run(
        config,
        cadenza_storage::Listeners {
            grpc,
            http,
            admin: None,
            health: None,
        },
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))?
        .initial_stream_window_size(cadenza_storage::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(cadenza_storage::CONNECTION_WINDOW_BYTES)
        .max_frame_size(cadenza_storage::MAX_FRAME_BYTES)
        .connect()
        .await?;
    let channel =
        cadenza_telemetry::grpc::traced_with(channel, project_auth.credentials(Service::Storage));
    let mut client = StorageServiceClient::new(channel).max_decoding_message_size(8 << 20);
    let shared = bytes::Bytes::from(bytes.clone());
    let mut service_put = Vec::new();
    let mut service_get = Vec::new();
    for _ in 0..ROUNDS {
        let header = v1::PutObjectRequest {
            part: Some(Part::Header(v1::PutObjectHeader {
                locator: Some(v1::ObjectLocator {
                    owner: "bench".into(),
                    project_id: PROJECT.into(),
                    run_id: RUN.into(),
                    file_name: "master.wav".into(),
                }),
                content_type: "audio/wav".into(),
                size_bytes: SIZE as i64,
                sha256: sha.clone(),
                kind: v1::AssetKind::Master as i32,
            })),
        };
        // Slices of one buffer, as the generation workers send them.
        let chunks = (0..SIZE).step_by(CHUNK).map(|start| v1::PutObjectRequest {
            part: Some(Part::Chunk(shared.slice(start..(start + CHUNK).min(SIZE)))),
        });
        let messages: Vec<_> = std::iter::once(header).chain(chunks).collect();
        let started = Instant::now();
        let info = client
            .put_object(futures::stream::iter(messages))
            .await?
            .into_inner();
        service_put.push(started.elapsed());

        let started = Instant::now();
        let mut stream = client
            .get_object(v1::GetObjectRequest {
                key: info.key,
                owner: "bench".into(),
                offset: 1 << 20,
                length: (SIZE - (2 << 20)) as u64,
            })
            .await?
            .into_inner();
        let mut received = 0;
        while let Some(part) = stream.message().await? {
            received += part.chunk.len();
        }
        service_get.push(started.elapsed());
        assert_eq!(received, SIZE - (2 << 20));
    }
    shutdown.cancel();

    let report = |what: &str, direct: Vec<Duration>, service: Vec<Duration>, bytes: usize| {
        let (d, s) = (median(direct), median(service));
        println!(
            "{what:<16} direct {:>7.0} MB/s   service {:>7.0} MB/s   overhead {:>+5.1}%",
            mb_per_s(bytes, d),
            mb_per_s(bytes, s),
            (s.as_secs_f64() / d.as_secs_f64() - 1.0) * 100.0
        );
    };
    println!("50 MB object, median of {ROUNDS} rounds, loopback, local backend");
    report("upload", direct_put, service_put, SIZE);
    report("ranged download", direct_get, service_get, SIZE - (2 << 20));
    Ok(())
}
