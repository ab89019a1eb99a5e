//! The object store becoming unreachable in the middle of an upload: the caller
//! hears UNAVAILABLE (so it can retry), and nothing partial is ever readable,
//! neither through the service nor in the bucket itself.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cadenza_proto::v1;
use common::*;
use futures::TryStreamExt;
use object_store::ObjectStore;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic_types::StatusExt;

/// A TCP proxy that can be cut: open, it forwards to `target`; cut, it drops
/// every connection it carries and refuses new ones, as a store behind a
/// failed network would.
struct Proxy {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let open = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let accepting_open = open.clone();
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !accepting_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, open, cut }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn endpoint_addr(endpoint: &str) -> std::net::SocketAddr {
    endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint address")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_store_lost_mid_upload_leaves_nothing_readable() {
    // A moto server, reached by the service only through the proxy.
    let s3 = S3Server::start().await;
    let proxy = Proxy::start(endpoint_addr(&s3.endpoint)).await;
    let mut storage = start_with_s3(
        &s3,
        Options {
            s3_endpoint: Some(format!("http://{}", proxy.addr)),
            ..Options::default()
        },
    )
    .await;

    let total: usize = 24 << 20;
    let (sender, receiver) = tokio::sync::mpsc::channel::<v1::PutObjectRequest>(2);
    let header = upload_messages(
        locator("alice", "lost.wav"),
        total as i64,
        "ab".repeat(32),
        vec![],
    )
    .remove(0);
    sender.send(header).await.expect("header");
    let mut client = storage.client.clone();
    let upload = tokio::spawn(async move {
        client
            .put_object(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    let chunk = |fill: u8| v1::PutObjectRequest {
        part: Some(v1::put_object_request::Part::Chunk(
            vec![fill; 1 << 20].into(),
        )),
    };
    // Past the first 8 MiB part, so the store has started a multipart upload.
    for _ in 0..12 {
        sender.send(chunk(1)).await.expect("chunk before the cut");
    }
    proxy.cut();
    // The rest arrives while the store is gone; the service may refuse it early.
    for _ in 12..24 {
        if sender.send(chunk(2)).await.is_err() {
            break;
        }
    }
    drop(sender);
    let status = tokio::time::timeout(Duration::from_secs(60), upload)
        .await
        .expect("the upload ends instead of hanging")
        .expect("upload task")
        .expect_err("an upload to an unreachable store fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status
            .get_details_error_info()
            .map(|info| info.reason)
            .as_deref(),
        Some("STORE_UNAVAILABLE")
    );
    assert!(
        status.message().contains("try again"),
        "a message a person can act on: {}",
        status.message()
    );

    // With the store back, nothing of the upload can be read or is in the bucket.
    proxy.restore();
    let key = format!("users/alice/projects/{PROJECT}/runs/{RUN}/lost.wav");
    let err = storage
        .client
        .stat_object(v1::StatObjectRequest {
            key: key.clone(),
            owner: "alice".into(),
        })
        .await
        .expect_err("nothing catalogued");
    assert_eq!(err.code(), Code::NotFound);
    let direct = cadenza_storage::backend::Backend::s3(&s3.config()).expect("direct client");
    let in_bucket: Vec<_> = direct
        .store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    assert!(in_bucket.is_empty(), "left in the bucket: {in_bucket:?}");

    // And the service recovers: the same upload succeeds once the store is back.
    let bytes = vec![3u8; 9 << 20];
    let info = put(&mut storage, "lost.wav", &bytes)
        .await
        .expect("retry succeeds");
    assert_eq!(info.size_bytes, bytes.len() as i64);
}
