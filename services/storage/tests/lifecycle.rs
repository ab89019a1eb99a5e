//! The catalog and the object lifecycle against the real Postgres: what is stored
//! for a user, soft deletion with a purge after the grace period (safe twice and
//! from two replicas at once), expiring previews, and errors counted by kind.

mod common;

use std::time::Duration;

use cadenza_proto::v1;
use cadenza_storage::backend::BackendKind;
use chrono::Utc;
use common::*;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tonic::Code;
use tonic_types::StatusExt;

const OTHER_PROJECT: &str = "0190b8d2-7c1e-7cc0-a1b2-0123456789ad";

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

async fn list(
    storage: &mut Storage,
    owner: &str,
    page_size: i32,
    token: &str,
) -> v1::ListOwnerObjectsResponse {
    storage
        .client
        .list_owner_objects(v1::ListOwnerObjectsRequest {
            owner: owner.into(),
            page_size,
            page_token: token.into(),
        })
        .await
        .expect("list")
        .into_inner()
}

async fn stored_bytes_exist(storage: &Storage, key: &str) -> bool {
    match storage.backend.store.head(&Path::from(key)).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(err) => panic!("head {key}: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_catalog_answers_what_is_stored_for_a_user_page_by_page() {
    let mut storage = start(BackendKind::Local).await;
    let mut keys = Vec::new();
    for (file, size) in [
        ("master.wav", 3000),
        ("stems/drums.wav", 2000),
        ("lyrics.txt", 10),
    ] {
        let info = put_as(
            &mut storage,
            "alice",
            PROJECT,
            file,
            &vec![1u8; size],
            v1::AssetKind::Stem,
        )
        .await
        .expect("upload");
        keys.push(info.key);
    }
    put_as(
        &mut storage,
        "bob",
        PROJECT,
        "master.wav",
        &[2u8; 700],
        v1::AssetKind::Master,
    )
    .await
    .expect("bob's upload");

    let first = list(&mut storage, "alice", 2, "").await;
    assert_eq!((first.object_count, first.total_bytes), (3, 5010));
    assert_eq!(first.pending_purge_bytes, 0);
    assert_eq!(first.objects.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = list(&mut storage, "alice", 2, &first.next_page_token).await;
    assert_eq!(second.objects.len(), 1);
    assert!(second.next_page_token.is_empty());
    let mut listed: Vec<String> = first
        .objects
        .iter()
        .chain(&second.objects)
        .map(|o| o.key.clone())
        .collect();
    listed.sort();
    keys.sort();
    assert_eq!(listed, keys, "every object once, across pages");
    let master = first
        .objects
        .iter()
        .chain(&second.objects)
        .find(|o| o.key.ends_with("/master.wav"))
        .expect("master listed");
    assert_eq!(master.size_bytes, 3000);
    assert_eq!(master.owner, "alice");
    assert_eq!(master.content_type, "audio/wav");
    assert_eq!(master.sha256.len(), 64);

    let bob = list(&mut storage, "bob", 0, "").await;
    assert_eq!((bob.object_count, bob.total_bytes), (1, 700));
    // Alice's page token is not a way into Bob's listing.
    let err = storage
        .client
        .list_owner_objects(v1::ListOwnerObjectsRequest {
            owner: "bob".into(),
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .expect_err("foreign token");
    assert_eq!(err.code(), Code::InvalidArgument);
    for page_size in [-1, 1001] {
        let err = storage
            .client
            .list_owner_objects(v1::ListOwnerObjectsRequest {
                owner: "alice".into(),
                page_size,
                page_token: String::new(),
            })
            .await
            .expect_err("bad page size");
        assert_eq!(err.code(), Code::InvalidArgument, "{page_size}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_project_is_unreadable_at_once_and_purged_after_the_grace_period() {
    let mut storage = start(BackendKind::Local).await;
    // More objects than one sweep batch, so two sweeps interleave batches.
    let mut doomed = Vec::new();
    for i in 0..150 {
        let info = put_as(
            &mut storage,
            "alice",
            PROJECT,
            &format!("stems/part-{i}.wav"),
            format!("bytes of part {i}").as_bytes(),
            v1::AssetKind::Stem,
        )
        .await
        .expect("upload");
        doomed.push(info.key);
    }
    let kept = put_as(
        &mut storage,
        "alice",
        OTHER_PROJECT,
        "master.wav",
        b"keep me",
        v1::AssetKind::Master,
    )
    .await
    .expect("other project")
    .key;
    let signed = storage
        .client
        .sign_download_url(v1::SignDownloadUrlRequest {
            key: doomed[0].clone(),
            owner: "alice".into(),
            expire_seconds: 600,
            download_name: String::new(),
        })
        .await
        .expect("sign")
        .into_inner()
        .url;

    let delete = v1::DeleteProjectObjectsRequest {
        owner: "alice".into(),
        project_id: PROJECT.into(),
    };
    let marked = storage
        .client
        .delete_project_objects(delete.clone())
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(marked.deleted_count, 150);
    let again = storage
        .client
        .delete_project_objects(delete)
        .await
        .expect("delete twice")
        .into_inner();
    assert_eq!(again.deleted_count, 0, "deleting twice marks nothing twice");

    // Gone for every reader at once, though the bytes are still kept.
    let err = get(&mut storage, &doomed[0], "alice", 0, 0)
        .await
        .expect_err("read after delete");
    assert_eq!(err.code(), Code::NotFound);
    let err = storage
        .client
        .stat_object(v1::StatObjectRequest {
            key: doomed[1].clone(),
            owner: "alice".into(),
        })
        .await
        .expect_err("stat after delete");
    assert_eq!(err.code(), Code::NotFound);
    let response = reqwest::get(&signed).await.expect("signed url");
    assert_eq!(response.status(), 404, "a URL signed before the deletion");
    assert!(stored_bytes_exist(&storage, &doomed[0]).await);
    let listed = list(&mut storage, "alice", 1000, "").await;
    assert_eq!(listed.object_count, 151);
    assert!(listed.pending_purge_bytes > 0);
    let deleted_entry = listed
        .objects
        .iter()
        .find(|o| o.key == doomed[0])
        .expect("still catalogued");
    assert!(deleted_entry.delete_time.is_some());

    // A worker finishing late cannot put bytes back into the deleted project.
    let err = put_as(
        &mut storage,
        "alice",
        PROJECT,
        "late.wav",
        b"late",
        v1::AssetKind::Master,
    )
    .await
    .expect_err("upload into a deleted project");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "PROJECT_DELETED");

    // Within the grace period nothing is purged.
    assert_eq!(storage.sweep(Utc::now()).await.purged_objects, 0);
    assert!(stored_bytes_exist(&storage, &doomed[0]).await);

    // After it, two replicas sweep at once: every object is purged exactly once.
    let later = Utc::now() + chrono::Duration::days(31);
    let (a, b) = tokio::join!(storage.sweep(later), storage.sweep(later));
    assert_eq!(a.purged_objects + b.purged_objects, 150, "{a:?} {b:?}");
    for key in &doomed {
        assert!(!stored_bytes_exist(&storage, key).await, "{key} purged");
    }
    assert_eq!(
        storage.sweep(later).await.purged_objects,
        0,
        "a second sweep finds nothing"
    );

    // The other project is untouched.
    assert!(stored_bytes_exist(&storage, &kept).await);
    assert_eq!(
        get(&mut storage, &kept, "alice", 0, 0).await.expect("kept"),
        b"keep me"
    );
    let listed = list(&mut storage, "alice", 0, "").await;
    assert_eq!((listed.object_count, listed.pending_purge_bytes), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn previews_expire_and_are_purged_while_masters_stay() {
    let mut storage = start_with(
        BackendKind::Local,
        Options {
            preview_ttl: Some(chrono::Duration::seconds(1)),
            ..Options::default()
        },
    )
    .await;
    let preview = put_as(
        &mut storage,
        "alice",
        PROJECT,
        "preview.mp3",
        b"mp3 bytes",
        v1::AssetKind::Preview,
    )
    .await
    .expect("preview");
    let master = put_as(
        &mut storage,
        "alice",
        PROJECT,
        "master.wav",
        b"wav bytes",
        v1::AssetKind::Master,
    )
    .await
    .expect("master");
    let expires = preview.expire_time.expect("a preview expires");
    assert!(master.expire_time.is_none(), "a master does not");
    assert!(expires.seconds <= Utc::now().timestamp() + 2);
    assert_eq!(
        get(&mut storage, &preview.key, "alice", 0, 0)
            .await
            .expect("fresh preview"),
        b"mp3 bytes"
    );
    // A URL never outlives its object.
    let signed = storage
        .client
        .sign_download_url(v1::SignDownloadUrlRequest {
            key: preview.key.clone(),
            owner: "alice".into(),
            expire_seconds: 3600,
            download_name: String::new(),
        })
        .await
        .expect("sign")
        .into_inner();
    assert!(signed.expire_time.expect("expiry").seconds <= expires.seconds);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = get(&mut storage, &preview.key, "alice", 0, 0)
        .await
        .expect_err("expired preview");
    assert_eq!(err.code(), Code::NotFound);
    let report = storage.sweep(Utc::now()).await;
    assert_eq!(report.purged_objects, 1);
    assert_eq!(report.purged_bytes, 9);
    assert!(!stored_bytes_exist(&storage, &preview.key).await);
    assert_eq!(
        get(&mut storage, &master.key, "alice", 0, 0)
            .await
            .expect("master stays"),
        b"wav bytes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_counted_by_operation_and_kind() {
    let metrics = cadenza_telemetry::init_for_test();
    let mut storage = start(BackendKind::Memory).await;
    let messages = upload_messages(
        locator("alice", "a.wav"),
        3,
        "ab".repeat(32),
        vec![b"abc".to_vec()],
    );
    storage
        .client
        .put_object(futures::stream::iter(messages))
        .await
        .expect_err("checksum mismatch");
    let missing = format!("users/alice/projects/{PROJECT}/runs/{RUN}/missing.wav");
    get(&mut storage, &missing, "alice", 0, 0)
        .await
        .expect_err("missing");
    let rendered = metrics.render();
    for expected in [
        r#"cadenza_storage_errors_total{operation="put",kind="invalid_sha256"}"#,
        r#"cadenza_storage_errors_total{operation="get",kind="object_not_found"}"#,
    ] {
        assert!(
            rendered.contains(expected),
            "{expected} missing from:\n{rendered}"
        );
    }
}
