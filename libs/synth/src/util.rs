//! Small shared helpers: seeded randomness and progress reporting.

use std::ops::ControlFlow;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::api::SynthError;

/// The output sample rate of every audio artifact.
pub const SAMPLE_RATE: u32 = 44_100;

/// A random generator for one purpose of one song. Each purpose gets its own salt so
/// that, e.g., changing how drums use randomness never changes the melody.
pub fn rng_for(seed: u64, salt: &str) -> ChaCha8Rng {
    // FNV-1a over the salt: stable across platforms and Rust versions (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in salt.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix(seed ^ h))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Picks one element of a non-empty static table.
pub fn pick<'a, T, R: Rng>(rng: &mut R, xs: &'a [T]) -> &'a T {
    // The tables are compile-time constants and never empty; `max(1)` only keeps the range valid.
    let i = rng.random_range(0..xs.len().max(1));
    &xs[i.min(xs.len().saturating_sub(1))]
}

/// The larger of two values that are never NaN: one instruction, where `f32::max`
/// spends several on NaN handling, in loops over every sample.
#[inline(always)]
pub fn fmax(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// The larger of `init` and the largest |x| in `xs` (`init` must not be negative). In
/// eight lanes that the compiler vectorises: a fold of `fmax` is one long chain of
/// dependent instructions. The maximum is exact in any order, so the result is the
/// same as the plain fold's.
#[inline]
pub fn peak_abs(xs: &[f32], init: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            lanes[k] = fmax(lanes[k], c[k].abs());
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .fold(init, |m, v| fmax(m, v.abs()));
    // The lanes pairwise, a tree three deep instead of a chain of eight.
    let [a, b, c, d, e, f, g, h] = lanes;
    let (p, q, r, s) = (fmax(a, e), fmax(b, f), fmax(c, g), fmax(d, h));
    fmax(m, fmax(fmax(p, r), fmax(q, s)))
}

/// Linear interpolation.
pub fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Reports progress into a sub-range of the stage's 0..1 span and turns a `Break` into
/// [`SynthError::Cancelled`]. Values only ever rise.
pub struct Ticker<'p, 'f> {
    f: &'p mut (dyn FnMut(f32) -> ControlFlow<()> + 'f),
    lo: f32,
    hi: f32,
}

impl<'p, 'f> Ticker<'p, 'f> {
    pub fn new(f: &'p mut (dyn FnMut(f32) -> ControlFlow<()> + 'f)) -> Self {
        Ticker {
            f,
            lo: 0.0,
            hi: 1.0,
        }
    }

    /// Reports `frac` (0..1) of this ticker's range.
    pub fn at(&mut self, frac: f32) -> Result<(), SynthError> {
        let x = self.lo + (self.hi - self.lo) * frac.clamp(0.0, 1.0);
        match (self.f)(x) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(SynthError::Cancelled),
        }
    }

    /// A ticker for the part `a..b` (fractions of this ticker's range).
    pub fn sub(&mut self, a: f32, b: f32) -> Ticker<'_, 'f> {
        let span = self.hi - self.lo;
        Ticker {
            lo: self.lo + span * a,
            hi: self.lo + span * b,
            f: &mut *self.f,
        }
    }
}
