//! The mix stage: renders each part to audio, balances the parts by their loudness while
//! playing, pans them, adds a shared reverb (its return is a stem too) and sums to
//! stereo. Parts are rendered and encoded one at a time so memory stays at one part
//! plus the send, beside the output files.

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
use crate::wav::{self, Depth, Pcm};

const SR: f32 = SAMPLE_RATE as f32;
/// Loudness (RMS while playing) a part at 0 dB is balanced to: about -26 dBFS, which
/// leaves every 16-bit stem, and their sum, well below full scale (the master sets the
/// final level anyway).
const REFERENCE_RMS: f32 = 0.05;
/// A stem never peaks above this; a part that would is turned down to fit.
const STEM_PEAK: f32 = 0.98;

pub struct MixOutput {
    /// (part name, stereo 16-bit WAV) per stem, the reverb return last.
    pub stems: Vec<(String, Vec<u8>)>,
    /// Stereo 32-bit float WAV: the sum of the stems.
    pub mix: Vec<u8>,
}

/// Everything one stem needs besides its samples.
struct Voice<'a> {
    name: &'a str,
    pan: f32,
    level_db: f32,
    send: f32,
}

/// The running sums: the mix (kept as the float WAV it becomes, so no second copy
/// exists) and the reverb send.
struct Bus {
    mix: Vec<u8>,
    send: Vec<f32>,
    fade: Fade,
    stems: Vec<(String, Vec<u8>)>,
}

impl Bus {
    /// Balances, fades and pans one mono part into its stem, the mix and the send.
    fn add(&mut self, v: &Voice, mono: &[f32], reverb_scale: f32) {
        let frames = self.send.len();
        let mut gain = balance_gain(mono, v.level_db);
        let peak = mono.iter().fold(0.0f32, |m, x| m.max(x.abs())) * gain;
        if peak > STEM_PEAK {
            gain *= STEM_PEAK / peak;
        }
        let (gl, gr) = pan_gains(v.pan);
        let send = v.send * reverb_scale;
        let mut stem = wav::header(2, Depth::Int16, frames);
        stem.resize(wav::HEADER_LEN + frames * 4, 0);
        let mix = &mut self.mix[wav::HEADER_LEN..];
        let dst = &mut stem[wav::HEADER_LEN..];
        for (i, (((&x, s), m), d)) in mono
            .iter()
            .zip(self.send.iter_mut())
            .zip(mix.chunks_exact_mut(8))
            .zip(dst.chunks_exact_mut(4))
            .enumerate()
        {
            let x = x * gain * self.fade.at(i);
            let (l, r) = (x * gl, x * gr);
            d[..2].copy_from_slice(&wav::to_i16(l).to_le_bytes());
            d[2..].copy_from_slice(&wav::to_i16(r).to_le_bytes());
            add_f32(&mut m[..4], l);
            add_f32(&mut m[4..], r);
            *s += x * send;
        }
        self.stems.push((v.name.to_string(), stem));
    }

    /// Runs the reverb over the send into a stem of its own, so the stems still sum to
    /// the mix. A short pre-delay keeps the dry attacks clear.
    fn reverb(&mut self, size: f32, damp: f32) {
        let frames = self.send.len();
        let pre = ((0.02 * SR) as usize).min(frames);
        self.send.rotate_right(pre);
        self.send[..pre].fill(0.0);
        let mut rv = Reverb::new(size, damp);
        let mut stem = wav::header(2, Depth::Int16, frames);
        let (mut l, mut r) = (vec![0.0f32; 4096], vec![0.0f32; 4096]);
        let mix = &mut self.mix[wav::HEADER_LEN..];
        for (k, (chunk, m)) in self
            .send
            .chunks(4096)
            .zip(mix.chunks_mut(4096 * 8))
            .enumerate()
        {
            let n = chunk.len();
            l[..n].fill(0.0);
            r[..n].fill(0.0);
            rv.process(chunk, &mut l[..n], &mut r[..n]);
            for (j, m) in m.chunks_exact_mut(8).enumerate().take(n) {
                let f = self.fade.at(k * 4096 + j);
                let (a, b) = (l[j] * f, r[j] * f);
                wav::push(&mut stem, a, Depth::Int16);
                wav::push(&mut stem, b, Depth::Int16);
                add_f32(&mut m[..4], a);
                add_f32(&mut m[4..], b);
            }
        }
        self.stems.push(("reverb".to_string(), stem));
    }
}

#[inline]
fn add_f32(b: &mut [u8], x: f32) {
    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) + x;
    b.copy_from_slice(&v.to_le_bytes());
}

/// Renders the song. `vocals` is the vocal track when the song has one.
pub fn mix(
    arr: &Arrangement,
    vocals: Option<&Pcm>,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<MixOutput, SynthError> {
    let spb = 60.0 / arr.tempo_bpm.max(1) as f32;
    let mut mix = wav::header(2, Depth::Float32, frames);
    mix.resize(wav::HEADER_LEN + frames * 8, 0);
    let n_parts = arr.parts.len() + usize::from(vocals.is_some());
    let mut bus = Bus {
        mix,
        send: vec![0.0f32; frames],
        fade: Fade::new(arr, spb, frames),
        stems: Vec::with_capacity(n_parts + 1),
    };
    let reverb_scale = arr.reverb / 0.2;
    // One part buffer, reused: memory is one part plus the send, whatever the band.
    let mut buf = vec![0.0f32; frames];
    for (k, part) in arr.parts.iter().enumerate() {
        let lo = k as f32 / (n_parts + 1) as f32;
        let hi = (k + 1) as f32 / (n_parts + 1) as f32;
        tick.at(lo)?;
        buf.fill(0.0);
        let salt = (k as u64 + 1).wrapping_mul(0x9e37_79b9);
        render_part(arr, part, spb, &mut buf, seed ^ salt, &mut tick.sub(lo, hi))?;
        let voice = Voice {
            name: &part.name,
            pan: part.pan,
            level_db: part.level_db,
            send: send_level(part.instrument),
        };
        bus.add(&voice, &buf, reverb_scale);
    }
    if let Some(v) = vocals {
        v.read_mono(&mut buf);
        // The voice sits on top of the band, centred, with its own share of reverb.
        let voice = Voice {
            name: "vocals",
            pan: 0.0,
            level_db: 1.0,
            send: 0.22,
        };
        bus.add(&voice, &buf, reverb_scale);
    }
    drop(buf);
    tick.at(n_parts as f32 / (n_parts + 1) as f32)?;
    bus.reverb(0.55 + 0.6 * arr.reverb, 0.5 - 0.3 * arr.brightness);
    tick.at(1.0)?;
    Ok(MixOutput {
        stems: bus.stems,
        mix: bus.mix,
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
struct Fade {
    start: usize,
    len: usize,
}

impl Fade {
    fn new(arr: &Arrangement, spb: f32, frames: usize) -> Self {
        let music_end = ((arr.total_beats * spb * SR) as usize).min(frames);
        let len = (frames - music_end).max((0.5 * SR) as usize).min(frames);
        Fade {
            start: frames - len,
            len,
        }
    }

    #[inline]
    fn at(&self, i: usize) -> f32 {
        if i < self.start {
            1.0
        } else {
            let t = (i - self.start) as f32 / self.len as f32;
            let c = (t * std::f32::consts::FRAC_PI_2).cos();
            c * c
        }
    }
}

fn render_part(
    arr: &Arrangement,
    part: &Part,
    spb: f32,
    buf: &mut [f32],
    seed: u64,
    tick: &mut Ticker,
) -> Result<(), SynthError> {
    let frames = buf.len();
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
    Ok(())
}
