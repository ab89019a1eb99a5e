//! The mix stage: renders each part to audio, balances the parts by their loudness while
//! playing, pans them, adds a shared reverb and sums to stereo. Parts are rendered and
//! encoded one at a time so memory stays at one part plus the mix.

use crate::api::SynthError;
use crate::arrange::{Arrangement, Part};
use crate::dsp::Noise;
use crate::dsp::drums::{self, Kit};
use crate::dsp::filter::OnePole;
use crate::dsp::reverb::Reverb;
use crate::instruments::{self, NoteSpec};
use crate::plan::Instrument;
use crate::theory::midi_to_hz;
use crate::util::{SAMPLE_RATE, Ticker};
use crate::wav::{self, Depth};

const SR: f32 = SAMPLE_RATE as f32;
/// Loudness (RMS while playing) a part at 0 dB is balanced to: about -20 dBFS, which
/// leaves the sum of all parts comfortably below full scale.
const REFERENCE_RMS: f32 = 0.1;

pub struct MixOutput {
    /// (part name, stereo 16-bit WAV) per stem.
    pub stems: Vec<(String, Vec<u8>)>,
    /// Stereo 32-bit float WAV.
    pub mix: Vec<u8>,
}

/// Renders the song. `vocals` is the mono vocal track when the song has one.
pub fn mix(
    arr: &Arrangement,
    vocals: Option<Vec<f32>>,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<MixOutput, SynthError> {
    let spb = 60.0 / arr.tempo_bpm.max(1) as f32;
    let mut left = vec![0.0f32; frames];
    let mut right = vec![0.0f32; frames];
    let mut send = vec![0.0f32; frames];
    let fade = tail_fade(arr, spb, frames);
    let reverb_scale = arr.reverb / 0.2;
    let n_parts = arr.parts.len() + usize::from(vocals.is_some());
    let mut stems = Vec::with_capacity(n_parts);
    let mut emit = |name: &str,
                    mut mono: Vec<f32>,
                    pan: f32,
                    level_db: f32,
                    send_level: f32,
                    left: &mut [f32],
                    right: &mut [f32],
                    send: &mut [f32]| {
        let gain = balance_gain(&mono, level_db);
        for (x, f) in mono.iter_mut().zip(&fade) {
            *x *= gain * f;
        }
        let (gl, gr) = pan_gains(pan);
        let mut sl = Vec::with_capacity(frames);
        let mut sr = Vec::with_capacity(frames);
        for (i, &x) in mono.iter().enumerate() {
            sl.push(x * gl);
            sr.push(x * gr);
            left[i] += x * gl;
            right[i] += x * gr;
            send[i] += x * send_level * reverb_scale;
        }
        stems.push((name.to_string(), wav::encode(&[&sl, &sr], Depth::Int16)));
    };
    for (k, part) in arr.parts.iter().enumerate() {
        tick.at(k as f32 / (n_parts + 1) as f32)?;
        let mut sub = tick.sub(
            k as f32 / (n_parts + 1) as f32,
            (k + 1) as f32 / (n_parts + 1) as f32,
        );
        let mono = render_part(
            arr,
            part,
            spb,
            frames,
            seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9),
            &mut sub,
        )?;
        emit(
            &part.name,
            mono,
            part.pan,
            part.level_db,
            send_level(part.instrument),
            &mut left,
            &mut right,
            &mut send,
        );
    }
    if let Some(mut v) = vocals {
        v.resize(frames, 0.0);
        // The voice sits on top of the band, centred, with its own share of reverb.
        emit(
            "vocals", v, 0.0, 1.0, 0.22, &mut left, &mut right, &mut send,
        );
    }
    tick.at(n_parts as f32 / (n_parts + 1) as f32)?;
    // Reverb: a short pre-delay keeps the dry attack clear; damp more in darker mixes.
    let pre = (0.02 * SR) as usize;
    send.rotate_right(pre.min(frames));
    send.iter_mut().take(pre.min(frames)).for_each(|x| *x = 0.0);
    let mut rv = Reverb::new(0.55 + 0.6 * arr.reverb, 0.5 - 0.3 * arr.brightness);
    rv.process(&send, &mut left, &mut right);
    for ((l, r), f) in left.iter_mut().zip(right.iter_mut()).zip(&fade) {
        *l *= f;
        *r *= f;
    }
    tick.at(1.0)?;
    Ok(MixOutput {
        stems,
        mix: wav::encode(&[&left, &right], Depth::Float32),
    })
}

/// Reverb send per instrument: sustained sounds like more room, bass almost none.
fn send_level(inst: Instrument) -> f32 {
    match inst {
        Instrument::Drums => 0.08,
        Instrument::SubBass
        | Instrument::Bass808
        | Instrument::SynthBass
        | Instrument::PickBass
        | Instrument::Upright => 0.0,
        Instrument::Pad | Instrument::Strings | Instrument::Bell => 0.4,
        _ => 0.28,
    }
}

/// Constant-power pan law.
fn pan_gains(pan: f32) -> (f32, f32) {
    let a = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    (a.cos(), a.sin())
}

/// Gain that brings the part's loudness while it plays to `level_db` relative to the
/// reference. Measured over 100 ms blocks that are not silent, so a sparse part is not
/// pushed up for its rests.
fn balance_gain(x: &[f32], level_db: f32) -> f32 {
    let block = (0.1 * SR) as usize;
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in x.chunks(block) {
        let ms = chunk
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>()
            / chunk.len() as f64;
        if ms > 1e-7 {
            sum += ms;
            count += 1;
        }
    }
    if count == 0 {
        return 0.0;
    }
    let rms = (sum / count as f64).sqrt() as f32;
    REFERENCE_RMS * 10f32.powf(level_db / 20.0) / rms
}

/// Gain curve for the end: full through the music, then a smooth fade that reaches
/// silence exactly at the last sample, whatever the bar grid left over.
fn tail_fade(arr: &Arrangement, spb: f32, frames: usize) -> Vec<f32> {
    let music_end = ((arr.total_beats * spb * SR) as usize).min(frames);
    let fade_len = (frames - music_end).max((0.5 * SR) as usize).min(frames);
    let start = frames - fade_len;
    (0..frames)
        .map(|i| {
            if i < start {
                1.0
            } else {
                let t = (i - start) as f32 / fade_len as f32;
                let c = (t * std::f32::consts::FRAC_PI_2).cos();
                c * c
            }
        })
        .collect()
}

fn render_part(
    arr: &Arrangement,
    part: &Part,
    spb: f32,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<Vec<f32>, SynthError> {
    let mut buf = vec![0.0f32; frames];
    let kit = Kit::for_genre(arr.genre);
    let release = instruments::release_seconds(part.instrument);
    let total = part.notes.len().max(1);
    for (i, n) in part.notes.iter().enumerate() {
        if i % 256 == 0 {
            tick.at(i as f32 / total as f32)?;
        }
        let start = (n.start * spb * SR).round() as usize;
        if start >= frames {
            continue;
        }
        let mut noise =
            Noise::new((seed as u32) ^ (i as u32).wrapping_mul(0x85eb_ca6b) ^ (seed >> 32) as u32);
        let vel = f32::from(n.velocity.min(127)) / 127.0;
        if part.instrument == Instrument::Drums {
            let len = ((drums::length(n.pitch, &kit) * SR) as usize).min(frames - start);
            drums::hit(&mut buf[start..start + len], n.pitch, vel, &kit, &mut noise);
            continue;
        }
        let hold = (n.beats * spb * SR).round() as usize;
        let len = (hold + (release * SR) as usize).min(frames - start);
        let spec = NoteSpec {
            freq: midi_to_hz(f32::from(n.pitch)),
            vel,
            hold,
            brightness: arr.brightness,
        };
        instruments::render(
            part.instrument,
            &mut buf[start..start + len],
            &spec,
            &mut noise,
        );
    }
    match part.instrument {
        Instrument::Drums => {
            if let Some(cut) = kit.tone_cutoff() {
                let mut lp = OnePole::new(cut);
                buf.iter_mut().for_each(|x| *x = lp.lp(*x));
            }
        }
        // Keep chords and leads out of the bass's way.
        Instrument::Pad
        | Instrument::Strings
        | Instrument::Piano
        | Instrument::Guitar
        | Instrument::Organ
        | Instrument::EPiano => {
            let mut hp = OnePole::new(140.0);
            buf.iter_mut().for_each(|x| *x = hp.hp(*x));
        }
        _ => {}
    }
    tick.at(1.0)?;
    Ok(buf)
}
