//! The pitched instruments: each renders one note into a buffer positioned at the note's
//! start. Kept cheap on purpose: two or three oscillators or one string per note, filter
//! coefficients recomputed every 32 samples rather than every sample.

use crate::dsp::env::{Adsr, FILL, decay_coef};
use crate::dsp::filter::Svf;
use crate::dsp::osc::{Pulse, Saw};
use crate::dsp::pluck::pluck;
use crate::dsp::{Noise, sin_cycles};
use crate::plan::Instrument;
use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;
const BLOCK: usize = 32;

/// How long an instrument keeps sounding after the note ends, in seconds.
pub fn release_seconds(inst: Instrument) -> f32 {
    match inst {
        Instrument::Pad => 1.2,
        Instrument::Strings => 0.6,
        Instrument::Bell => 1.5,
        Instrument::Piano | Instrument::EPiano => 0.3,
        Instrument::Guitar | Instrument::Pluck | Instrument::PickBass | Instrument::Upright => 0.15,
        _ => 0.12,
    }
}

/// One note: `out` starts at the note and is `hold` samples plus the release long
/// (or shorter, at the end of the song). `vel` is 0..1.
pub struct NoteSpec {
    pub freq: f32,
    pub vel: f32,
    pub hold: usize,
    pub brightness: f32,
}

pub fn render(inst: Instrument, out: &mut [f32], n: &NoteSpec, noise: &mut Noise) {
    let amp = n.vel * (0.4 + 0.6 * n.vel);
    match inst {
        Instrument::Piano => piano(out, n, amp),
        Instrument::EPiano => fm(out, n, amp, 1.0, 1.6, 1.8),
        Instrument::Bell => fm(out, n, amp * 0.7, 3.5, 2.2, 2.5),
        Instrument::Organ => additive(out, n, amp * 0.5, &[1.0, 0.6, 0.35, 0.2], 0.005, 0.06),
        Instrument::SubBass => additive(out, n, amp, &[1.0, 0.15], 0.005, 0.06),
        Instrument::Pad => saws(out, n, amp * 0.5, &[-0.07, 0.07], 0.45, 2.0, 0.0),
        Instrument::Strings => saws(out, n, amp * 0.45, &[-0.1, 0.0, 0.1], 0.25, 3.0, 0.12),
        Instrument::SawLead => saws(out, n, amp * 0.5, &[-0.05, 0.05], 0.01, 5.0, 0.25),
        Instrument::SquareLead => square(out, n, amp * 0.4),
        Instrument::SynthBass => synth_bass(out, n, amp),
        Instrument::Bass808 => bass808(out, n, amp),
        Instrument::Flute => flute(out, n, amp, noise),
        Instrument::Guitar => string(
            out,
            n,
            amp * 0.8,
            0.45 + 0.4 * n.brightness,
            0.997,
            0.0,
            noise,
        ),
        Instrument::Pluck => string(
            out,
            n,
            amp * 0.8,
            0.6 + 0.4 * n.brightness,
            0.994,
            0.0,
            noise,
        ),
        Instrument::PickBass => string(out, n, amp, 0.35, 0.996, 0.5, noise),
        Instrument::Upright => string(out, n, amp, 0.2, 0.993, 0.6, noise),
        // Drums have their own renderer.
        Instrument::Drums => {}
    }
}

/// The gate: sustain for `hold` samples, then release. A block of up to [`FILL`]
/// samples at a time: the envelope for the block, then `fill(i, buf)` writes the raw
/// signal of samples `i..i + buf.len()` (always called in order, from 0), then one
/// multiply-add into `out`.
fn gated(out: &mut [f32], hold: usize, mut env: Adsr, mut fill: impl FnMut(usize, &mut [f32])) {
    let mut e = [0.0f32; FILL];
    let mut s = [0.0f32; FILL];
    for (b, o) in out.chunks_mut(FILL).enumerate() {
        let i0 = b * FILL;
        let n = o.len();
        let release_at = hold.checked_sub(i0).filter(|&r| r < n);
        let m = env.fill(&mut e[..n], release_at);
        fill(i0, &mut s[..m]);
        for ((o, &e), &s) in o.iter_mut().zip(&e[..m]).zip(&s[..m]) {
            *o += e * s;
        }
        if m < n {
            break;
        }
    }
}

/// [`gated`] with the signal given one sample at a time.
fn gated_each(out: &mut [f32], hold: usize, env: Adsr, mut sample: impl FnMut(usize) -> f32) {
    gated(out, hold, env, |i0, buf| {
        for (k, x) in buf.iter_mut().enumerate() {
            *x = sample(i0 + k);
        }
    });
}

/// Piano: a few slightly stretched partials, higher ones dying sooner; the damper
/// cuts the note at release. Chords of piano notes are the densest thing most songs
/// play, so each partial (a damped sine) is a recursion rather than a sine
/// evaluation, eight samples at a time: the samples `8j + l` (l = 0..7) of a damped
/// sine are themselves a damped sine, so `Y[j+1] = A Y[j] - B Y[j-1]` on groups of
/// eight consecutive samples, with `A = 2 d^8 cos 8w` and `B = d^16`: two multiplies
/// and a subtraction per eight samples, the samples of a group side by side (in
/// vector registers). Two partials at a time, so their chains overlap and their
/// state stays in registers.
fn piano(out: &mut [f32], n: &NoteSpec, amp: f32) {
    let base_decay = (2.5 * (261.0 / n.freq).sqrt()).clamp(0.5, 4.0);
    let partials: [(f32, f32); 4] = [(1.0, 1.0), (2.0, 0.45), (3.0, 0.22), (4.0, 0.12)];
    // Per partial: the recursion's coefficients and its last two groups of eight.
    let mut coef = [(0.0f32, 0.0f32); 4];
    let mut prev = [[0.0f32; 8]; 4];
    let mut cur = [[0.0f32; 8]; 4];
    for (k, &(h, level)) in partials.iter().enumerate() {
        let f = n.freq * h * (1.0 + 0.0004 * h * h).sqrt();
        if f >= 0.45 * SR {
            continue;
        }
        let bright = if k == 0 { 1.0 } else { 0.5 + n.brightness };
        let d = decay_coef(base_decay / h.powf(0.7));
        let w = std::f32::consts::TAU * f / SR;
        let (c1, s1) = (w.cos() * d, w.sin() * d);
        // The first sixteen samples by single steps of a damped rotation (x = sine,
        // c = cosine); sample i sounds the state after i + 1 steps.
        let (mut xs, mut cs) = (0.0f32, level * bright * amp * 0.6);
        for i in 0..16 {
            let nx = xs * c1 + cs * s1;
            cs = cs * c1 - xs * s1;
            xs = nx;
            if i < 8 {
                prev[k][i] = xs;
            } else {
                cur[k][i - 8] = xs;
            }
        }
        let d8 = d.powi(8);
        coef[k] = (2.0 * (8.0 * w).cos() * d8, d8 * d8);
    }
    let env = Adsr::new(0.003, 10.0, 1.0, 0.18);
    gated(out, n.hold, env, |_, buf| {
        for pair in 0..2 {
            let (k0, k1) = (2 * pair, 2 * pair + 1);
            let ((a0, b0), (a1, b1)) = (coef[k0], coef[k1]);
            let (mut p0, mut c0, mut p1, mut c1) = (prev[k0], cur[k0], prev[k1], cur[k1]);
            for group in buf.chunks_mut(8) {
                // The oldest group sounds; then the recursion moves on by eight.
                for (l, o) in group.iter_mut().enumerate() {
                    let y = p0[l] + p1[l];
                    *o = if pair == 0 { y } else { *o + y };
                }
                let n0: [f32; 8] = std::array::from_fn(|l| a0 * c0[l] - b0 * p0[l]);
                let n1: [f32; 8] = std::array::from_fn(|l| a1 * c1[l] - b1 * p1[l]);
                (p0, c0, p1, c1) = (c0, n0, c1, n1);
            }
            (prev[k0], cur[k0], prev[k1], cur[k1]) = (p0, c0, p1, c1);
        }
    });
}

/// Two-operator FM: electric piano (ratio 1) and bells (inharmonic ratio).
fn fm(out: &mut [f32], n: &NoteSpec, amp: f32, ratio: f32, index: f32, decay: f32) {
    let dt = n.freq / SR;
    let idx_k = decay_coef(decay * 0.4);
    let mut idx = index * (0.5 + 0.5 * n.vel) * (0.6 + 0.6 * n.brightness);
    let env = Adsr::new(0.002, decay, 0.0, release_seconds(Instrument::EPiano));
    gated_each(out, n.hold, env, |i| {
        let t = i as f32 * dt;
        let m = sin_cycles(t * ratio) * idx;
        idx *= idx_k;
        amp * sin_cycles(t + m * 0.159)
    });
}

fn additive(out: &mut [f32], n: &NoteSpec, amp: f32, harmonics: &[f32], attack: f32, release: f32) {
    let dt = n.freq / SR;
    let env = Adsr::new(attack, 0.1, 1.0, release);
    gated_each(out, n.hold, env, |i| {
        let t = i as f32 * dt;
        let mut y = 0.0;
        for (k, &a) in harmonics.iter().enumerate() {
            y += a * sin_cycles(t * (k + 1) as f32);
        }
        amp * y * 0.7
    });
}

/// Detuned saws through a low-pass: pads, strings and the saw lead.
fn saws(
    out: &mut [f32],
    n: &NoteSpec,
    amp: f32,
    detune_semis: &[f32],
    attack: f32,
    cutoff_mult: f32,
    vibrato: f32,
) {
    let mut oscs: Vec<(Saw, f32)> = detune_semis
        .iter()
        .enumerate()
        .map(|(k, &d)| (Saw::with_phase(k as f32 * 0.37), (d / 12.0).exp2()))
        .collect();
    let base = n.freq * cutoff_mult + 600.0 * n.brightness;
    let mut filter = Svf::new(base, 0.8);
    let release = if attack > 0.1 { 2.0 * attack } else { 0.12 };
    let env = Adsr::new(attack, 0.3, 0.85, release);
    let gain = amp / (oscs.len() as f32).sqrt();
    gated_each(out, n.hold, env, |i| {
        let t = i as f32 / SR;
        // Vibrato fades in after the attack, like a player's.
        let vib = if vibrato > 0.0 {
            1.0 + vibrato / 12.0 * 0.69 * sin_cycles(t * 5.2) * (t * 2.0 - 0.3).clamp(0.0, 1.0)
        } else {
            1.0
        };
        if i % BLOCK == 0 {
            let sweep = 1.0 + 0.15 * sin_cycles(t * 0.3);
            filter.set(base * sweep, 0.8);
        }
        let dt = n.freq * vib / SR;
        let mut y = 0.0;
        for (o, ratio) in oscs.iter_mut() {
            y += o.next(dt * *ratio);
        }
        gain * filter.low(y)
    });
}

fn square(out: &mut [f32], n: &NoteSpec, amp: f32) {
    let mut osc = Pulse::default();
    let mut filter = Svf::new(n.freq * 4.0 + 1500.0 * n.brightness, 0.9);
    let env = Adsr::new(0.005, 0.2, 0.8, 0.1);
    gated_each(out, n.hold, env, |i| {
        let t = i as f32 / SR;
        let vib = 1.0 + 0.012 * sin_cycles(t * 5.5) * (t * 2.0 - 0.4).clamp(0.0, 1.0);
        let pw = 0.5 + 0.15 * sin_cycles(t * 0.7);
        amp * filter.low(osc.next(n.freq * vib / SR, pw))
    });
}

/// Saw bass with a snappy filter envelope, the backbone of house and pop.
fn synth_bass(out: &mut [f32], n: &NoteSpec, amp: f32) {
    let mut saw = Saw::default();
    let mut sub = 0.0f32;
    let mut filter = Svf::new(n.freq * 8.0, 1.1);
    // The filter envelope is only read once per BLOCK samples.
    let fenv_k = decay_coef(0.25).powi(BLOCK as i32);
    let mut fenv = 1.0f32;
    let env = Adsr::new(0.003, 0.3, 0.7, 0.05);
    let dt = n.freq / SR;
    let mut sine = [0.0f32; BLOCK];
    gated(out, n.hold, env, |_, buf| {
        for part in buf.chunks_mut(BLOCK) {
            filter.set(n.freq * (1.5 + 6.0 * fenv * (0.5 + n.brightness)), 1.1);
            fenv *= fenv_k;
            let sine = &mut sine[..part.len()];
            saw.fill(dt, part);
            // The sub's phase from the block's start, as the saw's: no chain.
            for (s, k) in sine.iter_mut().zip(1..) {
                *s = 0.5 * sin_cycles(sub + k as f32 * dt);
            }
            sub += part.len() as f32 * dt;
            filter.low_block(part);
            for (x, s) in part.iter_mut().zip(sine.iter()) {
                *x = amp * (0.6 * *x + s);
            }
        }
    });
}

/// The 808: a long sine with a quick downward pitch sweep and gentle saturation.
fn bass808(out: &mut [f32], n: &NoteSpec, amp: f32) {
    let sweep_k = decay_coef(0.05);
    let mut sweep = 1.0f32;
    let mut ph = 0.0f32;
    let env = Adsr::new(0.002, 1.5, 0.3, 0.08);
    gated_each(out, n.hold, env, |_| {
        ph += n.freq * (1.0 + sweep) / SR;
        sweep *= sweep_k;
        let x = 1.6 * sin_cycles(ph);
        amp * x / (1.0 + x.abs()) * 1.2
    });
}

fn flute(out: &mut [f32], n: &NoteSpec, amp: f32, noise: &mut Noise) {
    let mut breath = Svf::new(n.freq * 2.0, 2.0);
    let env = Adsr::new(0.06, 0.2, 0.85, 0.12);
    gated_each(out, n.hold, env, |i| {
        let t = i as f32 / SR;
        let vib = 1.0 + 0.006 * sin_cycles(t * 5.0) * (t * 2.0 - 0.4).clamp(0.0, 1.0);
        let p = t * n.freq * vib;
        let tone = sin_cycles(p) + 0.12 * sin_cycles(2.0 * p) + 0.05 * sin_cycles(3.0 * p);
        amp * 0.8 * (tone + 0.12 * breath.band_norm(noise.next()))
    });
}

/// Karplus-Strong string, damped after the note ends; `body` adds a sine fundamental
/// for the weight a short delay line lacks in the bass.
fn string(
    out: &mut [f32],
    n: &NoteSpec,
    amp: f32,
    brightness: f32,
    sustain: f32,
    body: f32,
    noise: &mut Noise,
) {
    let len = out.len();
    let mut tmp = vec![0.0f32; len];
    pluck(&mut tmp, n.freq, amp, brightness, sustain, noise);
    let damp_k = decay_coef(0.08);
    let body_k = decay_coef(1.2);
    let (mut damp, mut body_amp) = (1.0f32, amp * body);
    if body == 0.0 {
        // No body: the string alone, undamped while held (no sine to compute).
        let hold = n.hold.min(len);
        for (o, s) in out[..hold].iter_mut().zip(&tmp) {
            *o += s;
        }
        for (o, s) in out[hold..].iter_mut().zip(&tmp[hold..]) {
            damp *= damp_k;
            *o += damp * s;
        }
        return;
    }
    let dt = n.freq / SR;
    for (i, (o, s)) in out.iter_mut().zip(&tmp).enumerate() {
        if i >= n.hold {
            damp *= damp_k;
        }
        let b = body_amp * sin_cycles(i as f32 * dt) * (i as f32 / 200.0).min(1.0);
        body_amp *= body_k;
        *o += damp * (s + b);
    }
}
