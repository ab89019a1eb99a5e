//! Dead letters through the real broker: a message no worker can read is
//! rejected into the dead-letter queue, kept by `project`, listed for
//! administrators (and nobody else), and requeued on request, coming back when it
//! fails again.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, admin_token, authed, register};
use cadenza_proto::v1::{self, admin_service_client::AdminServiceClient};
use cadenza_queue::{Publisher, topology::WORK_KEY};
use tonic::Code;
use tonic::transport::Channel;

const GARBAGE: &[u8] = b"\x00\x01 this is not an envelope";

/// Polls the dead letters until `done` holds for the list.
async fn wait_for(
    admin: &mut AdminServiceClient<Channel>,
    token: &str,
    done: impl Fn(&[v1::DeadLetter]) -> bool,
) -> Vec<v1::DeadLetter> {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let letters = admin
                .list_dead_letters(authed(token, v1::ListDeadLettersRequest::default()))
                .await
                .expect("list")
                .into_inner()
                .dead_letters;
            if done(&letters) {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the dead letters arrive in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_message_is_dead_lettered_listed_and_requeued() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = admin_token(&mesh, &channel, "ops@example.com").await;
    let mut admin = AdminServiceClient::new(channel.clone());

    // Someone publishes garbage as stage work: a worker rejects it.
    let publisher = Publisher::new(&mesh.amqp_url, "test-poison", mesh.topology());
    publisher
        .publish(WORK_KEY, "garbage-1", "", GARBAGE)
        .await
        .expect("publish");
    let letters = wait_for(&mut admin, &token, |l| !l.is_empty()).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.kind, "unreadable");
    assert_eq!(letter.reason, "rejected");
    assert_eq!(letter.size_bytes, GARBAGE.len() as i64);
    assert!(letter.requeue_time.is_none());

    // Only administrators see or requeue them.
    let user = register(&channel, "someone@example.com").await;
    let err = admin
        .list_dead_letters(authed(
            &user.access_token,
            v1::ListDeadLettersRequest::default(),
        ))
        .await
        .expect_err("not an admin");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = admin
        .requeue_dead_letter(authed(
            &token,
            v1::RequeueDeadLetterRequest {
                name: "deadLetters/not-an-id".into(),
            },
        ))
        .await
        .expect_err("bad name");
    assert_eq!(err.code(), Code::InvalidArgument);

    // Requeued, it is published again, rejected again, and back in the list as new.
    let requeued = admin
        .requeue_dead_letter(authed(
            &token,
            v1::RequeueDeadLetterRequest {
                name: letter.name.clone(),
            },
        ))
        .await
        .expect("requeue")
        .into_inner();
    assert!(requeued.requeue_time.is_some());
    let first_death = letter.create_time.expect("time");
    let again = wait_for(&mut admin, &token, |l| {
        l.len() == 1
            && l[0].requeue_time.is_none()
            && l[0]
                .create_time
                .as_ref()
                .is_some_and(|t| (t.seconds, t.nanos) > (first_death.seconds, first_death.nanos))
    })
    .await;
    assert_eq!(again[0].name, letter.name, "the same message, dead again");
}
