//! Cancelling a song while a stage renders: the run ends at once (refunded),
//! and the worker rendering it hears the broadcast, stops at its next checkpoint
//! and says so in the job log; the stage's outputs are never stored.

use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed, create_project, generate, wait_until_mixing};
use cadenza_proto::v1::{
    self, asset_service_client::AssetServiceClient, project_service_client::ProjectServiceClient,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_song_stops_its_running_stage_at_the_next_checkpoint() {
    let mesh = TestMesh::start().await;
    let channel = mesh.channel().await;
    let token = mesh.token("canceller").await;
    let mut projects = ProjectServiceClient::new(channel.clone());
    // Ten minutes of music: the mix takes long enough to be caught in the middle.
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "long".into(),
            prompt: "slow ambient drone".into(),
            duration_seconds: 600,
            ..Default::default()
        },
    )
    .await;
    generate(&channel, &token, &project.name).await;
    wait_until_mixing(&channel, &token, &project.name).await;

    let run = projects
        .cancel_generation(authed(
            &token,
            v1::CancelGenerationRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(run.state(), v1::RunState::Cancelled);

    // The worker stops mid-mix and reports it.
    let stopped = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let logs = projects
                .list_job_logs(authed(
                    &token,
                    v1::ListJobLogsRequest {
                        parent: project.name.clone(),
                        page_size: 100,
                        page_token: String::new(),
                    },
                ))
                .await
                .expect("logs")
                .into_inner()
                .logs;
            if let Some(line) = logs
                .into_iter()
                .find(|l| l.stage_kind() == v1::StageKind::Mix && l.error_code == "CANCELLED")
            {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the worker reports that it stopped");
    assert_eq!(stopped.provider, "builtin");

    let assets = AssetServiceClient::new(channel)
        .list_assets(authed(
            &token,
            v1::ListAssetsRequest {
                parent: project.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("assets")
        .into_inner()
        .assets;
    assert!(
        assets
            .iter()
            .all(|a| a.kind() != v1::AssetKind::Mix && a.kind() != v1::AssetKind::Stem),
        "nothing of the stopped mix is kept: {assets:?}"
    );
}
