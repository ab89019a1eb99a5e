//! End-to-end tests of the stage contract: the DAG chained as the workers run it.

use std::ops::ControlFlow;

use cadenza_synth::{
    Artifact, ArtifactKind, SongRequest, Stage, SynthError, render_stage, stage_inputs,
};

fn request(prompt: &str, secs: u32, vocals: bool, seed: u64) -> SongRequest {
    SongRequest {
        prompt: prompt.into(),
        duration_seconds: secs,
        has_vocals: vocals,
        style_strength: 0.8,
        seed,
        lyrics: None,
    }
}

fn run(stage: Stage, req: &SongRequest, store: &[Artifact]) -> Result<Vec<Artifact>, SynthError> {
    let wanted = stage_inputs(stage, req.has_vocals);
    let inputs: Vec<Artifact> = store
        .iter()
        .filter(|a| wanted.contains(&a.kind))
        .cloned()
        .collect();
    let mut last = -1.0f32;
    let mut progress = |x: f32| {
        assert!(
            x >= last && (0.0..=1.0).contains(&x),
            "progress went {last} -> {x}"
        );
        last = x;
        ControlFlow::Continue(())
    };
    render_stage(stage, req, &inputs, &mut progress)
}

/// Runs the whole DAG and returns every artifact.
fn pipeline(req: &SongRequest) -> Result<Vec<Artifact>, SynthError> {
    let mut store = Vec::new();
    let stages: &[Stage] = if req.has_vocals {
        &[
            Stage::Lyrics,
            Stage::Composition,
            Stage::Arrangement,
            Stage::Vocals,
            Stage::Mix,
            Stage::Master,
        ]
    } else {
        &[
            Stage::Composition,
            Stage::Arrangement,
            Stage::Mix,
            Stage::Master,
        ]
    };
    for &stage in stages {
        let out = run(stage, req, &store)?;
        store.extend(out);
    }
    Ok(store)
}

fn get<'a>(store: &'a [Artifact], name: &str) -> &'a Artifact {
    store
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no artifact {name}"))
}

fn read_wav(bytes: &[u8]) -> (hound::WavSpec, Vec<f32>) {
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

#[test]
fn ten_seconds_with_and_without_vocals() -> Result<(), SynthError> {
    for vocals in [true, false] {
        let req = request("upbeat pop song about summer nights", 10, vocals, 42);
        let store = pipeline(&req)?;
        let master = get(&store, "master.wav");
        assert_eq!(master.kind, ArtifactKind::Master);
        assert_eq!(master.content_type, "audio/wav");
        let (spec, samples) = read_wav(&master.bytes);
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (44_100, 2, 16)
        );
        assert_eq!(
            samples.len(),
            10 * 44_100 * 2,
            "exactly the requested duration"
        );
        let rms = (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt();
        assert!(rms > 0.05, "not silent: rms {rms}");
        for stem in ["drums", "bass", "harmony", "lead"] {
            let s = get(&store, &format!("stems/{stem}.wav"));
            assert_eq!(s.kind, ArtifactKind::Stem);
            assert_eq!(read_wav(&s.bytes).1.len(), 10 * 44_100 * 2);
        }
        let mix = get(&store, "mix.wav");
        assert_eq!(read_wav(&mix.bytes).1.len(), 10 * 44_100 * 2);
        if vocals {
            let v = get(&store, "vocals.wav");
            let (vspec, vs) = read_wav(&v.bytes);
            assert_eq!(vs.len() as u32, 10 * 44_100 * u32::from(vspec.channels));
            assert!(vs.iter().any(|x| x.abs() > 0.1), "the singer sings");
            assert!(get(&store, "lyrics.txt").bytes.starts_with(b"["));
        } else {
            assert!(!store.iter().any(|a| a.kind == ArtifactKind::Vocals));
        }
    }
    Ok(())
}

/// Integrated loudness of the master, measured independently of the engine's own meter
/// (a straightforward BS.1770 implementation at 44.1 kHz).
fn lufs(samples: &[f32]) -> f64 {
    let fs = 44_100.0f64;
    let biquad = |b: [f64; 3], a: [f64; 2], x: &[f64]| {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        x.iter()
            .map(|&v| {
                let y = b[0] * v + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
                (x2, x1, y2, y1) = (x1, v, y1, y);
                y
            })
            .collect::<Vec<f64>>()
    };
    let pi = std::f64::consts::PI;
    let k = (pi * 1681.974450955533 / fs).tan();
    let (vh, q) = (10f64.powf(3.999843853973347 / 20.0), 0.7071752369554196);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    let shelf_b = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    ];
    let shelf_a = [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0];
    let k2 = (pi * 38.13547087602444 / fs).tan();
    let q2 = 0.5003270373238773;
    let a02 = 1.0 + k2 / q2 + k2 * k2;
    let hp_a = [2.0 * (k2 * k2 - 1.0) / a02, (1.0 - k2 / q2 + k2 * k2) / a02];
    let mut power = vec![];
    for c in 0..2 {
        let x: Vec<f64> = samples
            .iter()
            .skip(c)
            .step_by(2)
            .map(|&v| f64::from(v))
            .collect();
        let y = biquad([1.0, -2.0, 1.0], hp_a, &biquad(shelf_b, shelf_a, &x));
        power.push(y.iter().map(|v| v * v).collect::<Vec<f64>>());
    }
    let (block, hop) = (17_640, 4_410);
    let mut blocks = vec![];
    let mut start = 0;
    while start + block <= power[0].len() {
        let z: f64 = (0..2)
            .map(|c| power[c][start..start + block].iter().sum::<f64>() / block as f64)
            .sum();
        blocks.push(z);
        start += hop;
    }
    let l = |z: f64| -0.691 + 10.0 * z.log10();
    let abs: Vec<f64> = blocks.iter().copied().filter(|&z| l(z) > -70.0).collect();
    let rel = l(abs.iter().sum::<f64>() / abs.len() as f64) - 10.0;
    let gated: Vec<f64> = abs.iter().copied().filter(|&z| l(z) > rel).collect();
    l(gated.iter().sum::<f64>() / gated.len() as f64)
}

#[test]
fn master_is_at_minus_14_lufs_with_peaks_below_minus_1() -> Result<(), SynthError> {
    for (prompt, vocals) in [
        ("dark techno at 130 bpm", false),
        ("acoustic folk ballad", true),
        ("ambient drone", false),
    ] {
        let store = pipeline(&request(prompt, 12, vocals, 3))?;
        let (_, samples) = read_wav(&get(&store, "master.wav").bytes);
        let l = lufs(&samples);
        eprintln!("{prompt}: {l:.2} LUFS");
        assert!((l - -14.0).abs() <= 1.0, "{prompt}: {l} LUFS");
        let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(20.0 * peak.log10() < -1.0, "{prompt}: peak {peak}");
    }
    Ok(())
}

#[test]
fn deterministic_per_seed() -> Result<(), SynthError> {
    let a = pipeline(&request("lo-fi hip hop with rhodes", 6, true, 11))?;
    let b = pipeline(&request("lo-fi hip hop with rhodes", 6, true, 11))?;
    assert_eq!(a, b, "same seed, byte-identical artifacts");
    let c = pipeline(&request("lo-fi hip hop with rhodes", 6, true, 12))?;
    for name in [
        "composition.json",
        "lyrics.txt",
        "arrangement.mid",
        "master.wav",
    ] {
        assert_ne!(
            get(&a, name).bytes,
            get(&c, name).bytes,
            "{name} should differ between seeds"
        );
    }
    Ok(())
}

#[test]
fn midi_has_one_track_per_part_and_tempo() -> Result<(), SynthError> {
    let req = request("jazz trio at 140 bpm in Bb major", 20, false, 5);
    let comp = run(Stage::Composition, &req, &[])?;
    let arr = run(Stage::Arrangement, &req, &comp)?;
    let mid = get(&arr, "arrangement.mid");
    assert_eq!(
        (mid.kind, mid.content_type.as_str()),
        (ArtifactKind::Midi, "audio/midi")
    );
    let smf = midly::Smf::parse(&mid.bytes).expect("MIDI parses");
    assert_eq!(smf.header.format, midly::Format::Parallel);
    assert_eq!(
        smf.tracks.len(),
        5,
        "conductor + drums, bass, harmony, lead"
    );
    let tempo = smf.tracks[0].iter().find_map(|e| match e.kind {
        midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(t)) => Some(t.as_int()),
        _ => None,
    });
    assert_eq!(tempo, Some(60_000_000 / 140));
    for track in &smf.tracks[1..] {
        assert!(track.iter().any(|e| matches!(
            e.kind,
            midly::TrackEventKind::Midi {
                message: midly::MidiMessage::NoteOn { .. },
                ..
            }
        )));
    }
    Ok(())
}

#[test]
fn user_lyrics_are_used_verbatim() -> Result<(), SynthError> {
    let mut req = request("pop", 8, true, 1);
    let text = "[Verse]\nMy own words here\nAnd more of mine\n\n[Chorus]\nLa la la\n";
    req.lyrics = Some(text.into());
    let out = run(Stage::Lyrics, &req, &[])?;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes, text.as_bytes());
    assert_eq!(
        (out[0].name.as_str(), out[0].content_type.as_str()),
        ("lyrics.txt", "text/plain; charset=utf-8")
    );
    Ok(())
}

#[test]
fn generated_lyrics_have_sections() -> Result<(), SynthError> {
    let out = run(Stage::Lyrics, &request("a love song", 60, true, 9), &[])?;
    let text = String::from_utf8(out[0].bytes.clone()).expect("utf-8");
    assert!(
        text.contains("[Verse 1]") && text.contains("[Chorus]"),
        "{text}"
    );
    Ok(())
}

#[test]
fn missing_and_invalid_inputs() {
    let req = request("rock", 10, true, 1);
    let mut go = |x: f32| {
        let _ = x;
        ControlFlow::Continue(())
    };
    for stage in [Stage::Arrangement, Stage::Vocals, Stage::Mix, Stage::Master] {
        assert!(
            matches!(render_stage(stage, &req, &[], &mut go), Err(SynthError::MissingInput { stage: s, .. }) if s == stage),
            "{stage:?}"
        );
    }
    let junk = |kind| Artifact {
        kind,
        name: "x".into(),
        content_type: "x".into(),
        bytes: b"not it".to_vec(),
    };
    let r = render_stage(
        Stage::Arrangement,
        &req,
        &[junk(ArtifactKind::Composition)],
        &mut go,
    );
    assert!(matches!(
        r,
        Err(SynthError::InvalidInput {
            kind: ArtifactKind::Composition,
            ..
        })
    ));
    let r = render_stage(Stage::Master, &req, &[junk(ArtifactKind::Mix)], &mut go);
    assert!(matches!(
        r,
        Err(SynthError::InvalidInput {
            kind: ArtifactKind::Mix,
            ..
        })
    ));
    let mut bad = req.clone();
    bad.duration_seconds = 0;
    assert!(matches!(
        render_stage(Stage::Composition, &bad, &[], &mut go),
        Err(SynthError::InvalidRequest(_))
    ));
    bad = req.clone();
    bad.style_strength = f32::NAN;
    assert!(matches!(
        render_stage(Stage::Lyrics, &bad, &[], &mut go),
        Err(SynthError::InvalidRequest(_))
    ));
}

#[test]
fn cancel_via_progress() -> Result<(), SynthError> {
    let req = request("house", 10, false, 2);
    let comp = run(Stage::Composition, &req, &[])?;
    let arr = run(Stage::Arrangement, &req, &comp)?;
    let mut calls = 0;
    let mut cancel_later = |_x: f32| {
        calls += 1;
        if calls > 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let r = render_stage(Stage::Mix, &req, &arr, &mut cancel_later);
    assert!(matches!(r, Err(SynthError::Cancelled)));
    let mut cancel_now = |_x: f32| ControlFlow::Break(());
    assert!(matches!(
        render_stage(Stage::Composition, &req, &[], &mut cancel_now),
        Err(SynthError::Cancelled)
    ));
    Ok(())
}

#[test]
fn every_genre_and_edge_duration_renders() -> Result<(), SynthError> {
    let prompts = [
        "ambient drone",
        "lofi study beats",
        "pop",
        "garage rock",
        "deep house",
        "berlin techno",
        "trap with 808",
        "bebop jazz",
        "campfire folk with flute",
        "epic cinematic trailer",
        "very slow song at 40 bpm in C# minor",
        "frantic chiptune at 220 bpm",
    ];
    for (i, prompt) in prompts.iter().enumerate() {
        let mut req = request(prompt, 5 + (i as u32 % 3), i % 2 == 0, i as u64);
        req.style_strength = (i as f32 / 11.0).min(1.0);
        let store = pipeline(&req)?;
        let (_, samples) = read_wav(&get(&store, "master.wav").bytes);
        assert_eq!(
            samples.len(),
            req.duration_seconds as usize * 44_100 * 2,
            "{prompt}"
        );
        assert!(samples.iter().any(|x| x.abs() > 0.1), "{prompt}: silent");
    }
    Ok(())
}
