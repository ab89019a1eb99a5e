//! Dead letters through the real broker: a message no worker can read is
//! rejected into the dead-letter queue, kept by `project`, listed for
//! administrators (and nobody else), and requeued on request, coming back when it
//! fails again; or dismissed with a reason, after which it no longer counts as
//! pending.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, admin_token, authed, reason, register, violated_fields};
use cadenza_proto::v1::{self, admin_service_client::AdminServiceClient};
use cadenza_queue::{Publisher, topology::WORK_KEY};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
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

fn dismissal(token: &str, name: &str, why: &str) -> tonic::Request<v1::DismissDeadLetterRequest> {
    authed(
        token,
        v1::DismissDeadLetterRequest {
            name: name.into(),
            reason: why.into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dismissed_dead_letter_stays_listed_but_is_no_longer_pending() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = admin_token(&mesh, &channel, "ops@example.com").await;
    let mut admin = AdminServiceClient::new(channel.clone());
    let mut db = AsyncPgConnection::establish(&mesh.database.url)
        .await
        .expect("database");

    Publisher::new(&mesh.amqp_url, "test-poison", mesh.topology())
        .publish(WORK_KEY, "garbage-2", "", GARBAGE)
        .await
        .expect("publish");
    let letter = wait_for(&mut admin, &token, |l| !l.is_empty()).await[0].clone();
    assert_eq!(
        cadenza_project::dead_letters::pending(&mut db)
            .await
            .expect("pending"),
        1
    );

    // Only administrators dismiss; a bad name and a missing reason are both named.
    let user = register(&channel, "someone@example.com").await;
    let err = admin
        .dismiss_dead_letter(dismissal(&user.access_token, &letter.name, "mine now"))
        .await
        .expect_err("not an admin");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = admin
        .dismiss_dead_letter(dismissal(&token, "deadLetters/42", "  "))
        .await
        .expect_err("bad input");
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, ["name", "reason"], "{err:?}");
    let err = admin
        .dismiss_dead_letter(dismissal(
            &token,
            &format!("deadLetters/{}", uuid::Uuid::now_v7()),
            "gone",
        ))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(reason(&err), "DEAD_LETTER_NOT_FOUND");

    // Dismissed: kept, with its reason, and no longer pending.
    let dismissed = admin
        .dismiss_dead_letter(dismissal(&token, &letter.name, "bytes from a load test"))
        .await
        .expect("dismiss")
        .into_inner();
    assert_eq!(dismissed.name, letter.name);
    assert_eq!(dismissed.dismiss_reason, "bytes from a load test");
    let dismissed_at = dismissed.dismiss_time.expect("dismiss time");
    assert_eq!(
        cadenza_project::dead_letters::pending(&mut db)
            .await
            .expect("pending"),
        0
    );
    let listed = wait_for(&mut admin, &token, |l| l.len() == 1).await;
    assert_eq!(listed[0].dismiss_time, Some(dismissed_at));

    // Dismissing it again changes nothing and is not audited twice.
    let again = admin
        .dismiss_dead_letter(dismissal(&token, &letter.name, "another reason"))
        .await
        .expect("dismiss again")
        .into_inner();
    assert_eq!(
        (again.dismiss_reason.as_str(), again.dismiss_time),
        ("bytes from a load test", Some(dismissed_at))
    );
    let audit = admin
        .list_audit_events(authed(&token, v1::ListAuditEventsRequest::default()))
        .await
        .expect("audit log")
        .into_inner()
        .audit_events;
    let dismissals: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "dead_letter.dismiss")
        .collect();
    assert_eq!(dismissals.len(), 1, "{audit:?}");
    assert_eq!(dismissals[0].target, letter.name);
    assert!(dismissals[0].detail.contains("bytes from a load test"));

    // A letter requeued (and not yet dead again) is not pending: nothing to dismiss.
    diesel::sql_query(
        "UPDATE dead_letters SET requeued_at = now(), dismissed_at = NULL, dismiss_reason = NULL",
    )
    .execute(&mut db)
    .await
    .expect("mark requeued");
    let err = admin
        .dismiss_dead_letter(dismissal(&token, &letter.name, "too late"))
        .await
        .expect_err("requeued");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "DEAD_LETTER_REQUEUED");
    assert!(err.message().contains("requeued"), "{}", err.message());
}
