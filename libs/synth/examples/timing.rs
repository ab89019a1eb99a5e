//! Prints how long each stage takes for a 30-second song:
//! `cargo run --release -p cadenza-synth --example timing`.

use std::ops::ControlFlow;
use std::time::Instant;

use cadenza_synth::{Artifact, SongRequest, Stage, render_stage, stage_inputs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let prompt = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "upbeat synth-pop about city lights".into());
    let req = SongRequest {
        prompt,
        duration_seconds: secs,
        has_vocals: true,
        style_strength: 0.8,
        seed: 1,
        lyrics: None,
    };
    let mut store: Vec<Artifact> = Vec::new();
    let mut mix_master = 0.0;
    for stage in [
        Stage::Lyrics,
        Stage::Composition,
        Stage::Arrangement,
        Stage::Vocals,
        Stage::Mix,
        Stage::Master,
    ] {
        let wanted = stage_inputs(stage, req.has_vocals);
        let inputs: Vec<Artifact> = store
            .iter()
            .filter(|a| wanted.contains(&a.kind))
            .cloned()
            .collect();
        let t = Instant::now();
        let out = render_stage(stage, &req, &inputs, &mut |_| ControlFlow::Continue(()))?;
        let dt = t.elapsed().as_secs_f64();
        if matches!(stage, Stage::Mix | Stage::Master) {
            mix_master += dt;
        }
        println!("{stage:?}: {:.1} ms, {} artifacts", dt * 1e3, out.len());
        store.extend(out);
    }
    println!("mix + master for {secs} s: {:.1} ms", mix_master * 1e3);
    if let Some(dir) = std::env::var_os("CADENZA_SYNTH_OUT") {
        for a in &store {
            let path = std::path::Path::new(&dir).join(&a.name);
            if let Some(p) = path.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::write(path, &a.bytes)?;
        }
    }
    Ok(())
}
