//! The properties the issue asks of every song, each measured by code that is not the
//! engine's: loudness and true peak by the `ebur128` crate, tempo by a beat tracker and
//! key by a chroma estimator written here, FLAC by `claxon`, MP3 by `symphonia`.

mod common;

use cadenza_synth::{ArtifactKind, Stage, SynthError, render_stage};
use common::analysis::{estimate_bpm, estimate_key};
use common::{get, mono, read_wav, request, until};

#[test]
fn master_outputs_decode() -> Result<(), SynthError> {
    for (secs, vocals) in [(40, true), (12, false)] {
        let req = request("catchy pop song about the sea", secs, vocals, 21);
        let store = until(&req, Stage::Master)?;
        let (_, master) = read_wav(&get(&store, "master.wav").bytes);

        let flac = get(&store, "master.flac");
        assert_eq!(
            (flac.kind, flac.content_type.as_str()),
            (ArtifactKind::MasterFlac, "audio/flac")
        );
        let mut reader = claxon::FlacReader::new(std::io::Cursor::new(&flac.bytes)).expect("flac");
        let info = reader.streaminfo();
        assert_eq!(
            (info.sample_rate, info.channels, info.bits_per_sample),
            (44_100, 2, 16)
        );
        let decoded: Vec<f32> = reader
            .samples()
            .map(|s| s.expect("flac sample") as f32 / 32768.0)
            .collect();
        assert_eq!(decoded, master, "FLAC decodes to exactly the WAV's samples");

        let preview = get(&store, "preview.mp3");
        assert_eq!(
            (preview.kind, preview.content_type.as_str()),
            (ArtifactKind::Preview, "audio/mpeg")
        );
        let seconds = mp3_seconds(&preview.bytes);
        let expected = f64::from(secs).min(30.0);
        // LAME adds its encoder delay and pads the last frame: at most ~60 ms.
        assert!(
            (seconds - expected).abs() < 0.1,
            "{secs} s song: preview lasts {seconds} s, expected {expected}"
        );

        let peaks = get(&store, "peaks.json");
        assert_eq!(peaks.kind, ArtifactKind::Peaks);
        let v: serde_json::Value = serde_json::from_slice(&peaks.bytes).expect("peaks JSON");
        let frames = master.len() / 2;
        let spp = v["samples_per_pixel"].as_u64().expect("spp") as usize;
        let length = v["length"].as_u64().expect("length") as usize;
        assert_eq!(
            (v["version"].as_u64(), v["channels"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(
            (v["sample_rate"].as_u64(), v["bits"].as_u64()),
            (Some(44_100), Some(8))
        );
        assert_eq!(length, frames.div_ceil(spp));
        let data = v["data"].as_array().expect("data");
        assert_eq!(
            data.len(),
            length * 2 * 2,
            "min and max per channel per pixel"
        );
        assert!(
            data.iter()
                .all(|x| x.as_i64().is_some_and(|x| (-128..=127).contains(&x)))
        );
        assert!(
            data.iter().any(|x| x.as_i64().unwrap_or(0).abs() > 40),
            "not flat"
        );
    }
    Ok(())
}

/// Decodes an MP3 fully and returns its duration in seconds.
fn mp3_seconds(bytes: &[u8]) -> f64 {
    use symphonia::core::codecs::{CODEC_TYPE_MP3, DecoderOptions};
    use symphonia::core::formats::FormatReader;
    let cursor = std::io::Cursor::new(bytes.to_vec());
    let stream = symphonia::core::io::MediaSourceStream::new(Box::new(cursor), Default::default());
    let mut reader =
        symphonia::default::formats::MpaReader::try_new(stream, &Default::default()).expect("mp3");
    let track = reader.default_track().expect("a track").clone();
    assert_eq!(track.codec_params.codec, CODEC_TYPE_MP3);
    let mut decoder = symphonia::default::codecs::MpaDecoder::try_new(
        &track.codec_params,
        &DecoderOptions::default(),
    )
    .expect("decoder");
    use symphonia::core::codecs::Decoder;
    let mut frames = 0usize;
    while let Ok(packet) = reader.next_packet() {
        let buf = decoder.decode(&packet).expect("mp3 frame decodes");
        assert_eq!(buf.spec().rate, 44_100);
        frames += buf.frames();
    }
    frames as f64 / 44_100.0
}

#[test]
fn loudness_and_true_peak_by_ebur128() -> Result<(), SynthError> {
    let cases = [
        ("dark techno", false),
        ("acoustic folk ballad", true),
        ("ambient drone", false),
        ("trap with 808", true),
        ("garage rock", false),
        ("bebop jazz", false),
        ("deep house", true),
        ("epic cinematic trailer", false),
        ("lofi study beats", false),
        ("upbeat synth-pop", true),
    ];
    for (i, (prompt, vocals)) in cases.into_iter().enumerate() {
        let store = until(&request(prompt, 10, vocals, 3 + i as u64), Stage::Master)?;
        let (_, samples) = read_wav(&get(&store, "master.wav").bytes);
        let mut m = ebur128::EbuR128::new(2, 44_100, ebur128::Mode::I | ebur128::Mode::TRUE_PEAK)
            .expect("meter");
        m.add_frames_f32(&samples).expect("frames");
        let lufs = m.loudness_global().expect("loudness");
        let tp = (0..2)
            .map(|c| m.true_peak(c).expect("true peak"))
            .fold(0.0f64, f64::max);
        let tp_db = 20.0 * tp.log10();
        eprintln!("{prompt}: {lufs:.2} LUFS, {tp_db:.2} dBTP");
        assert!((lufs - -14.0).abs() <= 0.5, "{prompt}: {lufs} LUFS");
        assert!(tp_db <= -1.0, "{prompt}: true peak {tp_db} dBTP");
        let clipped = samples
            .iter()
            .filter(|x| x.abs() >= 32767.0 / 32768.0)
            .count();
        assert_eq!(clipped, 0, "{prompt}: clipped samples");
        let dc = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / samples.len() as f64;
        assert!(dc.abs() < 1e-3, "{prompt}: DC offset {dc}");
    }
    Ok(())
}

#[test]
fn duration_is_exact_from_5_seconds_to_10_minutes() -> Result<(), SynthError> {
    for (secs, prompt) in [
        (5, "fast techno at 220 bpm"),
        (7, "slow ambient at 40 bpm"),
        (61, "jazz"),
    ] {
        let store = until(&request(prompt, secs, false, 8), Stage::Master)?;
        for name in ["master.wav", "mix.wav", "stems/drums.wav"] {
            let (spec, s) = read_wav(&get(&store, name).bytes);
            let seconds = s.len() as f64 / f64::from(spec.channels) / 44_100.0;
            assert!(
                (seconds - f64::from(secs)).abs() <= 0.05,
                "{prompt} {name}: {seconds} s of {secs}"
            );
        }
    }
    Ok(())
}

/// The longest song the engine makes, through every stage (~11 s in a debug build).
#[test]
fn ten_minutes_through_every_stage() -> Result<(), SynthError> {
    let store = until(&request("pop song", 600, true, 4), Stage::Master)?;
    for name in ["master.wav", "mix.wav"] {
        let (spec, s) = read_wav(&get(&store, name).bytes);
        assert_eq!(s.len(), 600 * 44_100 * usize::from(spec.channels), "{name}");
    }
    Ok(())
}

#[test]
fn stems_sum_to_the_mix() -> Result<(), SynthError> {
    for (prompt, vocals) in [
        ("lofi hip hop with rhodes", true),
        ("cinematic strings", false),
    ] {
        let store = until(&request(prompt, 12, vocals, 5), Stage::Mix)?;
        let (_, mix) = read_wav(&get(&store, "mix.wav").bytes);
        let mut sum = vec![0.0f32; mix.len()];
        let stems: Vec<_> = store
            .iter()
            .filter(|a| a.kind == ArtifactKind::Stem)
            .collect();
        assert!(stems.iter().any(|s| s.name == "stems/reverb.wav"));
        for stem in &stems {
            let (_, s) = read_wav(&stem.bytes);
            assert_eq!(s.len(), mix.len(), "{}", stem.name);
            sum.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
        }
        // Each 16-bit stem is off by at most half a step from the float it came from.
        let tolerance = stems.len() as f32 / 32768.0;
        let worst = sum
            .iter()
            .zip(&mix)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= tolerance,
            "{prompt}: stems differ from the mix by {worst}"
        );
        assert!(mix.iter().any(|x| x.abs() > 0.05), "{prompt}: silent mix");
    }
    Ok(())
}

#[test]
fn a_beat_tracker_finds_the_tempo() -> Result<(), SynthError> {
    let cases = [
        ("pop", 100),
        ("pop", 128),
        ("deep house", 124),
        ("techno", 136),
        ("hip hop", 90),
        ("rock", 150),
        ("lofi", 76),
        ("folk", 110),
        ("jazz", 120),
        ("cinematic", 84),
    ];
    let mut misses = Vec::new();
    for (i, (genre, bpm)) in cases.into_iter().enumerate() {
        let prompt = format!("{genre} at {bpm} bpm");
        let store = until(&request(&prompt, 16, false, 30 + i as u64), Stage::Mix)?;
        let (_, mix) = read_wav(&get(&store, "mix.wav").bytes);
        let found = estimate_bpm(&mono(&mix));
        eprintln!("{prompt}: found {found:.1}");
        if (found - bpm as f32).abs() > 2.0 {
            misses.push(format!("{prompt}: {found:.1}"));
        }
    }
    assert!(misses.is_empty(), "tempo missed: {misses:?}");
    Ok(())
}

#[test]
fn a_chroma_estimate_agrees_with_the_key() -> Result<(), SynthError> {
    const NAMES: [&str; 12] = [
        "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
    ];
    let genres = ["pop", "folk", "house", "jazz", "rock", "lofi"];
    let mut agree = 0;
    let mut report = Vec::new();
    let mut total = 0;
    for tonic in 0..12 {
        for minor in [false, true] {
            let mode = if minor { "minor" } else { "major" };
            let genre = genres[(tonic * 2 + usize::from(minor)) % genres.len()];
            let prompt = format!("{genre} in {} {mode}", NAMES[tonic]);
            let store = until(
                &request(&prompt, 20, false, tonic as u64 * 2 + 1),
                Stage::Mix,
            )?;
            let (_, mix) = read_wav(&get(&store, "mix.wav").bytes);
            let found = estimate_key(&mono(&mix));
            total += 1;
            if found == (tonic, minor) {
                agree += 1;
            } else {
                let m = if found.1 { "minor" } else { "major" };
                report.push(format!("{prompt} -> {} {m}", NAMES[found.0]));
            }
        }
    }
    eprintln!("key agreement {agree}/{total}; misses: {report:?}");
    assert!(agree * 10 >= total * 9, "only {agree}/{total}: {report:?}");
    Ok(())
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    let mut go = |_x: f32| std::ops::ControlFlow::Continue(());
    let base = request("pop", 30, true, 1);
    let mut cases = Vec::new();
    let mut r = base.clone();
    r.style_strength = f32::NAN;
    cases.push(("NaN style", r));
    let mut r = base.clone();
    r.style_strength = f32::INFINITY;
    cases.push(("infinite style", r));
    for prompt in [
        "techno at 5000 bpm",
        "ballad at 3 bpm",
        "tempo 99999999999999999999",
        "pop in H minor",
        "rock in the key of X",
        "jazz in Q# major",
    ] {
        cases.push((prompt, request(prompt, 30, true, 1)));
    }
    let mut r = base.clone();
    r.lyrics = Some("la ".repeat(16_667));
    cases.push(("50,000 characters of lyrics", r));
    let mut r = base.clone();
    r.prompt = "x".repeat(50_000);
    cases.push(("50,000 characters of prompt", r));
    let mut r = base.clone();
    r.duration_seconds = u32::MAX;
    cases.push(("absurd duration", r));
    for (what, req) in &cases {
        for stage in [Stage::Lyrics, Stage::Composition, Stage::Master] {
            match render_stage(stage, req, &[], &mut go) {
                Err(SynthError::InvalidRequest(msg)) => assert!(!msg.is_empty(), "{what}"),
                other => panic!("{what} at {stage:?}: expected InvalidRequest, got {other:?}"),
            }
        }
    }
    // Words that look like keys or numbers but are not requests stay fine.
    for prompt in [
        "a song in a dream",
        "key of life",
        "my 2 cats",
        "in A minor at 40 bpm",
    ] {
        assert!(
            render_stage(
                Stage::Composition,
                &request(prompt, 10, false, 1),
                &[],
                &mut go
            )
            .is_ok(),
            "{prompt}"
        );
    }
}
