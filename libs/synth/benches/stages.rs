//! Criterion benchmarks: every stage of a 3-minute song with vocals, and the whole
//! song through all stages, on one thread (the engine never starts others).
//! `cargo bench -p cadenza-synth`

use std::ops::ControlFlow;

use cadenza_synth::{Artifact, SongRequest, Stage, render_stage, stage_inputs};
use criterion::{Criterion, criterion_group, criterion_main};

const STAGES: [Stage; 6] = [
    Stage::Lyrics,
    Stage::Composition,
    Stage::Arrangement,
    Stage::Vocals,
    Stage::Mix,
    Stage::Master,
];

fn request() -> SongRequest {
    SongRequest {
        prompt: "upbeat synth-pop about city lights".into(),
        duration_seconds: 180,
        has_vocals: true,
        style_strength: 0.8,
        seed: 1,
        lyrics: None,
    }
}

fn inputs(stage: Stage, req: &SongRequest, store: &[Artifact]) -> Vec<Artifact> {
    let wanted = stage_inputs(stage, req.has_vocals);
    store
        .iter()
        .filter(|a| wanted.contains(&a.kind))
        .cloned()
        .collect()
}

fn run(stage: Stage, req: &SongRequest, inputs: &[Artifact]) -> Vec<Artifact> {
    render_stage(stage, req, inputs, &mut |_| ControlFlow::Continue(())).expect("stage runs")
}

fn whole_song(req: &SongRequest) -> Vec<Artifact> {
    let mut store = Vec::new();
    for stage in STAGES {
        let out = run(stage, req, &inputs(stage, req, &store));
        store.extend(out);
    }
    store
}

fn benches(c: &mut Criterion) {
    let req = request();
    let store = whole_song(&req);
    let mut g = c.benchmark_group("3-minute song");
    g.sample_size(10);
    for stage in STAGES {
        let ins = inputs(stage, &req, &store);
        g.bench_function(format!("{stage:?}"), |b| b.iter(|| run(stage, &req, &ins)));
    }
    g.bench_function("whole song", |b| b.iter(|| whole_song(&req)));
    g.finish();
}

criterion_group!(stages, benches);
criterion_main!(stages);
