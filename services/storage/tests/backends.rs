//! One contract, every backend: what holds on the local filesystem must hold on
//! S3 (a real S3-compatible server) and in memory.

mod common;

use cadenza_proto::v1;
use cadenza_storage::backend::BackendKind;
use common::*;
use sha2::{Digest, Sha256};
use tonic::Code;

async fn contract(backend: BackendKind) {
    let mut storage = start(backend).await;
    // Larger than one multipart part (8 MiB), so multipart uploads are exercised.
    let bytes: Vec<u8> = (0..9_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let info = put(&mut storage, "master.wav", &bytes)
        .await
        .expect("upload");
    assert_eq!(info.size_bytes, bytes.len() as i64);

    assert_eq!(
        get(&mut storage, &info.key, "alice", 0, 0)
            .await
            .expect("get"),
        bytes,
        "{backend:?}: full read"
    );
    assert_eq!(
        get(&mut storage, &info.key, "alice", 1000, 500)
            .await
            .expect("range"),
        &bytes[1000..1500]
    );
    assert_eq!(
        get(&mut storage, &info.key, "alice", 8_999_990, 0)
            .await
            .expect("tail"),
        &bytes[8_999_990..]
    );

    // Another owner's key is indistinguishable from a missing one.
    for err in [
        get(&mut storage, &info.key, "mallory", 0, 0)
            .await
            .expect_err("foreign get"),
        storage
            .client
            .stat_object(v1::StatObjectRequest {
                key: info.key.clone(),
                owner: "mallory".into(),
            })
            .await
            .expect_err("foreign stat"),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{backend:?}: {err:?}");
    }
    let stat = storage
        .client
        .stat_object(v1::StatObjectRequest {
            key: info.key.clone(),
            owner: "alice".into(),
        })
        .await
        .expect("stat")
        .into_inner();
    assert_eq!(stat.size_bytes, bytes.len() as i64);

    // A signed URL works with a plain HTTP client, Range included.
    let signed = storage
        .client
        .sign_download_url(v1::SignDownloadUrlRequest {
            key: info.key.clone(),
            owner: "alice".into(),
            expire_seconds: 300,
            download_name: "song.wav".into(),
        })
        .await
        .expect("sign")
        .into_inner();
    if backend == BackendKind::S3 {
        assert!(
            signed.url.contains("X-Amz-Signature="),
            "an S3 presigned URL: {}",
            signed.url
        );
    } else {
        assert!(signed.url.starts_with(&storage.http_url), "{}", signed.url);
    }
    let http = reqwest::Client::new();
    let ranged = http
        .get(&signed.url)
        .header("range", "bytes=0-99")
        .send()
        .await
        .expect("fetch");
    assert_eq!(ranged.status(), 206, "{backend:?}");
    assert_eq!(ranged.bytes().await.expect("body").as_ref(), &bytes[..100]);
    let full = http.get(&signed.url).send().await.expect("fetch");
    assert_eq!(full.status(), 200);
    assert_eq!(
        Sha256::digest(full.bytes().await.expect("body")),
        Sha256::digest(&bytes)
    );
    // Our own signatures are checked by our HTTP endpoint; an S3 presigned URL's
    // signature is checked by S3 (or MinIO), which the test server here does not
    // emulate, so that check belongs to the service-signed backends.
    if backend != BackendKind::S3 {
        let tampered = signed
            .url
            .replacen("Signature=", "Signature=0", 1)
            .replacen("sig=", "sig=0", 1);
        assert_eq!(
            http.get(&tampered).send().await.expect("fetch").status(),
            403,
            "{backend:?}"
        );
    }

    // A broken upload leaves nothing readable under its key.
    let messages = upload_messages(
        locator("alice", "broken.wav"),
        3,
        "ab".repeat(32),
        vec![b"abc".to_vec()],
    );
    let err = storage
        .client
        .put_object(futures::stream::iter(messages))
        .await
        .expect_err("checksum");
    assert_eq!(err.code(), Code::InvalidArgument);
    let broken_key = info.key.replace("master.wav", "broken.wav");
    let err = storage
        .client
        .stat_object(v1::StatObjectRequest {
            key: broken_key,
            owner: "alice".into(),
        })
        .await
        .expect_err("nothing visible");
    assert_eq!(err.code(), Code::NotFound, "{backend:?}");

    let deleted = storage
        .client
        .delete_project_objects(v1::DeleteProjectObjectsRequest {
            owner: "alice".into(),
            project_id: PROJECT.into(),
        })
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_count, 1, "{backend:?}");
    assert_eq!(
        get(&mut storage, &info.key, "alice", 0, 0)
            .await
            .expect_err("gone")
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn the_local_backend_keeps_the_contract() {
    contract(BackendKind::Local).await;
}

#[tokio::test]
async fn the_memory_backend_keeps_the_contract() {
    contract(BackendKind::Memory).await;
}

#[tokio::test]
async fn the_s3_backend_keeps_the_contract() {
    contract(BackendKind::S3).await;
}
