//! The built-in engine (`cadenza-synth`): runs everywhere, on the blocking pool.

use cadenza_synth::SynthError;

use super::{Job, Progress, Provider, ProviderError, Ran};

/// The provider name reported for the built-in engine.
pub const NAME: &str = "builtin";
/// Progress is reported in steps of this size, to keep the event log readable.
const PROGRESS_STEP: f32 = 0.1;

pub struct Builtin;

#[async_trait::async_trait]
impl Provider for Builtin {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn run(&self, job: &Job<'_>, progress: Progress<'_>) -> Result<Ran, ProviderError> {
        let (stage, request, inputs) = (job.stage, job.request.clone(), job.inputs.to_vec());
        let cancel = job.cancel.clone();
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel::<f32>();
        let rendering = tokio::task::spawn_blocking(move || {
            let mut next = PROGRESS_STEP;
            // Every progress report is a checkpoint: a cancelled run stops here.
            let mut report = |p: f32| {
                if cancel.is_cancelled() {
                    return std::ops::ControlFlow::Break(());
                }
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
        let forwarding = async {
            while let Some(p) = progress_rx.recv().await {
                progress(p);
            }
        };
        let (rendered, ()) = tokio::join!(rendering, forwarding);
        match rendered {
            Ok(Ok(artifacts)) => Ok(Ran {
                artifacts,
                version: format!("cadenza-synth {}", cadenza_synth::VERSION),
                job_id: String::new(),
            }),
            Ok(Err(SynthError::Cancelled)) => Err(ProviderError::Cancelled),
            Ok(Err(err)) => Err(ProviderError::InvalidInput(err.to_string())),
            Err(join) => {
                tracing::error!(error = %join, "the engine panicked");
                Err(ProviderError::transient(
                    "ENGINE_ERROR",
                    "the engine failed unexpectedly",
                ))
            }
        }
    }
}
