//! The contract between the engine and the `generation` workers. Workers know nothing
//! about music: they look up which artifacts a stage needs, hand over their bytes, and
//! store whatever comes back. Keep this file stable; the engine behind it can change.

use std::ops::ControlFlow;

/// The six stages of a song, in the order of the pipeline's DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Stage {
    Lyrics,
    Composition,
    Arrangement,
    Vocals,
    Mix,
    Master,
}

/// What the user asked for. Every stage receives the whole request so each can be
/// re-run on its own (a retry on another worker) and reach the same bytes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SongRequest {
    pub prompt: String,
    pub duration_seconds: u32,
    pub has_vocals: bool,
    /// 0.0 = neutral, 1.0 = as idiomatic to the detected genre as possible.
    pub style_strength: f32,
    pub seed: u64,
    /// User-supplied lyrics, used as they are when present.
    pub lyrics: Option<String>,
}

/// The kinds of artifact the stages exchange and the user downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ArtifactKind {
    /// `lyrics.txt`, UTF-8 text with section labels.
    Lyrics,
    /// `composition.json`: form, key, tempo, chords and melody (engine-internal format).
    Composition,
    /// `arrangement.json`: the parts as note lists (engine-internal format).
    Arrangement,
    /// `arrangement.mid`: standard MIDI file, one track per part.
    Midi,
    /// `vocals.wav`: the sung melody.
    Vocals,
    /// `stems/<part>.wav`: one rendered part.
    Stem,
    /// `mix.wav`: the balanced sum of the stems.
    Mix,
    /// `master.wav`: 44.1 kHz, loudness-normalised final song.
    Master,
    /// `master.flac`: the master, lossless.
    MasterFlac,
    /// `preview.mp3` / `preview.ogg`: about 30 s from the chorus, compressed.
    Preview,
    /// `peaks.json`: waveform peaks (audiowaveform JSON shape).
    Peaks,
}

/// One file produced by a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub kind: ArtifactKind,
    /// File name, unique within a run: `lyrics.txt`, `stems/drums.wav`, `master.wav`, ...
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    #[error("stage {stage:?} needs a {kind:?} artifact, and none was given")]
    MissingInput { stage: Stage, kind: ArtifactKind },
    #[error("the {kind:?} input is not valid: {reason}")]
    InvalidInput { kind: ArtifactKind, reason: String },
    #[error("the request is not valid: {0}")]
    InvalidRequest(String),
    #[error("cancelled")]
    Cancelled,
}

/// Progress callback: called with values rising from 0.0 to 1.0 at checkpoints;
/// returning `ControlFlow::Break(())` cancels the stage with [`SynthError::Cancelled`].
pub type Progress<'a> = &'a mut dyn FnMut(f32) -> ControlFlow<()>;
