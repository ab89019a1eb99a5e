//! A formant singer: a glottal-like source (band-limited saw, tilted down) through four
//! parallel band-pass resonators placed at the vowel's formants, plus shaped noise for
//! consonants. Monophonic; legato notes share one continuous voice.

use super::filter::{OnePole, Svf};
use super::osc::Saw;
use super::{Noise, Noise4, sin_cycles};
use crate::phonetics::{Consonant, Vowel};
use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;
const BLOCK: usize = 32;

/// Formant centre frequencies (Hz) of an adult voice, per vowel.
fn formants(v: Vowel) -> [f32; 4] {
    match v {
        Vowel::A => [730.0, 1090.0, 2440.0, 3400.0],
        Vowel::E => [530.0, 1840.0, 2480.0, 3500.0],
        Vowel::I => [270.0, 2290.0, 3010.0, 3700.0],
        Vowel::Ih => [390.0, 1990.0, 2550.0, 3600.0],
        Vowel::O => [570.0, 840.0, 2410.0, 3400.0],
        Vowel::U => [300.0, 870.0, 2240.0, 3300.0],
        Vowel::Uh => [640.0, 1190.0, 2390.0, 3400.0],
        Vowel::Ae => [660.0, 1720.0, 2410.0, 3500.0],
        Vowel::Er => [490.0, 1350.0, 1690.0, 3300.0],
    }
}

/// A closed mouth: low first formant, weak upper ones.
const NASAL: [f32; 4] = [250.0, 1100.0, 2300.0, 3300.0];
const BANDWIDTHS: [f32; 4] = [80.0, 90.0, 120.0, 150.0];
const GAINS: [f32; 4] = [1.0, 0.55, 0.3, 0.15];

/// One sung note, already placed in samples.
#[derive(Debug, Clone)]
pub struct SungNote {
    pub start: usize,
    pub len: usize,
    pub freq: f32,
    pub vel: f32,
    pub vowel: Vowel,
    pub glide_to: Option<Vowel>,
    /// Consonant before the vowel (only on a syllable's first note).
    pub onset: Option<Consonant>,
    /// Consonant after the vowel (only on a syllable's last note).
    pub coda: Option<Consonant>,
    /// Flows into the next note without a break (same breath, melisma).
    pub legato: bool,
}

/// The voice's character: formant scale (1.0 lower voice, ~1.15 higher) and breath.
#[derive(Debug, Clone, Copy)]
pub struct Singer {
    pub formant_scale: f32,
    pub breath: f32,
}

fn lerp4(a: [f32; 4], b: [f32; 4], t: f32) -> [f32; 4] {
    let t = t.clamp(0.0, 1.0);
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
        a[3] + (b[3] - a[3]) * t,
    ]
}

/// The four formant resonators as lanes of small arrays: their recursions are
/// independent, so one sample of all four is a handful of packed operations.
///
/// Each is the state-variable band-pass of [`Svf`] rewritten as its state update
/// (`s' = M s + d x`, output `v1 = e s + f x`), with the band gain folded in, and
/// stepped two samples at a time as [`Svf`]'s blocks are: `s'' = M^2 s + (M d x0 +
/// d x1)`, a multiply and two adds on the chain per two samples.
#[derive(Default)]
struct Bank {
    /// Output: `gain * k * v1 = o1 * ic1 + o2 * ic2 + o3 * x`.
    o: [[f32; 4]; 3],
    /// `ic1' = m11 ic1 + m12 ic2 + d1 x`, `ic2' = m21 ic1 + m22 ic2 + d2 x`.
    m: [[f32; 4]; 6],
    /// `M^2` (q11, q12, q21, q22) and `M d` (e1, e2).
    q: [[f32; 4]; 4],
    e: [[f32; 4]; 2],
    ic1: [f32; 4],
    ic2: [f32; 4],
}

impl Bank {
    /// Tunes resonator `j` to `fc` with bandwidth `bw` (costs a `tan`: per block).
    fn set(&mut self, j: usize, fc: f32, bw: f32, gain: f32) {
        let g = (std::f32::consts::PI * fc.clamp(10.0, SR * 0.45) / SR).tan();
        let k = 1.0 / (fc / bw).max(0.3);
        let a1 = 1.0 / (1.0 + g * (g + k));
        let a2 = g * a1;
        let a3 = g * a2;
        // v3 = x - ic2; v1 = a1 ic1 + a2 v3; v2 = ic2 + a2 ic1 + a3 v3.
        let gk = gain * k;
        self.o[0][j] = gk * a1;
        self.o[1][j] = -gk * a2;
        self.o[2][j] = gk * a2;
        // ic1' = 2 v1 - ic1, ic2' = 2 v2 - ic2.
        let (m11, m12, d1) = (2.0 * a1 - 1.0, -2.0 * a2, 2.0 * a2);
        let (m21, m22, d2) = (2.0 * a2, 1.0 - 2.0 * a3, 2.0 * a3);
        self.m[0][j] = m11;
        self.m[1][j] = m12;
        self.m[2][j] = d1;
        self.m[3][j] = m21;
        self.m[4][j] = m22;
        self.m[5][j] = d2;
        self.q[0][j] = m11 * m11 + m12 * m21;
        self.q[1][j] = m11 * m12 + m12 * m22;
        self.q[2][j] = m21 * m11 + m22 * m21;
        self.q[3][j] = m21 * m12 + m22 * m22;
        self.e[0][j] = m11 * d1 + m12 * d2;
        self.e[1][j] = m21 * d1 + m22 * d2;
    }

    /// Filters `src` and adds `amp[i]` times the sum of the four bands to `out`.
    #[inline]
    fn run(&mut self, src: &[f32], amp: &[f32], out: &mut [f32]) {
        let (o, m, q, e) = (self.o, self.m, self.q, self.e);
        let (mut ic1, mut ic2) = (self.ic1, self.ic2);
        let n = src.len().min(amp.len()).min(out.len());
        let pairs = n / 2;
        for i in 0..pairs {
            let (x0, x1) = (src[2 * i], src[2 * i + 1]);
            let mut y0 = [0.0f32; 4];
            let mut y1 = [0.0f32; 4];
            for j in 0..4 {
                let (s1, s2) = (ic1[j], ic2[j]);
                let t1 = m[0][j] * s1 + m[1][j] * s2 + m[2][j] * x0;
                let t2 = m[3][j] * s1 + m[4][j] * s2 + m[5][j] * x0;
                y0[j] = o[0][j] * s1 + o[1][j] * s2 + o[2][j] * x0;
                y1[j] = o[0][j] * t1 + o[1][j] * t2 + o[2][j] * x1;
                let (u1, u2) = (e[0][j] * x0 + m[2][j] * x1, e[1][j] * x0 + m[5][j] * x1);
                ic1[j] = (q[0][j] * s1 + q[1][j] * s2) + u1;
                ic2[j] = (q[2][j] * s1 + q[3][j] * s2) + u2;
            }
            out[2 * i] += amp[2 * i] * ((y0[0] + y0[1]) + (y0[2] + y0[3]));
            out[2 * i + 1] += amp[2 * i + 1] * ((y1[0] + y1[1]) + (y1[2] + y1[3]));
        }
        if n % 2 == 1 {
            let (i, x) = (n - 1, src[n - 1]);
            let mut y = [0.0f32; 4];
            for j in 0..4 {
                y[j] = o[0][j] * ic1[j] + o[1][j] * ic2[j] + o[2][j] * x;
                let n1 = m[0][j] * ic1[j] + m[1][j] * ic2[j] + m[2][j] * x;
                let n2 = m[3][j] * ic1[j] + m[4][j] * ic2[j] + m[5][j] * x;
                ic1[j] = n1;
                ic2[j] = n2;
            }
            out[i] += amp[i] * ((y[0] + y[1]) + (y[2] + y[3]));
        }
        self.ic1 = ic1;
        self.ic2 = ic2;
    }
}

/// The voice being sung: samples as little-endian 32-bit floats in a byte buffer, so
/// that the finished WAV can take over the buffer (see `vocals::render`) instead of
/// needing fresh memory of its own.
pub struct Voice<'a>(pub &'a mut [u8]);

impl Voice<'_> {
    /// Length in samples.
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Adds `x` to the samples from `at` on (as far as the voice reaches).
    fn add(&mut self, at: usize, x: &[f32]) {
        let bytes = self.0.get_mut(at * 4..).unwrap_or_default();
        let (samples, _) = bytes.as_chunks_mut::<4>();
        for (s, &v) in samples.iter_mut().zip(x) {
            *s = (f32::from_le_bytes(*s) + v).to_le_bytes();
        }
    }
}

/// Sings `notes` (sorted, non-overlapping) into `out`.
///
/// A block of [`BLOCK`] samples at a time: formants are retuned per block, the
/// source (pitch glide, vibrato, glottal saw, breath) is computed for the block, then
/// the resonator bank runs over it in one tight loop.
pub fn sing(out: &mut Voice, notes: &[SungNote], singer: Singer, noise: &mut Noise) {
    let mut saw = Saw::default();
    let mut tilt = OnePole::new(900.0);
    let mut bank = Bank::default();
    // The frequency each resonator is tuned to (none yet).
    let mut tuned = [f32::NAN; 4];
    let mut freq = notes.first().map_or(220.0, |n| n.freq);
    let glide_k = 1.0 - (-1.0 / (0.04 * SR)).exp();
    let mut amp = 0.0f32;
    let amp_k = 1.0 - (-1.0 / (0.02 * SR)).exp();
    let mut shape = notes
        .first()
        .map_or(formants(Vowel::A), |n| formants(n.vowel));
    let mut prev_legato = false;
    let mut src = [0.0f32; BLOCK];
    let mut amps = [0.0f32; BLOCK];
    let mut vib = [0.0f32; BLOCK];
    let mut dts = [0.0f32; BLOCK];
    let mut hiss = [0.0f32; BLOCK];
    // (1 - k)^(i + 1) for the glides' closed forms.
    let pow = |k: f32| {
        let mut p = [1.0 - k; BLOCK];
        for i in 1..BLOCK {
            p[i] = p[i - 1] * (1.0 - k);
        }
        p
    };
    let (glide_pow, amp_pow) = (pow(glide_k), pow(amp_k));
    // Breath noise from four generators side by side (the consonants keep `noise`).
    let mut breath = Noise4::new(noise);
    for n in notes {
        if !prev_legato {
            // A fresh breath: start slightly flat and scoop up, as singers do.
            freq = n.freq * 0.97;
        }
        if let Some(c) = n.onset {
            consonant(out, n.start, c, true, n.vel, noise);
        }
        let target = formants(n.vowel);
        let from = match n.onset {
            Some(Consonant::Nasal) => NASAL,
            Some(Consonant::Glide(v)) => formants(v),
            _ if prev_legato => shape,
            _ => target,
        };
        let glide = n.glide_to.map(formants);
        let coda_nasal = matches!(n.coda, Some(Consonant::Nasal));
        let tail = if n.legato { 0 } else { (0.06 * SR) as usize };
        let end = (n.start + n.len + tail).min(out.len());
        let onset_len = (0.06 * SR) as usize;
        if n.start >= end {
            continue;
        }
        for k0 in (0..end - n.start).step_by(BLOCK) {
            let mut o = [0.0f32; BLOCK];
            let o = &mut o[..BLOCK.min(end - n.start - k0)];
            let p = k0 as f32 / onset_len as f32;
            let mut f = lerp4(from, target, p);
            if let Some(g) = glide {
                let q = (k0 as f32 / n.len.max(1) as f32 - 0.6) / 0.35;
                f = lerp4(f, g, q);
            }
            if coda_nasal {
                let q = (k0 as f32 / n.len.max(1) as f32 - 0.75) / 0.2;
                f = lerp4(f, NASAL, q);
            }
            shape = f;
            for j in 0..4 {
                let fc = f[j] * singer.formant_scale;
                // Held vowels keep their formants for most of a note: retune (a `tan`)
                // only when one moved.
                if fc != tuned[j] {
                    bank.set(j, fc, BANDWIDTHS[j], GAINS[j]);
                    tuned[j] = fc;
                }
            }
            let len = o.len();
            for (i, v) in vib[..len].iter_mut().enumerate() {
                let t = (k0 + i) as f32 / SR;
                let depth = 0.3 * ((t - 0.2) / 0.3).clamp(0.0, 1.0);
                *v = (1.0 + depth * 0.0578 * sin_cycles(t * 5.6)) * (1.0 / SR);
            }
            // The note sounds for `n.len` samples, then the tail fades.
            let sounding = n.len.saturating_sub(k0).min(len);
            // The pitch and loudness glides in closed form over the block (each is
            // `target + (start - target) c^(i+1)`), so the block has no chain from
            // one sample to the next but the saw's phase.
            let d = freq - n.freq;
            for ((dt, &v), &c) in dts[..len].iter_mut().zip(&vib[..len]).zip(&glide_pow) {
                *dt = (n.freq + d * c) * v;
            }
            freq = n.freq + d * glide_pow[len - 1];
            let d = amp - n.vel;
            for (a, &c) in amps[..sounding].iter_mut().zip(&amp_pow) {
                *a = n.vel + d * c;
            }
            if sounding > 0 {
                amp = amps[sounding - 1];
            }
            for (a, &c) in amps[sounding..len].iter_mut().zip(&amp_pow) {
                *a = amp * c;
            }
            amp = amps[len - 1];
            saw.fill_with(&dts[..len], &mut src[..len]);
            tilt.lp_block(&mut src[..len]);
            breath.fill(&mut hiss[..len]);
            for (s, &h) in src[..len].iter_mut().zip(&hiss[..len]) {
                *s = *s * 4.0 + singer.breath * h;
            }
            bank.run(&src[..len], &amps[..len], o);
            out.add(n.start + k0, o);
        }
        if let Some(c) = n.coda.filter(|c| !matches!(c, Consonant::Nasal)) {
            consonant(out, n.start + n.len, c, false, n.vel, noise);
        }
        prev_legato = n.legato;
    }
}

/// Noise-based consonants. Onsets end at `at` (so the vowel lands on the beat); codas
/// start there.
fn consonant(out: &mut Voice, at: usize, c: Consonant, onset: bool, vel: f32, noise: &mut Noise) {
    let (hz, level, dur) = match c {
        Consonant::Fricative { hz, level } => (hz, level, 0.07),
        Consonant::Plosive { hz } => (hz, 0.5, 0.018),
        Consonant::Breath => (1500.0, 0.12, 0.05),
        Consonant::Nasal | Consonant::Glide(_) => return,
    };
    let len = (dur * SR) as usize;
    let start = if onset { at.saturating_sub(len) } else { at };
    let mut bp = Svf::new(hz, 1.5);
    let sound: Vec<f32> = (0..len.min(out.len().saturating_sub(start)))
        .map(|k| {
            // Rise and fall over the consonant: a smooth hump, no clicks.
            let x = k as f32 / len as f32;
            let env = 4.0 * x * (1.0 - x);
            vel * level * env * bp.band_norm(noise.next())
        })
        .collect();
    out.add(start, &sound);
}
