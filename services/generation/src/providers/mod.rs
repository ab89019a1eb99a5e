//! Providers run stages: the built-in engine, and hosted model APIs (`fal`,
//! `replicate`) behind HTTP clients. A [`chain::Chain`] tries the providers
//! configured for a stage kind in order, retrying transient failures with backoff
//! and skipping a provider whose circuit breaker is open.

pub mod breaker;
pub mod builtin;
pub mod chain;
pub mod hosted;
pub mod redact;

use cadenza_synth::{Artifact, ArtifactKind, SongRequest, Stage};

/// Everything a provider needs to run one stage.
pub struct Job<'a> {
    pub stage: Stage,
    pub request: &'a SongRequest,
    /// The stage's inputs, as bytes (for the built-in engine).
    pub inputs: &'a [Artifact],
    /// The same inputs as signed URLs `(file name, url)`, for hosted providers,
    /// which fetch them themselves.
    pub input_urls: &'a [(String, String)],
    /// Cancelled when the run ends elsewhere: providers stop at their next
    /// checkpoint (and cancel a hosted job).
    pub cancel: tokio_util::sync::CancellationToken,
}

/// What a provider made, and what made it (for the song's provenance).
#[derive(Debug)]
pub struct Ran {
    pub artifacts: Vec<Artifact>,
    /// The engine's version, or the hosted model.
    pub version: String,
    /// The hosted provider's id of the job; empty for the built-in engine.
    pub job_id: String,
}

/// Reports a stage's progress, 0 to 1.
pub type Progress<'a> = &'a (dyn Fn(f32) + Send + Sync);

/// Why a provider could not run a stage.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Retrying will not help (refused key, a request the provider rejects):
    /// the chain moves to the next provider at once.
    #[error("{code}: {message}")]
    Permanent { code: &'static str, message: String },
    /// May succeed if tried again (timeouts, 429, 5xx, a broken response).
    #[error("{code}: {message}")]
    Transient { code: &'static str, message: String },
    /// The stage's own input is wrong: no provider will do better.
    #[error("{0}")]
    InvalidInput(String),
    #[error("the stage was cancelled")]
    Cancelled,
}

impl ProviderError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Permanent { code, .. } | Self::Transient { code, .. } => code,
            Self::InvalidInput(_) => "INVALID_INPUT",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn transient(code: &'static str, message: impl Into<String>) -> Self {
        Self::Transient {
            code,
            message: message.into(),
        }
    }

    pub fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        Self::Permanent {
            code,
            message: message.into(),
        }
    }
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The name reported in stage updates, logs and metrics.
    fn name(&self) -> &'static str;

    async fn run(&self, job: &Job<'_>, progress: Progress<'_>) -> Result<Ran, ProviderError>;
}

/// What every provider must return for a stage, because later stages read it.
pub fn required_outputs(stage: Stage) -> &'static [ArtifactKind] {
    match stage {
        Stage::Lyrics => &[ArtifactKind::Lyrics],
        Stage::Composition => &[ArtifactKind::Composition],
        Stage::Arrangement => &[ArtifactKind::Arrangement, ArtifactKind::Midi],
        Stage::Vocals => &[ArtifactKind::Vocals],
        Stage::Mix => &[ArtifactKind::Mix],
        Stage::Master => &[ArtifactKind::Master],
    }
}

/// The stage kinds' names in configuration and on the wire.
pub fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Lyrics => "lyrics",
        Stage::Composition => "composition",
        Stage::Arrangement => "arrangement",
        Stage::Vocals => "vocals",
        Stage::Mix => "mix",
        Stage::Master => "master",
    }
}

pub const STAGES: [Stage; 6] = [
    Stage::Lyrics,
    Stage::Composition,
    Stage::Arrangement,
    Stage::Vocals,
    Stage::Mix,
    Stage::Master,
];
