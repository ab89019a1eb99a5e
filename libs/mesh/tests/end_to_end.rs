//! One song from a gRPC call to a playable file, through the gateway, project,
//! generation and storage, RabbitMQ and Postgres.

use std::collections::HashMap;
use std::time::Duration;

use cadenza_mesh::testing::{TestMesh, authed};
use cadenza_proto::v1::{self, StageKind, StageState, stage_event::Type};
use futures::StreamExt;

const SONG_TIMEOUT: Duration = Duration::from_secs(180);

async fn create_and_generate(
    mesh: &TestMesh,
    token: &str,
    has_vocals: bool,
) -> (v1::Project, v1::Run) {
    let channel = mesh.channel().await;
    let mut projects = v1::project_service_client::ProjectServiceClient::new(channel);
    let project = projects
        .create_project(authed(
            token,
            v1::CreateProjectRequest {
                project: Some(v1::Project {
                    prompt: "a warm lo-fi song about the sea at night, 84 bpm".into(),
                    duration_seconds: 10,
                    has_vocals,
                    style_strength: 0.7,
                    seed: Some(7),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create project")
        .into_inner();
    let run = projects
        .generate_song(authed(
            token,
            v1::GenerateSongRequest {
                name: project.name.clone(),
                request_id: String::new(),
            },
        ))
        .await
        .expect("generate song")
        .into_inner();
    (project, run)
}

/// Reads the event stream from `after` until the run finishes.
async fn events_until_finished(
    mesh: &TestMesh,
    token: &str,
    project: &str,
    after: i64,
) -> Vec<v1::StageEvent> {
    let mut projects = v1::project_service_client::ProjectServiceClient::new(mesh.channel().await);
    let mut stream = projects
        .watch_project(authed(
            token,
            v1::WatchProjectRequest {
                name: project.into(),
                after_event_id: after,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    let mut events = Vec::new();
    tokio::time::timeout(SONG_TIMEOUT, async {
        while let Some(event) = stream.next().await {
            let event = event.expect("event");
            let done = event.r#type() == Type::RunFinished;
            events.push(event);
            if done {
                break;
            }
        }
    })
    .await
    .expect("the run finishes in time");
    events
}

fn check_dag_order(events: &[v1::StageEvent], has_vocals: bool) {
    let position = |kind: StageKind, ty: Type| {
        events
            .iter()
            .position(|e| e.stage_kind() == kind && e.r#type() == ty)
    };
    for kind in [
        StageKind::Lyrics,
        StageKind::Composition,
        StageKind::Arrangement,
        StageKind::Vocals,
        StageKind::Mix,
        StageKind::Master,
    ] {
        let needed = has_vocals || !matches!(kind, StageKind::Lyrics | StageKind::Vocals);
        let started = position(kind, Type::StageStarted);
        if !needed {
            assert!(started.is_none(), "{kind:?} must not run without vocals");
            continue;
        }
        let started = started.unwrap_or_else(|| panic!("{kind:?} never started"));
        assert!(
            position(kind, Type::StageSucceeded).is_some_and(|done| done > started),
            "{kind:?} did not succeed after starting"
        );
        let deps: &[StageKind] = match kind {
            StageKind::Arrangement => &[StageKind::Composition],
            StageKind::Vocals => &[StageKind::Lyrics, StageKind::Composition],
            StageKind::Mix if has_vocals => &[StageKind::Arrangement, StageKind::Vocals],
            StageKind::Mix => &[StageKind::Arrangement],
            StageKind::Master => &[StageKind::Mix],
            _ => &[],
        };
        // The orchestrator's guarantee: a stage is queued only after every
        // dependency succeeded, and it starts only after it was queued.
        let queued = position(kind, Type::StageQueued)
            .unwrap_or_else(|| panic!("{kind:?} was never queued"));
        assert!(queued < started, "{kind:?} started before it was queued");
        for dep in deps {
            let dep_done = position(*dep, Type::StageSucceeded)
                .unwrap_or_else(|| panic!("{dep:?} never succeeded"));
            assert!(
                dep_done < queued,
                "{kind:?} was queued before {dep:?} succeeded"
            );
        }
    }
}

async fn check_master(mesh: &TestMesh, token: &str, project: &str) {
    let channel = mesh.channel().await;
    let mut assets = v1::asset_service_client::AssetServiceClient::new(channel)
        .max_decoding_message_size(8 << 20);
    let listed = assets
        .list_assets(authed(
            token,
            v1::ListAssetsRequest {
                parent: project.into(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .expect("list assets")
        .into_inner();
    let kinds: Vec<_> = listed.assets.iter().map(|a| a.kind()).collect();
    for kind in [
        v1::AssetKind::Composition,
        v1::AssetKind::Midi,
        v1::AssetKind::Stem,
        v1::AssetKind::Mix,
        v1::AssetKind::Master,
    ] {
        assert!(kinds.contains(&kind), "no {kind:?} asset among {kinds:?}");
    }
    let master = listed
        .assets
        .iter()
        .find(|a| a.kind() == v1::AssetKind::Master)
        .expect("master");
    let mut stream = assets
        .read_asset(authed(
            token,
            v1::ReadAssetRequest {
                name: master.name.clone(),
            },
        ))
        .await
        .expect("read master")
        .into_inner();
    let mut bytes = Vec::new();
    let mut described = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        if chunk.asset.is_some() {
            described = chunk.asset;
        }
        bytes.extend_from_slice(&chunk.data);
    }
    assert_eq!(described.map(|a| a.size_bytes), Some(bytes.len() as i64));
    let reader = hound::WavReader::new(std::io::Cursor::new(&bytes)).expect("a WAV file");
    let spec = reader.spec();
    assert_eq!(spec.sample_rate, 44_100);
    let frames = reader.duration();
    assert_eq!(
        frames,
        10 * 44_100,
        "the master lasts exactly the requested 10 s"
    );
    let samples: Vec<i32> = reader
        .into_samples::<i32>()
        .map(|s| s.expect("sample"))
        .collect();
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    let full_scale = 1u32 << (spec.bits_per_sample - 1);
    assert!(
        f64::from(peak) > f64::from(full_scale) * 0.1,
        "the master is (nearly) silent: peak {peak}"
    );

    let url = assets
        .get_download_url(authed(
            token,
            v1::GetDownloadUrlRequest {
                name: master.name.clone(),
                expire_seconds: 120,
            },
        ))
        .await
        .expect("download url")
        .into_inner();
    assert!(
        url.url.contains("/v1/files/") && url.url.contains("sig="),
        "{}",
        url.url
    );
}

/// Every stage that ran says who made its outputs, with which seed, from which
/// inputs; the hashes agree with the stored assets and chain stage to stage.
async fn check_provenance(
    mesh: &TestMesh,
    token: &str,
    project: &str,
    has_vocals: bool,
    seed: u64,
) {
    let channel = mesh.channel().await;
    let provenance = v1::project_service_client::ProjectServiceClient::new(channel.clone())
        .get_provenance(authed(
            token,
            v1::GetProvenanceRequest {
                name: project.into(),
            },
        ))
        .await
        .expect("provenance")
        .into_inner();
    assert_eq!(provenance.stages.len(), if has_vocals { 6 } else { 4 });
    let assets = v1::asset_service_client::AssetServiceClient::new(channel)
        .list_assets(authed(
            token,
            v1::ListAssetsRequest {
                parent: project.into(),
                page_size: 200,
                page_token: String::new(),
            },
        ))
        .await
        .expect("assets")
        .into_inner()
        .assets;
    let stored: HashMap<String, String> = assets
        .iter()
        .map(|a| (a.file_name.clone(), a.sha256.clone()))
        .collect();
    let mut made: HashMap<String, String> = HashMap::new();
    for stage in &provenance.stages {
        assert_eq!(stage.provider, "builtin");
        assert!(
            stage.provider_version.starts_with("cadenza-synth "),
            "{stage:?}"
        );
        assert_eq!(stage.seed, seed, "the run's seed");
        assert_eq!(stage.has_vocals, has_vocals);
        assert!(!stage.outputs.is_empty());
        for output in &stage.outputs {
            assert_eq!(
                stored.get(&output.file_name),
                Some(&output.sha256),
                "{output:?}"
            );
            made.insert(output.file_name.clone(), output.sha256.clone());
        }
        // Every input is an earlier stage's output, byte for byte.
        for input in &stage.inputs {
            assert_eq!(
                made.get(&input.file_name),
                Some(&input.sha256),
                "{:?} read {input:?}",
                stage.kind()
            );
        }
    }
    let arrangement = provenance
        .stages
        .iter()
        .find(|s| s.kind() == StageKind::Arrangement)
        .expect("arrangement");
    assert_eq!(arrangement.inputs.len(), 1, "the composition");
}

async fn song_end_to_end(has_vocals: bool) {
    let mesh = TestMesh::start().await;
    let token = mesh.token("alice").await;
    let (project, run) = create_and_generate(&mesh, &token, has_vocals).await;
    assert_eq!(run.stages.len(), 6);
    let skipped: Vec<_> = run
        .stages
        .iter()
        .filter(|s| s.state() == StageState::Skipped)
        .map(|s| s.kind())
        .collect();
    if has_vocals {
        assert!(skipped.is_empty());
    } else {
        assert_eq!(skipped, [StageKind::Lyrics, StageKind::Vocals]);
    }

    let events = events_until_finished(&mesh, &token, &project.name, 0).await;
    let last = events.last().expect("events");
    assert_eq!(
        last.run_state(),
        v1::RunState::Succeeded,
        "run failed: {}",
        last.message
    );
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "event ids are consecutive: {ids:?}"
    );
    check_dag_order(&events, has_vocals);

    // Reconnect in the middle: exactly the rest, nothing missed or repeated.
    let middle = events[events.len() / 2].event_id;
    let resumed = events_until_finished(&mesh, &token, &project.name, middle).await;
    let expected: Vec<i64> = ids.iter().copied().filter(|id| *id > middle).collect();
    assert_eq!(
        resumed.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        expected
    );

    let mut projects = v1::project_service_client::ProjectServiceClient::new(mesh.channel().await);
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
    assert_eq!(status.state(), v1::RunState::Succeeded);
    assert!((status.progress - 1.0).abs() < 1e-6);
    let states: HashMap<_, _> = status
        .stages
        .iter()
        .map(|s| (s.kind(), s.state()))
        .collect();
    assert_eq!(states[&StageKind::Master], StageState::Succeeded);

    check_master(&mesh, &token, &project.name).await;
    check_provenance(&mesh, &token, &project.name, has_vocals, run.seed).await;

    // Every stage that ran left a log line, readable page by page.
    let mut logs = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = projects
            .list_job_logs(authed(
                &token,
                v1::ListJobLogsRequest {
                    parent: project.name.clone(),
                    page_size: 2,
                    page_token,
                },
            ))
            .await
            .expect("job logs")
            .into_inner();
        logs.extend(page.logs);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected_stages = if has_vocals { 6 } else { 4 };
    assert_eq!(logs.len(), expected_stages, "{logs:?}");
    assert!(
        logs.iter().all(|l| l.message.starts_with("builtin made ")),
        "{logs:?}"
    );

    // Another user sees none of it.
    let mallory = mesh.token("mallory").await;
    let err = projects
        .get_project(authed(
            &mallory,
            v1::GetProjectRequest {
                name: project.name.clone(),
            },
        ))
        .await
        .expect_err("someone else's project");
    assert_eq!(err.code(), tonic::Code::NotFound);
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_song_with_vocals_goes_through_every_stage() {
    song_end_to_end(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_song_without_vocals_skips_lyrics_and_vocals() {
    song_end_to_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_one_call_track_path_ends_with_a_file_url() {
    let mesh = TestMesh::start().await;
    let token = mesh.token("trackie").await;
    let mut tracks = v1::track_service_client::TrackServiceClient::new(mesh.channel().await);
    let created = tracks
        .create_track(authed(
            &token,
            v1::CreateTrackRequest {
                prompt: "short techno loop".into(),
                duration_seconds: 6,
                has_vocals: false,
                style_strength: 0.5,
                request_id: "track-1".into(),
                seed: Some(3),
                lyrics: None,
            },
        ))
        .await
        .expect("create track")
        .into_inner();
    assert!(created.track.starts_with("tracks/") && created.job.starts_with("jobs/"));
    let track = tokio::time::timeout(SONG_TIMEOUT, async {
        loop {
            let track = tracks
                .get_track(authed(
                    &token,
                    v1::GetTrackRequest {
                        name: created.track.clone(),
                    },
                ))
                .await
                .expect("get track")
                .into_inner();
            if matches!(
                track.state(),
                v1::track::State::Complete | v1::track::State::Failed
            ) {
                return track;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the track completes in time");
    assert_eq!(
        track.state(),
        v1::track::State::Complete,
        "{}",
        track.error_message
    );
    assert!(track.file_url.contains("sig="), "{}", track.file_url);
    let job = tracks
        .get_job(authed(
            &token,
            v1::GetJobRequest {
                name: created.job.clone(),
            },
        ))
        .await
        .expect("job")
        .into_inner();
    assert_eq!(job.track, created.track);
    assert_eq!(job.run.expect("run").state(), v1::RunState::Succeeded);
    mesh.stop().await;
}
