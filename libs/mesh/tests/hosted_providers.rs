//! A song whose lyrics stage runs on a hosted provider (a local server speaking
//! replicate's queue API) after the first provider in the chain (fal, refusing
//! the key) falls through: the hosted output is copied into storage like any
//! other artifact, the stage records who made it, the job log says why fal was
//! passed over, and the provider's health shows fal failing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cadenza_mesh::testing::{
    TestMesh, admin_token, authed, create_project, finished_state, generate, reason,
};
use cadenza_proto::v1::{
    self, asset_service_client::AssetServiceClient, project_service_client::ProjectServiceClient,
};
use futures::StreamExt;

const LYRICS: &str = "[Verse]\nhosted words for a hosted song\n";

struct Server {
    base: String,
    fal_calls: AtomicUsize,
}

fn json(value: serde_json::Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn start() -> Arc<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = Arc::new(Server {
        base: format!("http://{}", listener.local_addr().expect("addr")),
        fal_calls: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(
            "/fal/{*model}",
            post(|State(s): State<Arc<Server>>| async move {
                s.fal_calls.fetch_add(1, Ordering::SeqCst);
                (StatusCode::FORBIDDEN, "invalid key").into_response()
            }),
        )
        .route(
            "/v1/predictions",
            post(|State(s): State<Arc<Server>>| async move {
                json(serde_json::json!({
                    "id": "p1",
                    "status": "starting",
                    "urls": {"get": format!("{}/v1/predictions/p1", s.base), "cancel": format!("{}/v1/predictions/p1/cancel", s.base)},
                }))
            }),
        )
        .route(
            "/v1/predictions/{id}",
            get(|State(s): State<Arc<Server>>, Path(_id): Path<String>| async move {
                json(serde_json::json!({
                    "status": "succeeded",
                    "logs": "loading model\nwriting lyrics",
                    "output": {"outputs": [{
                        "kind": "lyrics",
                        "name": "lyrics.txt",
                        "url": format!("{}/files/lyrics.txt", s.base),
                        "content_type": "text/plain; charset=utf-8",
                    }]},
                }))
            }),
        )
        .route("/files/lyrics.txt", get(|| async { LYRICS }))
        .with_state(server.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_falls_through_to_a_hosted_provider_and_its_output_is_stored() {
    let server = start().await;
    // Provider keys are production's: no dev mode beside them.
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_PROVIDER_CHAIN", "lyrics=fal,replicate,builtin");
    env.set("CADENZA_FAL_KEY", "not-a-real-key");
    env.set("CADENZA_FAL_URL", format!("{}/fal", server.base));
    env.set("CADENZA_REPLICATE_TOKEN", "also-not-real");
    env.set("CADENZA_REPLICATE_URL", &server.base);
    env.set("CADENZA_PROVIDER_POLL_MILLIS", "20");
    let mesh = TestMesh::production(env).await;
    let channel = mesh.channel().await;
    let token = cadenza_mesh::testing::register(&channel, "hosted-fan@example.com")
        .await
        .access_token;
    let mut projects = ProjectServiceClient::new(channel.clone());
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "hosted".into(),
            prompt: "a folk song about rivers".into(),
            duration_seconds: 6,
            has_vocals: true,
            ..Default::default()
        },
    )
    .await;
    generate(&channel, &token, &project.name).await;
    assert_eq!(
        finished_state(&channel, &token, &project.name, Duration::from_secs(180)).await,
        v1::RunState::Succeeded
    );
    assert_eq!(
        server.fal_calls.load(Ordering::SeqCst),
        1,
        "a 403 is not retried"
    );

    // The stage says who made it; the others ran on the built-in engine.
    let status = projects
        .get_project_status(authed(
            &token,
            v1::GetProjectStatusRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("status")
        .into_inner();
    for stage in &status.stages {
        let expected = if stage.kind() == v1::StageKind::Lyrics {
            "replicate"
        } else {
            "builtin"
        };
        assert_eq!(stage.provider, expected, "{:?}", stage.kind());
    }

    // The hosted lyrics were copied into storage and are what the song was sung from.
    let mut assets = AssetServiceClient::new(channel.clone());
    let listed = assets
        .list_assets(authed(
            &token,
            v1::ListAssetsRequest {
                parent: project.name.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("assets")
        .into_inner();
    let lyrics = listed
        .assets
        .iter()
        .find(|a| a.kind() == v1::AssetKind::Lyrics)
        .expect("lyrics asset");
    let mut stream = assets
        .read_asset(authed(
            &token,
            v1::ReadAssetRequest {
                name: lyrics.name.clone(),
            },
        ))
        .await
        .expect("read")
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("chunk").data);
    }
    assert_eq!(String::from_utf8(bytes).expect("utf-8"), LYRICS);

    // The provenance names the hosted job.
    let provenance = projects
        .get_provenance(authed(
            &token,
            v1::GetProvenanceRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect("provenance")
        .into_inner();
    let lyrics_made = provenance
        .stages
        .iter()
        .find(|s| s.kind() == v1::StageKind::Lyrics)
        .expect("lyrics provenance");
    assert_eq!(
        (
            lyrics_made.provider.as_str(),
            lyrics_made.provider_version.as_str(),
            lyrics_made.provider_job_id.as_str()
        ),
        ("replicate", "cadenza-stage", "p1")
    );
    assert_eq!(lyrics_made.outputs[0].sha256, lyrics.sha256);

    // The job log tells why fal was passed over.
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
        .into_inner();
    // Structured: who, which job, which error, for which run.
    let entries = &logs.logs;
    assert!(entries.iter().all(|l| l.project == project.name
        && l.run.starts_with(&format!("{}/runs/", project.name))
        && !l.worker_id.is_empty()));
    let refused = entries
        .iter()
        .find(|l| l.provider == "fal")
        .expect("a line about fal");
    assert_eq!(
        (refused.error_code.as_str(), refused.stage_kind()),
        ("PROVIDER_AUTH", v1::StageKind::Lyrics)
    );
    let made = entries
        .iter()
        .find(|l| l.provider == "replicate" && l.error_code.is_empty())
        .expect("the line of the hosted success");
    assert_eq!(made.provider_job_id, "p1");
    let text = format!("{logs:?}");
    assert!(text.contains("fal: PROVIDER_AUTH"), "{text}");
    assert!(text.contains("replicate made 1 artifacts"), "{text}");
    assert!(!text.contains("rivers"), "the prompt never reaches a log");

    // Administrators see, through the gateway, each replica's view of its
    // providers: fal failing with the refusal, replicate fine, and which replica
    // (the worker that wrote the log lines above) says so.
    let mut health = v1::provider_service_client::ProviderServiceClient::new(channel.clone());
    let err = health
        .get_provider_health(authed(&token, v1::GetProviderHealthRequest {}))
        .await
        .expect_err("not an administrator");
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        reason(&err)
    );
    let admin = admin_token(&mesh, &channel, "ops@example.com").await;
    let view = health
        .get_provider_health(authed(&admin, v1::GetProviderHealthRequest {}))
        .await
        .expect("provider health")
        .into_inner();
    assert!(view.unreachable_replicas.is_empty(), "{view:?}");
    let of = |name: &str| {
        view.providers
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} in {view:?}"))
    };
    let (fal, replicate) = (of("fal"), of("replicate"));
    assert!(
        !fal.ok && fal.last_error.contains("PROVIDER_AUTH"),
        "{fal:?}"
    );
    assert!(replicate.ok && replicate.calls >= 1, "{replicate:?}");
    assert_eq!(
        fal.replica, made.worker_id,
        "the replica is the worker that ran it"
    );
}
