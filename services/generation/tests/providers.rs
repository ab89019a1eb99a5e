//! Hosted providers against local servers that behave like fal's and
//! replicate's queue APIs over real HTTP: success, slow success, 403 forever,
//! 500 then success, hangs, malformed JSON, results whose download fails, jobs
//! that never finish; and the fallback chain, retries and circuit breaker
//! around them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cadenza_config::SecretString;
use cadenza_generation::providers::breaker::BreakerConfig;
use cadenza_generation::providers::builtin::Builtin;
use cadenza_generation::providers::chain::{Chain, ChainFailure, RetryConfig};
use cadenza_generation::providers::hosted::{Flavor, Hosted, HostedConfig};
use cadenza_generation::providers::{Job, Provider, ProviderError};
use cadenza_proto::v1;
use cadenza_synth::{SongRequest, Stage};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Succeed,
    /// Reports IN_PROGRESS this many times before completing.
    Slow(usize),
    Forbidden,
    /// Answers 500 to this many submissions, then works.
    FailThenSucceed(usize),
    /// Never answers a submission.
    Hang,
    Malformed,
    DownloadFails,
    /// Its output file is larger than the worker accepts (sent without a
    /// length, so only counting the bytes finds out).
    HugeDownload,
    /// Accepts the job and never finishes it.
    NeverFinishes,
}

#[derive(Default)]
struct Counts {
    submits: AtomicUsize,
    polls: AtomicUsize,
    cancels: AtomicUsize,
}

struct Fake {
    behaviour: Mutex<Behaviour>,
    counts: Counts,
    base: Mutex<String>,
    label: &'static str,
}

type Shared = Arc<Fake>;

impl Fake {
    fn behaviour(&self) -> Behaviour {
        *self.behaviour.lock().expect("lock")
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    fn base(&self) -> String {
        self.base.lock().expect("lock").clone()
    }

    fn outputs(&self, id: &str) -> Value {
        json!({"outputs": [{
            "kind": "lyrics",
            "name": "lyrics.txt",
            "url": format!("{}/files/{id}/lyrics.txt", self.base()),
            "content_type": "text/plain; charset=utf-8",
        }]})
    }

    /// What a submission gets; `None` continues with the job id.
    async fn submission(
        &self,
        authorization: Option<&str>,
        expected: &str,
    ) -> Result<String, Response> {
        let n = self.counts.submits.fetch_add(1, Ordering::SeqCst);
        if authorization != Some(expected) {
            return Err((StatusCode::UNAUTHORIZED, "no key").into_response());
        }
        match self.behaviour() {
            Behaviour::Forbidden => {
                Err((StatusCode::FORBIDDEN, "{\"detail\":\"forbidden\"}").into_response())
            }
            Behaviour::FailThenSucceed(k) if n < k => {
                Err((StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response())
            }
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(StatusCode::GATEWAY_TIMEOUT.into_response())
            }
            Behaviour::Malformed => Err((StatusCode::OK, "{\"request_id\": ").into_response()),
            _ => Ok(format!("job-{n}")),
        }
    }

    /// Whether the job is done at this poll.
    fn done(&self) -> bool {
        let polls = self.counts.polls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour() {
            Behaviour::Slow(n) => polls >= n,
            Behaviour::NeverFinishes => false,
            _ => true,
        }
    }
}

fn json_response(value: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok())
}

async fn fal_submit(
    State(fake): State<Shared>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let input: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(input["stage"], "lyrics", "the stage travels with the job");
    match fake.submission(header(&headers), "Key fal-key").await {
        Err(response) => response,
        Ok(id) => {
            let base = fake.base();
            json_response(json!({
                "request_id": id,
                "status_url": format!("{base}/requests/{id}/status"),
                "response_url": format!("{base}/requests/{id}"),
                "cancel_url": format!("{base}/requests/{id}/cancel"),
            }))
        }
    }
}

async fn fal_status(State(fake): State<Shared>, Path(_id): Path<String>) -> Response {
    let status = if fake.done() {
        "COMPLETED"
    } else {
        "IN_PROGRESS"
    };
    json_response(json!({"status": status, "logs": [{"message": "warming up"}]}))
}

async fn fal_result(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    json_response(fake.outputs(&id))
}

async fn cancel(State(fake): State<Shared>, Path(_id): Path<String>) -> Response {
    fake.counts.cancels.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK.into_response()
}

async fn replicate_submit(
    State(fake): State<Shared>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(body["version"], "v1-model");
    match fake.submission(header(&headers), "Bearer rep-token").await {
        Err(response) => response,
        Ok(id) => {
            let base = fake.base();
            json_response(json!({
                "id": id,
                "status": "starting",
                "urls": {
                    "get": format!("{base}/v1/predictions/{id}"),
                    "cancel": format!("{base}/v1/predictions/{id}/cancel"),
                },
            }))
        }
    }
}

async fn replicate_get(State(fake): State<Shared>, Path(id): Path<String>) -> Response {
    if fake.done() {
        json_response(
            json!({"status": "succeeded", "logs": "step 1\nstep 2", "output": fake.outputs(&id)}),
        )
    } else {
        json_response(json!({"status": "processing", "logs": "step 1"}))
    }
}

async fn file(State(fake): State<Shared>, Path((_id, _name)): Path<(String, String)>) -> Response {
    if fake.behaviour() == Behaviour::DownloadFails {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    if fake.behaviour() == Behaviour::HugeDownload {
        let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 16 * 1024]));
        return axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response();
    }
    format!("lyrics written by {}", fake.label).into_response()
}

async fn start(label: &'static str, behaviour: Behaviour) -> Shared {
    let fake = Arc::new(Fake {
        behaviour: Mutex::new(behaviour),
        counts: Counts::default(),
        base: Mutex::new(String::new()),
        label,
    });
    let app = Router::new()
        .route("/models/stage", post(fal_submit))
        .route("/requests/{id}/status", get(fal_status))
        .route("/requests/{id}", get(fal_result))
        .route("/requests/{id}/cancel", put(cancel))
        .route("/v1/predictions", post(replicate_submit))
        .route("/v1/predictions/{id}", get(replicate_get))
        .route("/v1/predictions/{id}/cancel", post(cancel))
        .route("/files/{id}/{name}", get(file))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    *fake.base.lock().expect("lock") = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    fake
}

fn hosted_config(fake: &Fake, key: &str, model: &str) -> HostedConfig {
    HostedConfig {
        base_url: fake.base(),
        key: SecretString::from(key.to_owned()),
        model: model.into(),
        http_timeout: Duration::from_millis(500),
        job_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(10),
        max_download_bytes: MAX_DOWNLOAD_BYTES,
    }
}

/// What the workers in these tests accept as one output file.
const MAX_DOWNLOAD_BYTES: u64 = 256 * 1024;

struct Setup {
    fal: Shared,
    replicate: Shared,
    chain: Chain,
}

async fn setup(fal: Behaviour, replicate: Behaviour, attempts: u32, threshold: u32) -> Setup {
    let (fal_server, replicate_server) =
        (start("fal", fal).await, start("replicate", replicate).await);
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(Builtin),
        Arc::new(
            Hosted::new(
                "fal",
                Flavor::Fal,
                hosted_config(&fal_server, "fal-key", "models/stage"),
            )
            .expect("client"),
        ),
        Arc::new(
            Hosted::new(
                "replicate",
                Flavor::Replicate,
                hosted_config(&replicate_server, "rep-token", "v1-model"),
            )
            .expect("client"),
        ),
    ];
    let order = HashMap::from([(Stage::Lyrics, vec!["fal", "replicate", "builtin"])]);
    let chain = Chain::new(
        providers,
        order,
        RetryConfig {
            attempts,
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
        BreakerConfig {
            threshold,
            cooldown: Duration::from_millis(300),
        },
    );
    Setup {
        fal: fal_server,
        replicate: replicate_server,
        chain,
    }
}

fn request() -> SongRequest {
    SongRequest {
        prompt: "a secret birthday song for Ada".into(),
        duration_seconds: 10,
        has_vocals: true,
        style_strength: 0.5,
        seed: 7,
        lyrics: None,
    }
}

/// Runs the lyrics stage; returns the provider, the text, the progress seen and the job log.
async fn run(
    chain: &Chain,
) -> (
    Result<(&'static str, String), ChainFailure>,
    Vec<f32>,
    Vec<String>,
) {
    let request = request();
    let job = Job {
        stage: Stage::Lyrics,
        request: &request,
        inputs: &[],
        input_urls: &[],
        cancel: tokio_util::sync::CancellationToken::new(),
    };
    let progress = Mutex::new(Vec::new());
    let logs = Mutex::new(Vec::new());
    let result = chain
        .run(&job, &|p| progress.lock().expect("lock").push(p), &|line| {
            logs.lock().expect("lock").push(line.message)
        })
        .await
        .map(|(provider, ran)| {
            let lyrics = ran
                .artifacts
                .iter()
                .find(|a| a.name == "lyrics.txt")
                .expect("lyrics output");
            (
                provider,
                String::from_utf8(lyrics.bytes.clone()).expect("utf-8"),
            )
        });
    (
        result,
        progress.into_inner().expect("lock"),
        logs.into_inner().expect("lock"),
    )
}

fn submits(fake: &Fake) -> usize {
    fake.counts.submits.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_working_provider_runs_the_stage_and_its_files_are_fetched() {
    let s = setup(Behaviour::Succeed, Behaviour::Succeed, 3, 5).await;
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(
        result.expect("ran"),
        ("fal", "lyrics written by fal".into())
    );
    assert_eq!(submits(&s.fal), 1);
    assert_eq!(submits(&s.replicate), 0, "nobody else was asked");
    assert!(logs.is_empty(), "{logs:?}");
}

#[tokio::test]
async fn a_slow_job_is_polled_until_it_completes_reporting_progress() {
    let s = setup(Behaviour::Slow(4), Behaviour::Succeed, 3, 5).await;
    let (result, progress, _) = run(&s.chain).await;
    assert_eq!(result.expect("ran").0, "fal");
    assert!(s.fal.counts.polls.load(Ordering::SeqCst) >= 5);
    assert!(
        progress.iter().filter(|p| **p == 0.5).count() >= 4,
        "{progress:?}"
    );
}

#[tokio::test]
async fn a_refused_key_falls_through_at_once_without_retries() {
    let s = setup(Behaviour::Forbidden, Behaviour::Slow(2), 3, 5).await;
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(
        result.expect("ran"),
        ("replicate", "lyrics written by replicate".into())
    );
    assert_eq!(submits(&s.fal), 1, "403 is not retried");
    assert!(
        logs[0].contains("PROVIDER_AUTH") && logs[0].contains("not retried"),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_retried_with_backoff_and_then_succeeds() {
    let s = setup(Behaviour::FailThenSucceed(2), Behaviour::Succeed, 3, 5).await;
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(result.expect("ran").0, "fal");
    assert_eq!(submits(&s.fal), 3);
    assert_eq!(submits(&s.replicate), 0);
    assert_eq!(
        logs.iter()
            .filter(|l| l.contains("PROVIDER_5XX") && l.contains("retrying"))
            .count(),
        2
    );
}

#[tokio::test]
async fn hangs_malformed_answers_and_failed_downloads_fall_through_after_their_retries() {
    for behaviour in [
        Behaviour::Hang,
        Behaviour::Malformed,
        Behaviour::DownloadFails,
    ] {
        let s = setup(behaviour, Behaviour::Forbidden, 2, 50).await;
        let (result, _, logs) = run(&s.chain).await;
        let (provider, lyrics) = result.expect("the built-in engine is the last resort");
        assert_eq!(provider, "builtin", "{behaviour:?}");
        assert!(!lyrics.contains("written by"), "the engine's own lyrics");
        assert_eq!(submits(&s.fal), 2, "{behaviour:?}: two attempts");
        let expected = match behaviour {
            Behaviour::Hang => "PROVIDER_TIMEOUT",
            Behaviour::Malformed => "PROVIDER_MALFORMED",
            _ => "PROVIDER_DOWNLOAD",
        };
        assert!(
            logs.iter().any(|l| l.contains(expected)),
            "{behaviour:?}: {logs:?}"
        );
    }
}

#[tokio::test]
async fn an_oversized_output_is_refused_without_being_held_and_not_retried() {
    let s = setup(Behaviour::HugeDownload, Behaviour::Forbidden, 3, 50).await;
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(result.expect("a fallback ran").0, "builtin");
    assert!(
        logs.iter()
            .any(|l| l.contains("PROVIDER_OUTPUT_TOO_LARGE") && l.contains("262144 bytes")),
        "{logs:?}"
    );
    assert_eq!(submits(&s.fal), 1, "a size refusal is not retried");
}

#[tokio::test]
async fn a_job_that_never_finishes_is_cancelled_remotely_at_its_deadline() {
    let s = setup(Behaviour::NeverFinishes, Behaviour::Succeed, 1, 5).await;
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(result.expect("ran").0, "replicate");
    assert_eq!(
        s.fal.counts.cancels.load(Ordering::SeqCst),
        1,
        "the remote job was cancelled"
    );
    assert!(
        logs.iter().any(|l| l.contains("PROVIDER_TIMEOUT")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_failing_provider_trips_its_circuit_and_is_probed_again_later() {
    let s = setup(Behaviour::Forbidden, Behaviour::Succeed, 1, 2).await;
    for _ in 0..2 {
        assert_eq!(run(&s.chain).await.0.expect("ran").0, "replicate");
    }
    assert_eq!(submits(&s.fal), 2);
    let health = |name: &str| {
        s.chain
            .health()
            .into_iter()
            .find(|h| h.name == name)
            .expect("provider listed")
    };
    let fal = health("fal");
    assert_eq!(fal.circuit, v1::CircuitState::Open as i32);
    assert!(!fal.ok);
    assert!(
        fal.last_error.starts_with("PROVIDER_AUTH"),
        "{}",
        fal.last_error
    );
    assert_eq!((fal.calls, fal.failures), (2, 2));
    assert!(health("replicate").ok);
    assert!(health("replicate").recent_latency.is_some());

    // While open, fal is not even called.
    let (result, _, logs) = run(&s.chain).await;
    assert_eq!(result.expect("ran").0, "replicate");
    assert_eq!(submits(&s.fal), 2);
    assert!(
        logs.iter().any(|l| l.contains("circuit is open")),
        "{logs:?}"
    );

    // After the cool-down one probe goes through; fal works again, so it closes.
    s.fal.set(Behaviour::Succeed);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(run(&s.chain).await.0.expect("ran").0, "fal");
    let fal = health("fal");
    assert_eq!(fal.circuit, v1::CircuitState::Closed as i32);
    assert!(fal.ok);
}

#[tokio::test]
async fn when_every_provider_fails_the_last_error_is_reported() {
    let s = setup(Behaviour::Forbidden, Behaviour::FailThenSucceed(10), 2, 50).await;
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(
            Hosted::new(
                "fal",
                Flavor::Fal,
                hosted_config(&s.fal, "fal-key", "models/stage"),
            )
            .expect("client"),
        ),
        Arc::new(
            Hosted::new(
                "replicate",
                Flavor::Replicate,
                hosted_config(&s.replicate, "rep-token", "v1-model"),
            )
            .expect("client"),
        ),
    ];
    let no_engine = Chain::new(
        providers,
        HashMap::from([(Stage::Lyrics, vec!["fal", "replicate"])]),
        RetryConfig {
            attempts: 2,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        BreakerConfig {
            threshold: 50,
            cooldown: Duration::from_secs(1),
        },
    );
    let failure = run(&no_engine).await.0.expect_err("nothing works");
    // fal refused (permanent, not retried); replicate failed twice (transient).
    assert_eq!(submits(&s.fal), 1);
    assert_eq!(submits(&s.replicate), 2);
    assert_eq!(
        failure.provider, "replicate",
        "the last failure is replicate's"
    );
    assert_eq!(failure.error.code(), "PROVIDER_5XX");
    assert!(matches!(failure.error, ProviderError::Transient { .. }));
}

#[tokio::test]
async fn a_cancelled_run_stops_polling_and_cancels_the_hosted_job() {
    let s = setup(Behaviour::NeverFinishes, Behaviour::Succeed, 3, 5).await;
    let request = request();
    let cancel = tokio_util::sync::CancellationToken::new();
    let job = Job {
        stage: Stage::Lyrics,
        request: &request,
        inputs: &[],
        input_urls: &[],
        cancel: cancel.clone(),
    };
    let stopper = {
        let fal = s.fal.clone();
        tokio::spawn(async move {
            // Cancel once the job is being polled.
            while fal.counts.polls.load(Ordering::SeqCst) < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
        })
    };
    let err = s
        .chain
        .run(&job, &|_| {}, &|_| {})
        .await
        .expect_err("cancelled");
    stopper.await.expect("stopper");
    assert!(matches!(err.error, ProviderError::Cancelled), "{err:?}");
    assert_eq!(err.provider, "fal", "fal was stopped");
    assert_eq!(
        s.fal.counts.cancels.load(Ordering::SeqCst),
        1,
        "the remote job was cancelled"
    );
    assert_eq!(
        submits(&s.replicate),
        0,
        "a cancelled stage tries no other provider"
    );
}
