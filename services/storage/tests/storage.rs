//! The storage service over real gRPC and real HTTP: verified uploads that leave
//! nothing behind, keys that cannot escape their prefix, signed URLs with Range.

mod common;

use cadenza_config::SecretString;
use cadenza_proto::v1;
use cadenza_storage::backend::BackendKind;
use cadenza_storage::signing::UrlSigner;
use common::*;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;

async fn start_local() -> Storage {
    start(BackendKind::Local).await
}

/// Every regular file under the data directory, staging files included.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path)
            } else {
                found.push(path)
            }
        }
    }
    found
}

fn bad_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_verified_upload_reads_back_byte_for_byte() {
    let mut storage = start_local().await;
    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let info = put(&mut storage, "stems/drums.wav", &bytes)
        .await
        .expect("upload");
    assert_eq!(
        info.key,
        format!("users/alice/projects/{PROJECT}/runs/{RUN}/stems/drums.wav")
    );
    assert_eq!(info.size_bytes, 5000);
    let stat = storage
        .client
        .stat_object(v1::StatObjectRequest {
            key: info.key.clone(),
            owner: "alice".into(),
        })
        .await
        .expect("stat")
        .into_inner();
    assert_eq!(
        (stat.size_bytes, stat.content_type.as_str()),
        (5000, "audio/wav")
    );
    let read = get(&mut storage, &info.key, "alice", 0, 0)
        .await
        .expect("get");
    assert_eq!(read, bytes);
}

#[tokio::test]
async fn broken_uploads_are_refused_and_leave_nothing_behind() {
    let mut storage = start_local().await;
    let bytes = vec![7u8; 3000];
    let sha = hex::encode(Sha256::digest(&bytes));
    let cases = [
        // Wrong checksum.
        (
            upload_messages(
                locator("alice", "a.wav"),
                3000,
                "ab".repeat(32),
                vec![bytes.clone()],
            ),
            "sha256",
        ),
        // Fewer bytes than declared.
        (
            upload_messages(
                locator("alice", "b.wav"),
                3000,
                sha.clone(),
                vec![bytes[..1000].to_vec()],
            ),
            "size_bytes",
        ),
        // More bytes than declared.
        (
            upload_messages(
                locator("alice", "c.wav"),
                1000,
                sha.clone(),
                vec![bytes.clone()],
            ),
            "size_bytes",
        ),
        // Empty and oversized objects.
        (
            upload_messages(locator("alice", "d.wav"), 0, sha.clone(), vec![]),
            "size_bytes",
        ),
        (
            upload_messages(locator("alice", "e.wav"), 128 << 20, sha.clone(), vec![]),
            "size_bytes",
        ),
    ];
    for (messages, field) in cases {
        let err = storage
            .client
            .put_object(futures::stream::iter(messages))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(bad_fields(&err), [field], "{}", err.message());
    }
    assert!(
        files(storage.data.path()).is_empty(),
        "left behind: {:?}",
        files(storage.data.path())
    );
}

#[tokio::test]
async fn no_name_reaches_outside_its_prefix() {
    let mut storage = start_local().await;
    for file in [
        "../escape.wav",
        "a/../../b.wav",
        "/etc/passwd",
        "a//b",
        "x\\y",
        "..",
        "a b.wav",
    ] {
        let err = put(&mut storage, file, b"abc").await.expect_err(file);
        assert_eq!(err.code(), Code::InvalidArgument, "{file}");
        assert_eq!(bad_fields(&err), ["file_name"], "{file}");
    }
    let mut bad_owner = locator("../bob", "x.wav");
    bad_owner.owner = "../bob".into();
    let messages = upload_messages(
        bad_owner,
        3,
        hex::encode(Sha256::digest(b"abc")),
        vec![b"abc".to_vec()],
    );
    let err = storage
        .client
        .put_object(futures::stream::iter(messages))
        .await
        .expect_err("owner");
    assert_eq!(bad_fields(&err), ["owner"]);
    for key in [
        "../../etc/passwd",
        "users/alice/../../x",
        &format!("users/alice/projects/{PROJECT}/runs/{RUN}/../../../x"),
    ] {
        let err = storage
            .client
            .stat_object(v1::StatObjectRequest {
                key: key.into(),
                owner: "alice".into(),
            })
            .await
            .expect_err(key);
        assert_eq!(err.code(), Code::InvalidArgument, "{key}");
    }
    assert!(files(storage.data.path()).is_empty());
}

#[tokio::test]
async fn signed_urls_serve_ranges_and_refuse_anything_altered_or_expired() {
    let mut storage = start_local().await;
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 256) as u8).collect();
    let info = put(&mut storage, "master.wav", &bytes)
        .await
        .expect("upload");
    let signed = storage
        .client
        .sign_download_url(v1::SignDownloadUrlRequest {
            key: info.key.clone(),
            owner: "alice".into(),
            expire_seconds: 300,
            download_name: "my song.wav".into(),
        })
        .await
        .expect("sign")
        .into_inner();
    let http = reqwest::Client::new();

    let full = http.get(&signed.url).send().await.expect("get");
    assert_eq!(full.status(), 200);
    let headers = full.headers().clone();
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["content-length"], "4096");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"mysong.wav\""
    );
    // The ETag is the content's SHA-256: a player revalidates without a download.
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(&bytes)));
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(full.bytes().await.expect("body").as_ref(), bytes.as_slice());
    let unchanged = http
        .get(&signed.url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("revalidate");
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.bytes().await.expect("body").is_empty());

    let ranged = http
        .get(&signed.url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 100-199/4096");
    assert_eq!(
        ranged.bytes().await.expect("body").as_ref(),
        &bytes[100..200]
    );
    let tail = http
        .get(&signed.url)
        .header("range", "bytes=-10")
        .send()
        .await
        .expect("suffix");
    assert_eq!(tail.bytes().await.expect("body").as_ref(), &bytes[4086..]);
    let beyond = http
        .get(&signed.url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .expect("416");
    assert_eq!(beyond.status(), 416);

    // An altered signature, another key, and a correctly signed but expired URL.
    let altered = signed.url.replace("sig=", "sig=00");
    let other_key = signed.url.replace("master.wav?", "other.wav?");
    let expired_at = chrono::Utc::now().timestamp() - 60;
    let expired_sig =
        UrlSigner::new(SecretString::from(KEY)).sign(&info.key, expired_at, "mysong.wav");
    let base = signed.url.split("/v1/").next().expect("base");
    let expired = format!(
        "{base}/v1/files/{}?exp={expired_at}&name=mysong.wav&sig={expired_sig}",
        info.key
    );
    for url in [altered, other_key, expired] {
        let response = http.get(&url).send().await.expect("get");
        assert_eq!(response.status(), 403, "{url}");
        assert_eq!(
            response.text().await.expect("body"),
            "forbidden\n",
            "a refusal reveals nothing"
        );
    }
}

#[tokio::test]
async fn a_client_that_disconnects_halfway_leaves_nothing_behind() {
    let mut storage = start_local().await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<v1::PutObjectRequest>(4);
    let total = 20 << 20;
    let header =
        upload_messages(locator("alice", "half.wav"), total, "ab".repeat(32), vec![]).remove(0);
    sender.send(header).await.expect("header");
    let mut client = storage.client.clone();
    let upload = tokio::spawn(async move {
        client
            .put_object(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
    });
    // More than one multipart part, so bytes reach the store's staging area.
    for _ in 0..10 {
        let chunk = v1::PutObjectRequest {
            part: Some(v1::put_object_request::Part::Chunk(
                vec![1u8; 1 << 20].into(),
            )),
        };
        sender.send(chunk).await.expect("chunk");
    }
    // Wait until the service has staged bytes, then vanish mid-stream.
    let staged = async {
        while files(storage.data.path()).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), staged)
        .await
        .expect("the upload reached the store");
    upload.abort();
    drop(sender);
    let cleaned = async {
        while !files(storage.data.path()).is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), cleaned)
        .await
        .unwrap_or_else(|_| panic!("left behind: {:?}", files(storage.data.path())));
    let key = format!("users/alice/projects/{PROJECT}/runs/{RUN}/half.wav");
    let err = get(&mut storage, &key, "alice", 0, 0)
        .await
        .expect_err("nothing readable");
    assert_eq!(err.code(), Code::NotFound);
}
