//! The master stage: DC removal, loudness normalisation to -14 LUFS integrated, a
//! look-ahead peak limiter, a true-peak guard at -1 dBTP, short edge fades and 16-bit
//! TPDF dither. Everything streams over the mix a chunk at a time: each round re-reads
//! the mix, so memory stays at the output file whatever the song's length.

use crate::api::SynthError;
use crate::dsp::filter::DcBlock;
use crate::limiter::Limiter;
use crate::loudness::{KMeter, TruePeak};
use crate::util::{SAMPLE_RATE, Ticker};
use crate::wav::{self, Depth, Pcm};

pub const TARGET_LUFS: f64 = -14.0;
/// The true-peak ceiling, with margin under -1 dBTP for 16-bit rounding and for other
/// meters' interpolation filters.
const TRUE_PEAK_CEILING_DB: f32 = -1.25;
/// The limiter's own (true-peak) ceiling, under the guard.
const LIMIT_CEILING_DB: f32 = -1.35;
/// Close enough: the property tests allow 0.5 LU.
const LOUDNESS_TOLERANCE: f64 = 0.2;
const ROUNDS: usize = 6;
const CHUNK: usize = 4096;

fn db(x: f32) -> f32 {
    10f32.powf(x / 20.0)
}

/// Masters `pcm` (read as stereo, padded or cut to `frames`) into a 16-bit stereo WAV.
pub fn master(
    pcm: &Pcm,
    frames: usize,
    seed: u64,
    tick: &mut Ticker,
) -> Result<Vec<u8>, SynthError> {
    // Zeroed by the allocator (fresh pages are zero already), not by a pass of ours.
    let mut out = vec![0u8; wav::HEADER_LEN + frames * 4];
    out[..wav::HEADER_LEN].copy_from_slice(&wav::header_bytes(2, Depth::Int16, frames));
    let measured = measure_source(pcm, frames);
    tick.at(0.1)?;
    if !measured.is_finite() {
        // Silence stays silence: nothing to normalise.
        render(pcm, frames, 1.0, None, seed, &mut out);
        return Ok(out);
    }
    let mut gain_db = (TARGET_LUFS - measured) as f32;
    let mut ceiling_db = LIMIT_CEILING_DB;
    // Limiting lowers loudness and inter-sample peaks can poke above the sample ceiling,
    // so gain and ceiling are refined against the measured result. With the same
    // ceiling twice in a row the secant through the last two rounds converges fast.
    let mut last: Option<(f32, f64, f32)> = None;
    let mut tp = 0.0;
    for round in 0..ROUNDS {
        tick.at(0.1 + 0.85 * round as f32 / ROUNDS as f32)?;
        let (got, peak) = render(
            pcm,
            frames,
            db(gain_db),
            Some(db(ceiling_db)),
            seed,
            &mut out,
        );
        tp = peak;
        let err = TARGET_LUFS - got;
        let over = (peak - TRUE_PEAK_CEILING_DB).max(0.0);
        if !got.is_finite() || (err.abs() < LOUDNESS_TOLERANCE && over == 0.0) {
            break;
        }
        let step = match last {
            Some((g0, l0, c0)) if c0 == ceiling_db && (got - l0).abs() > 0.01 => {
                let slope = (got - l0) / f64::from(gain_db - g0);
                (err / slope.clamp(0.3, 1.5)) as f32
            }
            _ => err as f32,
        };
        last = Some((gain_db, got, ceiling_db));
        ceiling_db -= over + if over > 0.0 { 0.05 } else { 0.0 };
        gain_db += step.clamp(-6.0, 6.0);
    }
    if tp > TRUE_PEAK_CEILING_DB {
        // Did not settle (pathological input): trade a little loudness for the ceiling.
        scale_i16(&mut out, db(TRUE_PEAK_CEILING_DB - tp));
    }
    tick.at(1.0)?;
    Ok(out)
}

/// Integrated loudness of the source. Without the DC blocker the render pass applies:
/// K-weighting has a double zero at DC and a high-pass at 38 Hz, so what a 5 Hz
/// blocker removes does not reach the meter (the render pass measures its own output
/// anyway, so this only sets the first gain).
fn measure_source(pcm: &Pcm, frames: usize) -> f64 {
    let mut meter = KMeter::default();
    let mut buf = vec![[0.0f32; 2]; CHUNK];
    let mut at = 0;
    while at < frames {
        let n = (frames - at).min(CHUNK);
        pcm.read(at, &mut buf[..n]);
        meter.push(&buf[..n]);
        at += n;
    }
    meter.integrated()
}

/// TPDF dither for the 16-bit output: per sample the sum of two uniform noises of
/// one LSB each. Each of the four terms (two per side) comes from four xorshift
/// generators, one per frame of a group of four, so the generators of a group step
/// side by side (in vector registers) instead of one after another.
struct Dither {
    /// `state[term][lane]`.
    state: [[u32; 4]; 4],
}

impl Dither {
    /// The same seed gives the same noise, so every round dithers alike and the last
    /// round's bytes are the deterministic result.
    fn new(seed: u64) -> Self {
        let base = (seed ^ (seed >> 32)) as u32 ^ 0x5eed_d17e;
        Dither {
            state: std::array::from_fn(|t| {
                std::array::from_fn(|l| {
                    let k = (4 * t + l) as u32;
                    base.wrapping_add(0x9e37_79b9u32.wrapping_mul(k)) | 1
                })
            }),
        }
    }

    /// The dither of the next four frames, left and right, in units of full scale.
    #[inline]
    fn next4(&mut self) -> [[f32; 4]; 2] {
        let mut u = [[0.0f32; 4]; 4];
        for (s, u) in self.state.iter_mut().zip(&mut u) {
            for (x, u) in s.iter_mut().zip(u.iter_mut()) {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
                *u = (*x as i32) as f32;
            }
        }
        // Two noises of ±2^31 each, summed, to half an LSB each.
        let k = 0.5 / (32768.0 * 2_147_483_648.0);
        [
            std::array::from_fn(|l| (u[0][l] + u[1][l]) * k),
            std::array::from_fn(|l| (u[2][l] + u[3][l]) * k),
        ]
    }

    /// Dithers `frames` into interleaved little-endian 16-bit `dst` (4 bytes a frame).
    fn write(&mut self, frames: &[[f32; 2]], dst: &mut [u8]) {
        let quads = frames.chunks(4).zip(dst.chunks_mut(16));
        for (q, d) in quads {
            let [dl, dr] = self.next4();
            for (k, (f, d)) in q.iter().zip(d.chunks_exact_mut(4)).enumerate() {
                let l = wav::to_i16(f[0] + dl[k]);
                let r = wav::to_i16(f[1] + dr[k]);
                d[..2].copy_from_slice(&l.to_le_bytes());
                d[2..].copy_from_slice(&r.to_le_bytes());
            }
        }
    }
}

/// One full pass: DC block, gain, limiter (when a ceiling is given), edge fades; writes
/// the dithered 16-bit result into `out` and returns its loudness and true peak (dBTP).
fn render(
    pcm: &Pcm,
    frames: usize,
    gain: f32,
    ceiling: Option<f32>,
    seed: u64,
    out: &mut [u8],
) -> (f64, f32) {
    let mut dc = [DcBlock::new(5.0), DcBlock::new(5.0)];
    let mut limiter = ceiling.map(Limiter::new);
    let mut meter = KMeter::default();
    let mut peak = TruePeak::default();
    let mut dither = Dither::new(seed);
    let edge = (0.005 * SAMPLE_RATE as f32) as usize;
    let mut input = vec![[0.0f32; 2]; CHUNK];
    let mut limited: Vec<[f32; 2]> = Vec::with_capacity(CHUNK + 256);
    let mut written = 0usize;
    let mut at = 0usize;
    while written < frames {
        limited.clear();
        if at < frames {
            let n = (frames - at).min(CHUNK);
            pcm.read(at, &mut input[..n]);
            dc[0].process_channel(&mut input[..n], 0);
            dc[1].process_channel(&mut input[..n], 1);
            for f in &mut input[..n] {
                *f = [f[0] * gain, f[1] * gain];
            }
            match limiter.as_mut() {
                Some(l) => l.process(&input[..n], &mut limited),
                None => limited.extend_from_slice(&input[..n]),
            }
            at += n;
        } else if let Some(l) = limiter.as_mut() {
            l.flush(&mut limited);
        }
        if limited.is_empty() && at >= frames {
            break;
        }
        let near_edge = written < edge || written + limited.len() + edge > frames;
        for (k, f) in limited.iter_mut().enumerate().filter(|_| near_edge) {
            let i = written + k;
            let from_end = frames.saturating_sub(i + 1);
            let fade = (i.min(from_end) as f32 / edge as f32).min(1.0);
            f[0] *= fade;
            f[1] *= fade;
        }
        meter.push(&limited);
        peak.push(&limited);
        let dst = &mut out[wav::HEADER_LEN + written * 4..];
        dither.write(&limited, dst);
        written += limited.len();
    }
    (meter.integrated(), peak.peak_db())
}

/// Scales the 16-bit samples of a WAV (its header as [`wav::header_bytes`] writes it)
/// in place.
fn scale_i16(out: &mut [u8], g: f32) {
    for b in out[wav::HEADER_LEN..].chunks_exact_mut(2) {
        let v = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32767.0;
        b.copy_from_slice(&wav::to_i16(v * g).to_le_bytes());
    }
}
