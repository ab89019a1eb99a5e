//! Credits through the whole mesh: a sign-up grant, a reservation made with the
//! run, captured when the song arrives, refunded when it is cancelled, and a
//! song the balance cannot cover refused with a QuotaFailure and nothing written.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed, finished_state, usage};
use cadenza_proto::v1::{
    self, auth_service_client::AuthServiceClient, project_service_client::ProjectServiceClient,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const SONG_TIMEOUT: Duration = Duration::from_secs(120);

/// Changes what the next generation of `name` will cost.
async fn set_length(
    projects: &mut ProjectServiceClient<Channel>,
    token: &str,
    name: &str,
    duration_seconds: u32,
    has_vocals: bool,
) {
    projects
        .update_project(authed(
            token,
            v1::UpdateProjectRequest {
                project: Some(v1::Project {
                    name: name.into(),
                    duration_seconds,
                    has_vocals,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["duration_seconds".into(), "has_vocals".into()],
                }),
            },
        ))
        .await
        .expect("update");
}

fn kinds(usage: &v1::Usage) -> Vec<(String, i64)> {
    usage
        .entries
        .iter()
        .map(|e| (e.kind.clone(), e.amount))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn songs_are_paid_for_only_when_they_arrive() {
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_DEV_MODE", "true");
    env.set("CADENZA_CREDITS_ENFORCED", "true");
    env.set("CADENZA_SIGNUP_CREDITS", "25");
    let mesh = TestMesh::start_with(env).await;
    let channel = mesh.channel().await;
    let mut projects = ProjectServiceClient::new(channel.clone());
    let session = AuthServiceClient::new(channel.clone())
        .register(v1::RegisterRequest {
            email: "payer@example.com".into(),
            password: "a long enough passphrase".into(),
            accept_terms_version: String::new(),
        })
        .await
        .expect("register")
        .into_inner();
    let token = session.access_token;
    let start = usage(&channel, &token).await;
    assert_eq!(start.balance, 25);
    assert_eq!(kinds(&start), [("grant".to_owned(), 25)]);

    let project = projects
        .create_project(authed(
            &token,
            v1::CreateProjectRequest {
                project: Some(v1::Project {
                    prompt: "a short calm piano piece".into(),
                    duration_seconds: 10,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create")
        .into_inner();
    let generate = v1::GenerateSongRequest {
        name: project.name.clone(),
        request_id: String::new(),
    };
    projects
        .generate_song(authed(&token, generate.clone()))
        .await
        .expect("generate");
    // Reserved with the run: 10 seconds without vocals cost 10.
    assert_eq!(usage(&channel, &token).await.balance, 15);
    assert_eq!(
        finished_state(&channel, &token, &project.name, SONG_TIMEOUT).await,
        v1::RunState::Succeeded
    );
    let after = usage(&channel, &token).await;
    assert_eq!((after.balance, after.reserved), (15, 0));
    assert_eq!(after.entries[0].kind, "capture");
    assert_eq!(after.entries[0].amount, 10);
    assert!(
        after.entries[0]
            .run
            .starts_with(&format!("{}/runs/", project.name))
    );

    // 20 seconds with vocals cost 30: more than is left. Refused, nothing written.
    set_length(&mut projects, &token, &project.name, 20, true).await;
    let err = projects
        .generate_song(authed(&token, generate.clone()))
        .await
        .expect_err("too few credits");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let quota = err.get_details_quota_failure().expect("a QuotaFailure");
    assert!(
        quota.violations[0]
            .description
            .contains("30 credits and 15 are left"),
        "{quota:?}"
    );
    let unchanged = usage(&channel, &token).await;
    assert_eq!(
        (unchanged.balance, unchanged.entries.len()),
        (15, after.entries.len())
    );

    // Cancelled before it could finish: refunded. (Should the song win the race
    // and complete, it is charged instead; either way exactly once.)
    set_length(&mut projects, &token, &project.name, 10, false).await;
    projects
        .generate_song(authed(&token, generate))
        .await
        .expect("generate again");
    let _ = projects
        .cancel_generation(authed(
            &token,
            v1::CancelGenerationRequest {
                name: project.name.clone(),
            },
        ))
        .await;
    let state = finished_state(&channel, &token, &project.name, SONG_TIMEOUT).await;
    let settled = usage(&channel, &token).await;
    match state {
        v1::RunState::Cancelled => {
            assert_eq!(settled.balance, 15, "refunded");
            assert_eq!(kinds(&settled)[0], ("refund".to_owned(), 10));
        }
        v1::RunState::Succeeded => {
            assert_eq!(settled.balance, 5, "charged once");
            assert_eq!(kinds(&settled)[0], ("capture".to_owned(), 10));
        }
        other => panic!("unexpected final state {other:?}"),
    }
    assert_eq!(settled.reserved, 0);
    mesh.stop().await;
}
