//! One stage message, from delivery to acknowledged result.

use std::sync::Arc;
use std::time::Instant;

use cadenza_proto::v1::{
    self, envelope::Body, stage_update::Update, storage_service_client::StorageServiceClient,
};
use cadenza_queue::consume::{Handled, Incoming};
use cadenza_queue::{Publisher, topology::UPDATE_KEY};
use cadenza_synth::{SongRequest, Stage, SynthError};
use cadenza_telemetry::grpc::TracedChannel;
use cadenza_telemetry::trace::{self, TraceContext};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::artifacts;

/// The provider name reported for the built-in engine.
pub const BUILTIN: &str = "builtin";
/// Progress is reported in steps of this size, to keep the event log readable.
const PROGRESS_STEP: f32 = 0.1;

pub struct Worker {
    pub publisher: Arc<Publisher>,
    pub storage: StorageServiceClient<TracedChannel>,
    pub worker_id: String,
}

/// Why a stage failed, as reported to `project`.
#[derive(Debug)]
struct Failure {
    code: &'static str,
    message: String,
    retryable: bool,
}

impl Failure {
    fn storage(status: &tonic::Status) -> Self {
        Self {
            code: "STORAGE_UNAVAILABLE",
            message: format!("storage failed: {}", status.message()),
            retryable: true,
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
        let context = TraceContext::from_traceparent(&envelope.traceparent, None)
            .unwrap_or_else(TraceContext::new_root);
        let span = tracing::info_span!(
            "stage",
            trace_id = %context.trace_id,
            run_id = %work.run_id,
            kind = cadenza_proto::stage_slug(work.kind()),
            attempt = work.attempt
        );
        trace::scope(context, async move {
            let started = Instant::now();
            if self.publish(&work, Update::Started(v1::StageStarted {}), Vec::new()).await.is_err() {
                return Handled::Requeue;
            }
            let result = self.render(&work).await;
            let (update, logs, outcome) = match result {
                Ok(outputs) => {
                    tracing::info!(
                        artifacts = outputs.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "stage rendered"
                    );
                    let log = format!("rendered {} artifacts in {:.2} s", outputs.len(), started.elapsed().as_secs_f64());
                    (Update::Completed(v1::StageCompleted { outputs }), vec![log_line(1, log)], "succeeded")
                }
                Err(failure) => {
                    tracing::warn!(code = failure.code, message = %failure.message, "stage failed");
                    let log = log_line(3, format!("{}: {}", failure.code, failure.message));
                    let update = Update::Failed(v1::StageFailed {
                        error_code: failure.code.to_owned(),
                        message: failure.message,
                        retryable: failure.retryable,
                    });
                    (update, vec![log], "failed")
                }
            };
            let kind = cadenza_proto::stage_slug(work.kind());
            metrics::histogram!("cadenza_stage_duration_seconds", "kind" => kind, "provider" => BUILTIN, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("cadenza_stages_total", "kind" => kind, "provider" => BUILTIN, "outcome" => outcome).increment(1);
            // Ack only once the result is safely with the broker.
            match self.publish(&work, update, logs).await {
                Ok(()) => Handled::Ack,
                Err(()) => Handled::Requeue,
            }
        })
        .instrument(span)
        .await
    }

    async fn render(&self, work: &v1::StageWork) -> Result<Vec<v1::ArtifactRef>, Failure> {
        let invalid = |message: String| Failure {
            code: "INVALID_INPUT",
            message,
            retryable: false,
        };
        let stage =
            stage_of(work.kind()).ok_or_else(|| invalid("the stage kind is not set".into()))?;
        let spec = work
            .spec
            .clone()
            .ok_or_else(|| invalid("the song spec is missing".into()))?;
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
        for needed in cadenza_synth::stage_inputs(stage, request.has_vocals) {
            let reference = work
                .inputs
                .iter()
                .find(|r| artifacts::from_proto(r.kind()) == Some(*needed))
                .ok_or_else(|| invalid(format!("the {needed:?} input is missing")))?;
            inputs.push(
                artifacts::download(&mut storage, &work.owner, reference, *needed)
                    .await
                    .map_err(|s| Failure::storage(&s))?,
            );
        }

        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<f32>();
        let rendering = tokio::task::spawn_blocking(move || {
            let mut next = PROGRESS_STEP;
            let mut report = |p: f32| {
                if p >= next {
                    let _ = progress_tx.send(p);
                    while next <= p {
                        next += PROGRESS_STEP;
                    }
                }
                std::ops::ControlFlow::Continue(())
            };
            cadenza_synth::render_stage(stage, &request, &inputs, &mut report)
        });
        // Forward progress while rendering; best effort, a lost report is harmless.
        let forwarding = async {
            while let Some(p) = progress_rx.recv().await {
                let _ = self
                    .publish(
                        work,
                        Update::Progress(v1::StageProgress { progress: p }),
                        Vec::new(),
                    )
                    .await;
            }
        };
        let (rendered, ()) = tokio::join!(rendering, forwarding);
        let outputs = match rendered {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(SynthError::Cancelled)) => {
                return Err(Failure {
                    code: "CANCELLED",
                    message: "the stage was cancelled".into(),
                    retryable: false,
                });
            }
            Ok(Err(err)) => return Err(invalid(err.to_string())),
            Err(join) => {
                tracing::error!(error = %join, "the engine panicked");
                return Err(Failure {
                    code: "ENGINE_ERROR",
                    message: "the engine failed unexpectedly".into(),
                    retryable: true,
                });
            }
        };
        let mut references = Vec::with_capacity(outputs.len());
        for artifact in outputs {
            references.push(
                artifacts::upload(&mut storage, work, artifact)
                    .await
                    .map_err(|s| Failure::storage(&s))?,
            );
        }
        Ok(references)
    }

    async fn publish(
        &self,
        work: &v1::StageWork,
        update: Update,
        logs: Vec<v1::WorkerLog>,
    ) -> Result<(), ()> {
        let message = v1::StageUpdate {
            run_id: work.run_id.clone(),
            stage_id: work.stage_id.clone(),
            attempt: work.attempt,
            worker_id: self.worker_id.clone(),
            provider: BUILTIN.to_owned(),
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
    }
}
