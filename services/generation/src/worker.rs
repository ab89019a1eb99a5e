//! One stage message, from delivery to acknowledged result.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cadenza_proto::v1::{
    self, envelope::Body, stage_update::Update, storage_service_client::StorageServiceClient,
};
use cadenza_queue::consume::{Handled, Incoming};
use cadenza_queue::{Publisher, topology::UPDATE_KEY};
use cadenza_synth::{SongRequest, Stage};
use cadenza_telemetry::grpc::TracedChannel;
use cadenza_telemetry::trace::{self, TraceContext};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::artifacts;
use crate::providers::chain::{Chain, LogEntry, NO_PROVIDER, outcome_label};
use crate::providers::{Job, ProviderError};

/// How long hosted providers may fetch a stage's inputs from their signed URLs.
const INPUT_URL_SECONDS: u32 = 3600;

pub struct Worker {
    pub publisher: Arc<Publisher>,
    pub storage: StorageServiceClient<TracedChannel>,
    pub worker_id: String,
    pub chain: Arc<Chain>,
    /// How often a running stage says it is alive.
    pub heartbeat: std::time::Duration,
    /// The runs this worker is running stages of, to stop them when they end.
    pub running: RunningRuns,
}

/// Cancellation tokens of the runs with a stage in progress here.
#[derive(Default)]
pub struct RunningRuns {
    runs: Mutex<std::collections::HashMap<String, (usize, tokio_util::sync::CancellationToken)>>,
}

impl RunningRuns {
    fn enter(&self, run_id: &str) -> tokio_util::sync::CancellationToken {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let entry = runs.entry(run_id.to_owned()).or_default();
        entry.0 += 1;
        entry.1.clone()
    }

    fn leave(&self, run_id: &str) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = runs.get_mut(run_id) {
            entry.0 -= 1;
            if entry.0 == 0 {
                runs.remove(run_id);
            }
        }
    }

    /// Stops the stages of `run_id` running here; returns how many there were.
    pub fn cancel(&self, run_id: &str) -> usize {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(run_id).map_or(0, |(count, token)| {
            token.cancel();
            *count
        })
    }
}

/// What running a stage produced: the provider that ran it (or last tried), its
/// outputs or failure, and lines for the job log.
struct Rendered {
    provider: &'static str,
    result: Result<v1::StageCompleted, Failure>,
    logs: Vec<v1::WorkerLog>,
}

/// Why a stage failed, as reported to `project`.
#[derive(Debug)]
struct Failure {
    code: &'static str,
    message: String,
    retryable: bool,
}

impl Failure {
    /// The `outcome` label of the attempt (a cancelled stage did not fail).
    fn outcome(&self) -> &'static str {
        if self.code == ProviderError::Cancelled.code() {
            outcome_label(Some(&ProviderError::Cancelled))
        } else {
            "failed"
        }
    }

    fn storage(status: &tonic::Status) -> Self {
        Self {
            code: "STORAGE_UNAVAILABLE",
            message: format!("storage failed: {}", status.message()),
            retryable: true,
        }
    }

    fn invalid(message: String) -> Self {
        Self {
            code: "INVALID_INPUT",
            message,
            retryable: false,
        }
    }

    fn provider(err: ProviderError) -> Self {
        let retryable = matches!(err, ProviderError::Transient { .. });
        let message = match &err {
            ProviderError::Permanent { message, .. } | ProviderError::Transient { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        };
        Self {
            code: err.code(),
            message,
            retryable,
        }
    }
}

fn stage_of(kind: v1::StageKind) -> Option<Stage> {
    Some(match kind {
        v1::StageKind::Lyrics => Stage::Lyrics,
        v1::StageKind::Composition => Stage::Composition,
        v1::StageKind::Arrangement => Stage::Arrangement,
        v1::StageKind::Vocals => Stage::Vocals,
        v1::StageKind::Mix => Stage::Mix,
        v1::StageKind::Master => Stage::Master,
        v1::StageKind::Unspecified => return None,
    })
}

impl Worker {
    /// A broadcast from `project`: a run ended; stop its stages running here.
    pub async fn on_control(self: Arc<Self>, incoming: Incoming) {
        let Ok((_, Body::RunCancelled(cancelled))) = cadenza_queue::decode(&incoming.data) else {
            return;
        };
        let stopped = self.running.cancel(&cancelled.run_id);
        if stopped > 0 {
            tracing::info!(run_id = %cancelled.run_id, stages = stopped, "the run ended: stopping its stages");
        }
    }

    pub async fn handle(self: Arc<Self>, incoming: Incoming) -> Handled {
        let (envelope, body) = match cadenza_queue::decode(&incoming.data) {
            Ok(decoded) => decoded,
            Err(err) => {
                tracing::error!(error = %err, "dead-lettering unreadable stage work");
                return Handled::Reject;
            }
        };
        let Body::StageWork(work) = body else {
            tracing::error!("dead-lettering a message that is not stage work");
            return Handled::Reject;
        };
        let mut context = TraceContext::from_traceparent(&envelope.traceparent, None)
            .unwrap_or_else(TraceContext::new_root);
        let span = tracing::info_span!(
            "stage",
            trace_id = %context.trace_id,
            run_id = %work.run_id,
            kind = cadenza_proto::stage_slug(work.kind()),
            attempt = work.attempt
        );
        cadenza_telemetry::otlp::adopt(&span, &mut context);
        trace::scope(context, async move {
            let started = Instant::now();
            let took = v1::StageStarted {
                start_time: Some(cadenza_proto::timestamp(chrono::Utc::now())),
            };
            if self.publish(&work, Update::Started(took), Vec::new(), "").await.is_err() {
                return Handled::Requeue;
            }
            let Rendered { provider, result, mut logs } = self.render(&work).await;
            let (update, outcome) = match result {
                Ok(completed) => {
                    let count = completed.outputs.len();
                    tracing::info!(
                        provider,
                        artifacts = count,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "stage rendered"
                    );
                    let mut line = log_line(1, format!("{provider} made {count} artifacts in {:.2} s", started.elapsed().as_secs_f64()));
                    line.provider = provider.to_owned();
                    line.provider_job_id = completed.provider_job_id.clone();
                    logs.push(line);
                    (Update::Completed(completed), "succeeded")
                }
                Err(failure) => {
                    tracing::warn!(provider, code = failure.code, message = %failure.message, "stage failed");
                    let mut line = log_line(3, format!("{}: {}", failure.code, failure.message));
                    if provider != NO_PROVIDER {
                        line.provider = provider.to_owned();
                    }
                    line.error_code = failure.code.to_owned();
                    logs.push(line);
                    let outcome = failure.outcome();
                    let update = Update::Failed(v1::StageFailed {
                        error_code: failure.code.to_owned(),
                        message: failure.message,
                        retryable: failure.retryable,
                    });
                    (update, outcome)
                }
            };
            let kind = cadenza_proto::stage_slug(work.kind());
            metrics::histogram!("cadenza_stage_duration_seconds", "kind" => kind, "provider" => provider, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("cadenza_stages_total", "kind" => kind, "provider" => provider, "outcome" => outcome).increment(1);
            // Ack only once the result is safely with the broker.
            match self.publish(&work, update, logs, provider).await {
                Ok(()) => Handled::Ack,
                Err(()) => Handled::Requeue,
            }
        })
        .instrument(span)
        .await
    }

    async fn render(&self, work: &v1::StageWork) -> Rendered {
        let (stage, request, inputs, input_urls) = match self.prepare(work).await {
            Ok(prepared) => prepared,
            Err(failure) => {
                return Rendered {
                    provider: NO_PROVIDER,
                    result: Err(failure),
                    logs: Vec::new(),
                };
            }
        };
        let cancel = self.running.enter(&work.run_id);
        let job = Job {
            stage,
            request: &request,
            inputs: &inputs,
            input_urls: &input_urls,
            cancel,
        };
        let logs = Mutex::new(Vec::new());
        let log = |entry: LogEntry| {
            let mut line = log_line(2, entry.message);
            line.provider = entry.provider.to_owned();
            line.error_code = entry.error_code.to_owned();
            logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        };
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<f32>();
        let running = async {
            let progress = move |p: f32| {
                let _ = progress_tx.send(p);
            };
            self.chain.run(&job, &progress, &log).await
            // `progress` (and with it the channel) ends here, ending the forwarding.
        };
        // Forward progress while running; best effort, a lost report is harmless.
        let forwarding = async {
            while let Some(p) = progress_rx.recv().await {
                let _ = self
                    .publish(
                        work,
                        Update::Progress(v1::StageProgress { progress: p }),
                        Vec::new(),
                        "",
                    )
                    .await;
            }
        };
        // Beats until the stage is done: a worker that dies stops them, and the
        // reconciler gives the stage to another worker.
        let beating = async {
            let mut ticks = tokio::time::interval(self.heartbeat);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let beat = Update::Heartbeat(v1::StageHeartbeat {});
                let _ = self.publish(work, beat, Vec::new(), "").await;
            }
        };
        let (ran, ()) = tokio::select! {
            done = async { tokio::join!(running, forwarding) } => done,
            never = beating => never,
        };
        self.running.leave(&work.run_id);
        let logs = logs.into_inner().unwrap_or_else(|e| e.into_inner());
        let (provider, ran) = match ran {
            Ok(done) => done,
            Err(failure) => {
                return Rendered {
                    provider: failure.provider,
                    result: Err(Failure::provider(failure.error)),
                    logs,
                };
            }
        };
        // Hosted outputs are copied into storage as soon as they exist.
        let mut storage = self.storage.clone();
        let mut references = Vec::with_capacity(ran.artifacts.len());
        for artifact in ran.artifacts {
            match artifacts::upload(&mut storage, work, artifact).await {
                Ok(reference) => references.push(reference),
                Err(status) => {
                    return Rendered {
                        provider,
                        result: Err(Failure::storage(&status)),
                        logs,
                    };
                }
            }
        }
        Rendered {
            provider,
            result: Ok(v1::StageCompleted {
                outputs: references,
                provider_version: ran.version,
                provider_job_id: ran.job_id,
            }),
            logs,
        }
    }

    /// The stage, the request, its inputs' bytes and (for hosted providers) signed
    /// URLs of them.
    async fn prepare(
        &self,
        work: &v1::StageWork,
    ) -> Result<
        (
            Stage,
            SongRequest,
            Vec<cadenza_synth::Artifact>,
            Vec<(String, String)>,
        ),
        Failure,
    > {
        let stage = stage_of(work.kind())
            .ok_or_else(|| Failure::invalid("the stage kind is not set".into()))?;
        let spec = work
            .spec
            .clone()
            .ok_or_else(|| Failure::invalid("the song spec is missing".into()))?;
        let request = SongRequest {
            prompt: spec.prompt,
            duration_seconds: spec.duration_seconds,
            has_vocals: spec.has_vocals,
            style_strength: spec.style_strength,
            seed: spec.seed,
            lyrics: spec.lyrics,
        };
        let mut storage = self.storage.clone();
        let mut inputs = Vec::new();
        let mut urls = Vec::new();
        let signed = self.chain.needs_input_urls(stage);
        for needed in cadenza_synth::stage_inputs(stage, request.has_vocals) {
            let reference = work
                .inputs
                .iter()
                .find(|r| artifacts::from_proto(r.kind()) == Some(*needed))
                .ok_or_else(|| Failure::invalid(format!("the {needed:?} input is missing")))?;
            let artifact = artifacts::download(&mut storage, &work.owner, reference, *needed)
                .await
                .map_err(|s| Failure::storage(&s))?;
            if signed {
                let request = v1::SignDownloadUrlRequest {
                    key: reference.object_key.clone(),
                    owner: work.owner.clone(),
                    expire_seconds: INPUT_URL_SECONDS,
                    download_name: artifact.name.replace('/', "-"),
                };
                let url = artifacts::patiently("sign", || {
                    let (mut storage, request) = (storage.clone(), request.clone());
                    async move { storage.sign_download_url(request).await }
                })
                .await
                .map_err(|s| Failure::storage(&s))?
                .into_inner()
                .url;
                urls.push((artifact.name.clone(), url));
            }
            inputs.push(artifact);
        }
        Ok((stage, request, inputs, urls))
    }

    async fn publish(
        &self,
        work: &v1::StageWork,
        update: Update,
        logs: Vec<v1::WorkerLog>,
        provider: &str,
    ) -> Result<(), ()> {
        let message = v1::StageUpdate {
            run_id: work.run_id.clone(),
            stage_id: work.stage_id.clone(),
            attempt: work.attempt,
            worker_id: self.worker_id.clone(),
            provider: provider.to_owned(),
            update: Some(update),
            logs,
        };
        let envelope = cadenza_queue::envelope::wrap(Body::StageUpdate(message));
        self.publisher
            .publish(
                UPDATE_KEY,
                &envelope.message_id,
                &envelope.traceparent,
                &cadenza_queue::encode(&envelope),
            )
            .await
            .map_err(|err| tracing::warn!(error = %err, "publishing a stage update failed"))
    }
}

fn log_line(severity: i32, message: String) -> v1::WorkerLog {
    v1::WorkerLog {
        severity,
        message,
        log_time: Some(cadenza_proto::timestamp(chrono::Utc::now())),
        ..Default::default()
    }
}
