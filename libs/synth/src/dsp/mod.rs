//! Signal processing building blocks. All of them are plain structs stepped a sample
//! or a block at a time, with coefficients computed once per note or per block, never
//! per sample.

pub mod drums;
pub mod env;
pub mod filter;
pub mod osc;
pub mod pluck;
pub mod reverb;
pub mod voice;

/// A tiny xorshift noise source: cheaper than a cryptographic generator per sample, and
/// seeded from one so it stays deterministic.
#[derive(Debug, Clone)]
pub struct Noise(u32);

impl Noise {
    pub fn new(seed: u32) -> Self {
        Noise(seed | 1)
    }
    /// White noise in -1..1.
    #[inline]
    pub fn next(&mut self) -> f32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        (x as i32) as f32 * (1.0 / 2_147_483_648.0)
    }
}

/// Four xorshift generators side by side, for white noise a block at a time: four
/// short chains instead of one long one, which the compiler puts in one vector.
#[derive(Debug, Clone)]
pub struct Noise4([u32; 4]);

impl Noise4 {
    /// Seeded from the next four states of `noise`.
    pub fn new(noise: &mut Noise) -> Self {
        Noise4(std::array::from_fn(|_| {
            noise.next();
            noise.0
        }))
    }
    /// White noise in -1..1 into `out`.
    pub fn fill(&mut self, out: &mut [f32]) {
        for quad in out.chunks_mut(4) {
            for (x, o) in self.0.iter_mut().zip(quad) {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
                *o = (*x as i32) as f32 * (1.0 / 2_147_483_648.0);
            }
        }
    }
}

/// Fast sine of a phase in cycles (any real value below 2^22 in magnitude), accurate
/// to about 0.1%.
#[inline]
pub fn sin_cycles(phase: f32) -> f32 {
    use std::f32::consts::PI;
    // Wrap to -0.5..=0.5 cycles, then a parabola refined by one correction step.
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer (IEEE
    // round-to-nearest, the same on every machine): no libm `floor` and no
    // float-to-int conversion, so loops of sines vectorise.
    const ROUND: f32 = 12_582_912.0;
    let p = phase - ((phase + ROUND) - ROUND);
    let x = p * 2.0 * PI;
    let y = (4.0 / PI) * x - (4.0 / (PI * PI)) * x * x.abs();
    0.225 * (y * y.abs() - y) + y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_sine_is_close() {
        for i in 0..1000 {
            let p = i as f32 / 997.0 - 0.3;
            let exact = (p * std::f32::consts::TAU).sin();
            assert!((sin_cycles(p) - exact).abs() < 0.002, "{p}");
        }
    }
}
