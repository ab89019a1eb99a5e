//! Helpers shared by the integration tests: the DAG chained as the workers run it.
#![allow(dead_code)]

pub mod analysis;

use std::ops::ControlFlow;

use cadenza_synth::{Artifact, SongRequest, Stage, SynthError, render_stage, stage_inputs};

pub fn request(prompt: &str, secs: u32, vocals: bool, seed: u64) -> SongRequest {
    SongRequest {
        prompt: prompt.into(),
        duration_seconds: secs,
        has_vocals: vocals,
        style_strength: 0.8,
        seed,
        lyrics: None,
    }
}

pub fn run(
    stage: Stage,
    req: &SongRequest,
    store: &[Artifact],
) -> Result<Vec<Artifact>, SynthError> {
    let wanted = stage_inputs(stage, req.has_vocals);
    let inputs: Vec<Artifact> = store
        .iter()
        .filter(|a| wanted.contains(&a.kind))
        .cloned()
        .collect();
    render_stage(stage, req, &inputs, &mut |_| ControlFlow::Continue(()))
}

/// Runs the stages up to and including `until`, returning every artifact.
pub fn until(req: &SongRequest, until: Stage) -> Result<Vec<Artifact>, SynthError> {
    let all = [
        Stage::Lyrics,
        Stage::Composition,
        Stage::Arrangement,
        Stage::Vocals,
        Stage::Mix,
        Stage::Master,
    ];
    let mut store = Vec::new();
    for stage in all {
        if !req.has_vocals && matches!(stage, Stage::Lyrics | Stage::Vocals) {
            continue;
        }
        let out = run(stage, req, &store)?;
        store.extend(out);
        if stage == until {
            break;
        }
    }
    Ok(store)
}

pub fn get<'a>(store: &'a [Artifact], name: &str) -> &'a Artifact {
    store
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no artifact {name}"))
}

/// Interleaved samples scaled to -1..1, with the file's spec.
pub fn read_wav(bytes: &[u8]) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("wav parses");
    let spec = r.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Int => r
            .samples::<i16>()
            .map(|s| f32::from(s.expect("sample")) / 32768.0)
            .collect(),
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
    };
    (spec, samples)
}

/// Mono mix-down of interleaved stereo.
pub fn mono(interleaved: &[f32]) -> Vec<f32> {
    interleaved
        .chunks_exact(2)
        .map(|f| 0.5 * (f[0] + f[1]))
        .collect()
}
