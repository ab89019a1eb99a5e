#![doc = include_str!("../README.md")]

mod api;
mod arrange;
mod compose;
mod dsp;
mod form;
mod instruments;
mod loudness;
mod lyrics;
mod master;
mod melody;
mod midi;
mod mix;
mod parts;
mod patterns;
mod phonetics;
mod plan;
mod prompt;
mod theory;
mod util;
mod vocals;
mod wav;
mod words;

pub use api::{Artifact, ArtifactKind, Progress, SongRequest, Stage, SynthError};

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
    plan::validate(request)?;
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
                wav::encode(&[&voice], wav::Depth::Int16),
            )]
        }
        Stage::Mix => {
            let arr = Arrangement::from_json(&found[0].bytes)?;
            let voice = match found.get(1) {
                Some(v) => {
                    let chans = wav::decode(&v.bytes, ArtifactKind::Vocals)?;
                    let [l, r] = wav::to_stereo(chans, frames);
                    Some(l.iter().zip(&r).map(|(a, b)| 0.5 * (a + b)).collect())
                }
                None => None,
            };
            let mixed = mix::mix(&arr, voice, frames, request.seed, &mut tick.sub(0.0, 0.98))?;
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
            let chans = wav::decode(&found[0].bytes, ArtifactKind::Mix)?;
            let mut st = wav::to_stereo(chans, frames);
            master::master(&mut st, request.seed, &mut tick.sub(0.05, 0.95))?;
            let bytes = wav::encode(&[&st[0], &st[1]], wav::Depth::Int16);
            vec![artifact(
                ArtifactKind::Master,
                "master.wav",
                "audio/wav",
                bytes,
            )]
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
