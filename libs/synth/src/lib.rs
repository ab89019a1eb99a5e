#![doc = include_str!("../README.md")]

mod api;
mod arrange;
mod bus;
mod compose;
mod dsp;
mod flac;
mod form;
mod instruments;
mod limiter;
mod loudness;
mod lyrics;
mod master;
mod melody;
mod midi;
mod mix;
mod parts;
mod patterns;
mod peaks;
mod phonetics;
mod plan;
mod preview;
mod prompt;
mod theory;
mod util;
mod validate;
mod vocals;
mod wav;
mod words;

pub use api::{Artifact, ArtifactKind, Progress, SongRequest, Stage, SynthError};

/// The engine's version, recorded in every song's provenance: the same request,
/// seed and version give the same bytes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

use arrange::Arrangement;
use compose::Composition;
use util::{SAMPLE_RATE, Ticker};

/// Which input artifacts a stage needs (looked up by kind in `inputs`).
pub fn stage_inputs(stage: Stage, has_vocals: bool) -> &'static [ArtifactKind] {
    match stage {
        Stage::Lyrics | Stage::Composition => &[],
        Stage::Arrangement => &[ArtifactKind::Composition],
        Stage::Vocals => &[ArtifactKind::Composition, ArtifactKind::Lyrics],
        Stage::Mix if has_vocals => &[ArtifactKind::Arrangement, ArtifactKind::Vocals],
        Stage::Mix => &[ArtifactKind::Arrangement],
        Stage::Master => &[ArtifactKind::Mix],
    }
}

/// Run one stage. Deterministic: same request (incl. seed) + same inputs => byte-identical outputs.
pub fn render_stage(
    stage: Stage,
    request: &SongRequest,
    inputs: &[Artifact],
    progress: Progress<'_>,
) -> Result<Vec<Artifact>, SynthError> {
    validate::validate(request)?;
    let mut tick = Ticker::new(progress);
    tick.at(0.0)?;
    // Look every input up before any work, so a missing one fails fast.
    let needed = stage_inputs(stage, request.has_vocals);
    let mut found: Vec<&Artifact> = Vec::with_capacity(needed.len());
    for &kind in needed {
        let a = inputs
            .iter()
            .find(|a| a.kind == kind)
            .ok_or(SynthError::MissingInput { stage, kind })?;
        found.push(a);
    }
    let frames = request.duration_seconds as usize * SAMPLE_RATE as usize;
    let out = match stage {
        Stage::Lyrics => {
            let plan = plan::plan(request)?;
            let text = lyrics::lyrics_text(&plan, request.seed, request.lyrics.as_deref());
            vec![artifact(
                ArtifactKind::Lyrics,
                "lyrics.txt",
                "text/plain; charset=utf-8",
                text.into_bytes(),
            )]
        }
        Stage::Composition => {
            let comp = compose::compose(request)?;
            vec![artifact(
                ArtifactKind::Composition,
                "composition.json",
                "application/json",
                comp.to_json(),
            )]
        }
        Stage::Arrangement => {
            let comp = Composition::from_json(&found[0].bytes)?;
            tick.at(0.3)?;
            let arr = arrange::arrange(&comp, request);
            tick.at(0.7)?;
            vec![
                artifact(
                    ArtifactKind::Arrangement,
                    "arrangement.json",
                    "application/json",
                    arr.to_json(),
                ),
                artifact(
                    ArtifactKind::Midi,
                    "arrangement.mid",
                    "audio/midi",
                    midi::write_midi(&arr),
                ),
            ]
        }
        Stage::Vocals => {
            let comp = Composition::from_json(&found[0].bytes)?;
            let text =
                std::str::from_utf8(&found[1].bytes).map_err(|e| SynthError::InvalidInput {
                    kind: ArtifactKind::Lyrics,
                    reason: e.to_string(),
                })?;
            let voice =
                vocals::render(&comp, text, frames, request.seed, &mut tick.sub(0.0, 0.95))?;
            vec![artifact(
                ArtifactKind::Vocals,
                "vocals.wav",
                "audio/wav",
                voice,
            )]
        }
        Stage::Mix => {
            let arr = Arrangement::from_json(&found[0].bytes)?;
            let voice = match found.get(1) {
                Some(v) => Some(wav::Pcm::parse(&v.bytes, ArtifactKind::Vocals)?),
                None => None,
            };
            let mixed = mix::mix(
                &arr,
                voice.as_ref(),
                frames,
                request.seed,
                &mut tick.sub(0.0, 0.98),
            )?;
            let mut out: Vec<Artifact> = mixed
                .stems
                .into_iter()
                .map(|(name, bytes)| {
                    artifact(
                        ArtifactKind::Stem,
                        &format!("stems/{name}.wav"),
                        "audio/wav",
                        bytes,
                    )
                })
                .collect();
            out.push(artifact(
                ArtifactKind::Mix,
                "mix.wav",
                "audio/wav",
                mixed.mix,
            ));
            out
        }
        Stage::Master => {
            let pcm = wav::Pcm::parse(&found[0].bytes, ArtifactKind::Mix)?;
            let wav16 = master::master(&pcm, frames, request.seed, &mut tick.sub(0.0, 0.8))?;
            let internal = |reason: String| SynthError::InvalidInput {
                kind: ArtifactKind::Mix,
                reason,
            };
            let flac = flac::encode(&wav16[wav::HEADER_LEN..]);
            tick.at(0.9)?;
            let plan = plan::plan(request)?;
            let (start, len) = preview::window(&plan, frames);
            let mp3 = preview::encode_mp3(&wav16, start, len, frames).map_err(internal)?;
            tick.at(0.97)?;
            let peaks = peaks::peaks_json(&wav16[wav::HEADER_LEN..], 2, frames);
            vec![
                artifact(ArtifactKind::Master, "master.wav", "audio/wav", wav16),
                artifact(ArtifactKind::MasterFlac, "master.flac", "audio/flac", flac),
                artifact(ArtifactKind::Preview, "preview.mp3", "audio/mpeg", mp3),
                artifact(ArtifactKind::Peaks, "peaks.json", "application/json", peaks),
            ]
        }
    };
    tick.at(1.0)?;
    Ok(out)
}

fn artifact(kind: ArtifactKind, name: &str, content_type: &str, bytes: Vec<u8>) -> Artifact {
    Artifact {
        kind,
        name: name.to_string(),
        content_type: content_type.to_string(),
        bytes,
    }
}
