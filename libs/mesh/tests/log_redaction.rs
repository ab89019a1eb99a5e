//! A hosted provider that echoes the song's words back in its logs and its
//! errors, reformatted: none of their fragments reach the services' logs.
//!
//! Its own test binary: it installs the process's log subscriber itself (every
//! service's lines, at INFO, into memory) before the mesh starts, and reads
//! what the real services wrote.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cadenza_mesh::testing::{TestMesh, create_project, finished_state, generate};
use cadenza_proto::v1;

const PROMPT: &str = "a gentle lullaby for my daughter Ada who loves sailing boats at dawn";
const LYRICS: &str = "[Verse]\nLittle boat upon the bay,\nsail me home at end of day\n";

/// Every line the services log, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

struct Provider {
    base: String,
    polls: AtomicUsize,
}

fn json(value: serde_json::Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A replicate-like provider whose logs quote the prompt and lyrics
/// reformatted, and whose first job fails quoting the lyrics.
async fn echoing_provider() -> Arc<Provider> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let provider = Arc::new(Provider {
        base: format!("http://{}", listener.local_addr().expect("addr")),
        polls: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route(
            "/v1/predictions",
            post(|State(p): State<Arc<Provider>>| async move {
                json(serde_json::json!({
                    "id": "p1",
                    "status": "starting",
                    "urls": {"get": format!("{}/v1/predictions/p1", p.base), "cancel": format!("{}/v1/predictions/p1/cancel", p.base)},
                }))
            }),
        )
        .route(
            "/v1/predictions/{id}",
            get(|State(p): State<Arc<Provider>>, Path(_id): Path<String>| async move {
                let logs = "loading model (step 1 of 3)\n\
                     input.prompt = \"A GENTLE LULLABY -- for my daughter, Ada, who loves sailing boats\"\n\
                     lyrics[0..60]: little boat upon / the bay - sail me home at end\n\
                     done";
                if p.polls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return json(serde_json::json!({
                        "status": "failed",
                        "logs": logs,
                        "error": "could not sing 'Little Boat Upon the Bay, Sail Me Home At End of Day': out of memory",
                    }));
                }
                json(serde_json::json!({
                    "status": "succeeded",
                    "logs": logs,
                    "output": {"outputs": [{
                        "kind": "lyrics",
                        "name": "lyrics.txt",
                        "url": format!("{}/files/lyrics.txt", p.base),
                        "content_type": "text/plain; charset=utf-8",
                    }]},
                }))
            }),
        )
        .route("/files/lyrics.txt", get(|| async { LYRICS }))
        .with_state(provider.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    provider
}

/// Every run of eight consecutive words of `private` (lower-cased, split on
/// anything but letters and digits) that `logs` contains, the same way.
fn leaked(logs: &str, private: &str) -> Vec<String> {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let logged = format!(" {} ", words(logs).join(" "));
    words(private)
        .windows(8)
        .map(|run| run.join(" "))
        .filter(|run| logged.contains(&format!(" {run} ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_echoing_the_songs_words_leaves_no_fragment_in_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,lapin=warn"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test binary's only subscriber");
    let provider = echoing_provider().await;
    // Provider keys are production's: no dev mode beside them.
    let mut env = cadenza_config::Env::default();
    env.set("CADENZA_PROVIDER_CHAIN", "lyrics=replicate,builtin");
    env.set("CADENZA_REPLICATE_TOKEN", "not-a-real-token");
    env.set("CADENZA_REPLICATE_URL", &provider.base);
    env.set("CADENZA_PROVIDER_POLL_MILLIS", "20");
    env.set("CADENZA_PROVIDER_BACKOFF_MILLIS", "10");
    let mesh = TestMesh::production(env).await;
    let channel = mesh.channel().await;
    let token = cadenza_mesh::testing::register(&channel, "lullaby@example.com")
        .await
        .access_token;
    let project = create_project(
        &channel,
        &token,
        v1::Project {
            title: "Lullaby".into(),
            prompt: PROMPT.into(),
            lyrics: Some(LYRICS.into()),
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
    mesh.stop().await;

    let logs = captured.text();
    // The provider's lines and its failure were logged: the check below reads
    // something.
    assert!(
        logs.contains("provider log") && logs.contains("step 1 of 3"),
        "the provider's log lines are in the logs"
    );
    assert!(
        provider.polls.load(Ordering::SeqCst) >= 2,
        "the failed job was retried"
    );
    assert_eq!(
        leaked(&logs, PROMPT),
        Vec::<String>::new(),
        "prompt fragments in the logs"
    );
    assert_eq!(
        leaked(&logs, LYRICS),
        Vec::<String>::new(),
        "lyrics fragments in the logs"
    );
}
