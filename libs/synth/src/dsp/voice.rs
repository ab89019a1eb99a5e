//! A formant singer: a glottal-like source (band-limited saw, tilted down) through four
//! parallel band-pass resonators placed at the vowel's formants, plus shaped noise for
//! consonants. Monophonic; legato notes share one continuous voice.

use super::filter::{OnePole, Svf};
use super::osc::Saw;
use super::{Noise, sin_cycles};
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

/// Sings `notes` (sorted, non-overlapping) into `out`.
pub fn sing(out: &mut [f32], notes: &[SungNote], singer: Singer, noise: &mut Noise) {
    let mut saw = Saw::default();
    let mut tilt = OnePole::new(900.0);
    let mut bank = [Svf::default(); 4];
    let mut freq = notes.first().map_or(220.0, |n| n.freq);
    let glide_k = 1.0 - (-1.0 / (0.04 * SR)).exp();
    let mut amp = 0.0f32;
    let amp_k = 1.0 - (-1.0 / (0.02 * SR)).exp();
    let mut shape = notes
        .first()
        .map_or(formants(Vowel::A), |n| formants(n.vowel));
    let mut prev_legato = false;
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
        for (k, o) in out[n.start..end].iter_mut().enumerate() {
            let sounding = k < n.len;
            if k % BLOCK == 0 {
                let p = k as f32 / onset_len as f32;
                let mut f = lerp4(from, target, p);
                if let Some(g) = glide {
                    let q = (k as f32 / n.len.max(1) as f32 - 0.6) / 0.35;
                    f = lerp4(f, g, q);
                }
                if coda_nasal {
                    let q = (k as f32 / n.len.max(1) as f32 - 0.75) / 0.2;
                    f = lerp4(f, NASAL, q);
                }
                shape = f;
                for (j, filt) in bank.iter_mut().enumerate() {
                    let fc = f[j] * singer.formant_scale;
                    filt.set(fc, fc / BANDWIDTHS[j]);
                }
            }
            let t = k as f32 / SR;
            let vib_depth = 0.3 * ((t - 0.2) / 0.3).clamp(0.0, 1.0);
            let vib = 1.0 + vib_depth * 0.0578 * sin_cycles(t * 5.6);
            freq += (n.freq - freq) * glide_k;
            let target_amp = if sounding { n.vel } else { 0.0 };
            amp += (target_amp - amp) * amp_k;
            let src = tilt.lp(saw.next(freq * vib / SR)) * 4.0 + singer.breath * noise.next();
            let mut y = 0.0;
            for (filt, g) in bank.iter_mut().zip(GAINS) {
                y += g * filt.band_norm(src);
            }
            *o += amp * y;
        }
        if let Some(c) = n.coda.filter(|c| !matches!(c, Consonant::Nasal)) {
            consonant(out, n.start + n.len, c, false, n.vel, noise);
        }
        prev_legato = n.legato;
    }
}

/// Noise-based consonants. Onsets end at `at` (so the vowel lands on the beat); codas
/// start there.
fn consonant(out: &mut [f32], at: usize, c: Consonant, onset: bool, vel: f32, noise: &mut Noise) {
    let (hz, level, dur) = match c {
        Consonant::Fricative { hz, level } => (hz, level, 0.07),
        Consonant::Plosive { hz } => (hz, 0.5, 0.018),
        Consonant::Breath => (1500.0, 0.12, 0.05),
        Consonant::Nasal | Consonant::Glide(_) => return,
    };
    let len = (dur * SR) as usize;
    let start = if onset { at.saturating_sub(len) } else { at };
    let mut bp = Svf::new(hz, 1.5);
    for (k, o) in out.iter_mut().skip(start).take(len).enumerate() {
        // Rise and fall over the consonant: a smooth hump, no clicks.
        let x = k as f32 / len as f32;
        let env = 4.0 * x * (1.0 - x);
        *o += vel * level * env * bp.band_norm(noise.next());
    }
}
