//! Renders a handful of prompts across genres so anyone can listen:
//! `make gallery` (or `cargo run --release -p cadenza-synth --example gallery -- DIR`).
//! Each song gets a folder with master.wav, master.flac, preview.mp3 and lyrics.txt.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use cadenza_synth::{Artifact, SongRequest, Stage, render_stage, stage_inputs};

const SONGS: [(&str, &str, u32, bool); 10] = [
    ("pop", "upbeat synth-pop about city lights", 75, true),
    ("lofi", "lo-fi hip hop with rhodes, rainy night", 60, false),
    (
        "folk",
        "melancholic acoustic folk song about home, 96 bpm in D minor",
        75,
        true,
    ),
    ("rock", "driving garage rock about a road trip", 60, true),
    ("house", "deep house at 124 bpm with organ", 60, false),
    ("techno", "dark berlin techno at 132 bpm", 60, false),
    ("hiphop", "trap with 808 about the city at night", 60, true),
    ("jazz", "smooth jazz trio in Bb major", 60, false),
    ("ambient", "slow ambient drone with bells", 60, false),
    (
        "cinematic",
        "epic cinematic trailer with strings",
        60,
        false,
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "gallery".into());
    for (i, (slug, prompt, secs, vocals)) in SONGS.into_iter().enumerate() {
        let req = SongRequest {
            prompt: prompt.into(),
            duration_seconds: secs,
            has_vocals: vocals,
            style_strength: 0.85,
            seed: 7 + i as u64,
            lyrics: None,
        };
        let t = Instant::now();
        let mut store: Vec<Artifact> = Vec::new();
        for stage in [
            Stage::Lyrics,
            Stage::Composition,
            Stage::Arrangement,
            Stage::Vocals,
            Stage::Mix,
            Stage::Master,
        ] {
            if !vocals && matches!(stage, Stage::Lyrics | Stage::Vocals) {
                continue;
            }
            let wanted = stage_inputs(stage, vocals);
            let inputs: Vec<Artifact> = store
                .iter()
                .filter(|a| wanted.contains(&a.kind))
                .cloned()
                .collect();
            let out = render_stage(stage, &req, &inputs, &mut |_| ControlFlow::Continue(()))?;
            store.extend(out);
        }
        let folder = Path::new(&dir).join(format!("{:02}-{slug}", i + 1));
        std::fs::create_dir_all(&folder)?;
        for a in &store {
            if matches!(
                a.name.as_str(),
                "master.wav" | "master.flac" | "preview.mp3" | "lyrics.txt"
            ) {
                std::fs::write(folder.join(&a.name), &a.bytes)?;
            }
        }
        std::fs::write(folder.join("prompt.txt"), format!("{prompt}\n"))?;
        println!(
            "{}: \"{prompt}\" ({secs} s{}) in {:.2} s",
            folder.display(),
            if vocals { ", vocals" } else { "" },
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
