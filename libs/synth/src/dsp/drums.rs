//! Synthesised drums: every hit is a few lines of oscillator, noise and envelope, voiced
//! per genre by a [`Kit`].

use super::Noise;
use super::filter::Svf;
use super::sin_cycles;
use crate::patterns::{
    CLAP, CRASH, HAT, HIGH_TOM, KICK, LOW_TOM, MID_TOM, OPEN_HAT, RIDE, RIM, SHAKER, SNARE,
};
use crate::plan::Genre;
use crate::util::SAMPLE_RATE;

const SR: f32 = SAMPLE_RATE as f32;

/// The sound of a drum kit.
#[derive(Debug, Clone, Copy)]
pub struct Kit {
    kick_start_hz: f32,
    kick_end_hz: f32,
    kick_decay: f32,
    kick_click: f32,
    snare_decay: f32,
    hat_hz: f32,
    tone: f32,
}

impl Kit {
    /// Low-pass cutoff for the whole kit, for dusty genres; `None` leaves it bright.
    pub fn tone_cutoff(&self) -> Option<f32> {
        (self.tone < 1.0).then_some(2000.0 + 14000.0 * self.tone)
    }

    pub fn for_genre(g: Genre) -> Self {
        let k =
            |kick_start_hz, kick_end_hz, kick_decay, kick_click, snare_decay, hat_hz, tone| Kit {
                kick_start_hz,
                kick_end_hz,
                kick_decay,
                kick_click,
                snare_decay,
                hat_hz,
                tone,
            };
        match g {
            Genre::HipHop => k(120.0, 45.0, 0.9, 0.2, 0.2, 8000.0, 0.8),
            Genre::House | Genre::Techno => k(190.0, 50.0, 0.38, 0.5, 0.18, 9000.0, 1.0),
            Genre::Rock => k(150.0, 55.0, 0.28, 0.8, 0.22, 7000.0, 1.0),
            Genre::LoFi => k(130.0, 52.0, 0.3, 0.2, 0.16, 5000.0, 0.5),
            Genre::Jazz | Genre::Folk => k(110.0, 60.0, 0.25, 0.3, 0.15, 6500.0, 0.7),
            Genre::Cinematic => k(90.0, 40.0, 1.0, 0.4, 0.3, 7000.0, 0.8),
            _ => k(160.0, 52.0, 0.35, 0.5, 0.18, 8000.0, 0.9),
        }
    }
}

/// How long each drum rings, in seconds.
pub fn length(note: u8, kit: &Kit) -> f32 {
    match note {
        KICK => kit.kick_decay + 0.05,
        SNARE | CLAP => kit.snare_decay + 0.1,
        HAT | RIM | SHAKER => 0.09,
        OPEN_HAT => 0.4,
        CRASH => 1.8,
        RIDE => 0.9,
        LOW_TOM | MID_TOM | HIGH_TOM => 0.6,
        _ => 0.1,
    }
}

/// Adds one hit of GM drum `note` into `out` (already positioned at the hit).
pub fn hit(out: &mut [f32], note: u8, vel: f32, kit: &Kit, noise: &mut Noise) {
    let amp = vel * vel; // velocity feels closer to loudness when squared
    match note {
        KICK => kick(out, amp, kit),
        SNARE => snare(out, amp, kit, noise),
        CLAP => clap(out, amp, noise),
        HAT => metal(out, 0.35 * amp, kit.hat_hz, 0.035, noise),
        OPEN_HAT => metal(out, 0.3 * amp, kit.hat_hz, 0.22, noise),
        SHAKER => metal(out, 0.25 * amp, kit.hat_hz * 0.8, 0.05, noise),
        CRASH => metal(out, 0.3 * amp, 5000.0, 1.0, noise),
        RIDE => ride(out, 0.25 * amp, noise),
        RIM => tone(out, 0.5 * amp, 1700.0, 1700.0, 0.02),
        LOW_TOM => tone(out, 0.8 * amp, 130.0, 90.0, 0.35),
        MID_TOM => tone(out, 0.8 * amp, 180.0, 130.0, 0.3),
        HIGH_TOM => tone(out, 0.8 * amp, 240.0, 180.0, 0.25),
        _ => {}
    }
}

/// Samples computed at once: each hit runs its recursions (pitch, noise, filter) a
/// block at a time, then the vectorised parts (sines, decay curves) over the block.
const B: usize = 64;

/// `k^0 .. k^(B-1)`: a decay over one block, without a chain through the samples.
fn powers(k: f32) -> [f32; B] {
    let mut p = [1.0f32; B];
    for i in 1..B {
        p[i] = p[i - 1] * k;
    }
    p
}

/// Adds `amp * decay^i * x[i]` to `out` for the signal `x` that `fill` writes a block at
/// a time, for at most `n` samples.
fn decaying(
    out: &mut [f32],
    n: usize,
    amp: f32,
    decay: f32,
    mut fill: impl FnMut(usize, &mut [f32]),
) {
    let pw = powers(decay);
    let step = pw[B - 1] * decay;
    let mut a = amp;
    let mut x = [0.0f32; B];
    let len = n.min(out.len());
    for (b, o) in out[..len].chunks_mut(B).enumerate() {
        let x = &mut x[..o.len()];
        fill(b * B, x);
        for ((o, &x), &p) in o.iter_mut().zip(x.iter()).zip(&pw) {
            *o += a * p * x;
        }
        a *= step;
    }
}

/// Filtered noise into `x`: `kind` is the filter's block method.
fn noise_into(x: &mut [f32], noise: &mut Noise, filter: &mut Svf, kind: fn(&mut Svf, &mut [f32])) {
    for v in x.iter_mut() {
        *v = noise.next();
    }
    kind(filter, x);
}

/// Sine with an exponential pitch drop: the body of kicks and toms. The phase is in
/// closed form within each block (the pitch at sample `i` is `end + f k^i`, so the
/// phase adds `end` per sample and `f` times a running sum of powers of `k`), so the
/// block has no chain from one sample to the next.
fn tone(out: &mut [f32], amp: f32, start_hz: f32, end_hz: f32, decay: f32) {
    let n = ((decay + 0.05) * SR) as usize;
    let pitch_k = (-1.0 / (0.03 * SR)).exp();
    let amp_k = super::env::decay_coef(decay);
    // sums[i] = 1 + k + ... + k^i.
    let mut sums = powers(pitch_k);
    for i in 1..B {
        sums[i] += sums[i - 1];
    }
    let step = powers(pitch_k)[B - 1] * pitch_k;
    let (mut f, mut ph) = (start_hz - end_hz, 0.0f32);
    decaying(out, n, amp, amp_k, |_, x| {
        for (i, (v, &s)) in x.iter_mut().zip(&sums).enumerate() {
            *v = sin_cycles(ph + ((i + 1) as f32 * end_hz + f * s) * (1.0 / SR));
        }
        let m = x.len();
        ph += (m as f32 * end_hz + f * sums[m - 1]) * (1.0 / SR);
        f *= step;
    });
}

fn kick(out: &mut [f32], amp: f32, kit: &Kit) {
    tone(out, amp, kit.kick_start_hz, kit.kick_end_hz, kit.kick_decay);
    // Beater click: a few milliseconds of decaying higher tone.
    tone(out, amp * 0.3 * kit.kick_click, 1200.0, 800.0, 0.006);
}

fn snare(out: &mut [f32], amp: f32, kit: &Kit, noise: &mut Noise) {
    tone(out, amp * 0.5, 240.0, 180.0, 0.08);
    let mut hp = Svf::new(1800.0, 0.7);
    let k = super::env::decay_coef(kit.snare_decay);
    let n = ((kit.snare_decay + 0.1) * SR) as usize;
    decaying(out, n, amp * 0.6, k, |_, x| {
        noise_into(x, noise, &mut hp, Svf::high_block)
    });
}

fn clap(out: &mut [f32], amp: f32, noise: &mut Noise) {
    let mut bp = Svf::new(1200.0, 1.5);
    let n = ((0.3 * SR) as usize).min(out.len());
    let k = super::env::decay_coef(0.18);
    let burst_end = (0.03 * SR) as usize;
    let mut tail = amp * 0.7;
    let mut x = [0.0f32; B];
    for (b, o) in out[..n].chunks_mut(B).enumerate() {
        let x = &mut x[..o.len()];
        noise_into(x, noise, &mut bp, Svf::band_norm_block);
        for (j, (o, &x)) in o.iter_mut().zip(x.iter()).enumerate() {
            let i = b * B + j;
            // Three quick claps, then the room.
            let env = if i < burst_end {
                let c = i as f32 / SR * 100.0;
                (1.0 - (c - (c as u32) as f32)) * amp
            } else {
                let e = tail;
                tail *= k;
                e
            };
            *o += env * x;
        }
    }
}

/// Hats, shakers and cymbals: high-passed noise with a fast decay.
fn metal(out: &mut [f32], amp: f32, hz: f32, decay: f32, noise: &mut Noise) {
    let mut hp = Svf::new(hz, 0.9);
    let k = super::env::decay_coef(decay);
    let n = ((decay + 0.05) * SR) as usize;
    decaying(out, n, amp, k, |_, x| {
        noise_into(x, noise, &mut hp, Svf::high_block)
    });
}

fn ride(out: &mut [f32], amp: f32, noise: &mut Noise) {
    metal(out, amp * 0.5, 7000.0, 0.6, noise);
    // The bell: two inharmonic partials.
    let k = super::env::decay_coef(0.7);
    decaying(out, (0.8 * SR) as usize, amp * 0.3, k, |i0, x| {
        for (j, v) in x.iter_mut().enumerate() {
            let t = (i0 + j) as f32 / SR;
            *v = sin_cycles(t * 2980.0) + 0.6 * sin_cycles(t * 4130.0);
        }
    });
}
